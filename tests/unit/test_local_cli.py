"""The `vidgen` command's client side, against a stub API served on 127.0.0.1 (no moto)."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from typing import Any

import pytest
from vidgen_local import cli
from vidgen_local.client import ApiError, image_input, output_filename
from vidgen_local.gateway import Gateway
from vidgen_local.template import HttpRoute

VIDEO = b'\x00\x00\x00\x18ftypmp42' + bytes(range(256)) * 40


def _png(width: int = 4, height: int = 4) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))

    rows = b''.join(b'\x00' + b'\xff\x00\x00' * width for _ in range(height))
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b''))


class StubApi:
    """Answers like vidgen: a job that runs for two reads, then succeeds with one output."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.reads = 0
        self.url = ''

    def __call__(self, function: str, event: dict[str, Any]) -> Any:
        self.requests.append(event)
        route = event['routeKey']
        if event['headers'].get('authorization') not in ('Bearer user-key', 'Bearer admin-key') and route not in (
                'GET /v1/models', 'GET /files/{name}'):
            return _error(401, 'AUTH_FAILED', 'The API key is missing or not valid.')
        if route == 'POST /v1/jobs':
            body = json.loads(event['body'])
            if body['model'] == 'expensive':
                return _error(402, 'INSUFFICIENT_CREDITS', 'This job costs 50 credits; your balance is 10.')
            return {'statusCode': 202, 'body': json.dumps(self.job('queued'))}
        if route == 'GET /v1/jobs/{job_id}':
            self.reads += 1
            return self.job('running' if self.reads < 3 else 'succeeded')
        if route == 'GET /files/{name}':
            return {'statusCode': 200, 'isBase64Encoded': True, 'body': base64.b64encode(VIDEO).decode()}
        if route == 'POST /v1/admin/users/{user_id}/credits':
            return {'balance': 150, 'user_id': event['pathParameters']['user_id']}
        if route == 'GET /v1/models':
            return {'models': [{'id': 'kling-v2-6', 'provider': 'kling', 'kind': 'video', 'modes': ['t2v', 'i2v'],
                                'name': 'Kling 2.6'}]}
        return _error(404, 'NOT_FOUND', 'No such thing.')

    def job(self, status: str) -> dict[str, Any]:
        outputs = [{'url': f'{self.url}/files/out.mp4?X-Amz-Signature=abc', 'content_type': 'video/mp4',
                    'bytes': len(VIDEO)}] if status == 'succeeded' else []
        return {'id': 'job_1', 'status': status, 'model': 'kling-v2-6', 'kind': 't2v', 'credits': 10,
                'refunded': False, 'outputs': outputs, 'error': None, 'created_at': '2025-11-21T00:00:00Z'}


def _error(status: int, code: str, message: str) -> dict[str, Any]:
    return {'statusCode': status, 'headers': {'content-type': 'application/json'},
            'body': json.dumps({'error': {'code': code, 'message': message, 'request_id': 'req-1'}})}


