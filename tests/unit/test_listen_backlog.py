"""The local servers that bursts reach hold a burst of connections before they accept them: http.server
listens with a backlog of 5, and a connection past a full backlog waits for the client's SYN retry (a
second or more) or is reset."""
from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
from support import ReceiverServer
from vidgen_local.gateway import _Server as GatewayServer
from vidgen_local.simulators.base import SimHandler, SimServer

BURST = 64


def _connections_held(server: Any) -> int:
    """How many of BURST connections to a server that accepts none of them complete within 0.5 s each."""
    address = server.server_address
    clients: list[socket.socket] = []
    try:
        for _ in range(BURST):
            client = socket.socket()
            clients.append(client)
            client.settimeout(0.5)
            try:
                client.connect(address)
                client.send(b'x')  # completed on the client's side; the server holds it in its backlog
            except OSError:
                break
        else:
            return BURST
        return len(clients) - 1
    finally:
        for client in clients:
            client.close()


@pytest.mark.parametrize('make', [
    lambda: SimServer(('127.0.0.1', 0), SimHandler, simulator=None),  # type: ignore[arg-type]
    lambda: GatewayServer(('127.0.0.1', 0), SimHandler),
    lambda: ReceiverServer(('127.0.0.1', 0), SimHandler),
], ids=['provider simulators', 'gateway', 'test receiver'])
def test_a_burst_of_connections_waits_in_the_backlog(make: Callable[[], Any]):
    server = make()  # bound and listening, not serving: every connection stays in the backlog
    try:
        assert _connections_held(server) == BURST
    finally:
        server.server_close()
