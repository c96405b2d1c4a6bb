"""The local Lambda service: a pool of execution environments per function, each its own worker process.

Lambda runs every function in sandboxes that it creates on demand, one event at a time each, up to the
function's concurrency, and reuses while they are warm. Here a sandbox is a process forked from a clean
fork server (`vidgen_local.sandbox` is what runs inside): it imports the function's real handler once (the
cold start, counted), has its own process environment (the function's variables, its AWS credentials, the
variables Lambda sets) and its own Powertools state, so two requests never read each other's event and API
functions run truly in parallel, on every core.

Lambda's own limits are applied here, by the service side, as Lambda applies them:
- an event runs at most the function's Timeout: past it the environment is killed (a new one serves the
  next event) and the call fails with `Sandbox.Timedout`;
- an environment that dies mid-event fails the call with `Runtime.ExitError`;
- a request payload over 6 MB is refused before any environment sees it (`RequestTooLargeError`), a
  response over Lambda's limit fails the call with `Function.ResponseSizeTooLarge`.

Why processes rather than threads with a per-thread import: Powertools keeps the current event in class
attributes and module globals, and the layer caches settings and clients in module state; only a separate
interpreter isolates all of it without changing the code under test, and only processes use both cores.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import os
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from vidgen_local.sandbox import PRELOAD, Init
from vidgen_local.sandbox import main as sandbox_main
from vidgen_local.template import FunctionSpec

logger = logging.getLogger(__name__)

# Lambda's synchronous invocation limits: the request as its error message states it (6 MB), the response as
# the runtime API enforces it ("Exceeded maximum allowed payload size (6291556 bytes)").
REQUEST_LIMIT_BYTES = 6 * 1024 * 1024
RESPONSE_LIMIT_BYTES = 6_291_556
DEFAULT_CONCURRENCY = 2  # environments per function when the template reserves none (VIDGEN_LOCAL_CONCURRENCY)
_STOP_GRACE_SECONDS = 2.0


class FunctionError(Exception):
    """The invocation failed the way Lambda reports a function error: `error_type` is the runtime's errorType
    (the handler's exception class name, or Lambda's own: Sandbox.Timedout, Runtime.ExitError, ...)."""

    def __init__(self, error_type: str, message: str, stack_trace: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.stack_trace = list(stack_trace)


class RequestTooLargeError(Exception):
    """Lambda's RequestEntityTooLargeException: the event is over the synchronous payload limit."""


class IntegrationTimeout(Exception):
    """The caller stopped waiting (API Gateway's integration timeout); the event runs on in its environment."""


@dataclass(frozen=True)
class FunctionConfig:
    """What UpdateFunctionConfiguration can change, plus the local pool size."""

    spec: FunctionSpec
    code_dir: str  # the function's CodeUri, absolute
    handler: str  # the template's Handler ('app.lambda_handler'), or a 'module:attribute' override
    environment: dict[str, str]  # the function's variables (template, then local settings)
    concurrency: int
    init_hooks: tuple[str, ...] = ()


# (config) -> the whole os.environ of a new environment of that function
ProcessEnvironment = Callable[[FunctionConfig], dict[str, str]]


def _context() -> Any:
    # A fork server: environments are forked from a small single-threaded process that imported the heavy
    # libraries once, never from this process (its threads - moto, the gateway - must not be forked).
    ctx = multiprocessing.get_context('forkserver')
    ctx.set_forkserver_preload(list(PRELOAD))
    return ctx


_LAUNCH_LOCK = threading.Lock()


class _EnvironmentProcess(multiprocessing.context.ForkServerProcess):
    """A fork-server process that does not import this process's __main__ first.

    multiprocessing re-imports the parent's main module in every child (so that functions defined there can be
    unpickled). An environment needs none of it - its target lives in vidgen_local.sandbox - and importing a
    script that starts a local cloud at import time would start another cloud in each environment. The main
    module is left out of the preparation data the child receives."""

    @staticmethod
    def _Popen(process_obj: Any) -> Any:  # noqa: N802 - multiprocessing's name
        from multiprocessing import popen_forkserver, spawn

        with _LAUNCH_LOCK:
            prepare = spawn.get_preparation_data

            def without_main(name: str) -> dict[str, Any]:
                data = prepare(name)
                data.pop('init_main_from_name', None)
                data.pop('init_main_from_path', None)
                return data

            spawn.get_preparation_data = without_main
            try:
                return popen_forkserver.Popen(process_obj)
            finally:
                spawn.get_preparation_data = prepare


