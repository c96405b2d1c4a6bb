"""Crash injection: the process dies at the three points where money and work could part ways, and one sweep
puts each job right, charging nothing twice and losing nothing.

(a) between the credit transaction and StartExecution: the job is paid for and queued, with no execution;
(b) after the results were copied to S3 and checked by the media step, before the job was marked succeeded
    (the sweep copies and checks them again, through the media function, and marks it);
(c) inside the fail step, on every attempt, so the execution gives up in RefundPending.

And one loss of the same family that is not a crash: (d) the create step still waiting for the provider when
the callback wait runs out, so no step would ever create the paid job's task (found by the fault suite).

The crashes are injected by patching the layer in this process (`handler_patch`: the functions' execution
environments are recycled, so the next ones fork with the patch, and again after the undo). Handlers run in
those forked processes, so what the test must see of them, or tell them ("crash only the first time"), goes
through files (`shared_state`), never a Python list. A crash of the Lambda running a step is modelled as the
step raising after its execution was stopped (by the test's admin identity, as the lost container's end would
be, not by the function's role): the state machine cannot retry it, exactly as after a lost container. The
ticker is off: the only sweeps are the ones each test calls, so "one sweep" is counted, not hoped for.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from faults_support import (
    account,
    conservation,
    entries_by_job,
    execution_arn,
    execution_status,
    job_item,
    record_figures,
    wait_for,
)
from support import Api, admin_client
from vidgen import executions
from vidgen.errors import ProviderUnavailableError
from vidgen.jobs import tasks
from vidgen.store import ledger

pytestmark = pytest.mark.faults

TIME_SCALE = 20.0
CALLBACK_WAIT = 4
GRACE = 2  # QUEUED_GRACE_SECONDS and SWEEP_LIVENESS_SECONDS: the windows before the sweep looks at a job
ENV = {
    'QUEUED_GRACE_SECONDS': str(GRACE),
    'SWEEP_LIVENESS_SECONDS': str(GRACE),
    'CALLBACK_WAIT_SECONDS': str(CALLBACK_WAIT),
    'POLL_INTERVALS': '20,40',
    'POWERTOOLS_LOG_LEVEL': 'ERROR',
}
RESULT_BYTES = 300_000
CREDITS = 100
COST = 20  # kling-v2-6, 5 s, std

FIGURES: dict[str, Any] = {}


class SimulatedCrash(Exception):
    """The process running a step died here (the injected crash)."""


@pytest.fixture(scope='module')
def cloud():
    from vidgen_local.cloud import LocalCloud
    from vidgen_local.simulators.kling import KlingSimConfig

    os.environ.pop('KLING_BASE_URL', None)
    os.environ.pop('KIE_BASE_URL', None)
    local = LocalCloud(port=0, time_scale=TIME_SCALE, env=ENV, admin_key='crash-admin-key', sweep=False,
                       kling_sim_config=KlingSimConfig(generation_seconds=1.0, result_bytes=RESULT_BYTES))
    local.start()
    yield local
    local.stop()
    lines = [f'{name}: {row["summary"]}' for name, row in FIGURES.items()]
    record_figures('crash_recovery', FIGURES, lines)


@pytest.fixture
def user(cloud) -> Api:
    return Api(cloud.api_url, cloud.admin_key).create_user(f'crash-{uuid.uuid4().hex[:8]}', CREDITS)


def sweep_once(cloud) -> dict[str, list[str]]:
    report = cloud.sweep_now()
    assert report['errors'] == [], report
    return report


def wait_until_swept(cloud, job_id: str) -> None:
    """Until the job's `sweep_at` has passed: the sweep's window for it (grace or liveness) is over."""
    wait_for(lambda: float(job_item(cloud, job_id).get('sweep_at', 0)) + 1 <= time.time(), GRACE + 10,
             f'the sweep window of {job_id}')


def states_entered(cloud, job_id: str) -> list[str]:
    sfn = boto3.client('stepfunctions')
    events = sfn.get_execution_history(executionArn=execution_arn(cloud, job_id), maxResults=1000)['events']
    return [e['stateEnteredEventDetails']['name'] for e in events if 'stateEnteredEventDetails' in e]


def money(cloud, user_id: str, job_id: str) -> dict[str, Any]:
    """The figures of "nothing charged twice, nothing lost" for one job of one user."""
    acct = account(cloud, user_id)
    entries = entries_by_job(acct).get(job_id)
    return {**conservation(acct), 'active_jobs': acct['active_jobs'],
            'debits_of_job': entries['debit'] if entries else 0, 'refunds_of_job': entries['refund'] if entries else 0}


def assert_succeeded_and_charged_once(cloud, user: Api, job_id: str) -> dict[str, Any]:
    job = user.wait(job_id, timeout=30)
    assert job['status'] == 'succeeded' and job['refunded'] is False and job['error'] is None, job
    [output] = job['outputs']
    assert output['bytes'] == RESULT_BYTES
    stored = boto3.client('s3').head_object(Bucket=cloud.handler_env['BUCKET_NAME'],
                                            Key=f'results/{user.user_id}/{job_id}/0.mp4')
    assert stored['ContentLength'] == RESULT_BYTES
    figures = money(cloud, user.user_id, job_id)
    assert figures == {'grants': CREDITS, 'debits': COST, 'refunds': 0, 'ledger_sum': CREDITS - COST,
                       'balance': CREDITS - COST, 'active_jobs': 0, 'debits_of_job': 1, 'refunds_of_job': 0}, figures
    return figures


def assert_second_sweep_changes_nothing(cloud, user: Api, job_id: str, figures: dict[str, Any]) -> None:
    before = job_item(cloud, job_id)
    report = sweep_once(cloud)
    assert job_id not in sum(report.values(), []), report
    assert job_item(cloud, job_id) == before
    assert money(cloud, user.user_id, job_id) == figures


# --- (a) between the credit transaction and StartExecution ---------------------------------------------------


@pytest.mark.parametrize('crash', ['start-refused', 'process-died'])
def test_crash_before_start_execution_is_started_by_one_sweep(cloud, user, handler_patch, shared_state, crash):
    """'start-refused': StartExecution fails (the submit answers 202, the job is paid for). 'process-died':
    the submit dies after its transaction (the client gets a 500) and retries with its Idempotency-Key."""
    original_start = executions.start

    def start(job_id: str) -> bool:
        if shared_state.first('crash'):
            shared_state.append('crashed', job_id)
            if crash == 'start-refused':
                raise ClientError({'Error': {'Code': 'ServiceUnavailable', 'Message': 'injected'}}, 'StartExecution')
            raise SimulatedCrash('the submit process died after the credit transaction')
        return original_start(job_id)

    handler_patch.setattr(executions, 'start', start)
    body = {'model': 'kling-v2-6', 'prompt': f'crash before start ({crash})'}
    key = {'Idempotency-Key': f'crash-{uuid.uuid4()}'}

    first = user.submit(body, headers=key)
    if crash == 'start-refused':
        assert first.status_code == 202, first.text
        job_id = first.json()['id']
    else:
        assert first.status_code == 500 and first.json()['error']['code'] == 'SYSTEM_ERROR', first.text
        retry = user.submit(body, headers=key)  # the client never saw its job: it retries, same key
        assert retry.status_code == 202 and retry.headers.get('Idempotent-Replayed') == 'true', retry.text
        job_id = retry.json()['id']
    assert shared_state.items('crashed') == [job_id]

    # Paid for and queued, with no execution: exactly the state a crash leaves behind.
    assert execution_status(cloud, job_id) is None
    assert user.job(job_id)['status'] == 'queued'
    assert money(cloud, user.user_id, job_id) == {'grants': CREDITS, 'debits': COST, 'refunds': 0,
                                                  'ledger_sum': CREDITS - COST, 'balance': CREDITS - COST,
                                                  'active_jobs': 1, 'debits_of_job': 1, 'refunds_of_job': 0}

    wait_until_swept(cloud, job_id)
    report = sweep_once(cloud)

    assert report['started'] == [job_id], report
    assert execution_status(cloud, job_id) in ('RUNNING', 'SUCCEEDED')
    figures = assert_succeeded_and_charged_once(cloud, user, job_id)
    assert_second_sweep_changes_nothing(cloud, user, job_id, figures)
    FIGURES[f'before_start_execution/{crash}'] = {
        'sweeps': 1, 'sweep_started': len(report['started']), 'status': 'succeeded', **figures,
        'summary': f'{crash}: started by 1 sweep, succeeded; debits of the job {figures["debits_of_job"]}, '
                   f'refunds {figures["refunds_of_job"]}, balance {figures["balance"]} = ledger {figures["ledger_sum"]} '
                   f'= {CREDITS} - {COST}',
    }


# --- (b) inside finalize, after the S3 copy -------------------------------------------------------------------


def test_crash_in_finalize_after_the_copy_is_finalized_by_one_sweep(cloud, user, handler_patch, shared_state):
    original_settle = ledger.settle

    def settle_job(job, *, status, now, refund, extra):
        if 'crash-after-copy' in job.prompt and status == 'succeeded':
            shared_state.append('settles', status)
            if shared_state.first('crash'):
                # The results are in our bucket; the job is not marked yet. The Lambda dies here, and with it
                # the execution (stopped, so no Retry can run the step again).
                shared_state.append('crashes', {'outputs': extra['outputs']})
                admin_client(cloud, 'stepfunctions').stop_execution(
                    executionArn=execution_arn(cloud, job.id), error='Crash', cause='injected after the S3 copy')
                raise SimulatedCrash('the finalize step died after copying the results')
        return original_settle(job, status=status, now=now, refund=refund, extra=extra)

    handler_patch.setattr(ledger, 'settle', settle_job)
    job_id = user.submit({'model': 'kling-v2-6', 'prompt': 'crash-after-copy'}).json()['id']

    # AWS reports a stopped execution as ABORTED; moto ends it FAILED when the running task's error arrives.
    # Either way it is over, and it neither retried the step nor caught the error into FailJob.
    ended = wait_for(lambda: execution_status(cloud, job_id) not in (None, 'RUNNING') and execution_status(cloud, job_id),
                     30, 'the crashed execution to end')
    assert ended in ('ABORTED', 'FAILED'), ended
    assert states_entered(cloud, job_id)[-3:] == ['Finalize', 'InspectMedia', 'MarkSucceeded']
    [crash] = shared_state.items('crashes')
    assert crash['outputs'][0]['bytes'] == RESULT_BYTES  # the copy had finished
    assert crash['outputs'][0]['media']['video_codec'] == 'h264'  # and the media step had checked it
    wait_until_swept(cloud, job_id)  # the liveness window passes: nothing else touches the job meanwhile
    assert job_item(cloud, job_id)['status'] == 'running' and shared_state.items('settles') == ['succeeded']
    assert money(cloud, user.user_id, job_id)['balance'] == CREDITS - COST

    report = sweep_once(cloud)

    assert report['finalized'] == [job_id], report
    figures = assert_succeeded_and_charged_once(cloud, user, job_id)
    # The crashed attempt and the sweep's: one execution of each.
    assert shared_state.items('settles') == ['succeeded', 'succeeded']
    (output,) = job_item(cloud, job_id)['outputs']
    assert output['media']['width'] == 480 and output['poster_key'].endswith('0.poster.jpg')  # the sweep's check
    assert_second_sweep_changes_nothing(cloud, user, job_id, figures)
    FIGURES['inside_finalize_after_copy'] = {
        'sweeps': 1, 'sweep_finalized': len(report['finalized']), 'status': 'succeeded', **figures,
        'execution': ended,
        'summary': f'execution {ended} (stopped) after the copy; finalized by 1 sweep, outputs {RESULT_BYTES} bytes; '
                   f'debits of the job {figures["debits_of_job"]}, refunds {figures["refunds_of_job"]}, '
                   f'balance {figures["balance"]} = ledger {figures["ledger_sum"]}',
    }


# --- (b2) after the copy of a result that does not play -------------------------------------------------------


def test_crash_after_copying_a_result_that_does_not_play_is_failed_by_one_sweep_with_nothing_kept(
        cloud, user, handler_patch, shared_state):
    original_finalize = tasks.finalize_job

    def finalize_job(job_id):
        copied = original_finalize(job_id)
        if copied['outputs'] and 'crash-bad-result' in tasks.job_store.get_job(job_id).prompt \
                and shared_state.first('crash'):
            # The noise is in our bucket, the media step never ran: the Lambda dies with its execution.
            shared_state.append('crashes', job_id)
            admin_client(cloud, 'stepfunctions').stop_execution(
                executionArn=execution_arn(cloud, job_id), error='Crash', cause='injected after the S3 copy')
            raise SimulatedCrash('the finalize step died after copying the results')
        return copied

    handler_patch.setattr(tasks, 'finalize_job', finalize_job)
    job_id = user.submit({'model': 'kling-v2-6', 'prompt': 'crash-bad-result [sim:undecodable]'}).json()['id']
    wait_for(lambda: execution_status(cloud, job_id) not in (None, 'RUNNING'), 30, 'the crashed execution to end')
    assert shared_state.items('crashes') == [job_id]
    s3, bucket = boto3.client('s3'), cloud.handler_env['BUCKET_NAME']
    prefix = f'results/{user.user_id}/{job_id}/'
    assert s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get('KeyCount') == 1  # the noise, copied
    wait_until_swept(cloud, job_id)

    report = sweep_once(cloud)  # copies again, has the media function check it, fails and refunds

    assert report['failed'] == [job_id], report
    job = user.job(job_id)
    assert job['status'] == 'failed' and job['refunded'] is True and job['error']['code'] == 'GENERATION_FAILED', job
    assert 'not a playable video' in job['error']['message']
    assert s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get('KeyCount') == 0  # nothing of it kept
    figures = money(cloud, user.user_id, job_id)
    assert figures == {'grants': CREDITS, 'debits': COST, 'refunds': COST, 'ledger_sum': CREDITS, 'balance': CREDITS,
                       'active_jobs': 0, 'debits_of_job': 1, 'refunds_of_job': 1}, figures
    assert_second_sweep_changes_nothing(cloud, user, job_id, figures)
    FIGURES['after_copy_of_unplayable_result'] = {
        'sweeps': 1, 'sweep_failed': len(report['failed']), 'status': 'failed', **figures,
        'summary': f'execution stopped after copying noise; failed by 1 sweep (media function: not playable), '
                   f'nothing left under results/; refunds of the job {figures["refunds_of_job"]}, '
                   f'balance {figures["balance"]} = ledger {figures["ledger_sum"]} = {CREDITS}',
    }


# --- (c) inside the fail step ----------------------------------------------------------------------------------


def test_crash_in_every_fail_attempt_is_refunded_once_by_one_sweep(cloud, user, handler_patch, shared_state):
    original_settle = ledger.settle
    shared_state.flag('broken')

    def settle_job(job, *, status, now, refund, extra):
        if 'crash-in-fail' in job.prompt and status == 'failed' and shared_state.flagged('broken'):
            shared_state.append('attempts', time.time())
            raise SimulatedCrash('the fail step died before its transaction')
        return original_settle(job, status=status, now=now, refund=refund, extra=extra)

    handler_patch.setattr(ledger, 'settle', settle_job)
    job_id = user.submit({'model': 'kling-v2-6', 'prompt': 'crash-in-fail [sim:content-policy]'}).json()['id']

    wait_for(lambda: execution_status(cloud, job_id) == 'FAILED', 40, 'the execution to give up in RefundPending')
    entered = states_entered(cloud, job_id)
    assert entered[-2:] == ['FailJob', 'RefundPending'], entered
    attempts = shared_state.items('attempts')
    assert len(attempts) == 7  # the first try and the ASL's six retries
    item = job_item(cloud, job_id)
    assert item['status'] == 'running' and not item.get('refunded')
    assert money(cloud, user.user_id, job_id)['refunds_of_job'] == 0  # credits held: the sweep must give them back

    shared_state.unflag('broken')
    wait_until_swept(cloud, job_id)
    report = sweep_once(cloud)

    assert report['failed'] == [job_id], report
    job = user.job(job_id)
    assert job['status'] == 'failed' and job['refunded'] is True and job['error']['code'] == 'CONTENT_POLICY', job
    figures = money(cloud, user.user_id, job_id)
    assert figures == {'grants': CREDITS, 'debits': COST, 'refunds': COST, 'ledger_sum': CREDITS, 'balance': CREDITS,
                       'active_jobs': 0, 'debits_of_job': 1, 'refunds_of_job': 1}, figures
    assert_second_sweep_changes_nothing(cloud, user, job_id, figures)
    FIGURES['inside_fail_step'] = {
        'fail_attempts_crashed': len(attempts), 'execution': 'FAILED (RefundPending)', 'sweeps': 1,
        'sweep_failed': len(report['failed']), 'status': 'failed', 'error_code': job['error']['code'], **figures,
        'summary': f'{len(attempts)} FailJob attempts crashed, execution ended in RefundPending; failed and refunded '
                   f'by 1 sweep; debits of the job {figures["debits_of_job"]}, refunds {figures["refunds_of_job"]}, '
                   f'balance {figures["balance"]} = ledger {figures["ledger_sum"]} = {CREDITS}',
    }


# --- (d) a create step that outlasts the callback wait -----------------------------------------------------------


def test_a_create_outlasting_the_callback_wait_is_created_by_the_poll_loop(cloud, user, handler_patch, shared_state):
    """The provider's answer to the create comes later than the callback wait: the state times out into the
    poll loop with no provider task. The poll loop must create it rather than poll nothing until the deadline."""
    original_create = tasks._create_at_provider

    def create_at_provider(job, *context):
        if 'slow-create' in job.prompt and shared_state.first('stall'):
            shared_state.append('stalled', job.id)
            time.sleep(CALLBACK_WAIT + 1)
            raise ProviderUnavailableError('Kling did not answer in time; the call will be retried.')
        return original_create(job, *context)

    handler_patch.setattr(tasks, '_create_at_provider', create_at_provider)
    job_id = user.submit({'model': 'kling-v2-6', 'prompt': 'slow-create'}).json()['id']

    figures = assert_succeeded_and_charged_once(cloud, user, job_id)

    assert shared_state.items('stalled') == [job_id]
    entered = states_entered(cloud, job_id)
    assert entered.count('CreateTask') == 1 and 'StartPolling' in entered and entered.count('Finalize') == 1, entered
    tasks_of_job = [t for t in cloud.kling_sim.tasks() if t['request'].get('external_task_id') == job_id]
    assert len(tasks_of_job) == 1
    FIGURES['create_outlasting_the_callback_wait'] = {
        'status': 'succeeded', 'provider_tasks': len(tasks_of_job), 'polls': entered.count('PollProvider'), **figures,
        'summary': f'create answered after the {CALLBACK_WAIT} s wait; the poll loop created the task '
                   f'({len(tasks_of_job)} provider task), succeeded after {entered.count("PollProvider")} polls; '
                   f'debits of the job {figures["debits_of_job"]}, refunds {figures["refunds_of_job"]}, '
                   f'balance {figures["balance"]} = ledger {figures["ledger_sum"]}',
    }


def test_after_every_crash_the_usage_counters_reconcile(cloud, capsys):
    """The crashes above struck between the writes of a job's life; the counters, written inside the money's
    transactions, still agree with every job and ledger (`vidgen admin usage-check`, every user)."""
    from vidgen_local.cli import main

    code = main(['admin', 'usage-check', '--api-url', cloud.api_url, '--admin-key', cloud.admin_key])
    printed = capsys.readouterr().out
    assert code == 0 and 'no differences' in printed, printed
    FIGURES['usage_check'] = {'summary': printed.strip()}
