"""The local Lambda runtime: the context object handlers get, how a handler module is loaded, and the runner
that sends each event to an execution environment of its function (vidgen_local.environments).

Handlers are imported from `<CodeUri>/<module>.py` under a module name unique to each local cloud, so two
clouds in one process (tests) never share a handler module's state. Every call is counted while it runs,
which lets the cloud drain in-flight invocations before it shuts moto down.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from vidgen_local.environments import FunctionError, FunctionPool
from vidgen_local.template import FunctionSpec

logger = logging.getLogger(__name__)

Handler = Callable[[Any, Any], Any]


class LambdaContext:
    """The attributes and method of the Python runtime's context object that handlers and Powertools use."""

    def __init__(self, spec: FunctionSpec, deadline: float | None = None) -> None:
        self.function_name = spec.name
        self.function_version = '$LATEST'
        self.invoked_function_arn = spec.arn
        self.memory_limit_in_mb = spec.memory_size
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f'/aws/lambda/{spec.name}'
        self.log_stream_name = f'{time.strftime("%Y/%m/%d")}/[$LATEST]{uuid.uuid4().hex}'
        self.identity = None
        self.client_context = None
        self._deadline = time.time() + spec.timeout if deadline is None else deadline  # epoch seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


def load_handler(spec: FunctionSpec, root: Path, module_prefix: str) -> tuple[Handler, str]:
    """Import the function's handler file; returns (handler, module name registered in sys.modules)."""
    path, attribute = spec.handler_path(root)
    if not path.is_file():
        raise FileNotFoundError(f'{spec.logical_id}: handler file {path} does not exist (Handler {spec.handler})')
    name = f'{module_prefix}_{spec.logical_id.lower()}'
    module_spec = importlib.util.spec_from_file_location(name, path)
    assert module_spec is not None and module_spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
        handler = getattr(module, attribute)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return handler, name


class FunctionRunner:
    """Sends events to their function's execution environments, by logical id or by function name, counting
    the calls in flight. Events and results cross as JSON, as they cross the Lambda service."""

    def __init__(self, pools: Mapping[str, FunctionPool]) -> None:
        self.pools = dict(pools)  # logical id -> pool; each pool holds its function's current spec
        self.by_name = {pool.spec.name: logical_id for logical_id, pool in self.pools.items()}
        self._inflight = 0
        self._idle = threading.Condition()

    def spec(self, logical_id: str) -> FunctionSpec:
        return self.pools[logical_id].spec

    def call(self, logical_id: str, event: Any) -> Any:
        """The handler's result; raises FunctionError when the invocation fails (the handler raised, timed out
        or its environment died)."""
        pool = self.pools[logical_id]
        try:
            event_json = json.dumps(event)
        except (TypeError, ValueError) as exc:
            raise FunctionError('InvalidRequestContentException', f'Could not parse request body into json: {exc}') from exc
        with self._idle:
            self._inflight += 1
        try:
            return json.loads(pool.invoke(event_json))
        finally:
            with self._idle:
                self._inflight -= 1
                self._idle.notify_all()

    def call_by_name(self, function_name: str, event: Any) -> Any:
        """The Lambda patch's dispatcher: moto passes the function name from the invoked ARN."""
        try:
            logical_id = self.by_name[function_name]
        except KeyError:
            raise LookupError(f'No local function is named {function_name!r}') from None
        return self.call(logical_id, event)

    def drain(self, timeout: float) -> bool:
        """Wait until no call is running; False if some were still running after `timeout` seconds."""
        with self._idle:
            return self._idle.wait_for(lambda: self._inflight == 0, timeout)

    def recycle(self) -> None:
        for pool in self.pools.values():
            pool.recycle()

    def close(self) -> None:
        for pool in self.pools.values():
            pool.close()


