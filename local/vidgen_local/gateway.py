"""A local stand-in for API Gateway HTTP APIs: HTTP requests in, payload-v2 events to the real handlers.

Routes come from the template's HttpApi events. Matching, the 404/413 answers, CORS preflights and the
translation of a handler's result follow API Gateway's documented behaviour for payload format 2.0, so a
handler that works here works behind the real gateway. One access line per request: method, path (never
the query string: callback URLs carry tokens), status and milliseconds. Headers are never logged.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote

from vidgen_local.template import HttpRoute

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's own limit on a request body (HTTP APIs: 10 MB)
# Lambda's synchronous invocation payload, request and response alike ("6 MB", Lambda quotas / Invoke API).
# What is counted is the invocation's JSON (the event, or the handler's result), not the HTTP body: a binary
# body travels base64-encoded inside the event, 4 characters for every 3 bytes, and the headers ride along. So a
# 5 MB image posted as image/png never reaches a function, although API Gateway took it.
LAMBDA_REQUEST_BYTES = 6 * 1024 * 1024
# Lambda's ResponseSizeTooLarge message names 6291556 bytes as the response limit, 100 more than 6 MiB.
LAMBDA_RESPONSE_BYTES = 6 * 1024 * 1024 + 100
_TEXT_TYPES = re.compile(r'^(text/.*|application/(json|xml|javascript|x-www-form-urlencoded|.*\+json|.*\+xml))$')

# (function logical id, event) -> handler result
Invoke = Callable[[str, dict[str, Any]], Any]


@dataclass(frozen=True)
class _CompiledRoute:
    route: HttpRoute
    pattern: re.Pattern[str] | None  # None for $default
    names: tuple[str, ...]
    specificity: tuple[int, int, int]


def _compile(route: HttpRoute) -> _CompiledRoute:
    if route.path == '$default':
        return _CompiledRoute(route, None, (), (-1, 0, 0))
    parts, names, literals = [], [], 0
    segments = route.path.strip('/').split('/')
    for index, segment in enumerate(segments):
        greedy = re.fullmatch(r'\{(\w+)\+\}', segment)
        variable = re.fullmatch(r'\{(\w+)\}', segment)
        if greedy and index == len(segments) - 1:
            names.append(greedy.group(1))
            parts.append(f'(?P<{greedy.group(1)}>.+)')
        elif variable:
            names.append(variable.group(1))
            parts.append(f'(?P<{variable.group(1)}>[^/]+)')
        else:
            literals += 1
            parts.append(re.escape(segment))
    pattern = re.compile('/' + '/'.join(parts) + '/?') if segments != [''] else re.compile('/')
    # API Gateway prefers literal paths, then fewer variables; a greedy path loses to anything else.
    greedy_last = 0 if route.path.endswith('+}') else 1
    return _CompiledRoute(route, pattern, tuple(names), (greedy_last, literals, route.method != 'ANY'))


class Router:
    """Matches (method, path) to a route the way API Gateway does."""

    def __init__(self, routes: Iterable[HttpRoute]) -> None:
        self._routes = sorted((_compile(r) for r in routes), key=lambda c: c.specificity, reverse=True)

    def match(self, method: str, path: str) -> tuple[HttpRoute, dict[str, str]] | None:
        default = None
        for compiled in self._routes:
            if compiled.route.method not in (method, 'ANY'):
                continue
            if compiled.pattern is None:
                default = default or compiled.route
                continue
            found = compiled.pattern.fullmatch(path)
            if found:
                return compiled.route, {k: unquote(v) for k, v in found.groupdict().items()}
        return (default, {}) if default else None


def build_event(*, method: str, raw_path: str, raw_query: str, headers: Iterable[tuple[str, str]], body: bytes,
                route: HttpRoute, path_parameters: Mapping[str, str], source_ip: str, protocol: str,
                api_id: str = 'local', request_id: str | None = None) -> dict[str, Any]:
    """The API Gateway HTTP API payload-v2 event for one request."""
    joined: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        joined[key] = f'{joined[key]},{value}' if key in joined else value
    cookies = [c.strip() for c in joined.pop('cookie', '').split(';') if c.strip()]
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query[key] = f'{query[key]},{value}' if key in query else value
    now = time.time()
    domain = joined.get('host', f'{api_id}.execute-api.local')
    event: dict[str, Any] = {
        'version': '2.0',
        'routeKey': route.route_key,
        'rawPath': raw_path,
        'rawQueryString': raw_query,
        'headers': joined,
        'requestContext': {
            'accountId': '123456789012',
            'apiId': api_id,
            'domainName': domain,
            'domainPrefix': domain.split('.', 1)[0],
            'http': {'method': method, 'path': raw_path, 'protocol': protocol, 'sourceIp': source_ip,
                     'userAgent': joined.get('user-agent', '')},
            'requestId': request_id or str(uuid.uuid4()),
            'routeKey': route.route_key,
            'stage': '$default',
            'time': time.strftime('%d/%b/%Y:%H:%M:%S +0000', time.gmtime(now)),
            'timeEpoch': int(now * 1000),
        },
        'isBase64Encoded': False,
    }
    if cookies:
        event['cookies'] = cookies
    if query:
        event['queryStringParameters'] = query
    if path_parameters:
        event['pathParameters'] = dict(path_parameters)
    if body:
        content_type = joined.get('content-type', '').split(';', 1)[0].strip().lower()
        if _TEXT_TYPES.match(content_type):
            try:
                event['body'] = body.decode('utf-8')
            except UnicodeDecodeError:
                event['body'], event['isBase64Encoded'] = base64.b64encode(body).decode(), True
        else:
            event['body'], event['isBase64Encoded'] = base64.b64encode(body).decode(), True
    return event


def payload_bytes(value: Any) -> int:
    """The size of an invocation payload: the value as the JSON Lambda carries (compact, UTF-8)."""
    return len(json.dumps(value, separators=(',', ':'), ensure_ascii=False).encode())


class ResponseTooLarge(Exception):
    """A handler's result over Lambda's response payload limit: Lambda fails the invocation."""


def http_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """A handler's payload-v2 result as (status, headers, body), including the bare-value shortcut."""
    if not (isinstance(result, dict) and 'statusCode' in result):
        # Payload v2: anything without statusCode is a 200 JSON body.
        return 200, [('content-type', 'application/json')], json.dumps(result).encode()
    status = int(result['statusCode'])
    headers = [(str(k), str(v)) for k, v in (result.get('headers') or {}).items()]
    for name, values in (result.get('multiValueHeaders') or {}).items():
        headers.extend((str(name), str(v)) for v in values)
    headers.extend(('set-cookie', str(cookie)) for cookie in result.get('cookies') or [])
    body = result.get('body')
    if body is None:
        payload = b''
    elif result.get('isBase64Encoded'):
        payload = base64.b64decode(body)
    else:
        payload = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return status, headers, payload