class ExecutionEnvironment:
    """One worker process and its pipe; used by one caller at a time (the pool sees to it)."""

    def __init__(self, init: Init, generation: int) -> None:
        self.generation = generation
        self.events = 0
        self.provisioned = False  # initialised before any event asked for it (prewarm): its first event is warm
        ctx = _context()
        self._conn, child = ctx.Pipe()
        self._process = _EnvironmentProcess(target=sandbox_main, args=(child, init), daemon=True,
                                            name=f'lambda-{init.logical_id}')
        self._process.start()
        child.close()
        self._handler = init.handler

    def wait_ready(self, timeout: float) -> float:
        """Block until the handler is imported; returns the init seconds. Raises FunctionError if init failed."""
        if not self._conn.poll(timeout):
            self.kill()
            raise FunctionError('Runtime.InitTimeout', f'The environment did not initialise within {timeout:.0f}s')
        try:
            message = self._conn.recv()
        except (EOFError, OSError):
            self.kill()
            raise FunctionError('Runtime.ExitError', f'Runtime exited during init: {self._exit_reason()}') from None
        if message[0] == 'init_error':
            self.kill()
            _, name, text, trace = message
            module = self._handler.partition(':')[0] if ':' in self._handler else self._handler.rpartition('.')[0]
            raise FunctionError('Runtime.ImportModuleError', f"Unable to import module '{module}': {name}: {text}", trace)
        return float(message[1])

    def send(self, request_id: str, remaining_ms: int, payload: bytes) -> None:
        self._conn.send(('invoke', request_id, remaining_ms, payload))

    def receive(self, timeout: float) -> tuple[Any, ...] | None:
        """The environment's answer, or None if none came within `timeout` seconds. ('exit', reason) if it died."""
        try:
            if not self._conn.poll(max(0.0, timeout)):
                return None
            return self._conn.recv()
        except (EOFError, OSError):
            return ('exit', self._exit_reason())

    def _exit_reason(self) -> str:
        self._process.join(1)
        code = self._process.exitcode
        if code is None:
            return 'unknown'
        return f'signal {-code}' if code < 0 else f'exit status {code}'

    def kill(self) -> None:
        self._process.kill()
        self._process.join(5)
        self._conn.close()

    def close(self) -> None:
        """Ask the process to end (it leaves its loop), kill it if it does not."""
        try:
            self._conn.send(('stop',))
        except (OSError, ValueError):
            pass
        self._process.join(_STOP_GRACE_SECONDS)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        self._conn.close()


