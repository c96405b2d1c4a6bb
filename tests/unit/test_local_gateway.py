"""vidgen_local.gateway: HTTP on 127.0.0.1 in, API Gateway HTTP API payload-v2 events out, and back."""

from __future__ import annotations

import base64
import http.client
import json
import logging
import socket
import time
from typing import Any

import pytest
import requests
from vidgen_local.gateway import LAMBDA_REQUEST_BYTES, LAMBDA_RESPONSE_BYTES, MAX_BODY_BYTES, Gateway, Router, payload_bytes
from vidgen_local.template import HttpRoute

ROUTES = [
    HttpRoute('Jobs', 'List', 'GET', '/v1/jobs'),
    HttpRoute('Jobs', 'Submit', 'POST', '/v1/jobs'),
    HttpRoute('Jobs', 'Get', 'GET', '/v1/jobs/{job_id}'),
    HttpRoute('Jobs', 'Cancel', 'POST', '/v1/jobs/{job_id}/cancel'),
    HttpRoute('Jobs', 'Export', 'GET', '/v1/jobs/export'),
    HttpRoute('Files', 'Any', 'ANY', '/files/{path+}'),
]


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.result: Any = {'statusCode': 200, 'body': '{}'}

    def __call__(self, function: str, event: dict[str, Any]) -> Any:
        self.events.append((function, event))
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


@pytest.fixture
def gateway():
    recorder = Recorder()
    gw = Gateway(ROUTES, recorder, port=0, cors={'AllowOrigins': ['*'], 'AllowHeaders': ['authorization'],
                                                 'AllowMethods': ['GET', 'POST']}).start()
    gw.recorder = recorder
    yield gw
    gw.stop()


def test_binds_loopback_only_and_closes_its_port_on_stop():
    gw = Gateway(ROUTES, Recorder(), port=0).start()
    host, port = gw._server.server_address[:2]
    assert host == '127.0.0.1' and gw.url == f'http://127.0.0.1:{port}'
    gw.stop()
    with pytest.raises(OSError):
        socket.create_connection(('127.0.0.1', port), timeout=1)


