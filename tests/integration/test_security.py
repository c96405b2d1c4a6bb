"""Security on the local cloud: forged and replayed callbacks change nothing, users see only their own
jobs, API keys are stored hashed, no secret reaches a log line, result URLs on private addresses are
refused outside local mode (SSRF), and request bodies are limited with clear errors."""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import json
import logging
import re
import time

import boto3
import jwt
import pytest
import requests
from support import PNG_DATA_URI, ledger_sum, listed_once_caught_up
from vidgen import callback_tokens
from vidgen.store.table import job_key

MB = 1024 * 1024


def state(user, job_id: str) -> tuple:
    """What a forged request must not change: the job, the balance and the whole ledger."""
    job = user.job(job_id)
    credits = user.credits()
    outputs = [(o['url'].split('?', 1)[0], o['content_type'], o['bytes']) for o in job['outputs']]  # URLs are presigned anew
    return job['status'], job['updated_at'], job['refunded'], outputs, job['error'], credits['balance'], credits['ledger']


def kling_task(cloud, job_id: str) -> dict:
    [task] = [t for t in cloud.kling_sim.tasks() if t['request'].get('external_task_id') == job_id]
    return task


def callback_body(task: dict) -> dict:
    return {k: task[k] for k in ('task_id', 'task_status', 'task_status_msg', 'task_info', 'task_result',
                                 'created_at', 'updated_at') if k in task}


def secret(cloud, env_name: str) -> dict:
    value = boto3.client('secretsmanager').get_secret_value(SecretId=cloud.handler_env[env_name])['SecretString']
    return json.loads(value)


# --- callbacks ---------------------------------------------------------------------------------------------


def test_forged_callbacks_are_rejected_and_change_nothing(cloud, new_user):
    user = new_user(100)
    job = user.submit({'model': 'kling-v2-6', 'prompt': 'a still lake [sim:slow=30] [sim:drop-callbacks]'}).json()
    running = user.wait(job['id'], timeout=15, statuses=('running',))
    token = callback_tokens.callback_token('kling', job['id'])
    task = kling_task(cloud, job['id'])
    claims_failure = {**callback_body(task), 'task_status': 'failed', 'task_status_msg': 'forged'}
    claims_success = {**callback_body(task), 'task_status': 'succeed',
                      'task_result': {'videos': [{'id': 'x', 'url': 'https://attacker.example/v.mp4', 'duration': '5'}]}}
    unknown_job = 'job_01ZZZZZZZZZZZZZZZZZZZZZZZZ'
    unknown_token = callback_tokens.callback_token('kling', unknown_job)
    before = state(user, job['id'])

    attempts = {
        'wrong token': (f'/v1/callbacks/kling/{job["id"]}?token=forged', {'json': claims_success}, 401),
        'no token': (f'/v1/callbacks/kling/{job["id"]}', {'json': claims_success}, 401),
        "another job's token": (f'/v1/callbacks/kling/{job["id"]}?token={unknown_token}', {'json': claims_success}, 401),
        'unknown job, its own valid token': (f'/v1/callbacks/kling/{unknown_job}?token={unknown_token}',
                                             {'json': claims_success}, 401),
        'another task id': (f'/v1/callbacks/kling/{job["id"]}?token={token}',
                            {'json': {**claims_success, 'task_id': '999999999'}}, 401),
        'invalid JSON': (f'/v1/callbacks/kling/{job["id"]}?token={token}',
                         {'data': b'{"task_id": "1", ', 'headers': {'Content-Type': 'application/json'}}, 400),
        'not a Kling task (4 MB)': (f'/v1/callbacks/kling/{job["id"]}?token={token}',
                                    {'json': {'padding': 'x' * (4 * MB)}}, 401),
        'over 5 MB': (f'/v1/callbacks/kling/{job["id"]}?token={token}',
                      {'data': b'{"p": "' + b'x' * (5 * MB) + b'"}', 'headers': {'Content-Type': 'application/json'}}, 413),
        'over 10 MB': (f'/v1/callbacks/kling/{job["id"]}?token={token}',
                       {'data': b'{"p": "' + b'x' * (10 * MB) + b'"}', 'headers': {'Content-Type': 'application/json'}}, 413),
        # A valid token with a made-up body (a leaked URL): the provider is asked, and it says running.
        'valid token, false failure': (f'/v1/callbacks/kling/{job["id"]}?token={token}', {'json': claims_failure}, 200),
        'valid token, false success': (f'/v1/callbacks/kling/{job["id"]}?token={token}', {'json': claims_success}, 200),
    }
    for name, (path, kwargs, expected) in attempts.items():
        reply = user.post(path, key='', **kwargs)
        assert reply.status_code == expected, (name, reply.status_code, reply.text[:200])
        if expected == 200:
            assert reply.json() == {'status': 'noted'}, name
        elif name == 'over 5 MB':  # vidgen's own limit, in vidgen's error shape
            assert reply.json()['error']['code'] == 'INVALID_PARAMETERS', name
            assert 'larger than 5 MB' in reply.json()['error']['message'], name
        elif expected == 413:  # past Lambda's 6 MB the function never runs: API Gateway's own answer
            assert reply.json() == {'message': 'Request Entity Too Large'}, name
        else:
            assert reply.json()['error']['code'] == ('AUTH_FAILED' if expected == 401 else 'INVALID_PARAMETERS'), name
        assert state(user, job['id']) == before, name

    assert running['status'] == 'running' and user.get(f'/v1/jobs/{unknown_job}').status_code == 404
    assert cloud.kling_sim.tasks() and kling_task(cloud, job['id'])['task_status'] in ('submitted', 'processing')
    assert user.post(f'/v1/jobs/{job["id"]}/cancel').status_code == 200