class FunctionPool:
    """The environments of one function: created on demand up to `concurrency`, reused while warm, retired when
    the function's configuration changes (a new generation)."""

    def __init__(self, logical_id: str, config: FunctionConfig, process_env: ProcessEnvironment,
                 sys_path: Callable[[], list[str]]) -> None:
        self.logical_id = logical_id
        self.config = config
        self.generation = 0
        self.stats: Counter[str] = Counter()
        self.init_seconds: list[float] = []
        self._process_env = process_env
        self._sys_path = sys_path
        self._idle: list[ExecutionEnvironment] = []
        self._count = 0  # alive or starting
        self._closed = False
        self._cond = threading.Condition()

    def acquire(self) -> ExecutionEnvironment:
        with self._cond:
            while True:
                if self._closed:
                    raise FunctionError('Lambda.ServiceException', f'{self.logical_id}: the local cloud is stopping')
                if self._idle:
                    return self._idle.pop()  # the most recently used: the warmest
                if self._count < self.config.concurrency:
                    self._count += 1
                    config, generation = self.config, self.generation
                    break
                self._cond.wait()
        try:
            return self._create(config, generation)
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def _create(self, config: FunctionConfig, generation: int) -> ExecutionEnvironment:
        spec = config.spec
        init = Init(logical_id=spec.logical_id, function_name=spec.name, function_arn=spec.arn,
                    memory_size=spec.memory_size, code_dir=config.code_dir, handler=config.handler,
                    environment=self._process_env(config), sys_path=self._sys_path(), init_hooks=config.init_hooks,
                    log_stream=f'{time.strftime("%Y/%m/%d")}/[$LATEST]{uuid.uuid4().hex}')
        env = ExecutionEnvironment(init, generation)
        seconds = env.wait_ready(timeout=60)
        with self._cond:
            self.stats['inits'] += 1
            self.init_seconds.append(seconds)
        return env

    def release(self, env: ExecutionEnvironment, reusable: bool) -> None:
        with self._cond:
            keep = reusable and not self._closed and env.generation == self.generation
            if keep:
                self._idle.append(env)
            else:
                self._count -= 1
            self._cond.notify()
        if not keep:
            env.close() if reusable else env.kill()

    def prewarm(self) -> None:
        """Create one environment now (Lambda's provisioned concurrency, in effect): the first event is warm."""
        env = self.acquire()
        env.provisioned = True
        self.release(env, reusable=True)

    def reconfigure(self, config: FunctionConfig) -> None:
        """UpdateFunctionConfiguration: idle environments end now, busy ones after their current event."""
        with self._cond:
            self.config = config
            self.generation += 1
            retired, self._idle = self._idle, []
            self._count -= len(retired)
            self._cond.notify_all()
        for env in retired:
            env.close()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            retired, self._idle = self._idle, []
            self._count -= len(retired)
            self._cond.notify_all()
        for env in retired:
            env.close()

    def snapshot(self) -> dict[str, Any]:
        with self._cond:
            seconds = sorted(self.init_seconds)
            return {'environments': self._count, 'warm': len(self._idle), 'concurrency': self.config.concurrency,
                    **{k: self.stats[k] for k in ('inits', 'cold_starts', 'invocations', 'timeouts', 'exits')},
                    'init_seconds_p50': seconds[len(seconds) // 2] if seconds else None,
                    'init_seconds_max': seconds[-1] if seconds else None}


class FunctionRunner:
    """Invokes functions by logical id or by name, counting the calls in flight so the cloud can drain them."""

    def __init__(self, configs: Mapping[str, FunctionConfig], process_env: ProcessEnvironment,
                 sys_path: Callable[[], list[str]] | None = None) -> None:
        paths = sys_path or (lambda: list(sys.path))
        self.pools = {lid: FunctionPool(lid, config, process_env, paths) for lid, config in configs.items()}
        self.by_name = {config.spec.name: lid for lid, config in configs.items()}
        self._inflight = 0
        self._idle = threading.Condition()

    @property
    def specs(self) -> dict[str, FunctionSpec]:
        return {lid: pool.config.spec for lid, pool in self.pools.items()}

    def config(self, logical_id: str) -> FunctionConfig:
        return self.pools[logical_id].config

    def call(self, logical_id: str, event: Any, *, give_up_after: float | None = None) -> Any:
        """Invoke synchronously (RequestResponse): the handler's result, or FunctionError as Lambda reports it.

        `give_up_after`: seconds the caller waits at most (API Gateway's integration timeout); past them it gets
        IntegrationTimeout while the event runs on to its own end or its Timeout, as on AWS."""
        payload = json.dumps(event, ensure_ascii=False).encode()  # sized as API Gateway sends it: UTF-8
        if len(payload) > REQUEST_LIMIT_BYTES:
            raise RequestTooLargeError(f'{len(payload)} byte payload is too large for the RequestResponse invocation '
                                       f'type (limit {REQUEST_LIMIT_BYTES} bytes)')
        pool = self.pools[logical_id]
        with self._idle:
            self._inflight += 1
        handed_over = False
        try:
            env = pool.acquire()
            cold = env.events == 0 and not env.provisioned
            env.events += 1
            timeout = float(pool.config.spec.timeout)
            request_id = str(uuid.uuid4())
            started = time.monotonic()
            with pool._cond:
                pool.stats['invocations'] += 1
                pool.stats['cold_starts'] += cold
            env.send(request_id, int(timeout * 1000), payload)
            wait = timeout if give_up_after is None else min(timeout, give_up_after)
            answer = env.receive(wait)
            if answer is None and give_up_after is not None and give_up_after < timeout:
                handed_over = True
                threading.Thread(target=self._finish, args=(pool, env, request_id, started + timeout),
                                 name=f'finish-{logical_id}', daemon=True).start()
                raise IntegrationTimeout(f'{logical_id} did not answer within {give_up_after:g}s')
            return self._outcome(pool, env, request_id, answer, timeout)
        finally:
            if not handed_over:
                self._done()

    def _finish(self, pool: FunctionPool, env: ExecutionEnvironment, request_id: str, deadline: float) -> None:
        """The rest of an event whose caller gave up: its environment is freed (or killed) when Lambda would."""
        try:
            self._outcome(pool, env, request_id, env.receive(deadline - time.monotonic()), float(pool.config.spec.timeout))
        except FunctionError:
            pass  # already logged; nobody is waiting for this answer
        finally:
            self._done()

    def _outcome(self, pool: FunctionPool, env: ExecutionEnvironment, request_id: str, answer: tuple[Any, ...] | None,
                 timeout: float) -> Any:
        if answer is None:
            pool.release(env, reusable=False)
            with pool._cond:
                pool.stats['timeouts'] += 1
            logger.warning('%s %s: task timed out after %.2f seconds; its environment was stopped',
                           pool.logical_id, request_id, timeout)
            raise FunctionError('Sandbox.Timedout', f'RequestId: {request_id} Error: Task timed out after {timeout:.2f} seconds')
        if answer[0] == 'exit':
            pool.release(env, reusable=False)
            with pool._cond:
                pool.stats['exits'] += 1
            raise FunctionError('Runtime.ExitError', f'RequestId: {request_id} Error: Runtime exited with error: {answer[1]}')
        pool.release(env, reusable=True)
        if answer[0] == 'error':
            _, error_type, message, trace = answer
            raise FunctionError(error_type, message, trace)
        result: bytes = answer[1]
        if len(result) > RESPONSE_LIMIT_BYTES:
            raise FunctionError('Function.ResponseSizeTooLarge',
                                f'Response payload size exceeded maximum allowed payload size ({RESPONSE_LIMIT_BYTES} bytes).')
        return json.loads(result)

    def _done(self) -> None:
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

    def prewarm(self, logical_ids: Iterable[str] | None = None) -> None:
        """One environment per function, created in parallel; the first init error is raised."""
        errors: list[BaseException] = []

        def warm(pool: FunctionPool) -> None:
            try:
                pool.prewarm()
            except BaseException as exc:  # noqa: BLE001 - re-raised below, in the caller's thread
                errors.append(exc)

        pools = [self.pools[lid] for lid in (logical_ids or self.pools)]
        threads = [threading.Thread(target=warm, args=(pool,), name=f'prewarm-{pool.logical_id}') for pool in pools]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    def reconfigure(self, logical_id: str, **changes: Any) -> FunctionConfig:
        pool = self.pools[logical_id]
        config = dataclasses.replace(pool.config, **changes)
        pool.reconfigure(config)
        return config

    def stats(self) -> dict[str, dict[str, Any]]:
        return {lid: pool.snapshot() for lid, pool in self.pools.items()}

    def drain(self, timeout: float) -> bool:
        """Wait until no call is running; False if some were still running after `timeout` seconds."""
        with self._idle:
            return self._idle.wait_for(lambda: self._inflight == 0, timeout)

    def close(self) -> None:
        """End every environment (busy ones end as their event returns or is killed)."""
        for pool in self.pools.values():
            pool.close()


class ProcessEnv:
    """os.environ changes that can be undone: the test process calls layer code directly with these settings."""

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


def reset_layer_caches() -> None:
    """Forget settings, secrets and boto3 clients the layer cached in this process: they point at the previous
    endpoint. (Environments need no reset: each is a new process.)

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
    """Send Powertools' metric lines to a logger instead of stdout (each environment calls it at init).

    In Lambda, each EMF line printed to stdout becomes a CloudWatch metric. Locally nothing reads them and
    they bury what `vidgen serve` and `vidgen demo` print, so they go to the `vidgen_local.metrics` logger
    (DEBUG). Metrics stay on and are still built and validated as in Lambda: switching them off instead
    (POWERTOOLS_METRICS_DISABLED) makes Powertools keep every value and print anyway at 100 of them.
    """
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf import cloudwatch

    sink = logging.getLogger(METRICS_LOGGER)
    # flush_metrics() calls the module-level name `print`; tests/unit/test_local_metrics.py checks it still does.
    cloudwatch.print = lambda *args, **_: sink.debug(' '.join(str(a) for a in args))  # type: ignore[attr-defined]
