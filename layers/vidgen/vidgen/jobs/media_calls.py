"""Calls to the media function from outside the state machine (the sweep finishing a job whose execution
died). The poller has no FFmpeg; it asks the function that has, and a raised error comes back by name."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from vidgen import aws
from vidgen.config import get_settings
from vidgen.errors import MediaStorageError, UnplayableResultError


def inspect(job_id: str, kind: str, outputs: list[dict[str, Any]]) -> dict[str, Any]:
    return _invoke({'action': 'inspect', 'job_id': job_id, 'kind': kind, 'outputs': outputs})


def discard(job_id: str, outputs: list[dict[str, Any]]) -> None:
    _invoke({'action': 'discard', 'job_id': job_id, 'outputs': outputs})


@lru_cache(maxsize=1)
def _lambda() -> Any:
    # The media function may run up to its 120 s timeout: wait for it rather than time out at 30 s and retry.
    return boto3.client('lambda', config=aws.CLIENT_CONFIG.merge(Config(read_timeout=150,
                                                                        retries={'mode': 'standard', 'max_attempts': 2})))


def _invoke(event: dict[str, Any]) -> dict[str, Any]:
    try:
        response = _lambda().invoke(FunctionName=get_settings().media_function_name,
                                               Payload=json.dumps(event).encode())
        payload = json.loads(response['Payload'].read() or b'null')
    except (BotoCoreError, ClientError, ValueError) as exc:
        raise MediaStorageError('The media function could not be called; the sweep will try again.') from exc
    if response.get('FunctionError'):
        error = payload if isinstance(payload, dict) else {}
        if error.get('errorType') == 'UnplayableResultError':
            raise UnplayableResultError(str(error.get('errorMessage') or 'The result does not play.'))
        raise MediaStorageError('The media function failed; the sweep will try again.')
    return payload if isinstance(payload, dict) else {}