def test_a_replayed_callback_after_the_job_ended_changes_nothing(cloud, new_user):
    user = new_user(100)
    job = user.submit({'model': 'kling-v2-6', 'prompt': 'a kite over dunes'}).json()
    done = user.wait(job['id'], timeout=30)
    assert done['status'] == 'succeeded'
    task = callback_body(kling_task(cloud, job['id']))
    url = f'/v1/callbacks/kling/{job["id"]}?token={callback_tokens.callback_token("kling", job["id"])}'
    before = state(user, job['id'])

    bodies = [task] * 5 + [{**task, 'task_status': 'failed', 'task_status_msg': 'replayed as a failure'}] * 5
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        replies = list(pool.map(lambda body: user.post(url, json=body, key=''), bodies))
    assert [r.status_code for r in replies] == [200] * 10
    assert {r.json()['status'] for r in replies} == {'ignored'}

    assert state(user, job['id']) == before
    credits = user.credits()
    assert credits['balance'] == 80 == ledger_sum(credits) and [e['type'] for e in credits['ledger']] == ['debit', 'grant']


# --- users and keys ----------------------------------------------------------------------------------------


def test_a_user_cannot_read_list_or_cancel_another_users_jobs(cloud, new_user):
    owner, stranger = new_user(100), new_user(100)
    job = owner.submit({'model': 'kling-v2-6', 'prompt': 'private [sim:slow=30] [sim:drop-callbacks]'}).json()
    assert owner.submit({'model': 'kling-v2-6', 'prompt': 'second [sim:slow=30] [sim:drop-callbacks]'}).status_code == 202
    owner.wait(job['id'], statuses=('running',))  # what it is until the test ends (the provider is slow)
    before = state(owner, job['id'])

    for reply in (stranger.get(f'/v1/jobs/{job["id"]}'), stranger.post(f'/v1/jobs/{job["id"]}/cancel')):
        assert reply.status_code == 404 and reply.json()['error']['code'] == 'NOT_FOUND'
    for status in (None, 'queued', 'running'):
        assert stranger.get('/v1/jobs', params={'status': status} if status else {}).json()['jobs'] == []
    # The owner's own cursors are no way in. The job listing reads an index that lags the writes
    # (VIDGEN_LOCAL_INDEX_LAG), so it is read until both jobs show, or its first page has no cursor.
    assert listed_once_caught_up(lambda: len(owner.get('/v1/jobs').json()['jobs']), 2) == 2
    owner_cursor = owner.get('/v1/jobs', params={'limit': 1}).json()['next_cursor']
    ledger_cursor = owner.get('/v1/credits', params={'limit': 1}).json()['next_cursor']
    assert owner_cursor and ledger_cursor
    assert stranger.get('/v1/jobs', params={'cursor': owner_cursor}).status_code == 422
    assert stranger.get('/v1/credits', params={'cursor': ledger_cursor}).status_code == 422
    assert stranger.get('/v1/usage').json()['totals']['jobs'] == 0
    assert [e['type'] for e in stranger.credits()['ledger']] == ['grant']
    assert state(owner, job['id']) == before

    # Interleaved at once: every answer belongs to the caller (the local gateway once mixed up requests
    # that ran at the same time).
    def read(i: int):
        return (stranger if i % 2 else owner).get(f'/v1/jobs/{job["id"]}').status_code

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(read, range(64)))
    assert codes == [200, 404] * 32
    for page in owner.get('/v1/jobs').json()['jobs']:
        assert owner.post(f'/v1/jobs/{page["id"]}/cancel').status_code == 200


