"""The `vidgen` command's client side, against a stub API served on 127.0.0.1 (no moto)."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from typing import Any

import pytest
from vidgen_local import cli, terminal
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
        self.grants = 0
        self.url = ''
        self.usage_query: Any = None
        self.providers = {'providers': [
            {'name': 'kling', 'host': 'api-singapore.klingai.com', 'ok': True, 'detail': '1 of 1 resource packs online',
             'credits_remaining': 1000.0, 'provider_code': None},
            {'name': 'kie', 'host': 'api.kie.ai', 'ok': False, 'provider_code': '401',
             'detail': 'Kie.ai refused our API key. This is not your request: the operator must check the configured Kie key.',
             'credits_remaining': None}],
            'callbacks': {'url': 'https://api.example.com', 'ok': True,
                          'detail': 'https://api.example.com is a public https URL'}}

    def __call__(self, function: str, event: dict[str, Any]) -> Any:
        self.requests.append(event)
        route = event['routeKey']
        if event['headers'].get('authorization') not in ('Bearer user-key', 'Bearer admin-key') and route not in (
                'GET /v1/models', 'GET /files/{name}'):
            if route != 'GET /v1/health':
                return _error(401, 'AUTH_FAILED', 'The API key is missing or not valid.')
        if route == 'POST /v1/jobs':
            body = json.loads(event['body'])
            if body['model'] == 'expensive':
                return _error(402, 'INSUFFICIENT_CREDITS', 'This job costs 50 credits; your balance is 10.')
            replayed = {'Idempotent-Replayed': 'true'} if event['headers'].get('idempotency-key') == 'seen' else {}
            return {'statusCode': 202, 'body': json.dumps(self.job('queued')), 'headers': replayed}
        if route == 'POST /v1/jobs/{job_id}/cancel':
            return {**self.job('canceled'), 'refunded': True}
        if route == 'GET /v1/usage':
            self.usage_query = event.get('queryStringParameters')
            bucket = {'jobs': 3, 'succeeded': 1, 'failed': 1, 'canceled': 1, 'active': 0, 'credits_charged': 60,
                      'credits_refunded': 40, 'credits_net': 20}
            return {'from': '2026-11-01T00:00:00Z', 'to': '2026-11-30T00:00:00Z', 'truncated': False, 'totals': bucket,
                    'by_model': {'kling-v2-6': bucket}, 'by_kind': {}, 'by_day': []}
        if route == 'GET /v1/health':
            return {'status': 'ok', 'version': '0.1.0'}
        if route == 'GET /v1/credits':
            return {'balance': 80, 'ledger': [{'type': 'refund', 'amount': 20, 'job_id': 'job_1', 'at': 't2'},
                                              {'type': 'debit', 'amount': -20, 'job_id': 'job_1', 'at': 't1'}]}
        if route == 'GET /v1/admin/providers':
            if event['headers'].get('authorization') != 'Bearer admin-key':
                return _error(401, 'AUTH_FAILED', 'The API key is not valid.')
            return self.providers
        if route == 'GET /v1/jobs/{job_id}':
            self.reads += 1
            return self.job('running' if self.reads < 3 else 'succeeded')
        if route == 'GET /files/{name}':
            return {'statusCode': 200, 'isBase64Encoded': True, 'body': base64.b64encode(VIDEO).decode()}
        if route == 'POST /v1/admin/users/{user_id}/credits':
            self.grants += 1
            return {'balance': 150, 'user_id': event['pathParameters']['user_id'], 'granted': self.grants == 1}
        if route == 'GET /v1/models':
            return {'models': [{'id': 'kling-v2-6', 'provider': 'kling', 'kind': 'video', 'modes': ['t2v', 'i2v'],
                                'name': 'Kling 2.6', 'parameters': {
                                    'duration': {'type': 'integer', 'values': [5, 10], 'default': 5},
                                    'sound': {'type': 'boolean', 'default': False}},
                                'prices': [{'when': {'duration': 5}, 'credits': 20}, {'when': {}, 'credits': 70}],
                                'input_images': {'formats': ['png', 'jpeg'], 'min_width': 300, 'min_height': 300,
                                                 'aspect_ratio': {'min': 0.4, 'max': 2.5, 'text': '1:2.5 to 2.5:1'},
                                                 'max_bytes': 10485760, 'source': 'Kling'}},
                               {'id': 'kling-v3', 'provider': 'kling', 'kind': 'video', 'modes': ['t2v'],
                                'name': 'Kling 3', 'parameters': {}, 'prices': [{'when': {}, 'credits_per_second': 4},
                                                                               {'when': {}, 'credits_per_second': 8}]}]}
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
        ('Grant', 'POST', '/v1/admin/users/{user_id}/credits'), ('File', 'GET', '/files/{name}'),
        ('Cancel', 'POST', '/v1/jobs/{job_id}/cancel'), ('Usage', 'GET', '/v1/usage'), ('Health', 'GET', '/v1/health'),
        ('Credits', 'GET', '/v1/credits'), ('Providers', 'GET', '/v1/admin/providers'))]
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
    assert capsys.readouterr().out.strip() == 'balance: 150\ngranted: true'
    assert json.loads(api.requests[-1]['body']) == {'amount': 50, 'reference_id': 'r1', 'reason': 'promo'}
    # The same reference again grants nothing, and says so
    assert cli.main(['admin', 'grant', 'u1', '--api-url', api.url, '--admin-key', 'admin-key', '--amount', '50',
                     '--reference-id', 'r1']) == 0
    assert capsys.readouterr().out.strip() == ('balance: 150\n'
                                               'granted: false (reference r1 was granted before; nothing changed)')
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


def test_submit_sends_reference_images_and_metadata_and_says_when_it_was_replayed(api, tmp_path, capsys):
    image = tmp_path / 'ref.png'
    image.write_bytes(_png())
    assert cli.main(['submit', '--api-key', 'user-key', '--model', 'veo-3-1', '--prompt', 'p', '--reference-image',
                     str(image), '--reference-image', 'https://img.example.com/b.png', '--metadata', 'order=42',
                     '--metadata', 'note=a=b', '--idempotency-key', 'seen']) == 0
    body = json.loads(api.requests[-1]['body'])
    assert body['reference_images'] == ['data:image/png;base64,' + base64.b64encode(_png()).decode(),
                                        'https://img.example.com/b.png']
    assert body['metadata'] == {'order': '42', 'note': 'a=b'}
    captured = capsys.readouterr()
    assert captured.out.strip() == 'job_1  queued  10 credits  (replayed)'
    assert 'replayed: an earlier submit with this Idempotency-Key created this job' in captured.err
    assert cli.main(['submit', '--api-key', 'user-key', '--model', 'kling-v2-6', '--metadata', 'novalue']) == 1


def test_cancel_usage_and_credits_print_refunds_with_their_sign(api, capsys):
    assert cli.main(['cancel', 'job_1', '--api-key', 'user-key']) == 0
    assert capsys.readouterr().out.strip() == 'job_1  canceled  refunded: true (+10 credits)'
    assert cli.main(['usage', '--from', '2026-11-01', '--to', '2026-11-30', '--api-key', 'user-key']) == 0
    out = capsys.readouterr().out
    assert api.usage_query == {'from': '2026-11-01', 'to': '2026-11-30'}
    assert '3 jobs, -60 charged, +40 refunded, -20 net' in out
    assert out.splitlines()[2].split() == ['kling-v2-6', '3', '1', '1', '1', '0', '-60', '+40', '-20']
    assert cli.main(['credits', '--api-key', 'user-key']) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    assert [row[1:3] for row in rows] == [['refund', '+20'], ['debit', '-20']]


def test_models_is_a_table_of_prices_parameters_and_image_rules(api, capsys):
    assert cli.main(['models']) == 0
    out = capsys.readouterr().out
    header, kling, v3 = out.splitlines()
    assert header.split()[:4] == ['ID', 'KIND', 'MODES', 'CREDITS']
    assert 'kling-v2-6' in kling and ' 20-70 ' in kling and 'duration=5|10 (5), sound=boolean (false)' in kling
    assert 'png/jpeg, >=300x300 px, w/h 0.4-2.5, <=10 MB' in kling
    assert '4-8/s' in v3.split()
    assert cli.main(['models', '--json']) == 0
    assert json.loads(capsys.readouterr().out)['models'][0]['input_images']['min_width'] == 300


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(['--version'])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f'vidgen {cli.version()}' and cli.version()[0].isdigit()


def test_doctor_checks_the_api_the_keys_and_the_providers_with_a_verdict(api, capsys):
    assert cli.main(['doctor', '--api-key', 'user-key']) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f'ok    API {api.url} answers (vidgen 0.1.0)'
    assert out[1] == 'ok    user key works (balance 80)' and out[-1] == 'verdict: all checks passed'

    assert cli.main(['doctor', '--providers', '--admin-key', 'admin-key']) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[1] == 'ok    admin key works'
    assert out[2] == 'ok    kling (api-singapore.klingai.com): 1 of 1 resource packs online; 1000 left'
    assert out[3].startswith('FAIL  kie (api.kie.ai): Kie.ai refused our API key.') and '(provider code 401)' in out[3]
    assert out[4] == 'ok    callbacks: https://api.example.com is a public https URL'
    assert out[-1] == 'verdict: 1 of 5 checks failed'

    assert cli.main(['doctor', '--providers', '--api-key', 'user-key']) == 1
    assert 'FAIL  providers: --providers needs the admin key' in capsys.readouterr().out
    assert cli.main(['doctor', '--api-key', 'bad-key']) == 1
    assert 'FAIL  user key: The API key is missing or not valid.' in capsys.readouterr().out


def test_doctor_stops_when_the_api_is_unreachable(capsys, monkeypatch):
    monkeypatch.setenv('VIDGEN_API_URL', 'http://127.0.0.1:9')
    assert cli.main(['doctor']) == 1
    out = capsys.readouterr().out
    assert out.startswith('FAIL  API http://127.0.0.1:9: Cannot reach') and 'verdict: the API is not reachable' in out


def test_on_a_terminal_wait_shows_a_live_status_and_downloads_a_byte_progress_bar(api, tmp_path, monkeypatch):
    import io

    from rich.console import Console

    screen = io.StringIO()
    monkeypatch.setattr(terminal, 'Console', lambda: Console(file=screen, force_terminal=True, width=120))
    assert cli.main(['submit', '--api-key', 'user-key', '--model', 'kling-v2-6', '--prompt', 'a fox', '--wait',
                     '--output', str(tmp_path), '--poll-interval', '0.01']) == 0
    shown = screen.getvalue()
    assert 'job_1' in shown and 'succeeded' in shown and '0:00:0' in shown  # the status line, with time elapsed
    assert 'job_1-0.mp4' in shown and f'{len(VIDEO) / 1000:.1f}/{len(VIDEO) / 1000:.1f} kB' in shown  # bytes
