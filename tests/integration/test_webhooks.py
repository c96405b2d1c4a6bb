"""Client notifications: a job that ends is POSTed to its webhook_url, signed per Standard Webhooks, retried
until the receiver takes it, and never changes the job's outcome."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from vidgen.config import get_settings


class Receiver:
    """A webhook receiver on 127.0.0.1 that answers with the given statuses in turn (then 200)."""

    def __init__(self, statuses: tuple[int, ...] = ()) -> None:
        self.statuses = list(statuses)
        self.calls: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
                receiver.calls.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f'http://127.0.0.1:{self.server.server_address[1]}/hooks/vidgen'

    def wait_for(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.calls) < count:
            assert time.monotonic() < deadline, f'{len(self.calls)} of {count} notifications after {timeout}s'
            time.sleep(0.1)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(statuses: tuple[int, ...] = ()) -> Receiver:
        made.append(Receiver(statuses))
        return made[-1]
    yield make
    for each in made:
        each.close()


def verifier(cloud) -> Webhook:
    secret = boto3.client('secretsmanager').get_secret_value(SecretId=cloud.handler_env['WEBHOOK_SECRET_NAME'])
    return Webhook('whsec_' + json.loads(secret['SecretString'])['key'])


def test_a_finished_job_is_notified_once_with_a_valid_signature(cloud, new_user, receiver):
    hook = receiver()
    user = new_user(100)
    job = user.submit({'model': 'kling-v2-6', 'prompt': 'notify me', 'webhook_url': hook.url}).json()

    assert user.wait(job['id'], timeout=30)['status'] == 'succeeded'
    hook.wait_for(1)
    time.sleep(1)  # a second delivery would arrive within this

    [(headers, body)] = hook.calls
    event = verifier(cloud).verify(body, headers)
    assert event['type'] == 'job.succeeded' and event['data']['id'] == job['id']
    assert event['data']['outputs'][0]['bytes'] > 0
    assert headers['webhook-id'] == f'{job["id"]}.succeeded'
    with pytest.raises(WebhookVerificationError):
        verifier(cloud).verify(body.replace(b'succeeded', b'failed'), headers)


def test_a_failed_job_is_notified_with_its_error(cloud, new_user, receiver):
    hook = receiver()
    user = new_user(100)
    job = user.submit({'model': 'kling-v2-6', 'prompt': 'no [sim:content-policy]', 'webhook_url': hook.url}).json()

    assert user.wait(job['id'], timeout=30)['status'] == 'failed'
    hook.wait_for(1)
    event = verifier(cloud).verify(hook.calls[0][1], hook.calls[0][0])
    assert event['type'] == 'job.failed'
    assert event['data']['error']['code'] == 'CONTENT_POLICY' and event['data']['refunded'] is True


def test_a_failing_receiver_is_retried_with_the_same_id_and_the_job_keeps_its_outcome(cloud, new_user, receiver):
    hook = receiver(statuses=(500, 503))
    user = new_user(100)
    job = user.submit({'model': 'kling-v2-6', 'prompt': 'retry me', 'webhook_url': hook.url}).json()

    assert user.wait(job['id'], timeout=30)['status'] == 'succeeded'
    hook.wait_for(3, timeout=60)

    assert {headers['webhook-id'] for headers, _ in hook.calls} == {f'{job["id"]}.succeeded'}
    assert user.job(job['id'])['status'] == 'succeeded'
    assert user.credits()['balance'] == 80


def test_a_private_webhook_url_is_refused_at_submit_outside_local_mode(cloud, new_user, monkeypatch):
    user = new_user(100)
    monkeypatch.setenv('VIDGEN_ALLOW_PRIVATE_URLS', 'false')
    get_settings.cache_clear()
    try:
        response = user.submit({'model': 'kling-v2-6', 'prompt': 'x', 'webhook_url': 'http://169.254.169.254/latest'})
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert response.status_code == 422
    assert response.json()['error']['field'] == 'webhook_url'
    assert user.credits()['balance'] == 100
