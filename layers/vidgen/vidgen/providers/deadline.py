"""A total deadline for one HTTP call, which requests' timeouts are not.

requests (urllib3) applies its read timeout to each read from the socket, so a server that sends a byte a
little faster than the read timeout keeps a call going for as long as it likes: in the status line, the
headers or the body. A `Deadline` bounds the whole call instead: every socket the call connects or sends
on is registered with it (by the connection classes of `DeadlineAdapter`, in the calling thread), and when
the deadline passes a timer thread shuts those sockets down. The blocked read then ends at once (a
shutdown, unlike a close, wakes a thread waiting in recv), the call fails with a connection error, and
`expired` tells the caller that the deadline, not the server, ended it.

Not covered: name resolution, which does not use the socket (the system resolver has its own limits).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_current = threading.local()  # the Deadline of the call running in this thread, if any


class Deadline:
    """Shuts down the sockets registered with it once `seconds` have passed (see the module docstring)."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(seconds, 0.0), self._expire)
        self._timer.daemon = True

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            if not any(s is sock for s in self._sockets):
                self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)

    @contextmanager
    def running(self) -> Iterator[Deadline]:
        """Arm the timer for the call made inside this block, in this thread."""
        _current.deadline = self
        self._timer.start()
        try:
            yield self
        finally:
            self._timer.cancel()
            _current.deadline = None


def _shut(sock: socket.socket) -> None:
    try:
        # The plain socket's shutdown even for a TLS socket: SSLSocket.shutdown would also drop its TLS state
        # under the thread still reading from it.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed or never connected: nothing to wake


def _watch(sock: socket.socket | None) -> None:
    deadline: Deadline | None = getattr(_current, 'deadline', None)
    if deadline is not None:
        deadline.watch(sock)


class _WatchedHTTPConnection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _watch(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self.sock)  # a reused keep-alive connection is not connected again
        super().request(*args, **kwargs)
        _watch(self.sock)


class _WatchedHTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _watch(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self.sock)
        super().request(*args, **kwargs)
        _watch(self.sock)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter whose connections register their sockets with the running `Deadline`; without one
    they behave as the stock adapter's."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {'http': _WatchedHTTPPool, 'https': _WatchedHTTPSPool}
