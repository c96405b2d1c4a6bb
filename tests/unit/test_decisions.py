"""The choices of submit, cancel, the poll loop and the sweep, with a fixed clock and in-memory fakes passed
in as the use case's `Context` (no moto, no network): every branch, in milliseconds."""

from __future__ import annotations

import base64
import dataclasses
import zlib
from typing import Any

import pytest
from botocore.exceptions import ClientError
from vidgen.config import get_settings
from vidgen.errors import (
    ActiveCapReached,
    AlreadySettled,
    AuthFailedError,
    ConflictError,
    GenerationFailedError,
    IdempotencyConflictError,
    InsufficientCredits,
    InsufficientCreditsError,
    NotFoundError,
    OutputDownloadError,
    ProviderContentPolicyError,
    ProviderRejectedError,
    ProviderThrottledError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitExceededError,
    Replayed,
    StoreError,
    UnknownUser,
    UnsafeUrlError,
)
from vidgen.jobs import submit as submit_use_case
from vidgen.jobs import sweep as sweep_use_case
from vidgen.jobs import tasks
from vidgen.jobs.context import Context
from vidgen.models import JobRequest
from vidgen.providers.base import ProviderTask, TaskFailure, TaskOutput
from vidgen.store.idempotency import IdempotencyRecord
from vidgen.store.jobs import Job, StoredOutput

NOW = 1_800_000_000.0


def png_header(width: int, height: int) -> bytes:
    """A PNG's signature and IHDR chunk: all a header reader needs for the dimensions."""
    ihdr = width.to_bytes(4, 'big') + height.to_bytes(4, 'big') + bytes([8, 6, 0, 0, 0])
    return b'\x89PNG\r\n\x1a\n' + len(ihdr).to_bytes(4, 'big') + b'IHDR' + ihdr + zlib.crc32(b'IHDR' + ihdr).to_bytes(4, 'big')


PNG = 'data:image/png;base64,' + base64.b64encode(png_header(1280, 720)).decode()


class FakeJobs:
    def __init__(self, *jobs: Job) -> None:
        self.jobs = {job.id: job for job in jobs}
        self.deferred: list[tuple[str, float]] = []
        self.broken: set[str] = set()

    def get_job(self, job_id: str, *, consistent: bool = True) -> Job:
        job = self.find_job(job_id)
        if job is None:
            raise NotFoundError(f'No job {job_id!r}.')
        return job

    def find_job(self, job_id: str) -> Job | None:
        if job_id in self.broken:
            raise StoreError('The database refused a read.')
        return self.jobs.get(job_id)

    def mark_running(self, job_id: str, task_id: str, now: float, sweep_at: float) -> Job | None:
        job = dataclasses.replace(self.jobs[job_id], status='running', provider_task_id=task_id)
        self.jobs[job_id] = job
        return job

    def defer_sweep(self, job_id: str, status: str, sweep_at: float) -> Job | None:
        self.deferred.append((job_id, sweep_at))
        return self.jobs[job_id]

    def jobs_needing_attention(self, status: str, now: float, limit: int) -> list[str]:
        broken = sorted(self.broken) if status == 'queued' else []
        return broken + [job_id for job_id, job in self.jobs.items() if job.status == status]


class FakeLedger:
    def __init__(self, jobs: FakeJobs, balance: int | None = 1000, refusal: Exception | None = None) -> None:
        self.jobs = jobs
        self.user_balance = balance
        self.refusal = refusal
        self.debited: list[Job] = []
        self.settled: list[tuple[str, str, bool, dict[str, Any]]] = []
        self.lose_race = False  # another actor settles every job first
        self.balance_reads = 0

    def submit_debit(self, job: Job, *, max_active_jobs: int, sweep_at: float, idempotency: Any = None) -> None:
        if self.refusal:
            raise self.refusal
        self.debited.append(job)
        self.jobs.jobs[job.id] = job

    def settle(self, job: Job, *, status: str, now: float, refund: bool, extra: dict[str, Any]) -> None:
        if self.lose_race or not self.jobs.jobs[job.id].is_active:
            raise AlreadySettled(job.id)
        self.settled.append((job.id, status, refund, extra))
        self.jobs.jobs[job.id] = dataclasses.replace(job, status=status, refunded=refund)

    def balance(self, user_id: str, *, consistent: bool = True) -> int:
        self.balance_reads += 1
        if self.user_balance is None:
            raise UnknownUser(user_id)
        return self.user_balance