def test_concurrent_requests_of_different_users_never_cross(cloud, new_user):
    users = [new_user(100 + i) for i in range(4)]

    def whoami(i: int) -> tuple[int, int]:
        user = users[i % 4]
        return i % 4, user.get('/v1/credits').json()['balance']

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(whoami, range(80)))
    assert all(balance == 100 + index for index, balance in answers)


def test_api_keys_are_stored_only_as_hashes(cloud, admin):
    created = admin.post('/v1/admin/users', json={'credits': 5}).json()
    key = created['api_key']
    assert admin.as_user(key).get('/v1/credits').status_code == 200
    client = boto3.client('dynamodb')
    items = []
    for page in client.get_paginator('scan').paginate(TableName=cloud.handler_env['TABLE_NAME']):
        items += page['Items']
    everything = json.dumps(items)

    assert key not in everything and key[3:] not in everything
    assert hashlib.sha256(key.encode()).hexdigest() in everything
    assert cloud.admin_key not in everything


# --- logs --------------------------------------------------------------------------------------------------


@pytest.fixture
def all_logs(cloud, caplog, capfd):
    """Everything logged while the test runs. The handlers run in execution environments forked from this
    process: each line they print arrives here as a record of `vidgen_local.lambda.<Function>` (caught by
    caplog at INFO), at the level of the vidgen logger they inherited when forked, so the level is set to
    DEBUG first and the environments recycled (then put back, and recycled again). Lines vidgen code logs in
    this process are copied by a second handler with Powertools' formatter; every other logger comes through
    the root at INFO, and whatever reaches this process's stdout and stderr is read too."""
    from vidgen.observability import logger

    copy = io.StringIO()
    handler = logging.StreamHandler(copy)
    handler.setFormatter(logger.registered_formatter)
    std_logger = logger._logger  # the logging.Logger behind Powertools' Logger
    level = std_logger.level
    std_logger.addHandler(handler)
    logger.setLevel('DEBUG')
    caplog.set_level(logging.INFO)
    cloud.recycle_environments()

    def text() -> str:
        out, err = capfd.readouterr()
        return '\n'.join([copy.getvalue(), caplog.text, out, err])

    yield text
    std_logger.removeHandler(handler)
    std_logger.setLevel(level)
    cloud.recycle_environments()


HANDLER_LOGGER = re.compile(r'vidgen_local\.lambda\.(\w+)')