def test_a_kept_open_connection_answers_without_waiting_for_the_clients_ack(gateway):
    # Given the server side of each connection the gateway accepts
    accepted: list[socket.socket] = []
    accept = gateway._server.get_request

    def recording_accept() -> Any:
        connection = accept()
        accepted.append(connection[0])
        return connection

    gateway._server.get_request = recording_accept
    # When one client sends three requests, one after the other, over a connection it keeps open
    with requests.Session() as session:
        statuses = [session.get(f'{gateway.url}/v1/jobs', timeout=5).status_code for _ in range(3)]
        # Then one connection served them all, with Nagle's algorithm off: a response's body is not held
        # back until the client acknowledges its headers (a delayed ACK, about 40 ms a request on Linux)
        assert statuses == [200, 200, 200]
        assert len(accepted) == 1
        assert accepted[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_request_becomes_a_payload_v2_event(gateway):
    # Given a request with a path parameter, repeated query keys, cookies and a JSON body
    conn = http.client.HTTPConnection('127.0.0.1', gateway.port)
    conn.putrequest('POST', '/v1/jobs/job%201/cancel?tag=a&tag=b&empty=&x=%2B1')
    for name, value in (('Content-Type', 'application/json'), ('X-Multi', 'one'), ('X-Multi', 'two'),
                        ('Cookie', 'a=1; b=2'), ('User-Agent', 'tests/1.0'), ('Content-Length', '13')):
        conn.putheader(name, value)
    conn.endheaders(b'{"why": "no"}')
    assert conn.getresponse().status == 200
    # Then the handler gets API Gateway's v2 shape
    function, event = gateway.recorder.events[-1]
    assert function == 'Jobs'
    assert event['version'] == '2.0' and event['routeKey'] == 'POST /v1/jobs/{job_id}/cancel'
    assert event['rawPath'] == '/v1/jobs/job%201/cancel' and event['rawQueryString'] == 'tag=a&tag=b&empty=&x=%2B1'
    assert event['pathParameters'] == {'job_id': 'job 1'}
    assert event['queryStringParameters'] == {'tag': 'a,b', 'empty': '', 'x': '+1'}
    assert event['cookies'] == ['a=1', 'b=2'] and 'cookie' not in event['headers']
    assert event['headers']['x-multi'] == 'one,two' and event['headers']['content-type'] == 'application/json'
    assert all(name == name.lower() for name in event['headers'])
    assert event['body'] == '{"why": "no"}' and event['isBase64Encoded'] is False
    context = event['requestContext']
    assert context['http'] == {'method': 'POST', 'path': '/v1/jobs/job%201/cancel', 'protocol': 'HTTP/1.1',
                               'sourceIp': '127.0.0.1', 'userAgent': 'tests/1.0'}
    assert context['stage'] == '$default' and context['routeKey'] == event['routeKey']
    assert context['requestId'] and isinstance(context['timeEpoch'], int) and context['time'].endswith('+0000')
    assert context['domainName'] == f'127.0.0.1:{gateway.port}'


def test_event_without_query_body_or_parameters_omits_them(gateway):
    requests.get(f'{gateway.url}/v1/jobs', timeout=5)
    _, event = gateway.recorder.events[-1]
    assert 'queryStringParameters' not in event and 'pathParameters' not in event and 'body' not in event
    assert 'cookies' not in event and event['rawQueryString'] == ''


def test_binary_bodies_are_base64_encoded(gateway):
    payload = bytes(range(256))
    requests.post(f'{gateway.url}/v1/jobs', data=payload, headers={'content-type': 'image/png'}, timeout=5)
    _, event = gateway.recorder.events[-1]
    assert event['isBase64Encoded'] is True and base64.b64decode(event['body']) == payload


def test_chunked_request_bodies_are_read(gateway):
    requests.post(f'{gateway.url}/v1/jobs', data=iter([b'{"a":', b' 1}']),
                  headers={'content-type': 'application/json'}, timeout=5)
    assert gateway.recorder.events[-1][1]['body'] == '{"a": 1}'


def test_handler_result_becomes_the_http_reply(gateway):
    gateway.recorder.result = {'statusCode': 202, 'headers': {'content-type': 'application/json', 'x-a': '1'},
                               'cookies': ['s=1; Path=/', 't=2'], 'body': '{"id": "j"}'}
    reply = requests.post(f'{gateway.url}/v1/jobs', json={}, timeout=5)
    assert reply.status_code == 202 and reply.json() == {'id': 'j'} and reply.headers['x-a'] == '1'
    assert reply.raw.headers.getlist('set-cookie') == ['s=1; Path=/', 't=2']
    assert reply.headers['apigw-requestid'] == gateway.recorder.events[-1][1]['requestContext']['requestId']

    gateway.recorder.result = {'statusCode': 200, 'isBase64Encoded': True, 'body': base64.b64encode(b'\x00\xff').decode(),
                               'headers': {'content-type': 'application/octet-stream'}}
    assert requests.get(f'{gateway.url}/v1/jobs', timeout=5).content == b'\x00\xff'


def test_bare_result_is_a_200_json_body(gateway):
    gateway.recorder.result = {'jobs': [], 'next_cursor': None}
    reply = requests.get(f'{gateway.url}/v1/jobs', timeout=5)
    assert reply.status_code == 200 and reply.headers['content-type'] == 'application/json'
    assert reply.json() == {'jobs': [], 'next_cursor': None}


def test_handler_exception_is_a_500_like_api_gateway(gateway, caplog):
    gateway.recorder.result = RuntimeError('boom')
    with caplog.at_level(logging.ERROR, logger='vidgen_local.gateway'):
        reply = requests.get(f'{gateway.url}/v1/jobs', timeout=5)
    assert reply.status_code == 500 and reply.json() == {'message': 'Internal Server Error'}
    assert 'boom' in caplog.text  # the traceback is logged server-side, never sent


@pytest.mark.parametrize(('method', 'path'), [('GET', '/v1/nope'), ('DELETE', '/v1/jobs'), ('GET', '/v1/jobs/a/b/c')])
def test_unknown_routes_are_404_not_found(gateway, method, path):
    reply = requests.request(method, f'{gateway.url}{path}', timeout=5)
    assert reply.status_code == 404 and reply.json() == {'message': 'Not Found'}
    assert gateway.recorder.events == []


def test_bodies_over_10_mb_are_413_and_never_reach_the_handler(gateway):
    with socket.create_connection(('127.0.0.1', gateway.port), timeout=5) as sock:
        sock.sendall(f'POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n'.encode())
        head = b''
        while chunk := sock.recv(4096):  # the gateway closes the connection after a 413
            head += chunk
        head = head.decode()
    assert head.startswith('HTTP/1.1 413') and '{"message":"Request Entity Too Large"}' in head
    assert gateway.recorder.events == []


def test_an_event_over_lambdas_6_mb_is_413_although_api_gateway_took_the_body(gateway):
    # 7 MB of text: under API Gateway's 10 MB, over what Lambda accepts as an invocation payload
    reply = requests.post(f'{gateway.url}/v1/jobs', data=b'x' * (7 * 1024 * 1024), timeout=30,
                          headers={'content-type': 'text/plain'})
    assert reply.status_code == 413 and reply.json() == {'message': 'Request Entity Too Large'}
    # 4.6 MB of binary is 6.1 MB once base64-encoded in the event: refused too
    reply = requests.post(f'{gateway.url}/v1/jobs', data=b'\x00' * (46 * 1024 * 1024 // 10), timeout=30,
                          headers={'content-type': 'image/png'})
    assert reply.status_code == 413
    assert gateway.recorder.events == []
    # Just under the limit (the event's headers and context take a few hundred bytes) reaches the handler
    reply = requests.post(f'{gateway.url}/v1/jobs', data=b'x' * (LAMBDA_REQUEST_BYTES - 4096), timeout=30,
                          headers={'content-type': 'text/plain'})
    assert reply.status_code == 200
    (_, event), = gateway.recorder.events
    assert len(event['body']) == LAMBDA_REQUEST_BYTES - 4096 and payload_bytes(event) <= LAMBDA_REQUEST_BYTES


def test_a_result_over_lambdas_response_limit_is_a_500(gateway, caplog):
    body = 'y' * LAMBDA_RESPONSE_BYTES
    gateway.recorder.result = {'statusCode': 200, 'headers': {'content-type': 'text/plain'}, 'body': body}
    with caplog.at_level(logging.ERROR, logger='vidgen_local.gateway'):
        reply = requests.get(f'{gateway.url}/v1/jobs', timeout=30)
    assert reply.status_code == 500 and reply.json() == {'message': 'Internal Server Error'}
    assert 'exceeded maximum allowed payload size' in caplog.text
    # A result that fits is passed on whole
    gateway.recorder.result = {'statusCode': 200, 'headers': {'content-type': 'text/plain'},
                               'body': 'y' * (LAMBDA_RESPONSE_BYTES - 1024)}
    reply = requests.get(f'{gateway.url}/v1/jobs', timeout=30)
    assert reply.status_code == 200 and len(reply.content) == LAMBDA_RESPONSE_BYTES - 1024


def test_route_matching_prefers_literal_paths_and_handles_greedy_ones():
    router = Router(ROUTES)
    assert router.match('GET', '/v1/jobs/export')[0].event == 'Export'
    assert router.match('GET', '/v1/jobs/j1') == (ROUTES[2], {'job_id': 'j1'})
    assert router.match('POST', '/v1/jobs/j1/cancel')[1] == {'job_id': 'j1'}
    assert router.match('PUT', '/files/a/b.txt') == (ROUTES[5], {'path': 'a/b.txt'})
    assert router.match('POST', '/v1/jobs/j1') is None


def test_cors_preflight_and_headers_come_from_the_cors_configuration(gateway):
    preflight = requests.options(f'{gateway.url}/v1/jobs', timeout=5, headers={
        'origin': 'https://app.example', 'access-control-request-method': 'POST'})
    assert preflight.status_code == 204
    assert preflight.headers['access-control-allow-origin'] == '*'
    assert preflight.headers['access-control-allow-methods'] == 'GET,POST'
    reply = requests.get(f'{gateway.url}/v1/jobs', headers={'origin': 'https://app.example'}, timeout=5)
    assert reply.headers['access-control-allow-origin'] == '*'
    assert gateway.recorder.events[-1][1]['requestContext']['http']['method'] == 'GET'


def test_access_log_has_method_path_status_and_time_but_no_secrets(gateway, caplog):
    with caplog.at_level(logging.INFO, logger='vidgen_local.gateway'):
        requests.post(f'{gateway.url}/v1/jobs/j1/cancel?token=cb-secret', json={},
                      headers={'authorization': 'Bearer user-secret'}, timeout=5)
        # The gateway logs a request once its answer is sent, so the line can follow the answer's arrival.
        deadline = time.monotonic() + 5
        while not [r for r in caplog.records if r.name == 'vidgen_local.gateway'] and time.monotonic() < deadline:
            time.sleep(0.01)
    (line,) = [r.getMessage() for r in caplog.records if r.name == 'vidgen_local.gateway']
    assert line.startswith('POST /v1/jobs/j1/cancel 200 ') and line.endswith('ms')
    assert 'secret' not in caplog.text


def test_keep_alive_serves_several_requests_on_one_connection(gateway):
    with requests.Session() as session:
        replies = [session.get(f'{gateway.url}/v1/jobs', timeout=5) for _ in range(3)]
    assert [r.status_code for r in replies] == [200, 200, 200]
    assert json.loads(replies[0].content) == {}