@pytest.fixture
def api(monkeypatch):
    stub = StubApi()
    routes = [HttpRoute('Api', e, m, p) for e, m, p in (
        ('Submit', 'POST', '/v1/jobs'), ('Get', 'GET', '/v1/jobs/{job_id}'), ('Models', 'GET', '/v1/models'),
        ('Grant', 'POST', '/v1/admin/users/{user_id}/credits'), ('File', 'GET', '/files/{name}'))]
    gateway = Gateway(routes, stub, port=0).start()
    stub.url = gateway.url
    for name in ('VIDGEN_API_URL', 'VIDGEN_API_KEY', 'VIDGEN_ADMIN_KEY'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('VIDGEN_API_URL', gateway.url)
    yield stub
    gateway.stop()


def test_submit_wait_polls_until_done_and_downloads_the_outputs(api, tmp_path, capsys):
    image = tmp_path / 'start.png'
    image.write_bytes(_png())
    code = cli.main(['submit', '--api-key', 'user-key', '--model', 'kling-v2-6', '--prompt', 'a fox',
                     '--image', str(image), '--duration', '5', '--option', 'cfg_scale=0.5', '--option', 'camera=pan',
                     '--idempotency-key', 'k-1', '--wait', '--output', str(tmp_path / 'out'), '--poll-interval', '0.01'])
    assert code == 0
    sent = api.requests[0]
    body = json.loads(sent['body'])
    assert body == {'model': 'kling-v2-6', 'prompt': 'a fox', 'duration': 5,
                    'image': 'data:image/png;base64,' + base64.b64encode(_png()).decode(),
                    'options': {'cfg_scale': 0.5, 'camera': 'pan'}}
    assert sent['headers']['idempotency-key'] == 'k-1'
    assert api.reads == 3
    saved = tmp_path / 'out' / 'job_1-0.mp4'
    assert saved.read_bytes() == VIDEO
    assert 'authorization' not in api.requests[-1]['headers']  # presigned URLs get no API key
    out = capsys.readouterr().out
    assert 'running' in out and 'succeeded' in out and f'saved {saved} ({len(VIDEO)} bytes)' in out


def test_api_errors_print_their_message_and_exit_1(api, capsys):
    code = cli.main(['submit', '--api-key', 'user-key', '--model', 'expensive', '--prompt', 'x'])
    assert code == 1
    err = capsys.readouterr().err
    assert 'This job costs 50 credits; your balance is 10.' in err and 'INSUFFICIENT_CREDITS' in err


def test_missing_key_and_unreachable_api_are_explained(api, capsys, monkeypatch):
    assert cli.main(['job', 'job_1']) == 1
    assert 'VIDGEN_API_KEY' in capsys.readouterr().err
    monkeypatch.setenv('VIDGEN_API_URL', 'http://127.0.0.1:9')
    assert cli.main(['models']) == 1
    assert 'Cannot reach http://127.0.0.1:9' in capsys.readouterr().err


def test_options_work_before_or_after_the_command(api, capsys, monkeypatch):
    monkeypatch.delenv('VIDGEN_API_URL')
    assert cli.main(['--api-url', api.url, 'models']) == 0
    assert 'kling-v2-6' in capsys.readouterr().out
    assert cli.main(['admin', 'grant', 'u1', '--api-url', api.url, '--admin-key', 'admin-key', '--amount', '50',
                     '--reference-id', 'r1', '--reason', 'promo']) == 0
    assert capsys.readouterr().out.strip() == 'balance: 150'
    assert json.loads(api.requests[-1]['body']) == {'amount': 50, 'reference_id': 'r1', 'reason': 'promo'}
    assert api.requests[-1]['headers']['authorization'] == 'Bearer admin-key'


def test_job_prints_json(api, capsys):
    assert cli.main(['job', 'job_1', '--api-key', 'user-key']) == 0
    assert json.loads(capsys.readouterr().out)['id'] == 'job_1'


def test_image_inputs(tmp_path):
    assert image_input('https://example.com/a.png') == 'https://example.com/a.png'
    jpeg = tmp_path / 'photo.bin'
    jpeg.write_bytes(b'\xff\xd8\xff\xe0' + b'0' * 10)
    assert image_input(str(jpeg)).startswith('data:image/jpeg;base64,')  # by content, not by name
    text = tmp_path / 'notes.txt'
    text.write_text('hello')
    with pytest.raises(ApiError, match='does not look like an image'):
        image_input(str(text))
    with pytest.raises(ApiError, match='neither'):
        image_input(str(tmp_path / 'missing.png'))


def test_option_parsing_and_output_names():
    assert cli.parse_option('n=3') == ('n', 3) and cli.parse_option('flag=true') == ('flag', True)
    assert cli.parse_option('style=noir') == ('style', 'noir') and cli.parse_option('eq=a=b') == ('eq', 'a=b')
    with pytest.raises(ApiError):
        cli.parse_option('novalue')
    assert output_filename('j', 0, {'url': 'http://x/r/0.mp4?sig=1', 'content_type': 'video/mp4'}) == 'j-0.mp4'
    assert output_filename('j', 1, {'url': 'http://x/r/1.png', 'content_type': ''}) == 'j-1.png'
