"""Storyboard function: the storyboard state machine's steps.

Events: {"action": "write_scenes" | "write_fallback" | "create_jobs" | "start_jobs" | "settle" | "notify",
"storyboard_id"} and {"action": "check", "storyboard_id", "attempt"}. Errors propagate on purpose: their class
name is the errorType that the ASL's Retry and Catch match.
"""

from typing import Any

from vidgen.jobs.storyboards import steps
from vidgen.observability import logger, metrics, tracer


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    action = event.get('action')
    storyboard_id = event['storyboard_id']
    logger.append_keys(storyboard_id=storyboard_id, action=action)
    if action == 'write_scenes':
        steps.write_scenes(storyboard_id)
    elif action == 'write_fallback':
        steps.write_fallback(storyboard_id)
    elif action == 'create_jobs':
        return steps.create_jobs(storyboard_id)
    elif action == 'start_jobs':
        steps.start_jobs(storyboard_id)
    elif action == 'check':
        return steps.check(storyboard_id, int(event.get('attempt', 0)))
    elif action == 'settle':
        steps.settle(storyboard_id)
    elif action == 'notify':
        steps.notify(storyboard_id)
    else:
        raise ValueError(f'unknown storyboard action {action!r}')
    return {}