class _Server(ThreadingHTTPServer):
    # http.server listens with a backlog of 5: a burst of clients (a page of thumbnails, the concurrency
    # tests' 200 submits) overflowed it and connections were reset. API Gateway takes them all.
    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up before its answer (a simulator giving up on a slow callback) is not a server
        # error; anything else still gets http.server's traceback.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class Gateway:
    """ThreadingHTTPServer on 127.0.0.1 serving `routes` by calling `invoke(function, event)`."""

    def __init__(self, routes: Iterable[HttpRoute], invoke: Invoke, *, port: int = 0, host: str = '127.0.0.1',
                 cors: Mapping[str, Any] | None = None, max_body_bytes: int = MAX_BODY_BYTES,
                 lambda_request_bytes: int = LAMBDA_REQUEST_BYTES,
                 lambda_response_bytes: int = LAMBDA_RESPONSE_BYTES) -> None:
        self.router = Router(routes)
        self.invoke = invoke
        self.cors = dict(cors) if cors else None
        self.max_body_bytes = max_body_bytes
        self.lambda_request_bytes = lambda_request_bytes
        self.lambda_response_bytes = lambda_response_bytes
        # Bound now, served by start(): the URL is known before the handlers are configured with it.
        self._server = _Server((host, port), _make_handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f'http://{host}:{port}'

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> Gateway:
        # A short poll interval: shutdown() waits for one, and stop() should be quick.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={'poll_interval': 0.05},
                                        name='vidgen-gateway', daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def cors_headers(self, origin: str | None, preflight: bool) -> list[tuple[str, str]]:
        if not self.cors or not origin:
            return []
        allowed = [o.lower() for o in self.cors.get('AllowOrigins', [])]
        if '*' not in allowed and origin.lower() not in allowed:
            return []
        headers = [('access-control-allow-origin', '*' if '*' in allowed else origin)]
        if self.cors.get('AllowCredentials'):
            headers.append(('access-control-allow-credentials', 'true'))
        if preflight:
            headers.append(('access-control-allow-methods', ','.join(self.cors.get('AllowMethods', ['*']))))
            headers.append(('access-control-allow-headers', ','.join(self.cors.get('AllowHeaders', ['*']))))
            if 'MaxAge' in self.cors:
                headers.append(('access-control-max-age', str(self.cors['MaxAge'])))
        elif self.cors.get('ExposeHeaders'):
            headers.append(('access-control-expose-headers', ','.join(self.cors['ExposeHeaders'])))
        return headers


def _make_handler(gateway: Gateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'
        server_version = 'vidgen-local'
        # http.server sends a response's headers and its body in two writes. On a connection the client keeps
        # open, Nagle's algorithm then holds the body until the client's delayed ACK of the headers: every
        # request after a client's first waited about 40 ms (44 ms against 0.5 ms for a small GET here).
        # API Gateway adds no such wait, so the gateway's sockets send at once.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._handle()

        do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET  # noqa: N815

        def __getattr__(self, name: str) -> Any:
            # Any other method (TRACE, QUERY, ...) is routed like these, so one that no route has gets API
            # Gateway's JSON 404 rather than http.server's HTML 501 page.
            if name.startswith('do_'):
                return self._handle
            raise AttributeError(name)

        def _handle(self) -> None:
            started = time.perf_counter()
            self.request_id = str(uuid.uuid4())
            raw_path, _, raw_query = self.path.partition('?')
            status = self._respond(raw_path, raw_query)
            logger.info('%s %s %d %.1fms', self.command, raw_path, status, (time.perf_counter() - started) * 1000)

        def _respond(self, raw_path: str, raw_query: str) -> int:
            origin = self.headers.get('origin')
            if self.command == 'OPTIONS' and gateway.cors and self.headers.get('access-control-request-method'):
                return self._send(204, gateway.cors_headers(origin, preflight=True), b'')
            try:
                length = int(self.headers.get('content-length') or 0)
            except ValueError:
                self.close_connection = True
                return self._send(400, [('content-type', 'application/json')], b'{"message":"Bad Request"}')
            if length > gateway.max_body_bytes:
                self.close_connection = True
                return self._send(413, [('content-type', 'application/json')], b'{"message":"Request Entity Too Large"}')
            body = self._read_body(length)
            if body is None:
                self.close_connection = True
                return self._send(413, [('content-type', 'application/json')], b'{"message":"Request Entity Too Large"}')
            found = gateway.router.match(self.command, raw_path)
            if found is None:
                return self._send(404, [('content-type', 'application/json')], b'{"message":"Not Found"}')
            route, params = found
            event = build_event(method=self.command, raw_path=raw_path, raw_query=raw_query,
                                headers=self.headers.items(), body=body, route=route, path_parameters=params,
                                source_ip=self.client_address[0], protocol=self.request_version,
                                request_id=self.request_id)
            if payload_bytes(event) > gateway.lambda_request_bytes:
                # Lambda refuses the invocation (RequestTooLargeException, 413) before any handler runs, and
                # API Gateway passes the 413 on in its own shape.
                logger.warning('%s %s: the event for %s is over Lambda\'s %d-byte request payload limit',
                               self.command, raw_path, route.function, gateway.lambda_request_bytes)
                self.close_connection = True
                return self._send(413, [('content-type', 'application/json')], b'{"message":"Request Entity Too Large"}')
            try:
                result = gateway.invoke(route.function, event)
                size = payload_bytes(result)
                if size > gateway.lambda_response_bytes:
                    # The handler ran (its side effects stand) but Lambda drops the result with
                    # Function.ResponseSizeTooLarge; the integration failed, so the client sees a 500.
                    raise ResponseTooLarge(f'Response payload size ({size} bytes) exceeded maximum allowed payload '
                                           f'size ({gateway.lambda_response_bytes} bytes).')
                status, headers, payload = http_response(result)
            except Exception as exc:  # noqa: BLE001 - API Gateway answers 500 when the integration fails
                # A function error (its type as Lambda reports it) in one line; anything else is a fault of
                # the local gateway itself, with its traceback.
                error_type = getattr(exc, 'error_type', None)
                logger.error('%s %s: the %s invocation failed: %s: %s', self.command, raw_path, route.function,
                             error_type or type(exc).__name__, exc, exc_info=error_type is None)
                if error_type == 'Sandbox.Timedout':  # the function ran out of time: no answer to pass on
                    status, payload = 503, b'{"message":"Service Unavailable"}'
                else:
                    status, payload = 500, b'{"message":"Internal Server Error"}'
                headers = [('content-type', 'application/json')]
            return self._send(status, headers + gateway.cors_headers(origin, preflight=False), payload)

        def _read_body(self, length: int) -> bytes | None:
            if 'chunked' in (self.headers.get('transfer-encoding') or '').lower():
                chunks, total = [], 0
                while True:
                    size = int(self.rfile.readline().split(b';', 1)[0].strip() or b'0', 16)
                    if size == 0:
                        while self.rfile.readline() not in (b'\r\n', b'\n', b''):
                            pass
                        return b''.join(chunks)
                    total += size
                    if total > gateway.max_body_bytes:
                        return None
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(length) if length else b''

        def _send(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> int:
            self.send_response_only(status)
            names = {name.lower() for name, _ in headers}
            for name, value in headers:
                if name.lower() not in ('content-length', 'connection', 'transfer-encoding'):
                    self.send_header(name, value)
            if 'date' not in names:
                self.send_header('date', formatdate(usegmt=True))
            self.send_header('apigw-requestid', self.request_id)
            self.send_header('content-length', str(len(payload)))
            if self.close_connection:
                self.send_header('connection', 'close')
            self.end_headers()
            if self.command != 'HEAD':
                self.wfile.write(payload)
            return status

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence http.server's own log
            pass

    return Handler
