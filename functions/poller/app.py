"""Poller function: the job state machine's steps, and the scheduled sweep.

Events: {"action": "create_task", "job_id", "task_token"} | {"action": "poll", "job_id", "attempt"} |
{"action": "finalize", "job_id"} -> {"kind", "outputs"} | {"action": "succeed", "job_id", "outputs"} |
{"action": "fail", "job_id", "failure": {"Error", "Cause"}} |
{"action": "notify", "job_id"} from the
state machine; {"action": "sweep"} from the EventBridge schedule. Errors propagate on purpose: their
class name is the errorType that the ASL's Retry and Catch match.
"""

from typing import Any

from vidgen.config import require_settings
from vidgen.jobs import tasks
from vidgen.observability import logger, metrics, tracer

require_settings()  # at cold start: a misconfigured deployment fails here, naming the variable


# log_event stays off: the create_task event carries the execution's task token.
@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    action = event.get('action')
    if action != 'sweep':
        logger.append_keys(job_id=event.get('job_id'), action=action)
    if action == 'create_task':
        tasks.create_task(event['job_id'], event['task_token'])
        return {}
    if action == 'poll':
        return tasks.poll_job(event['job_id'], int(event.get('attempt', 0)))
    if action == 'finalize':
        return tasks.finalize_job(event['job_id'])
    if action == 'succeed':
        tasks.succeed_job(event['job_id'], event.get('outputs') or [])
        return {}
    if action == 'fail':
        tasks.fail_job(event['job_id'], event.get('failure') or {})
        return {}
    if action == 'notify':
        tasks.notify_job(event['job_id'])
        return {}
    if action == 'sweep':
        # Imported by the scheduled sweep alone: it brings the storyboard steps (their LLM client) along, which
        # no job step needs, so an environment started for a job's step does not pay for them.
        from vidgen.jobs import sweep

        return sweep.sweep().as_dict()
    raise ValueError(f'unknown poller action {action!r}')
