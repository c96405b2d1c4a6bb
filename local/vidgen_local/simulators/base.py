"""What every provider simulator shares: a loopback HTTP server, a scheduler, callback delivery with its
faults, the queue of errors a test asks for, and the request-level transport faults.

A simulator subclasses `Simulator`, names itself (`name`, used for thread names and log lines), and
implements the protocol: `route(handler, method)` answers one request (a `Reply`, or None when the handler
already answered it), `error_reply(handler, error)` shapes the provider's error answer, `make_error(code)`
builds its error for a provider code. Everything else - starting and stopping threads, callback lanes that
keep one task's callbacks in order, retries, drops, duplicates, reorders, delays, resets, stalls - is here,
once.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import queue
import socket
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, ClassVar, Protocol
from urllib.parse import urlsplit

import requests

from vidgen_local.simulators.faults import Counters, FaultPlan

logger = logging.getLogger(__name__)

LOOPBACK = '127.0.0.1'
# A provider calls back for many tasks at once: with a few lanes, 200 tasks finishing together queued their
# callbacks behind each other in the simulator (provider done -> job completed p50 15.9 s at 200 jobs, 4 lanes),
# which no provider does. A task's callbacks still go out in order, on the lane its id picks.
CALLBACK_LANES = 32
# What a 'malformed' fault answers: a proxy's error page where JSON was expected.
MALFORMED_BODY = b'<html><body><h1>502 Bad Gateway</h1></body></html>'


def is_loopback_url(url: str) -> bool:
    """Whether a URL points at this machine (callbacks never leave it)."""
    host = urlsplit(url).hostname or ''
    return host == 'localhost' or host == '::1' or host.startswith('127.')


class SimulatorError(Exception):
    """An error answer in the provider's own terms; `code` is the provider's error code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = 'application/json'

    @classmethod
    def json(cls, status: int, payload: Any) -> Reply:
        return cls(status, json.dumps(payload).encode())


class SimulatorConfig(Protocol):
    """The settings the base reads from every simulator's config."""

    faults: FaultPlan
    loopback_callbacks_only: bool


# --- Background work: one scheduler thread, a few callback lanes ---------------------------------------


class Scheduler:
    """Runs callables at monotonic times on one daemon thread."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._heap: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=f'{name}-scheduler', daemon=True)

    def start(self) -> None:
        self._thread.start()

    def call_later(self, delay: float, fn: Callable[..., None], *args: Any) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + max(delay, 0.0), next(self._seq), fn, args))
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._cond.wait(timeout=self._heap[0][0] - time.monotonic() if self._heap else None)
                if self._stopped:
                    return
                _, _, fn, args = heapq.heappop(self._heap)
            try:
                fn(*args)
            except Exception:  # one bad step must not stop every later task
                logger.exception('%s: a scheduled step failed', self._name)


@dataclass(frozen=True)
class Delivery:
    task_id: str
    url: str
    body: Any
    attempt: int = 1


class CallbackLanes:
    """A few sender threads; one task always uses the same lane, so its callbacks keep their order."""

    def __init__(self, name: str, deliver: Callable[[requests.Session, Delivery], None], join_seconds: float,
                 lanes: int = CALLBACK_LANES) -> None:
        self._name = name
        self._deliver = deliver
        self._join_seconds = join_seconds
        self._queues: list[queue.Queue[Delivery | None]] = [queue.Queue() for _ in range(lanes)]
        self._threads = [threading.Thread(target=self._run, args=(q,), name=f'{name}-callbacks-{n}', daemon=True)
                         for n, q in enumerate(self._queues)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def put(self, delivery: Delivery) -> None:
        self._queues[zlib.crc32(delivery.task_id.encode()) % len(self._queues)].put(delivery)

    def stop(self) -> None:
        for q in self._queues:
            q.put(None)
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=self._join_seconds)

    def _run(self, q: queue.Queue[Delivery | None]) -> None:
        with requests.Session() as session:
            while (delivery := q.get()) is not None:
                try:
                    self._deliver(session, delivery)
                except Exception:
                    logger.exception('%s: a callback delivery failed', self._name)


# --- HTTP ---------------------------------------------------------------------------------------------


class SimServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # http.server listens with a backlog of 5; 200 jobs' downloads and status queries arrive together, and a
    # provider's edge takes them all, so a full backlog must not reset connections here (as the gateway's).
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], handler: type[SimHandler], simulator: Simulator) -> None:
        self.simulator = simulator
        super().__init__(address, handler)


class SimHandler(BaseHTTPRequestHandler):
    """Hands every request to the simulator; the helpers answer, or drop the connection."""

    server: SimServer
    stall = False  # set by a timeout fault: the answer goes out after the client has given up

    def do_GET(self) -> None:  # noqa: N802 - the http.server naming
        self.server.simulator.handle(self, 'GET')

    def do_POST(self) -> None:  # noqa: N802
        self.server.simulator.handle(self, 'POST')

    def do_PUT(self) -> None:  # noqa: N802
        self.server.simulator.handle(self, 'PUT')

    def do_DELETE(self) -> None:  # noqa: N802
        self.server.simulator.handle(self, 'DELETE')

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        pass  # request lines are noise in test output, and a simulator must not log headers

    def read_body(self) -> bytes:
        length = int(self.headers.get('Content-Length') or 0)
        simulator = self.server.simulator
        if length > simulator.max_body_bytes:
            self.close_connection = True  # the unread body would otherwise be parsed as the next request
            raise simulator.body_too_large()
        return self.rfile.read(length) if length else b''

    def send_bytes(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_reply(self, reply: Reply) -> None:
        self.send_bytes(reply.status, reply.body, reply.content_type)

    def reset(self) -> None:
        """Drop the connection without an answer (RST rather than a polite FIN)."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        except OSError:
            pass