class FakeExecutions:
    def __init__(self, statuses: dict[str, str] | None = None, start_error: Exception | None = None) -> None:
        self.statuses = statuses or {}
        self.start_error = start_error
        self.started: list[str] = []
        self.stopped: list[str] = []

    def start(self, job_id: str) -> bool:
        if self.start_error:
            raise self.start_error
        self.started.append(job_id)
        return True

    def status(self, job_id: str) -> str | None:
        return self.statuses.get(job_id)

    def stop(self, job_id: str, cause: str) -> None:
        self.stopped.append(job_id)


class FakeProvider:
    """Answers from a script: `task` (a ProviderTask or an exception to raise) and `create` likewise."""

    def __init__(self, task: ProviderTask | Exception | None = None, create: str | Exception = 'task-new') -> None:
        self.task = task
        self.create = create
        self.created: list[str] = []

    def create_task(self, request: Any, callback_url: str | None) -> str:
        if isinstance(self.create, Exception):
            raise self.create
        self.created.append(request.job_id)
        return self.create

    def get_task(self, task_id: str, request: Any) -> ProviderTask:
        if isinstance(self.task, Exception):
            raise self.task
        assert self.task is not None, 'this test expects no provider call'
        return self.task

    def parse_callback(self, body: Any, headers: Any) -> Any:
        raise AssertionError('not used')


@dataclasses.dataclass
class World:
    jobs: FakeJobs
    ledger: FakeLedger
    executions: FakeExecutions
    provider: FakeProvider
    now: float = NOW
    images: list[str] = dataclasses.field(default_factory=list)
    copied: list[str] = dataclasses.field(default_factory=list)
    linked: dict[str, bytes | Exception] = dataclasses.field(default_factory=dict)  # https image -> its bytes
    records: dict[str, IdempotencyRecord] = dataclasses.field(default_factory=dict)

    @property
    def ctx(self) -> Context:
        def save(owner: str, job_id: str, name: str, value: str) -> str:
            self.images.append(name)
            return f's3://inputs/{owner}/{job_id}/{name}.png'

        def copy(url: str, owner: str, job_id: str, index: int, hint: str | None) -> StoredOutput:
            self.copied.append(url)
            return StoredOutput(key=f'results/{owner}/{job_id}/{index}.mp4', content_type='video/mp4', bytes=10)

        def read_head(url: str, max_bytes: int) -> tuple[bytes, int | None]:
            body = self.linked[url]
            if isinstance(body, Exception):
                raise body
            return body[:max_bytes], len(body)

        return Context(clock=lambda: self.now, jobs=self.jobs, ledger=self.ledger, executions=self.executions,
                       provider=lambda name: self.provider,  # type: ignore[arg-type,return-value]
                       callback_url=lambda provider, job_id: None,
                       find_idempotency_record=lambda owner, key, now: self.records.get(key),
                       save_input_image=save, copy_result=copy, read_image_head=read_head)


def job(status: str = 'running', task_id: str | None = 'task-1', deadline: float = NOW + 600, **fields: Any) -> Job:
    return Job(id=fields.pop('id', 'job-1'), owner='alice', status=status, model='kling-v2-6', provider='kling',
               provider_model='kling-v2-6', kind=fields.pop('kind', 't2v'), prompt='a lighthouse', params={}, credits=20,
               created_at=NOW - 60, updated_at=NOW - 60, deadline_at=deadline, provider_task_id=task_id, **fields)


def world(*jobs: Job, task: ProviderTask | Exception | None = None, create: str | Exception = 'task-new',
          statuses: dict[str, str] | None = None, balance: int | None = 1000, refusal: Exception | None = None,
          start_error: Exception | None = None) -> World:
    store = FakeJobs(*jobs)
    return World(store, FakeLedger(store, balance, refusal), FakeExecutions(statuses, start_error),
                 FakeProvider(task, create))


