"""Handlers for tests/integration/test_local_runtime.py. Each execution environment imports this module in its
own process; module state here is per environment, which is what the tests look at."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

EVENTS_SERVED = 0  # per environment: reuse shows as a count above 1 in the same process


def whoami(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global EVENTS_SERVED
    EVENTS_SERVED += 1
    return {'pid': os.getpid(), 'served': EVENTS_SERVED, 'env': os.environ.get('STUB_SETTING'),
            'key': os.environ.get('AWS_ACCESS_KEY_ID'), 'function': os.environ.get('AWS_LAMBDA_FUNCTION_NAME'),
            'remaining_ms': context.get_remaining_time_in_millis(), 'cwd': os.getcwd()}


def rendezvous(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Arrive, then wait for `expected` arrivals: only events running at the same time can all meet."""
    folder = Path(event['folder'])
    (folder / str(os.getpid())).touch()
    deadline = time.monotonic() + event['wait_seconds']
    while time.monotonic() < deadline:
        if len(list(folder.iterdir())) >= event['expected']:
            return {'met': True, 'pid': os.getpid()}
        time.sleep(0.02)
    return {'met': False, 'pid': os.getpid()}


def sleep(event: dict[str, Any], context: Any) -> dict[str, Any]:
    time.sleep(event['seconds'])
    return {'slept': event['seconds']}


def exit_now(event: dict[str, Any], context: Any) -> None:
    os._exit(3)


def echo_size(event: dict[str, Any], context: Any) -> str:
    return 'x' * event['bytes']


def fail(event: dict[str, Any], context: Any) -> None:
    raise ValueError('a handler error')


def unserialisable(event: dict[str, Any], context: Any) -> Any:
    return {'when': object()}


def broken_init() -> None:
    raise RuntimeError('init hook failed')
