"""What runs inside one local execution environment: a worker process that is to one function what a Lambda
sandbox is to it.

The parent (`vidgen_local.runtime`) forks the process from a clean fork server and sends it an `Init`. The
process then takes the function's environment as its whole os.environ, makes the function's code directory
its working directory and first import path (as /var/task is on Lambda), runs the init hooks (tests inject
faults there), imports the handler once (the cold start) and serves one event at a time over its pipe until
the pipe closes. Nothing here is shared with another environment: each has its own handler module, its own
Powertools state (the current event, the resolver's context), its own caches and boto3 clients.

Messages, parent -> process: ('invoke', request id, milliseconds left, event JSON bytes) or ('stop',).
Process -> parent: ('ready', init seconds) or ('init_error', type, message, trace) once, then per event
('ok', result JSON bytes) or ('error', type, message, trace), the Lambda runtime's error fields.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any

# Imported by the fork server before it forks any environment (the libraries and the SDK's service data).
PRELOAD = ('vidgen_local.forkserver_preload',)


@dataclass(frozen=True)
class Init:
    """Everything an environment needs to start: picklable, sent once when the process is created."""

    logical_id: str
    function_name: str
    function_arn: str
    memory_size: int
    code_dir: str
    handler: str  # 'module.attribute' in code_dir (the template's Handler), or 'module:attribute' on sys.path
    environment: dict[str, str]
    sys_path: list[str]
    init_hooks: tuple[str, ...] = ()  # 'module:callable', called before the handler is imported
    log_stream: str = field(default='')


class LambdaContext:
    """The attributes and method of the Python runtime's context object that handlers and Powertools use."""

    def __init__(self, init: Init, request_id: str, remaining_ms: int) -> None:
        self.function_name = init.function_name
        self.function_version = '$LATEST'
        self.invoked_function_arn = init.function_arn
        self.memory_limit_in_mb = init.memory_size
        self.aws_request_id = request_id
        self.log_group_name = f'/aws/lambda/{init.function_name}'
        self.log_stream_name = init.log_stream
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _load(spec: str) -> Any:
    """'module:attribute' (on sys.path) or 'module.attribute' (the template's Handler syntax)."""
    module, sep, attribute = spec.partition(':')
    if not sep:
        module, _, attribute = spec.rpartition('.')
    return getattr(importlib.import_module(module), attribute)


def _error(exc: BaseException) -> tuple[str, str, str, list[str]]:
    return ('error', type(exc).__name__, str(exc), traceback.format_exception(exc)[-20:])


def main(conn: Any, init: Init) -> None:
    """The environment's whole life: init, then events until the parent closes the pipe or says stop."""
    # Ctrl-C in `vidgen serve` reaches the whole process group; only the parent decides when environments end.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.clear()
    os.environ.update(init.environment)
    os.chdir(init.code_dir)
    sys.path[:] = [init.code_dir, *(p for p in init.sys_path if p != init.code_dir)]
    started = time.monotonic()
    try:
        warnings.filterwarnings('ignore', message='No application metrics to publish', category=UserWarning)
        from vidgen_local.runtime import route_metrics_to_log

        route_metrics_to_log()
        for hook in init.init_hooks:
            _load(hook)()
        handler = _load(init.handler)
    except BaseException as exc:  # noqa: BLE001 - Lambda reports a failed init on the invocation
        kind, name, message, trace = _error(exc)
        conn.send(('init_error', name, message, trace))
        return
    conn.send(('ready', time.monotonic() - started))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone or retired this environment
        if message[0] != 'invoke':
            return
        _, request_id, remaining_ms, payload = message
        conn.send(_invoke(handler, init, request_id, remaining_ms, payload))


def _invoke(handler: Any, init: Init, request_id: str, remaining_ms: int, payload: bytes) -> tuple[Any, ...]:
    try:
        event = json.loads(payload) if payload else {}
        result = handler(event, LambdaContext(init, request_id, remaining_ms))
    except Exception as exc:  # noqa: BLE001 - every handler failure becomes the runtime's error response
        return _error(exc)
    try:
        return ('ok', json.dumps(result).encode())
    except (TypeError, ValueError) as exc:  # the Python runtime's name for an unserialisable result
        return ('error', 'Runtime.MarshalError', f'Unable to marshal response: {exc}', [])