def sweep_jobs(w: World) -> sweep_use_case.SweepReport:
    report = sweep_use_case.SweepReport()
    sweep_use_case.sweep_jobs(report, w.ctx)
    return report


SUCCEEDED = ProviderTask('task-1', 'succeeded', outputs=(TaskOutput('https://cdn.test/v.mp4', 'video/mp4'),))
RUNNING = ProviderTask('task-1', 'running')
POLICY = ProviderTask('task-1', 'failed', failure=TaskFailure('CONTENT_POLICY', 'Refused by policy.'))


# --- the poll loop ---------------------------------------------------------------------------------------


def test_poll_of_a_settled_job_reports_settled_and_asks_no_one():
    w = world(job(status='succeeded'))
    assert tasks.poll_job('job-1', 0, w.ctx) == {'attempt': 1, 'wait_seconds': tasks.poll_interval(0), 'state': 'settled'}


def test_poll_past_the_deadline_is_a_provider_timeout():
    w = world(job(deadline=NOW), task=RUNNING)
    with pytest.raises(ProviderTimeoutError, match=f'within {get_settings().job_deadline_seconds // 60} minutes'):
        tasks.poll_job('job-1', 3, w.ctx)


@pytest.mark.parametrize(('task', 'state'), [(SUCCEEDED, 'succeeded'), (RUNNING, 'running'),
                                              (ProviderUnavailableError('down'), 'running'),
                                              (ProviderThrottledError('slow down'), 'running')])
def test_poll_asks_the_provider_and_a_hiccup_means_poll_again(task, state):
    w = world(job(), task=task)
    # Past the last interval the last one repeats.
    last = get_settings().poll_intervals[-1]
    assert tasks.poll_job('job-1', 5, w.ctx) == {'attempt': 6, 'wait_seconds': last, 'state': state}


def test_a_task_the_provider_failed_raises_its_typed_error():
    w = world(job(), task=POLICY)
    with pytest.raises(ProviderContentPolicyError, match='Refused by policy.'):
        tasks.poll_job('job-1', 1, w.ctx)


def test_without_a_provider_task_the_first_poll_waits_and_the_next_creates_it():
    w = world(job(status='queued', task_id=None))
    assert tasks.poll_job('job-1', 0, w.ctx)['state'] == 'running' and w.provider.created == []
    assert tasks.poll_job('job-1', 1, w.ctx)['state'] == 'running'
    assert w.provider.created == ['job-1'] and w.jobs.jobs['job-1'].provider_task_id == 'task-new'


def test_a_create_from_the_poll_loop_tries_again_on_transient_refusals_and_fails_on_the_others():
    w = world(job(status='queued', task_id=None), create=ProviderThrottledError('slow down'))
    assert tasks.poll_job('job-1', 1, w.ctx)['state'] == 'running'
    w.provider.create = ProviderContentPolicyError('Refused by policy.')
    with pytest.raises(ProviderContentPolicyError):
        tasks.poll_job('job-1', 2, w.ctx)


def test_a_linked_image_that_breaks_the_model_rules_fails_the_create_before_the_provider_sees_it():
    w = world(job(status='queued', task_id=None, kind='i2v', image='https://img.test/tiny.png'))
    w.linked['https://img.test/tiny.png'] = png_header(64, 64)
    with pytest.raises(ProviderRejectedError, match=r'^image is 64×64 px; kling-v2-6 needs a width of at least 300 px'):
        tasks.poll_job('job-1', 1, w.ctx)
    assert w.provider.created == []


def test_a_linked_image_within_the_rules_goes_to_the_provider():
    w = world(job(status='queued', task_id=None, kind='i2v', image='https://img.test/ok.png'))
    w.linked['https://img.test/ok.png'] = png_header(1280, 720)
    assert tasks.poll_job('job-1', 1, w.ctx)['state'] == 'running' and w.provider.created == ['job-1']


