"""Execution environments, as Lambda has them: each function's events run in worker processes of its own.

An environment is a process forked from the local cloud's process when a function has no idle one. It takes the
function's environment variables (its execution role's credentials among them, so every AWS call its handler
makes is signed as that role), imports the handler module anew (its own Powertools state, its own caches) and
then serves one event at a time until it is retired. The first event of an environment is its cold start.

Why fork: the child starts with every library already imported by the parent, so an environment costs a few
milliseconds rather than the ~0.5 s of a fresh interpreter, and what a test changes in its own process before
an environment is made (a monkeypatched layer function, a handler stub) is what the handler sees, which is how
the crash tests inject faults. `recycle()` retires the warm environments, so the next event forks anew.

Lambda's rules kept here:
- one event per environment at a time; environments are made on demand up to the function's concurrency limit
  (ReservedConcurrentExecutions, else the local setting); past it, events wait for one to be free;
- an invocation that runs past the function's Timeout is stopped: the process is killed and the caller gets
  `Sandbox.Timedout`, as Lambda reports it; a process that dies mid-event gives `Runtime.ExitError`;
- events and results cross as JSON, so a result JSON cannot carry fails as `Runtime.MarshalError`.
What an environment prints is kept as CloudWatch keeps a function's log: each line becomes a record of the
logger `vidgen_local.lambda.<LogicalId>` in this process (stdout at INFO, stderr at WARNING), so `vidgen serve`
shows it and a test sees it through pytest's log capture.
"""

from __future__ import annotations

import contextlib
import dataclasses
import faulthandler
import fcntl
import gc
import hashlib
import hmac
import io
import json
import logging
import multiprocessing
import os
import selectors
import signal
import ssl
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection, Pipe
from typing import Any

from vidgen_local.template import FunctionSpec

logger = logging.getLogger(__name__)

FUNCTION_LOGGERS = 'vidgen_local.lambda'
_FORK = multiprocessing.get_context('fork')
INIT_TIMEOUT_SECONDS = 10.0  # Lambda gives an environment's init phase 10 s
# A timed-out environment is asked for its threads' stacks (faulthandler) and given this long to write them.
STACK_DUMP_SIGNAL = signal.SIGUSR1
STACK_DUMP_SECONDS = 0.2
# A new environment must get through `_check_fork` within this (it takes milliseconds), else it is forked again.
FORK_CHECK_SECONDS = 5.0
FORK_ATTEMPTS = 3
MAX_TIMEOUT_SECONDS = 900  # Lambda's longest Timeout

# (spec) -> the handler, called in the new environment: it imports the handler module there.
HandlerLoader = Callable[[FunctionSpec], Callable[[Any, Any], Any]]
ContextFactory = Callable[[FunctionSpec, float], Any]


