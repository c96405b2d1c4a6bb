"""A running vidgen stack, checked through its public API only: what a team runs after `make deploy` (and
what `.ci/run` runs against `make serve`). Each test makes its own user; one job is paid for."""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from deployed_support import Api, wait_for_job
from standardwebhooks import Webhook

JOB_TIMEOUT = float(os.environ.get('VIDGEN_DEPLOYED_JOB_TIMEOUT', '600'))


def test_health_and_models_need_no_key(api: Api):
    health = api.call('GET', '/v1/health')
    assert health.status_code == 200 and health.json()['status'] == 'ok' and health.json()['version']
    models = api.call('GET', '/v1/models')
    assert models.status_code == 200
    assert models.json()['models'] and all({'id', 'modes'} <= set(m) for m in models.json()['models'])
    document = api.call('GET', '/v1/openapi.json')
    assert document.status_code == 200 and document.json()['paths']['/v1/health']['get']['security'] == [{}]


def test_a_user_is_created_and_credited_once_per_reference(api: Api, admin_key: str, new_user):
    user = new_user(10)
    reference = f'deployed-{uuid.uuid4().hex}'
    path = f'/v1/admin/users/{user.user_id}/credits'

    first = api.call('POST', path, key=admin_key, json={'amount': 25, 'reference_id': reference})
    again = api.call('POST', path, key=admin_key, json={'amount': 25, 'reference_id': reference})

    assert first.status_code == 200 and first.json()['balance'] == 35
    assert again.status_code == 200 and again.json()['balance'] == 35
    credits = api.call('GET', '/v1/credits', key=user.key).json()
    assert credits['balance'] == 35
    assert api.call('POST', path, key=user.key, json={'amount': 1, 'reference_id': 'x'}).status_code == 401


def _model(api: Api) -> str:
    chosen = os.environ.get('VIDGEN_DEPLOYED_MODEL')
    if chosen:
        return chosen
    models = api.call('GET', '/v1/models').json()['models']
    return next(m['id'] for m in models if 't2i' in m['modes'])


def test_one_job_end_to_end_with_its_result_and_an_idempotent_replay(api: Api, new_user):
    user = new_user(1000)
    body = {'model': _model(api), 'prompt': 'a lighthouse at dawn, deployed-tier check'}
    headers = {'Idempotency-Key': f'deployed-{uuid.uuid4().hex}'}

    submitted = api.call('POST', '/v1/jobs', key=user.key, json=body, headers=headers)
    assert submitted.status_code == 202, submitted.text
    job = wait_for_job(api, user, submitted.json()['id'], JOB_TIMEOUT)

    assert job['status'] == 'succeeded', job
    output = job['outputs'][0]
    download = requests.get(output['url'], timeout=(5, 60))
    assert download.status_code == 200 and len(download.content) == output['bytes'] > 0
    replay = api.call('POST', '/v1/jobs', key=user.key, json=body, headers=headers)
    assert replay.status_code in (200, 202) and replay.json()['id'] == job['id']
    credits = api.call('GET', '/v1/credits', key=user.key).json()
    assert credits['balance'] == 1000 - job['credits']  # charged once, replay included


class _Receiver:
    """Records the notifications POSTed to it, on 127.0.0.1 (port 0 unless VIDGEN_WEBHOOK_PORT is given)."""

    def __init__(self, port: int) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
                receiver.calls.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header('Content-Length', '0')
                self.end_headers()
                receiver.arrived.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(('127.0.0.1', port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={'poll_interval': 0.1}, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver(int(os.environ.get('VIDGEN_WEBHOOK_PORT', '0')))
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_the_webhook_arrives_signed(api: Api, new_user, receiver: _Receiver):
    secret = os.environ.get('VIDGEN_WEBHOOK_SECRET')
    if not secret:
        pytest.skip('set VIDGEN_WEBHOOK_SECRET (whsec_<key> of the WebhookSigningSecret) to verify the notification')
    public = os.environ.get('VIDGEN_WEBHOOK_PUBLIC_URL')
    if not api.is_local and not public:
        pytest.skip('the stack cannot reach a receiver on 127.0.0.1: set VIDGEN_WEBHOOK_PUBLIC_URL (an https tunnel) '
                    'and VIDGEN_WEBHOOK_PORT')
    url = public or f'http://127.0.0.1:{receiver.port}/hook'
    user = new_user(1000)

    submitted = api.call('POST', '/v1/jobs', key=user.key, json={'model': _model(api), 'prompt': 'a kite, webhook check',
                                                                 'webhook_url': url})
    assert submitted.status_code == 202, submitted.text
    job = wait_for_job(api, user, submitted.json()['id'], JOB_TIMEOUT)

    assert receiver.arrived.wait(60), 'no notification arrived'
    headers, body = receiver.calls[0]
    verified = Webhook(secret).verify(body, headers)  # raises unless the signature is the stack's
    assert verified['type'] == f'job.{job["status"]}' and verified['data']['id'] == job['id']
    assert headers['webhook-id'] == f'{job["id"]}.{job["status"]}'
    with pytest.raises(Exception):  # noqa: B017 - any verification failure will do
        Webhook(secret).verify(body.replace(b'"', b"'", 1), headers)
    assert json.loads(body)['data']['id'] == job['id']


def test_a_job_that_cannot_be_paid_is_402_and_an_unknown_job_is_404(api: Api, new_user):
    user = new_user(0)

    poor = api.call('POST', '/v1/jobs', key=user.key, json={'model': _model(api), 'prompt': 'a fox'})
    missing = api.call('GET', '/v1/jobs/job_01JZZZZZZZZZZZZZZZZZZZZZZZ', key=user.key)

    assert poor.status_code == 402 and poor.json()['error']['code'] == 'INSUFFICIENT_CREDITS', poor.text
    assert missing.status_code == 404 and missing.json()['error']['code'] == 'NOT_FOUND', missing.text
    assert api.call('GET', '/v1/jobs', key=user.key).json()['jobs'] == []  # the refused job left nothing behind