def test_a_linked_image_the_network_could_not_reach_is_tried_again_at_the_next_poll():
    w = world(job(status='queued', task_id=None, kind='i2v', image='https://img.test/x.png'))
    w.linked['https://img.test/x.png'] = OutputDownloadError('no route')
    assert tasks.poll_job('job-1', 1, w.ctx)['state'] == 'running' and w.provider.created == []
    with pytest.raises(ProviderUnavailableError, match='^image could not be fetched yet'):
        tasks.check_linked_images(w.jobs.jobs['job-1'], w.ctx)


@pytest.mark.parametrize(('failure', 'text'), [
    (OutputDownloadError('gone', details={'status': 404}), r'^image could not be fetched from its URL \(answered HTTP 404\)'),
    (UnsafeUrlError('The URL points at a private address.'), r'^image could not be fetched .*private address'),
])
def test_a_linked_image_the_server_refused_or_the_guard_stopped_fails_the_job(failure, text):
    w = world(job(status='queued', task_id=None, kind='i2v', image='https://img.test/x.png'))
    w.linked['https://img.test/x.png'] = failure
    with pytest.raises(ProviderRejectedError, match=text):
        tasks.poll_job('job-1', 1, w.ctx)
    assert w.provider.created == []


# --- the sweep ---------------------------------------------------------------------------------------------


def test_a_queued_job_whose_execution_never_started_is_started_and_looked_at_again_later():
    w = world(job(status='queued', task_id=None))
    report = sweep_jobs(w)
    assert report.started == ['job-1'] and w.executions.started == ['job-1']
    assert w.jobs.deferred == [('job-1', NOW + get_settings().queued_grace_seconds)]


def test_a_job_whose_execution_runs_is_left_to_it_until_the_liveness_check():
    w = world(job(), statuses={'job-1': 'RUNNING'})
    report = sweep_jobs(w)
    assert report.deferred == ['job-1'] and w.ledger.settled == [] and w.executions.stopped == []
    deadline = NOW + 600
    assert w.jobs.deferred == [('job-1', min(deadline, NOW + get_settings().sweep_liveness_seconds))]


@pytest.mark.parametrize(('the_job', 'task', 'statuses', 'code'), [
    (job(), POLICY, {'job-1': 'ABORTED'}, 'CONTENT_POLICY'),  # the provider failed it
    (job(deadline=NOW), RUNNING, {'job-1': 'RUNNING'}, 'PROVIDER_TIMEOUT'),  # out of time, whatever runs
    (job(status='queued', task_id=None), None, {'job-1': 'FAILED'}, 'PROVIDER_UNAVAILABLE'),  # never created
])
def test_the_sweep_fails_and_refunds_what_cannot_finish_and_stops_its_execution(the_job, task, statuses, code):
    w = world(the_job, task=task, statuses=statuses)
    report = sweep_jobs(w)
    assert report.failed == ['job-1'] and w.executions.stopped == ['job-1']
    [(job_id, status, refund, extra)] = w.ledger.settled
    assert (status, refund, extra['error']['code']) == ('failed', True, code)


def test_a_transient_provider_error_defers_the_job_to_the_next_poll_interval():
    w = world(job(), task=ProviderUnavailableError('down'), statuses={'job-1': 'FAILED'})
    report = sweep_jobs(w)
    assert report.deferred == ['job-1'] and w.ledger.settled == []
    assert w.jobs.deferred == [('job-1', NOW + tasks.poll_interval(0))]


def test_a_task_still_running_without_its_execution_is_asked_again_later():
    w = world(job(deadline=NOW + 10_000), task=RUNNING, statuses={'job-1': 'FAILED'})
    report = sweep_jobs(w)
    assert report.deferred == ['job-1'] and w.jobs.deferred == [('job-1', NOW + tasks.poll_interval(1))]


