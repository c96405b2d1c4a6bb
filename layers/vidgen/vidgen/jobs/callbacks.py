"""Provider callbacks: a hint that something changed, never the truth on its own.

Order of checks: the per-job token (constant time) -> the job exists and belongs to this provider ->
the body parses as this provider's callback (and its signature, where one is configured) -> the task is
re-fetched from the provider -> only a terminal state confirmed by the provider wakes the execution.
A callback that claims a state that is not terminal (Kling reports each step) is noted without asking the
provider: whatever the truth, it could wake nothing, and each question counts against the provider's rate
limits. A terminal callback lost behind it is the poll loop's to cover, as any lost callback is.
The task token is claimed with a conditional write before it is used, so of any number of duplicate
callbacks exactly one sends it: one finalization.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from vidgen import callback_tokens, executions, ids
from vidgen.errors import CallbackRejectedError, error_class_for_job_code, failure_cause
from vidgen.jobs.tasks import fetch_task
from vidgen.observability import MetricUnit, logger, metrics
from vidgen.providers.base import TERMINAL_TASK_STATES
from vidgen.providers.registry import PROVIDERS, get_provider
from vidgen.store import jobs as job_store

_REJECTED = 'The callback could not be verified.'


@dataclass(frozen=True)
class CallbackResult:
    outcome: str  # ignored | noted | delivered

    def as_dict(self) -> dict[str, str]:
        return {'status': self.outcome}


def handle_callback(provider_name: str, job_id: str, token: str | None, body: Any,
                    headers: Mapping[str, str]) -> CallbackResult:
    if provider_name not in PROVIDERS or not token or not callback_tokens.token_matches(provider_name, job_id, token):
        metrics.add_metric(name='CallbackRejected', unit=MetricUnit.Count, value=1)
        raise CallbackRejectedError(_REJECTED)
    job = job_store.find_job(job_id)
    if job is None or job.provider != provider_name:
        raise CallbackRejectedError(_REJECTED)
    provider = get_provider(provider_name)
    hint = provider.parse_callback(body, headers)
    if not job.is_active:
        return CallbackResult('ignored')
    if hint.task_id and job.provider_task_id and hint.task_id != job.provider_task_id:
        raise CallbackRejectedError(_REJECTED)
    task_id = job.provider_task_id or hint.task_id
    if not task_id or (hint.claimed_state is not None and hint.claimed_state not in TERMINAL_TASK_STATES):
        return CallbackResult('noted')
    task = fetch_task(job, task_id)
    if not task.is_terminal:
        return CallbackResult('noted')
    if not job.provider_task_id:
        # The callback beat the create step's own write: record the task so later steps can find it.
        job_store.mark_running(job.id, task_id, ids.now(), job.deadline_at)
    return _wake_execution(job.id, task)


def _wake_execution(job_id: str, task: Any) -> CallbackResult:
    token = job_store.claim_task_token(job_id)
    if token is None:
        return CallbackResult('ignored')  # another callback (or the poll loop) already took it
    if task.state == 'succeeded':
        delivered = executions.send_success(token, {'state': 'succeeded'})
    else:
        failure = task.failure
        error = error_class_for_job_code(failure.code if failure else 'GENERATION_FAILED')
        cause = failure_cause(failure.message, failure.provider_code) if failure else ''
        delivered = executions.send_failure(token, error.__name__, cause)
    logger.info('callback confirmed', job_id=job_id, state=task.state, delivered=delivered)
    if delivered:
        metrics.add_metric(name='CallbackDelivered', unit=MetricUnit.Count, value=1)
    return CallbackResult('delivered' if delivered else 'ignored')