def test_no_secret_reaches_a_log_line(cloud, admin, new_user, all_logs):
    user = new_user(500)
    sim_kling = secret(cloud, 'KLING_SECRET_NAME')
    minted_jwt = jwt.encode({'iss': sim_kling['access_key'], 'exp': int(time.time()) + 1800, 'nbf': int(time.time())},
                            sim_kling['secret_key'], algorithm='HS256', headers={'typ': 'JWT'})

    kling = user.submit({'model': 'kling-v2-6', 'prompt': 'a harbour at night'}).json()
    kie = user.submit({'model': 'veo-3-1-fast', 'prompt': 'a harbour by day', 'image': PNG_DATA_URI}).json()
    failing = user.submit({'model': 'kling-v2-6', 'prompt': 'refused [sim:content-policy]'}).json()
    waiting = user.submit({'model': 'kling-v2-6', 'prompt': 'a slow tide [sim:slow=2] [sim:drop-callbacks]'}).json()
    table = boto3.resource('dynamodb').Table(cloud.handler_env['TABLE_NAME'])
    task_token = None
    while task_token is None:
        task_token = table.get_item(Key=job_key(waiting['id']))['Item'].get('task_token')
        time.sleep(0.1)
    wrong_admin = admin.as_user('vg_not-the-admin-key-0123456789')
    assert wrong_admin.post('/v1/admin/users', json={}).status_code == 401
    assert user.post('/v1/admin/users', json={}).status_code == 401
    callback_token = callback_tokens.callback_token('kling', waiting['id'])
    while kling_task(cloud, waiting['id'])['task_status'] != 'succeed':
        time.sleep(0.2)
    url = f'/v1/callbacks/kling/{waiting["id"]}?token={callback_token}'
    assert user.post(url, json=callback_body(kling_task(cloud, waiting['id'])), key='').json()['status'] == 'delivered'
    assert user.post(url.replace(callback_token, 'forged'), json={}, key='').status_code == 401
    storyboards = [user.post('/v1/storyboards', json={'product': {'name': 'Lamp', 'description': description},
                                                      'scenes': 1, 'model': 'kling-v2-6'}).json()['id']
                   for description in ('A brass lamp.', 'A brass lamp. [llm:5xx]')]
    outcomes = {job['id']: user.wait(job['id'], timeout=45)['status'] for job in (kling, kie, failing, waiting)}
    assert outcomes == {kling['id']: 'succeeded', kie['id']: 'succeeded', failing['id']: 'failed',
                        waiting['id']: 'succeeded'}

    for storyboard_id in storyboards:
        while user.get(f'/v1/storyboards/{storyboard_id}').json()['status'] in ('writing', 'generating'):
            time.sleep(0.2)

    logs = all_logs()
    # The capture works: the handlers' lines reach it from their own processes (every function that logs on
    # these paths; status and admin log nothing here but errors), and so do the gateway's access lines.
    functions = set(HANDLER_LOGGER.findall(logs))
    assert {'SubmitFunction', 'PollerFunction', 'CallbackFunction', 'StoryboardFunction', 'MediaFunction'} <= functions, \
        sorted(functions)
    assert 'job submitted' in logs and 'callback confirmed' in logs and 'POST /v1/jobs 202' in logs
    assert 'storyboard submitted' in logs and 'scene writer call refused' in logs
    secrets = {
        'admin key': cloud.admin_key,
        'Kling secret key': sim_kling['secret_key'],
        'Kie API key': secret(cloud, 'KIE_SECRET_NAME')['api_key'],
        'callback signing key': secret(cloud, 'CALLBACK_SECRET_NAME')['key'],
        'user API key': user.key,
        'wrong admin key': 'vg_not-the-admin-key-0123456789',
        'callback token': callback_token,
        'task token': task_token,
        'a Kling JWT (its header and claims)': minted_jwt.rsplit('.', 1)[0][:60],
    }
    secrets['LLM API key'] = secret(cloud, 'LLM_SECRET_NAME')['api_key']
    if 'WEBHOOK_SECRET_NAME' in cloud.handler_env:
        secrets['webhook signing key'] = secret(cloud, 'WEBHOOK_SECRET_NAME')['key']
    leaked = [name for name, value in secrets.items() if value and value in logs]
    assert leaked == []
    assert not re.search(r'eyJ[\w-]{10,}\.eyJ[\w-]{10,}\.[\w-]{10,}', logs), 'a JWT reached the logs'
    assert 'Bearer ' not in logs and 'token=' not in logs


# --- SSRF --------------------------------------------------------------------------------------------------


def test_results_on_private_addresses_are_not_fetched_outside_local_mode(cloud, new_user, settings_env):
    """The simulator's result URLs are on 127.0.0.1; local mode allows that explicitly. With the allowance
    off, as in AWS, the finished job fails cleanly and is refunded, and nothing is fetched or stored."""
    settings_env(VIDGEN_ALLOW_LOOPBACK_URLS='false')
    user = new_user(100)
    downloads = cloud.kling_sim.stats.get('downloads')

    job = user.submit({'model': 'kling-v2-6', 'prompt': 'fetch me if you can'}).json()
    done = user.wait(job['id'], timeout=45)

    assert done['status'] == 'failed' and done['refunded'] is True and done['outputs'] == []
    assert done['error']['code'] == 'GENERATION_FAILED'
    assert 'private or reserved address' in done['error']['message']
    assert kling_task(cloud, job['id'])['task_result']['videos'][0]['url'].startswith('http://127.0.0.1:')
    assert cloud.kling_sim.stats.get('downloads') == downloads
    listed = boto3.client('s3').list_objects_v2(Bucket=cloud.handler_env['BUCKET_NAME'], Prefix=f'results/{user.user_id}/')
    assert listed.get('KeyCount', 0) == 0
    credits = user.credits()
    assert credits['balance'] == 100 == ledger_sum(credits)


# --- request limits ----------------------------------------------------------------------------------------