# --- The simulator --------------------------------------------------------------------------------------


class Simulator:
    """A provider simulator on 127.0.0.1. `start()` returns its base URL; `stop()` ends every thread.

    `stats` counts what happened; the base counts `callbacks_sent` / `_delivered` / `_failed` / `_dropped` /
    `_duplicated` / `_reordered` / `_blocked`, `errors.<code>`, `injected.<code>` (from `queue_error`) and
    `faults.<stage>_<kind>`; the protocol modules add their own.
    """

    name: ClassVar[str] = 'sim'
    handler_class: type[SimHandler] = SimHandler  # the protocol module may set its own
    max_body_bytes: ClassVar[int] = 32 * 1024 * 1024
    callback_timeout: ClassVar[float | tuple[float, float]] = (1.0, 3.0)
    throttle_code: ClassVar[int] = 429
    server_error_codes: ClassVar[tuple[int, ...]] = (500,)
    internal_error_code: ClassVar[int] = 500

    def __init__(self, config: SimulatorConfig, host: str = LOOPBACK, port: int = 0) -> None:
        if host != LOOPBACK:
            raise ValueError(f'the {self.name} simulator binds {LOOPBACK} only, not {host!r}')
        self.config = config
        self.stats = Counters()
        self._address = (host, port)
        self._lock = threading.Lock()
        self._queued_errors: dict[str, list[tuple[int, str | None]]] = {'create': [], 'status': []}
        self._stopping = threading.Event()
        self._server: SimServer | None = None
        self._scheduler = Scheduler(self.name)
        timeout = self.callback_timeout
        self._lanes = CallbackLanes(self.name, self._deliver,
                                    join_seconds=(sum(timeout) if isinstance(timeout, tuple) else timeout) + 1)
        self._stopped = False

    # --- the protocol, per provider -----------------------------------------------------------------------

    def route(self, handler: SimHandler, method: str) -> Reply | None:
        raise NotImplementedError

    def error_reply(self, handler: SimHandler, error: SimulatorError) -> Reply:
        raise NotImplementedError

    def make_error(self, code: int, message: str | None = None) -> SimulatorError:
        raise NotImplementedError

    def known_error(self, code: int) -> bool:
        """Whether `queue_error` may queue this code."""
        raise NotImplementedError

    def body_too_large(self) -> SimulatorError:
        return self.make_error(400, 'request body is too large')

    def callback_headers(self, delivery: Delivery) -> dict[str, str]:
        """Extra headers for one callback attempt (e.g. a signature over the time it is sent)."""
        return {}

    def callback_retry_delays(self) -> tuple[float, ...]:
        """Seconds before each retry of a callback the receiver did not take; () = no retries."""
        return ()

    # --- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> str:
        with self._lock:
            if self._stopped:
                raise RuntimeError(f'a stopped {type(self).__name__} cannot be started again; make a new one')
            if self._server is None:
                self._server = SimServer(self._address, self.handler_class, self)
                thread = threading.Thread(target=self._server.serve_forever, kwargs={'poll_interval': 0.05},
                                          name=f'{self.name}-http', daemon=True)
                self._scheduler.start()
                self._lanes.start()
                thread.start()
        return self.base_url

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            server = self._server
        self._stopping.set()  # wakes handlers stalled by a timeout fault
        if server is not None:
            server.shutdown()
            server.server_close()
            self._scheduler.stop()
            self._lanes.stop()

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError(f'the {self.name} simulator is not started')
        host, port = self._server.server_address[:2]
        return f'http://{host!s}:{port}'

    # --- the fault queue -----------------------------------------------------------------------------------

    def queue_error(self, code: int, *, times: int = 1, stage: str = 'create', message: str | None = None) -> None:
        """Answer the next `times` creates (stage 'create') or status queries ('status') with this code (its
        table wording, or `message`: the concrete reason the provider gives, e.g. which parameter)."""
        if not self.known_error(code) or stage not in self._queued_errors:
            raise ValueError(f'unknown {self.name} error code {code} or stage {stage!r}')
        with self._lock:
            self._queued_errors[stage].extend([(code, message)] * times)

    def raise_queued(self, stage: str) -> None:
        with self._lock:
            code, message = self._queued_errors[stage].pop(0) if self._queued_errors[stage] else (None, None)
        if code is not None:
            self.stats.incr(f'injected.{code}')
            raise self.make_error(code, message)

    # --- requests ------------------------------------------------------------------------------------------

    def handle(self, handler: SimHandler, method: str) -> None:
        handler.stall = False
        reply: Reply | None
        try:
            reply = self.route(handler, method)
        except SimulatorError as error:
            self.stats.incr(f'errors.{error.code}')
            reply = self.error_reply(handler, error)
        except Exception:  # a simulator bug: answer like the provider's own internal error rather than hang up
            logger.exception('%s: request failed', self.name)
            reply = self.error_reply(handler, self.make_error(self.internal_error_code))
        if reply is None:
            return  # already answered (a file, or a transport fault)
        if handler.stall:
            # Answer only after the client has stopped waiting: the work is done, the answer is lost.
            self._stopping.wait(self.config.faults.timeout_sleep_seconds)
        try:
            handler.send_reply(reply)
        except OSError:
            handler.close_connection = True  # the client went away, e.g. after its read timeout

    def transport_fault(self, handler: SimHandler, stage: str) -> bool:
        """Inject this request's fault, if any; True when it has answered (or dropped) the request itself.
        Error faults raise the provider's error; a timeout lets the request run and answers it too late."""
        faults = self.config.faults
        fault = faults.pick(stage)
        if fault is None:
            return False
        self.stats.incr(f'faults.{stage}_{fault}')
        if fault == 'reset':
            handler.reset()
            return True
        if fault == 'malformed':
            handler.send_bytes(200, MALFORMED_BODY, 'text/html')
            return True
        if fault == 'server_error':
            raise self.make_error(int(str(faults.choice(self.server_error_codes))))
        if fault == 'throttle':
            raise self.make_error(self.throttle_code)
        handler.stall = True
        return False

    # --- callbacks -----------------------------------------------------------------------------------------

    def send_callback(self, task_id: str, url: str | None, body: Any, *, drop: bool = False, final: bool = True,
                      earlier: Any = None) -> None:
        """POST `body` to `url` from a callback lane, through the callback faults: dropped (always when
        `drop`), sent twice, followed by `earlier` (an older status, for a final callback), held back
        (final callbacks only), and never anywhere but this machine unless the config allows it."""
        if not url:
            return
        faults = self.config.faults
        if drop or faults.roll('callback_drop'):
            self.stats.incr('callbacks_dropped')
            return
        if self.config.loopback_callbacks_only and not is_loopback_url(url):
            self.stats.incr('callbacks_blocked')
            return
        duplicate = faults.roll('callback_duplicate')
        reorder = final and earlier is not None and faults.roll('callback_reorder')
        bodies = [body] * (2 if duplicate else 1) + ([earlier] if reorder else [])  # reorder: an old status last
        self.stats.incr('callbacks_duplicated', int(duplicate))
        self.stats.incr('callbacks_reordered', int(reorder))
        delay = faults.callback_delay_seconds if final else 0.0
        for each in bodies:
            self._scheduler.call_later(delay, self._lanes.put, Delivery(task_id, url, each))

    def _deliver(self, session: requests.Session, delivery: Delivery) -> None:
        if self._stopping.is_set():
            return
        self.stats.incr('callbacks_sent')
        headers = {'Content-Type': 'application/json', **self.callback_headers(delivery)}
        try:
            with session.post(delivery.url, data=json.dumps(delivery.body).encode(), headers=headers,
                              timeout=self.callback_timeout) as response:
                delivered = 200 <= response.status_code < 300
        except requests.RequestException:
            delivered = False
        if delivered:
            self.stats.incr('callbacks_delivered')
            return
        self.stats.incr('callbacks_failed')
        delays = self.callback_retry_delays()
        if delivery.attempt <= len(delays):
            retry = Delivery(delivery.task_id, delivery.url, delivery.body, delivery.attempt + 1)
            self._scheduler.call_later(delays[delivery.attempt - 1], self._lanes.put, retry)