@pytest.mark.parametrize('outcome, counted', [('succeeded', 'finalized'), ('failed', 'failed'), (None, None)])
def test_a_task_that_finished_without_its_execution_is_finalized_by_the_sweep(monkeypatch, outcome, counted):
    """The sweep's own choice: a succeeded task whose execution is gone is copied, inspected and settled
    here (tasks.finalize_here, covered end to end by the crash tests), counted by its outcome, and its
    owner notified once; a job someone else settled first is neither counted nor notified."""
    finalized: list[str] = []
    notified: list[str] = []
    monkeypatch.setattr(tasks, 'finalize_here', lambda the_job: finalized.append(the_job.id) or outcome)
    monkeypatch.setattr(tasks, 'notify_once', lambda job_id, ctx: notified.append(job_id))
    w = world(job(), task=SUCCEEDED, statuses={'job-1': 'FAILED'})
    report = sweep_jobs(w)
    assert finalized == ['job-1']
    assert report.finalized == (['job-1'] if counted == 'finalized' else [])
    assert report.failed == (['job-1'] if counted == 'failed' else [])
    assert notified == ([] if outcome is None else ['job-1'])
    assert report.deferred == [] and w.executions.stopped == []


def test_the_sweep_skips_ended_or_missing_jobs_and_one_broken_job_does_not_stop_the_others():
    w = world(job(id='job-done', status='succeeded'), job(id='job-1', status='queued', task_id=None))
    w.jobs.broken.add('job-broken')
    report = sweep_jobs(w)
    assert report.errors == ['job-broken'] and report.started == ['job-1']
    assert 'job-done' not in report.as_dict()['started'] + report.as_dict()['failed']


def test_a_job_settled_meanwhile_is_not_counted_as_failed_by_the_sweep():
    w = world(job(), task=POLICY, statuses={'job-1': 'FAILED'})
    w.ledger.lose_race = True
    assert tasks.fail_from_error(w.jobs.jobs['job-1'], GenerationFailedError('x'), w.ctx) is False
    report = sweep_jobs(w)
    assert report.failed == [] and w.executions.stopped == ['job-1']


# --- submit and cancel -------------------------------------------------------------------------------------


REQUEST = JobRequest(model='kling-v2-6', prompt='a lighthouse at dusk')


def test_a_submit_that_can_be_paid_stores_the_job_and_starts_its_execution():
    w = world()
    submitted = submit_use_case.submit_job('alice', REQUEST, None, w.ctx)
    assert not submitted.replayed and [j.id for j in w.ledger.debited] == [submitted.job.id]
    assert w.executions.started == [submitted.job.id]
    assert submitted.job.credits == 20 and submitted.job.deadline_at == NOW + get_settings().job_deadline_seconds


def test_a_lost_execution_start_still_answers_with_the_paid_job():
    w = world(start_error=ClientError({'Error': {'Code': 'ServiceUnavailable', 'Message': 'x'}}, 'StartExecution'))
    submitted = submit_use_case.submit_job('alice', REQUEST, None, w.ctx)
    assert w.ledger.debited and submitted.job.status == 'queued'


@pytest.mark.parametrize(('balance', 'error'), [(None, AuthFailedError), (19, InsufficientCreditsError)])
def test_the_precheck_refuses_before_anything_is_stored(balance, error):
    w = world(balance=balance)
    with pytest.raises(error):
        submit_use_case.submit_job('alice', REQUEST.model_copy(update={'image': PNG}), None, w.ctx)
    assert w.images == [] and w.ledger.debited == [] and w.ledger.balance_reads == 1


def test_a_request_without_images_to_store_is_refused_by_the_transaction_alone():
    """Nothing would be stored before the transaction, so no balance read comes first: the transaction's
    condition gives the same answer, and a payable submit makes one call fewer."""
    w = world(refusal=InsufficientCredits(7))
    with pytest.raises(InsufficientCreditsError) as caught:
        submit_use_case.submit_job('alice', REQUEST, None, w.ctx)
    assert caught.value.details == {'required': 20, 'balance': 7} and w.ledger.balance_reads == 0
    paid = world()
    submit_use_case.submit_job('alice', REQUEST.model_copy(update={'image': 'https://example.com/a.png'}), None, paid.ctx)
    assert paid.ledger.balance_reads == 0 and len(paid.ledger.debited) == 1


