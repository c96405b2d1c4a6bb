"""Client notifications: a job that ends is POSTed to its webhook_url, signed per Standard Webhooks, retried
until the receiver takes it, and never changes the job's outcome."""

from __future__ import annotations

import json
import time
from urllib.parse import unquote, urlsplit

import boto3
import pytest
import requests
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


def verifier(cloud) -> Webhook:
    secret = boto3.client('secretsmanager').get_secret_value(SecretId=cloud.handler_env['WEBHOOK_SECRET_NAME'])
    return Webhook('whsec_' + json.loads(secret['SecretString'])['key'])


def test_a_finished_job_is_notified_once_with_a_valid_signature(cloud, new_user, receiver):
    hook = receiver(path='/hooks/vidgen', decode_json=False)
    user = new_user(100)
    job = user.submit({'model': 'kling-v2-6', 'prompt': 'notify me', 'webhook_url': hook.url}).json()

    assert user.wait(job['id'], timeout=30)['status'] == 'succeeded'
    hook.wait_for(1)
    time.sleep(1)  # a second delivery would arrive within this

    [(headers, body, _)] = hook.calls
    event = verifier(cloud).verify(body, headers)
    assert event['type'] == 'job.succeeded' and event['data']['id'] == job['id']
    assert event['data']['outputs'][0]['bytes'] > 0
    assert headers['webhook-id'] == f'{job["id"]}.succeeded'
    with pytest.raises(WebhookVerificationError):
        verifier(cloud).verify(body.replace(b'succeeded', b'failed'), headers)


def test_every_result_url_in_a_notification_serves_the_stored_bytes(cloud, new_user, receiver):
    # The URLs are presigned by the poller's role when it notifies: without s3:GetObject on results/* every
    # one of them answers 403, as on AWS.
    hook = receiver(path='/hooks/vidgen', decode_json=False)
    user = new_user(100)
    job = user.submit({'model': 'kling-v2-6', 'prompt': 'fetch my results', 'webhook_url': hook.url}).json()
    assert user.wait(job['id'], timeout=30)['status'] == 'succeeded'
    [(headers, body, _)] = hook.wait_for(1)

    outputs = verifier(cloud).verify(body, headers)['data']['outputs']
    assert outputs
    s3 = boto3.client('s3')
    for output in outputs:
        fetched = requests.get(output['url'], timeout=30)
        assert fetched.status_code == 200, fetched.text[:500]
        key = unquote(urlsplit(output['url']).path.split('/', 2)[2])  # path-style: /<bucket>/<key>
        stored = s3.get_object(Bucket=cloud.handler_env['BUCKET_NAME'], Key=key)['Body'].read()
        assert fetched.content == stored and len(stored) == output['bytes']


def test_a_failed_job_is_notified_with_its_error(cloud, new_user, receiver):
    hook = receiver(path='/hooks/vidgen', decode_json=False)
    user = new_user(100)
    job = user.submit({'model': 'kling-v2-6', 'prompt': 'no [sim:content-policy]', 'webhook_url': hook.url}).json()

    assert user.wait(job['id'], timeout=30)['status'] == 'failed'
    hook.wait_for(1)
    event = verifier(cloud).verify(hook.calls[0].body, hook.calls[0].headers)
    assert event['type'] == 'job.failed'
    assert event['data']['error']['code'] == 'CONTENT_POLICY' and event['data']['refunded'] is True


def test_a_failing_receiver_is_retried_with_the_same_id_and_the_job_keeps_its_outcome(cloud, new_user, receiver):
    hook = receiver((500, 503), path='/hooks/vidgen', decode_json=False)
    user = new_user(100)
    job = user.submit({'model': 'kling-v2-6', 'prompt': 'retry me', 'webhook_url': hook.url}).json()

    assert user.wait(job['id'], timeout=30)['status'] == 'succeeded'
    hook.wait_for(3, timeout=60)

    assert {call.headers['webhook-id'] for call in hook.calls} == {f'{job["id"]}.succeeded'}
    assert user.job(job['id'])['status'] == 'succeeded'
    assert user.credits()['balance'] == 80


def test_a_private_webhook_url_is_refused_at_submit_outside_local_mode(cloud, new_user, settings_env):
    user = new_user(100)
    settings_env(VIDGEN_ALLOW_LOOPBACK_URLS='false')
    response = user.submit({'model': 'kling-v2-6', 'prompt': 'x', 'webhook_url': 'http://169.254.169.254/latest'})
    assert response.status_code == 422
    assert response.json()['error']['field'] == 'webhook_url'
    assert user.credits()['balance'] == 100
