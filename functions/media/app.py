"""Media function: the state machine's media steps. Only this function carries the media layer (FFmpeg).

Events: {"action": "inspect", "job_id", "kind": "video"|"image", "outputs": [...]} -> {"outputs": [...]} |
{"action": "discard", "job_id", "outputs": [...]}. Errors propagate on purpose: their class name is the
errorType that the ASL's Retry and Catch match (UnplayableResultError fails the job, MediaStorageError
is retried).
"""

from typing import Any

from vidgen.jobs import inspection
from vidgen.observability import logger, metrics, tracer


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    action = event.get('action')
    logger.append_keys(job_id=event.get('job_id'), action=action)
    if action == 'inspect':
        return inspection.inspect_outputs(event['job_id'], event['kind'], event.get('outputs') or [])
    if action == 'discard':
        inspection.discard_outputs(event['job_id'], event.get('outputs') or [])
        return {}
    raise ValueError(f'unknown media action {action!r}')