@pytest.mark.parametrize(('refusal', 'error', 'details'), [
    (UnknownUser('alice'), AuthFailedError, {}),
    (InsufficientCredits(7), InsufficientCreditsError, {'required': 20, 'balance': 7}),
    (ActiveCapReached(100), RateLimitExceededError, {'retry_after': 30}),
])
def test_each_named_refusal_of_the_transaction_is_the_answer_it_names(refusal, error, details):
    w = world(refusal=refusal)
    with pytest.raises(error) as caught:
        submit_use_case.submit_job('alice', REQUEST, None, w.ctx)
    assert caught.value.details == details and w.executions.started == []


def test_an_idempotency_key_replays_the_job_it_created_and_refuses_another_body():
    earlier = job(id='job-0', status='queued')
    w = world(earlier)
    fingerprint = submit_use_case.request_fingerprint(REQUEST)
    w.records['key-1'] = IdempotencyRecord('job-0', fingerprint, int(NOW) + 100)
    submitted = submit_use_case.submit_job('alice', REQUEST, 'key-1', w.ctx)
    assert submitted.replayed and submitted.job.id == 'job-0' and w.ledger.debited == []
    with pytest.raises(IdempotencyConflictError):
        submit_use_case.submit_job('alice', REQUEST.model_copy(update={'prompt': 'another'}), 'key-1', w.ctx)


def test_a_key_claimed_by_a_concurrent_submit_replays_that_submit_job():
    w = world(job(id='job-0', status='queued'),
              refusal=Replayed('job-0', submit_use_case.request_fingerprint(REQUEST)))
    submitted = submit_use_case.submit_job('alice', REQUEST, 'key-1', w.ctx)
    assert submitted.replayed and submitted.job.id == 'job-0'


def test_inline_images_are_stored_before_the_debit():
    w = world()
    submitted = submit_use_case.submit_job('alice', REQUEST.model_copy(update={'image': PNG}), None, w.ctx)
    assert w.images == ['image'] and submitted.job.image.startswith('s3://')


def test_cancel_refunds_an_active_job_and_refuses_the_rest():
    w = world(job(status='queued', task_id=None), job(id='job-done', status='succeeded'))
    canceled = submit_use_case.cancel_job('alice', 'job-1', w.ctx)
    assert canceled.status == 'canceled' and w.ledger.settled[0][2] is True and w.executions.stopped == ['job-1']
    with pytest.raises(ConflictError):
        submit_use_case.cancel_job('alice', 'job-done', w.ctx)
    with pytest.raises(NotFoundError):
        submit_use_case.cancel_job('mallory', 'job-1', w.ctx)


def test_a_cancel_that_loses_the_race_to_a_settle_is_a_conflict():
    w = world(job())
    w.ledger.lose_race = True
    with pytest.raises(ConflictError):
        submit_use_case.cancel_job('alice', 'job-1', w.ctx)
    assert w.executions.stopped == []



# --- callbacks --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(('claimed', 'asked'), [('pending', []), ('running', []), (None, ['task-1']),
                                                ('succeeded', ['task-1']), ('failed', ['task-1'])])
def test_only_a_callback_claiming_the_end_makes_vidgen_ask_the_provider(monkeypatch, claimed, asked):
    """Kling calls back at each step. A claim short of the end could wake nothing whatever the truth, so it is
    noted without a question to the provider (each counts against its rate limits); an end, or a body that
    claims nothing, is confirmed with the provider first (here it says the task still runs: noted)."""
    from vidgen.jobs import callbacks
    from vidgen.providers.base import CallbackHint

    class Hinting:
        def parse_callback(self, body: Any, headers: Any) -> CallbackHint:
            return CallbackHint(task_id='task-1', claimed_state=claimed)

    questions: list[str] = []
    monkeypatch.setattr(callbacks.callback_tokens, 'token_matches', lambda provider, job_id, token: token == 'good')
    monkeypatch.setattr(callbacks.job_store, 'find_job', lambda job_id: job() if job_id == 'job-1' else None)
    monkeypatch.setattr(callbacks, 'get_provider', lambda name: Hinting())
    monkeypatch.setattr(callbacks, 'fetch_task',
                        lambda found, task_id: questions.append(task_id) or ProviderTask(task_id=task_id, state='running'))
    assert callbacks.handle_callback('kling', 'job-1', 'good', {}, {}).outcome == 'noted'
    assert questions == asked