class FunctionError(Exception):
    """An invocation that failed as the Lambda service reports it: `error_type` is the payload's errorType
    (the handler's exception class name, or the runtime's own, e.g. Sandbox.Timedout)."""

    def __init__(self, error_type: str, message: str, stack: list[str] | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.stack = stack or []

    def payload(self) -> dict[str, Any]:
        return {'errorType': self.error_type, 'errorMessage': str(self), 'stackTrace': self.stack}


@dataclass
class PoolStats:
    function: str
    limit: int
    environments: int = 0  # alive now
    cold_starts: int = 0  # environments made so far
    invocations: int = 0
    timeouts: int = 0
    crashes: int = 0
    init_seconds: float = 0.0  # summed over the cold starts


class Environment:
    """One worker process of one function."""

    _fork_lock = threading.Lock()

    def __init__(self, spec: FunctionSpec, env: Mapping[str, str], load: HandlerLoader, context: ContextFactory,
                 pump: OutputPump, generation: int) -> None:
        self.spec = spec
        self.generation = generation
        for attempt in range(1, FORK_ATTEMPTS + 1):
            self._start(env, load, context, pump)
            if self._forked_cleanly():
                break
            # Not the function's fault, nor anything Lambda would do: the fork copied a lock that another thread
            # of this process held (OpenSSL's, seen here), and the copy stays locked. A new fork is clean.
            logger.warning('%s: an environment was stuck right after its fork (attempt %d of %d); forking another',
                           spec.logical_id, attempt, FORK_ATTEMPTS)
            self.kill()
        else:
            raise FunctionError('Runtime.ExitError', f'{spec.name}: no environment started cleanly after '
                                                     f'{FORK_ATTEMPTS} forks')
        self.init_seconds = self._await_init()

    def _start(self, env: Mapping[str, str], load: HandlerLoader, context: ContextFactory, pump: OutputPump) -> None:
        spec = self.spec
        parent_end, child_end = Pipe(duplex=True)
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        with Environment._fork_lock:
            # Objects that exist now are never collected in the child: its collector would otherwise touch (and
            # so copy) every page of this process's heap.
            gc.freeze()
            try:
                # multiprocessing's fork start runs its after-fork hooks in the child, so a test's Manager
                # proxies (shared state a handler stub writes to) work in the environment.
                process = _FORK.Process(target=_child, name=f'{spec.logical_id}-env', daemon=True, args=(
                    spec, dict(env), load, context, child_end, out_write, err_write))
                process.start()
            finally:
                gc.unfreeze()
        child_end.close()
        os.close(out_write)
        os.close(err_write)
        self._process = process
        self.pid = process.pid
        self._conn: Connection = parent_end
        log = logging.getLogger(f'{FUNCTION_LOGGERS}.{spec.logical_id}')
        pump.add(out_read, log, logging.INFO)
        pump.add(err_read, log, logging.WARNING)
        self._alive = True

    def _forked_cleanly(self) -> bool:
        """Whether the child got through the fork check (`_check_fork`) in time."""
        try:
            return self._conn.poll(FORK_CHECK_SECONDS) and tuple(self._conn.recv()) == ('forked',)
        except (EOFError, OSError):
            return False

    def _await_init(self) -> float:
        started = time.monotonic()
        if not self._conn.poll(INIT_TIMEOUT_SECONDS):
            self.kill()
            raise FunctionError('Runtime.InitTimeout', f'{self.spec.name}: init did not finish in {INIT_TIMEOUT_SECONDS:.0f}s')
        kind, *detail = self._receive('during init')
        if kind != 'ready':
            self.kill()
            raise FunctionError(*detail)
        return time.monotonic() - started

    def invoke(self, event_json: str, timeout: float) -> str:
        """The handler's result as JSON text; raises FunctionError as the Lambda service reports a failure."""
        deadline = time.time() + timeout
        try:
            self._conn.send((event_json, deadline))
            ready = self._conn.poll(timeout)
        except (OSError, EOFError):
            self.kill()
            raise FunctionError('Runtime.ExitError', f'{self.spec.name}: the environment exited') from None
        if not ready:
            self._dump_stacks()
            self.kill()
            # Lambda's own words for it, and the error type Step Functions sees.
            raise FunctionError('Sandbox.Timedout', f'Task timed out after {timeout:.2f} seconds')
        kind, *detail = self._receive('mid-event')
        if kind == 'ok':
            return str(detail[0])
        raise FunctionError(*detail)

    def _receive(self, during: str) -> tuple[Any, ...]:
        """The environment's next message; a process that died instead is Runtime.ExitError."""
        try:
            return tuple(self._conn.recv())
        except (EOFError, OSError):
            self.kill()
            raise FunctionError('Runtime.ExitError', f'{self.spec.name}: the environment exited {during}') from None

    def _dump_stacks(self) -> None:
        """Have a timed-out environment write where each of its threads is to its stderr (the function's log)
        before it is killed: Lambda says only that time ran out, but a local hang is ours to find. faulthandler
        writes from its signal handler, without the interpreter lock, so a deadlocked process answers too."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, STACK_DUMP_SIGNAL)
            time.sleep(STACK_DUMP_SECONDS)

    @property
    def alive(self) -> bool:
        return self._alive

    def kill(self) -> None:
        kill_all([self])

    def _signal_kill(self) -> bool:
        if not self._alive:
            return False
        self._alive = False
        self._process.kill()
        return True

    def _reap(self) -> None:
        self._process.join()
        self._conn.close()
        # The pump closes the output pipes once it has read what the process wrote before it died.


def kill_all(environments: Iterable[Environment]) -> None:
    """End environments: every one is sent its SIGKILL before any is waited for, so that the kernel tears
    their address spaces down side by side (a pool retires dozens at once when its configuration changes or
    the cloud stops)."""
    killed = [environment for environment in environments if environment._signal_kill()]
    for environment in killed:
        environment._reap()


def _child(spec: FunctionSpec, env: dict[str, str], load: HandlerLoader, context: ContextFactory, conn: Connection,
           out_fd: int, err_fd: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the local cloud, which then stops us
    _own_streams(out_fd, err_fd)
    faulthandler.register(STACK_DUMP_SIGNAL, file=sys.stderr, all_threads=True)  # see Environment._dump_stacks
    _release_inherited_fds(keep={conn.fileno()})
    _check_fork()
    conn.send(('forked',))
    _serve(spec, env, load, context, conn)


def _check_fork() -> None:
    """Go once through what every environment's first AWS call goes through in OpenSSL: a TLS context (botocore
    makes one for each client, even for http endpoints) and SHA-256 with its HMAC (SigV4).

    This process was forked from one whose other threads use OpenSSL all the time (clients made, signatures
    checked), and a fork copies each lock as it was at that instant. OpenSSL 3 resets none of its locks in
    a child, so a copy held by a thread that does not exist here is held for ever: the first client this
    environment made then hung until the function timed out (seen in CI, 1 in about 7 demos under load).
    Here it hangs before any event, and the parent forks again."""
    ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    hmac.new(b'fork check', b'fork check', hashlib.sha256).digest()


def _release_inherited_fds(keep: set[int]) -> None:
    """Let go of every file the fork copied from the local cloud's process, but stdio, the pipe to it and
    the files of logging's file handlers.

    A fork copies every descriptor, and a child that does not exec keeps them: the write end of the pipe
    through which `subprocess` learns that its child has exec'd (a chromedriver or a `vidgen` command that a
    test starts while an environment forks), whose reader then waits for ever; the other environments' pipes,
    which must read their end when the local cloud's process dies (not prctl's death signal: Linux ties it to
    the thread that forked, and the threads that fork here are a server's short-lived request threads); the
    servers' sockets. Each is pointed at /dev/null rather than closed: objects copied with the heap still hold
    the numbers, and closing one later (a socket's finaliser) must not close a file this environment opened
    since under the same number."""
    keep = {0, 1, 2, *keep}
    for each in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for handler in getattr(each, 'handlers', ()):
            stream = getattr(handler, 'stream', None)
            if isinstance(handler, logging.FileHandler) and stream is not None:
                with contextlib.suppress(OSError, ValueError):
                    keep.add(stream.fileno())
    listing = '/proc/self/fd' if os.path.isdir('/proc/self/fd') else '/dev/fd'
    inherited = [int(name) for name in os.listdir(listing) if name.isdigit()]
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        for fd in inherited:
            if fd in keep or fd == devnull:
                continue
            with contextlib.suppress(OSError):  # the listing's own descriptor, closed since
                fcntl.fcntl(fd, fcntl.F_GETFD)
                os.dup2(devnull, fd, inheritable=False)
    finally:
        os.close(devnull)


def _serve(spec: FunctionSpec, env: dict[str, str], load: HandlerLoader, context: ContextFactory,
           conn: Connection) -> None:
    """The environment's main loop (in the child): init, then one event at a time until the pipe closes."""
    os.environ.clear()
    os.environ.update(env)
    try:
        from vidgen_local.runtime import forget_cached_clients

        forget_cached_clients()
        handler = load(spec)
    except BaseException as exc:  # noqa: BLE001 - reported as Lambda reports an init failure
        conn.send(('error', 'Runtime.ImportModuleError' if isinstance(exc, ImportError) else type(exc).__name__,
                   f'{spec.name} init: {exc}', traceback.format_exception(exc)))
        return
    conn.send(('ready',))
    while True:
        try:
            event_json, deadline = conn.recv()
        except (EOFError, OSError):
            return
        conn.send(_invoke(handler, json.loads(event_json), context(spec, deadline)))
        sys.stdout.flush()
        sys.stderr.flush()


def _invoke(handler: Callable[[Any, Any], Any], event: Any, context: Any) -> tuple[Any, ...]:
    try:
        result = handler(event, context)
    except Exception as exc:  # noqa: BLE001 - the runtime reports every handler exception to the caller
        # The [ERROR] line the Python runtime logs for an unhandled exception.
        print(f'[ERROR] {type(exc).__name__}: {exc}', file=sys.stderr)
        return ('error', type(exc).__name__, str(exc), traceback.format_exception(exc))
    try:
        return ('ok', json.dumps(result))
    except (TypeError, ValueError) as exc:
        return ('error', 'Runtime.MarshalError', f'Unable to marshal response: {exc}', [])


def _own_streams(out_fd: int, err_fd: int) -> None:
    """Point fds 1 and 2, sys.stdout/sys.stderr and every logging stream handler at the environment's pipes.

    New stream objects, not the inherited ones: another thread of the parent may have held an inherited
    stream's lock at the moment of the fork, and the lock would stay held here forever."""
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    os.close(out_fd)
    os.close(err_fd)
    old = {id(sys.stdout): 'out', id(sys.__stdout__): 'out', id(sys.stderr): 'err', id(sys.__stderr__): 'err'}
    stdout = io.TextIOWrapper(io.FileIO(1, 'w', closefd=False), encoding='utf-8', errors='replace', line_buffering=True)
    stderr = io.TextIOWrapper(io.FileIO(2, 'w', closefd=False), encoding='utf-8', errors='replace', line_buffering=True)
    sys.stdout = sys.__stdout__ = stdout
    sys.stderr = sys.__stderr__ = stderr
    loggers = [logging.getLogger(), *(v for v in logging.Logger.manager.loggerDict.values()
                                      if isinstance(v, logging.Logger))]
    for each in loggers:
        for handler in each.handlers:
            stream = getattr(handler, 'stream', None)
            # File handlers keep their files; an in-memory copy (a test's) is read by no one here.
            if not isinstance(handler, logging.StreamHandler) or isinstance(handler, logging.FileHandler) \
                    or isinstance(stream, io.StringIO):
                continue
            is_err = old.get(id(stream)) == 'err' or getattr(stream, 'name', '') == '<stderr>'
            handler.stream = stderr if is_err else stdout
            handler.createLock()  # another thread of the parent may have held it at the fork


class OutputPump:
    """One thread that turns every environment's output, line by line, into log records of this process."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = os.pipe()
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._partial: dict[int, bytes] = {}
        self._lock = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name='vidgen-env-output', daemon=True)
        self._thread.start()

    def add(self, fd: int, log: logging.Logger, level: int) -> None:
        with self._lock:
            self._selector.register(fd, selectors.EVENT_READ, (log, level))
        os.write(self._wake_write, b'.')

    def _run(self) -> None:
        while True:
            for key, _ in self._selector.select(timeout=0.5):
                if key.data is None:
                    os.read(self._wake_read, 4096)
                    continue
                self._read(key.fd, key.data)
            if self._stopping and len(self._selector.get_map()) == 1:
                return

    def _read(self, fd: int, target: tuple[logging.Logger, int]) -> None:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            chunk = b''
        data = self._partial.pop(fd, b'') + chunk
        if not chunk:  # the environment is gone
            with self._lock:
                self._selector.unregister(fd)
            os.close(fd)
            if data:
                self._emit(target, data)
            return
        complete, _, rest = data.rpartition(b'\n')
        if rest:
            self._partial[fd] = rest
        if complete:
            self._emit(target, complete)

    @staticmethod
    def _emit(target: tuple[logging.Logger, int], data: bytes) -> None:
        log, level = target
        for line in data.decode('utf-8', errors='replace').splitlines():
            if line.strip():
                with contextlib.suppress(Exception):  # a handler failing at shutdown must not end the pump
                    log.log(level, '%s', line)

    def stop(self, timeout: float = 5.0) -> None:
        """After every environment is killed: copy what is left, then end the thread."""
        self._stopping = True
        os.write(self._wake_write, b'.')
        self._thread.join(timeout)
        for fd in (self._wake_read, self._wake_write):
            with contextlib.suppress(OSError):
                os.close(fd)


class FunctionPool:
    """The environments of one function: made on demand up to `limit`, reused warmest first."""

    def __init__(self, spec: FunctionSpec, env: Mapping[str, str], load: HandlerLoader, context: ContextFactory,
                 pump: OutputPump, limit: int) -> None:
        self.spec = spec
        self._env = dict(env)
        self._load = load
        self._context = context
        self._pump = pump
        self.stats = PoolStats(spec.logical_id, limit)
        self._idle: list[Environment] = []
        self._busy: set[Environment] = set()
        self._counted = 0  # idle + busy + being made
        self._generation = 0
        self._closed = False
        self._cond = threading.Condition()

    def invoke(self, event_json: str) -> str:
        environment = self.acquire()
        try:
            return environment.invoke(event_json, float(environment.spec.timeout))
        except FunctionError as exc:
            with self._cond:
                if exc.error_type == 'Sandbox.Timedout':
                    self.stats.timeouts += 1
                elif not environment.alive:
                    self.stats.crashes += 1
            raise
        finally:
            self._release(environment)

    def acquire(self) -> Environment:
        with self._cond:
            while True:
                if self._closed:
                    raise FunctionError('ServiceException', f'{self.spec.name}: the local cloud is stopping')
                if self._idle:
                    environment = self._idle.pop()
                    self._busy.add(environment)
                    self.stats.invocations += 1
                    return environment
                if self._counted < self.stats.limit:
                    self._counted += 1
                    generation = self._generation
                    break
                self._cond.wait()
        try:
            environment = Environment(self.spec, dict(self._env), self._load, self._context, self._pump, generation)
        except BaseException:
            with self._cond:
                self._counted -= 1
                self._cond.notify()
            raise
        with self._cond:
            self._busy.add(environment)
            self.stats.cold_starts += 1
            self.stats.invocations += 1
            self.stats.environments = self._counted
            self.stats.init_seconds += environment.init_seconds
        return environment

    def _release(self, environment: Environment) -> None:
        with self._cond:
            self._busy.discard(environment)
            keep = environment.alive and environment.generation == self._generation and not self._closed
            if keep:
                self._idle.append(environment)
            else:
                self._counted -= 1
            self.stats.environments = self._counted
            self._cond.notify()
        if not keep:
            environment.kill()  # outside the lock: it waits for the process to end

    def update_timeout(self, seconds: int) -> None:
        """A new Timeout, as UpdateFunctionConfiguration sets it: for the events after it, in new environments."""
        if not 1 <= seconds <= MAX_TIMEOUT_SECONDS:
            raise ValueError(f'Timeout must be 1 to {MAX_TIMEOUT_SECONDS} seconds, not {seconds}')
        with self._cond:
            self.spec = dataclasses.replace(self.spec, timeout=seconds)
        self.recycle()

    def update_environment(self, values: Mapping[str, str | None]) -> None:
        """Set (None: remove) environment variables, as UpdateFunctionConfiguration does: the events after
        it run in new environments with the new variables."""
        with self._cond:
            for name, value in values.items():
                if value is None:
                    self._env.pop(name, None)
                else:
                    self._env[name] = value
        self.recycle()

    def recycle(self) -> None:
        """Retire every environment: idle ones now, busy ones when their event ends."""
        with self._cond:
            self._generation += 1
            retired, self._idle = self._idle, []
            self._counted -= len(retired)
            self.stats.environments = self._counted
            self._cond.notify_all()
        kill_all(retired)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            retired = [*self._idle, *self._busy]
            self._idle, self._busy = [], set()
            self._cond.notify_all()
        kill_all(retired)