class ProcessEnv:
    """os.environ changes that can be undone: the handlers read their settings from the process env."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def set(self, values: Mapping[str, str], remove: Iterable[str] = ()) -> None:
        remove = tuple(remove)
        for name in (*values, *remove):
            self._saved.setdefault(name, os.environ.get(name))
        for name in remove:
            os.environ.pop(name, None)
        os.environ.update(values)

    def restore(self) -> None:
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved = {}


# AWS services the handlers call: their botocore models are read once, before environments fork.
HANDLER_SERVICES = ('dynamodb', 's3', 'stepfunctions', 'secretsmanager', 'lambda', 'ssm')
_warm_loader: Any = None


def warm_botocore_models() -> None:
    """Read the handlers' service models into one botocore loader in this process, once.

    Every environment makes its own sessions and clients, and each new botocore session reads the models'
    JSON from disk again (~0.1-0.3 s of CPU per environment for these services). Environments fork from this
    process, so a loader warmed here is shared with them: the files are the same, only the reading is saved.
    """
    global _warm_loader
    if _warm_loader is not None:
        return
    import boto3
    import botocore.loaders

    loader = botocore.loaders.create_loader()
    session = boto3.session.Session(aws_access_key_id='warm', aws_secret_access_key='warm', region_name='us-east-1')
    session._session.register_component('data_loader', loader)
    for service in HANDLER_SERVICES:
        session.client(service)
    session.resource('dynamodb')
    _warm_loader = loader


def forget_cached_clients() -> None:
    """In a new execution environment: drop every boto3 client, session and cached setting inherited from the
    parent process, so the handler makes its own from its own environment (its role's credentials)."""
    import boto3
    import botocore.session

    boto3.DEFAULT_SESSION = None
    if _warm_loader is not None:
        warm = _warm_loader
        default_loader = botocore.session.create_loader

        def create_loader(search_path_string: str | None = None) -> Any:
            return warm if search_path_string is None else default_loader(search_path_string)

        botocore.session.create_loader = create_loader  # type: ignore[assignment]
    reset_layer_caches()
    # Powertools marks the first invocation of a process as its cold start (a module flag each of its
    # utilities keeps); a new environment's first event is one, whatever the parent process did before.
    for module_name in ('aws_lambda_powertools.logging.logger', 'aws_lambda_powertools.tracing.tracer',
                        'aws_lambda_powertools.metrics.provider.cold_start', 'aws_lambda_powertools.metrics.base'):
        module = sys.modules.get(module_name)
        if module is not None and hasattr(module, 'is_cold_start'):
            module.is_cold_start = True


def reset_layer_caches() -> None:
    """Forget settings, secrets and boto3 clients cached by the layer: they point at the previous endpoint.

    Every functools cache in a loaded `vidgen.*` module is cleared (get_settings, boto3 client factories),
    and so are Powertools' parameter providers (secret values and their boto3 client)."""
    for name, module in list(sys.modules.items()):
        if name != 'vidgen' and not name.startswith('vidgen.'):
            continue
        for value in list(vars(module).values()):
            if callable(value) and hasattr(value, 'cache_clear') and getattr(value, '__module__', None) == name:
                value.cache_clear()
    try:
        from aws_lambda_powertools.utilities import parameters
    except ImportError:
        return
    parameters.clear_caches()


METRICS_LOGGER = 'vidgen_local.metrics'


def route_metrics_to_log() -> None:
    """Send Powertools' metric lines to a logger instead of stdout.

    In Lambda, each EMF line printed to stdout becomes a CloudWatch metric. Locally nothing reads them and
    they bury what `vidgen serve` and `vidgen demo` print, so they go to the `vidgen_local.metrics` logger
    (DEBUG). Metrics stay on and are still built and validated as in Lambda: switching them off instead
    (POWERTOOLS_METRICS_DISABLED) makes Powertools keep every value and print anyway at 100 of them.
    """
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf import cloudwatch

    sink = logging.getLogger(METRICS_LOGGER)
    # flush_metrics() calls the module-level name `print`; tests/unit/test_local_metrics.py checks it still does.
    cloudwatch.print = lambda *args, **_: sink.debug(' '.join(str(a) for a in args))  # type: ignore[attr-defined]
