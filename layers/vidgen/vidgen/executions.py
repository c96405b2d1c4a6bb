"""Step Functions access: starting a job's (or a storyboard's) execution and answering a job's callback wait.

The execution's name is the job id, so starting it twice is harmless: while it runs with the same input
AWS returns the same execution, and once closed it refuses the name. The sweep relies on both.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from vidgen import aws
from vidgen.config import get_settings
from vidgen.observability import logger

_TOKEN_GONE = ('TaskTimedOut', 'TaskDoesNotExist', 'InvalidToken')


def execution_input(job_id: str) -> dict[str, Any]:
    return {'job_id': job_id, 'callback_wait_seconds': get_settings().callback_wait_seconds}


def start(job_id: str) -> bool:
    """Start the job's execution. Returns False if an execution of that name already ran or runs."""
    return _start(get_settings().state_machine_arn, job_id, execution_input(job_id))


def status(job_id: str) -> str | None:
    """RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED — or None if it was never started."""
    return _status(_execution_arn(job_id))


def start_storyboard(storyboard_id: str) -> bool:
    """Start the storyboard's execution (named by its id, like a job's)."""
    return _start(get_settings().storyboard_state_machine_arn, storyboard_id, {'storyboard_id': storyboard_id})


def storyboard_status(storyboard_id: str) -> str | None:
    arn = get_settings().storyboard_state_machine_arn.replace(':stateMachine:', ':execution:') + f':{storyboard_id}'
    return _status(arn)


def _start(state_machine_arn: str, name: str, payload: dict[str, Any]) -> bool:
    try:
        aws.stepfunctions().start_execution(stateMachineArn=state_machine_arn, name=name,
                                                    input=json.dumps(payload))
    except ClientError as exc:
        if exc.response['Error']['Code'] == 'ExecutionAlreadyExists':
            return False
        raise
    return True


def _status(execution_arn: str) -> str | None:
    try:
        return aws.stepfunctions().describe_execution(executionArn=execution_arn)['status']
    except ClientError as exc:
        if exc.response['Error']['Code'] in ('ExecutionDoesNotExist', 'ResourceNotFound'):
            return None
        raise


def stop(job_id: str, cause: str) -> None:
    try:
        aws.stepfunctions().stop_execution(executionArn=_execution_arn(job_id), error='Canceled', cause=cause)
    except ClientError as exc:
        logger.info('execution not stopped', job_id=job_id, reason=exc.response['Error']['Code'])


def send_success(task_token: str, output: dict[str, Any]) -> bool:
    """Wake the waiting execution. False when the token was already used or expired."""
    try:
        aws.stepfunctions().send_task_success(taskToken=task_token, output=json.dumps(output))
    except ClientError as exc:
        if exc.response['Error']['Code'] in _TOKEN_GONE:
            return False
        raise
    return True


def send_failure(task_token: str, error: str, cause: str) -> bool:
    try:
        aws.stepfunctions().send_task_failure(taskToken=task_token, error=error, cause=cause)
    except ClientError as exc:
        if exc.response['Error']['Code'] in _TOKEN_GONE:
            return False
        raise
    return True


def _execution_arn(job_id: str) -> str:
    return get_settings().state_machine_arn.replace(':stateMachine:', ':execution:') + f':{job_id}'
