"""The SSRF guard: which addresses are refused, and that connections go to the address that was checked, so a
DNS answer that changes between the check and the request (rebinding) cannot reach loopback."""

from __future__ import annotations

import ipaddress
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from vidgen.errors import InvalidParametersError, UnsafeUrlError
from vidgen.jobs import notifications
from vidgen.jobs.submit import check_webhook_url
from vidgen.netguard import check_url, pinned_session, refusal
from vidgen.store import media

PUBLIC = '93.184.215.14'


class Target:
    """An HTTP server on 127.0.0.1 that records the Host header of every request it gets."""

    def __init__(self) -> None:
        self.hosts: list[str] = []
        target = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                target.hosts.append(self.headers.get('Host', ''))
                self.rfile.read(int(self.headers.get('Content-Length') or 0))
                self.send_response(200)
                self.send_header('Content-Length', '2')
                self.end_headers()
                self.wfile.write(b'ok')

            do_GET = do_POST = _answer  # noqa: N815 - http.server's names

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True).start()


@pytest.fixture
def target():
    server = Target()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def dns(monkeypatch):
    """A resolver for names under .test: each name answers from its list of addresses in turn (the last one
    repeats), as a rebinding DNS server would. Every resolution is counted; other names resolve as usual."""
    real = socket.getaddrinfo
    answers: dict[str, list[str]] = {}
    asked: dict[str, int] = {}

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith('.test'):
            asked[host] = asked.get(host, 0) + 1
            queue = answers[host]
            address = queue.pop(0) if len(queue) > 1 else queue[0]
            family = socket.AF_INET6 if ':' in address else socket.AF_INET
            sockaddr = (address, int(port or 0), 0, 0) if family == socket.AF_INET6 else (address, int(port or 0))
            return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, '', sockaddr)]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, 'getaddrinfo', getaddrinfo)
    yield answers, asked


@pytest.mark.parametrize('address', [
    '127.0.0.1', '10.0.0.5', '169.254.169.254', '192.168.1.1', '0.0.0.0', '100.64.0.1', '::1', 'fe80::1', 'fc00::1',
    '::127.0.0.1', '::ffff:127.0.0.1', '::ffff:8.8.8.8', '64:ff9b::7f00:1', '64:ff9b::808:808', '64:ff9b:1::a00:1',
    '2002:7f00:1::', '2002:808:808::', '2001:0:4136:e378:8000:63bf:3fff:fdd2', '224.0.0.1', 'ff02::1',
])
def test_private_reserved_and_ipv4_embedding_addresses_are_refused(address):
    assert refusal(ipaddress.ip_address(address), allow_loopback=False) is not None


@pytest.mark.parametrize('address', ['10.0.0.5', '169.254.169.254', '192.168.1.1', '::ffff:127.0.0.1', '::127.0.0.1',
                                     '64:ff9b::7f00:1', 'fd00::1'])
def test_local_mode_allows_loopback_and_nothing_else_private(address):
    assert refusal(ipaddress.ip_address('127.0.0.1'), allow_loopback=True) is None
    assert refusal(ipaddress.ip_address('127.5.6.7'), allow_loopback=True) is None
    assert refusal(ipaddress.ip_address('::1'), allow_loopback=True) is None
    assert refusal(ipaddress.ip_address(address), allow_loopback=True) is not None


@pytest.mark.parametrize('url', ['http://127.0.0.1/x', 'http://10.0.0.5/x', 'http://169.254.169.254/latest/meta-data',
                                 'http://[::1]/x', 'http://localhost/x', 'file:///etc/passwd', 'ftp://example.com/x',
                                 'http://192.168.1.1/x', 'http://0.0.0.0/x', 'http://[::127.0.0.1]/x',
                                 'http://[64:ff9b::7f00:1]/x', 'http://[2002:7f00:1::]/x', 'http://[::ffff:7f00:1]/x'])
def test_private_embedding_and_non_http_urls_are_refused(url):
    with pytest.raises(UnsafeUrlError):
        check_url(url, allow_loopback=False)


def test_public_addresses_pass_local_mode_allows_loopback_and_https_only_refuses_http():
    check_url('http://8.8.8.8/x', allow_loopback=False)
    check_url('https://[2606:4700:4700::1111]/x', allow_loopback=False)
    check_url('http://127.0.0.1:9000/x', allow_loopback=True)
    with pytest.raises(UnsafeUrlError):
        check_url('http://169.254.169.254/latest/meta-data', allow_loopback=True)
    with pytest.raises(UnsafeUrlError):
        check_url('file:///etc/passwd', allow_loopback=True)
    with pytest.raises(UnsafeUrlError, match='Only https'):
        check_url('http://8.8.8.8/x', allow_loopback=False, https_only=True)


def test_deployed_webhook_urls_must_be_https_and_local_mode_takes_http_on_loopback():
    with pytest.raises(InvalidParametersError) as refused:
        check_webhook_url('http://8.8.8.8/hook', local_mode=False)
    assert refused.value.details == {'field': 'webhook_url'}
    check_webhook_url('https://8.8.8.8/hook', local_mode=False)
    check_webhook_url('http://127.0.0.1:8080/hook', local_mode=True)
    with pytest.raises(InvalidParametersError):
        check_webhook_url('http://10.1.2.3/hook', local_mode=True)


def test_the_connection_goes_to_the_checked_address_and_keeps_the_name(dns, target):
    answers, asked = dns
    answers['svc.test'] = ['127.0.0.1']

    with pinned_session(allow_loopback=True) as session:
        reply = session.get(f'http://svc.test:{target.port}/x', timeout=5)

    assert reply.status_code == 200 and reply.text == 'ok'
    assert target.hosts == [f'svc.test:{target.port}']  # Host kept the name while the socket went to the address
    assert asked['svc.test'] == 1  # resolved once, for the connection itself


def test_a_result_url_that_rebinds_to_loopback_after_the_check_is_never_fetched(dns, target):
    answers, asked = dns
    answers['rebind.test'] = [PUBLIC, '127.0.0.1']  # public for the check, loopback for anyone asking again

    with pytest.raises(UnsafeUrlError, match='private or reserved'):
        media._open(f'http://rebind.test:{target.port}/result.mp4', allow_loopback=False, timeout=(2, 2))

    assert asked['rebind.test'] == 2  # the check, then the connection's own resolution, which was refused
    assert target.hosts == []


def test_a_webhook_that_rebinds_to_loopback_is_refused_without_a_retry(dns, target, monkeypatch, settings_env):
    settings_env(VIDGEN_ALLOW_LOOPBACK_URLS='false')
    monkeypatch.setattr(notifications, 'signing_secret', lambda: 'whsec_' + 'MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')
    answers, asked = dns
    answers['hooks.test'] = [PUBLIC, '127.0.0.1']

    delivered = notifications.send(f'https://hooks.test:{target.port}/hook', 'job_1.succeeded', '{}')

    assert delivered is False  # refused (not WebhookDeliveryError, which the state machine retries for a day)
    assert asked['hooks.test'] == 2 and target.hosts == []


def test_a_webhook_on_a_private_address_is_refused_in_local_mode_too(target, settings_env, monkeypatch):
    settings_env(VIDGEN_ALLOW_LOOPBACK_URLS='true')
    monkeypatch.setattr(notifications, 'signing_secret', lambda: 'whsec_' + 'MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')

    assert notifications.send('http://169.254.169.254/latest/meta-data', 'job_1.failed', '{}') is False
    assert notifications.send(f'http://127.0.0.1:{target.port}/hook', 'job_1.failed', '{}') is True
    assert target.hosts == [f'127.0.0.1:{target.port}']