def test_bodies_over_5_mb_are_refused_with_a_json_error(cloud, new_user):
    user = new_user(100)
    # Over vidgen's 5 MB but under Lambda's 6 MB: the function runs and refuses it before parsing, in vidgen's
    # error shape, with the request id the gateway gave it.
    big = json.dumps({'model': 'kling-v2-6', 'prompt': 'x', 'metadata': {'pad': 'y' * (5 * MB + MB // 2)}})
    reply = user.post('/v1/jobs', data=big, headers={'Content-Type': 'application/json'})
    assert reply.status_code == 413 and reply.headers['Content-Type'] == 'application/json'
    assert reply.json()['error'] == {'code': 'INVALID_PARAMETERS', 'message': 'The request body is larger than 5 MB.',
                                     'request_id': reply.headers['apigw-requestid']}

    # Over 6 MB the event never reaches the function (Lambda refuses the invocation), nor over API Gateway's
    # 10 MB: both answers are API Gateway's own.
    for size in (6 * MB + MB // 2, 10 * MB):
        huge = json.dumps({'model': 'kling-v2-6', 'prompt': 'x', 'metadata': {'pad': 'y' * size}})
        reply = user.post('/v1/jobs', data=huge, headers={'Content-Type': 'application/json'})
        assert reply.status_code == 413 and reply.json() == {'message': 'Request Entity Too Large'}, size
    assert user.credits()['balance'] == 100 and user.get('/v1/jobs').json()['jobs'] == []


@pytest.mark.parametrize(('body', 'field', 'says'), [
    ({'model': 'kling-v2-6', 'prompt': 'p' * 2501}, 'prompt', 'at most 2500'),
    ({'model': 'kie-kling-2-6', 'prompt': 'p' * 1001}, 'prompt', 'at most 1000'),
    ({'model': 'seedream-4-5', 'prompt': 'p' * 10_001}, 'prompt', 'at most 10000'),
    ({'model': 'kling-v2-6', 'prompt': 'p', 'negative_prompt': 'n' * 2501}, 'negative_prompt', 'at most 2500'),
    ({'model': 'veo-3-1', 'prompt': 'p', 'reference_images': [PNG_DATA_URI] * 4}, 'reference_images', '1 to 3'),
    ({'model': 'veo-3-1', 'prompt': 'p', 'reference_images': [PNG_DATA_URI] * 9}, 'reference_images', 'at most 8'),
    ({'model': 'kling-v2-6', 'prompt': 'p', 'metadata': {f'k{i}': 'v' for i in range(21)}}, 'metadata', '20 keys'),
    ({'model': 'kling-v2-6', 'prompt': 'p', 'metadata': {'k': 'v' * 513}}, 'metadata', '512'),
    ({'model': 'kling-v2-6', 'prompt': 'p', 'metadata': {'k' * 65: 'v'}}, 'metadata', '64'),
], ids=['kling prompt', 'market prompt', 'any prompt', 'negative prompt', 'reference images for the model',
        'reference images at all', 'metadata keys', 'metadata value', 'metadata key'])
def test_limits_on_the_request_are_422_naming_the_field(cloud, new_user, body, field, says):
    user = new_user(200)

    reply = user.submit(body)

    assert reply.status_code == 422, reply.text[:300]
    error = reply.json()['error']
    assert error['code'] == 'INVALID_PARAMETERS' and error['field'] == field and says in error['message'], error
    assert user.credits()['balance'] == 200 and user.get('/v1/jobs').json()['jobs'] == []


def test_request_bodies_that_are_not_json_text_are_400(cloud, new_user):
    user = new_user(100)
    form = user.post('/v1/jobs', data=b'{"model": "kling-v2-6"}', headers={'Content-Type': 'multipart/form-data'})
    binary = user.post('/v1/jobs', data=b'\xff\xfe\x00{', headers={'Content-Type': 'application/json'})
    for reply in (form, binary):
        assert reply.status_code == 400, reply.text
        assert reply.json()['error']['code'] == 'INVALID_PARAMETERS'
    assert 'application/json' in form.json()['error']['message'] and 'UTF-8' in binary.json()['error']['message']
    assert user.credits()['balance'] == 100


def test_the_gateway_answers_unknown_methods_like_api_gateway(cloud):
    reply = requests.request('TRACE', f'{cloud.api_url}/v1/health', timeout=10)
    assert reply.status_code == 404 and reply.json() == {'message': 'Not Found'}
