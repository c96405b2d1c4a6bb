"""Users, keys and grants; the enveloped Kling callback form; results copied in parts."""

from __future__ import annotations

import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
from support import ledger_sum
from vidgen import callback_tokens
from vidgen.store import media


def test_grants_happen_once_per_reference_id(cloud, admin, new_user):
    user = new_user(0)
    grant = {'amount': 150, 'reference_id': 'invoice-0001', 'reason': 'monthly plan'}

    first = admin.post(f'/v1/admin/users/{user.user_id}/credits', json=grant)
    again = admin.post(f'/v1/admin/users/{user.user_id}/credits', json=grant)

    assert first.status_code == again.status_code == 200
    assert first.json() == {'user_id': user.user_id, 'balance': 150, 'granted': True}
    assert again.json() == {'user_id': user.user_id, 'balance': 150, 'granted': False}
    credits = user.credits()
    assert [(e['type'], e['amount'], e['reference_id']) for e in credits['ledger']] == [('grant', 150, 'invoice-0001')]
    assert credits['balance'] == ledger_sum(credits) == 150


def test_admin_routes_need_the_admin_key(cloud, admin, new_user):
    user = new_user(10)
    assert admin.post('/v1/admin/users', json={'credits': 5}, key=user.key).status_code == 401
    assert admin.post('/v1/admin/users', json={'credits': 5}, key='').status_code == 401
    assert admin.post(f'/v1/admin/users/{user.user_id}/credits', json={'amount': 5, 'reference_id': 'x'},
                      key='not-the-admin-key').status_code == 401
    assert user.credits()['balance'] == 10


def test_grants_to_unknown_users_and_duplicate_users_are_refused(cloud, admin, new_user):
    user = new_user(0)
    assert admin.post('/v1/admin/users/nobody-here/credits', json={'amount': 5, 'reference_id': 'r'}).status_code == 404
    duplicate = admin.post('/v1/admin/users', json={'user_id': user.user_id, 'credits': 999})
    assert duplicate.status_code == 409
    assert user.credits()['balance'] == 0


def test_api_keys_are_stored_hashed(cloud, new_user):
    user = new_user(0)
    table = boto3.resource('dynamodb').Table(cloud.handler_env['TABLE_NAME'])
    item = table.get_item(Key={'PK': f'APIKEY#{hashlib.sha256(user.key.encode()).hexdigest()}', 'SK': 'APIKEY'})['Item']
    assert item['user_id'] == user.user_id and user.key not in str(item)


def test_an_enveloped_kling_callback_is_understood(cloud, new_user):
    user = new_user(100)
    job = user.submit({'model': 'kling-v2-6', 'prompt': 'wrapped [sim:slow=2] [sim:drop-callbacks]'}).json()
    task, deadline = None, time.monotonic() + 20
    while task is None or task['task_status'] != 'succeed':
        assert time.monotonic() < deadline, task
        time.sleep(0.2)
        task = next((t for t in cloud.kling_sim.tasks() if t['request'].get('external_task_id') == job['id']), None)
    envelope = {'code': 0, 'message': 'SUCCEED', 'request_id': 'r-1',
                'data': {k: task[k] for k in ('task_id', 'task_status', 'task_info', 'task_result')}}

    reply = user.post(f'/v1/callbacks/kling/{job["id"]}?token={callback_tokens.callback_token("kling", job["id"])}',
                      json=envelope, key='')

    assert reply.status_code == 200 and reply.json() == {'status': 'delivered'}
    assert user.wait(job['id'], timeout=20)['status'] == 'succeeded'


class _BigFile(BaseHTTPRequestHandler):
    size = 20 * 1024 * 1024

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header('Content-Type', 'video/mp4')
        self.send_header('Content-Length', str(self.size))
        self.end_headers()
        chunk = bytes(range(256)) * 4096  # 1 MiB
        for _ in range(self.size // len(chunk)):
            self.wfile.write(chunk)

    def log_message(self, *args: object) -> None:
        pass


def test_a_large_result_is_streamed_into_the_bucket_in_parts(cloud):
    server = ThreadingHTTPServer(('127.0.0.1', 0), _BigFile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        stored = media.copy_result(f'http://127.0.0.1:{server.server_address[1]}/big.mp4', 'parts-user', 'job_parts', 0,
                                   None)
    finally:
        server.shutdown()
        server.server_close()

    assert stored.bytes == 20 * 1024 * 1024 and stored.content_type == 'video/mp4'
    head = boto3.client('s3').head_object(Bucket=cloud.handler_env['BUCKET_NAME'], Key=stored.key)
    assert head['ContentLength'] == 20 * 1024 * 1024
    assert head['ETag'].strip('"').endswith('-3')  # a multipart upload of three 8 MiB parts, not one buffer


def test_the_suite_runs_with_global_indexes_that_lag_behind_the_table(cloud):
    # DynamoDB's global secondary indexes are eventually consistent; the suite's local cloud makes them lag
    # (tests/conftest.py sets VIDGEN_LOCAL_INDEX_LAG), so code that lists through an index right after a write
    # meets the same staleness here as on AWS.
    from boto3.dynamodb.conditions import Key
    from vidgen_local import patches

    assert patches.index_lag() > 0
    table = boto3.resource('dynamodb').Table(cloud.handler_env['TABLE_NAME'])
    owner = f'lag-probe-{time.time_ns()}'
    key = {'PK': f'JOB#{owner}', 'SK': 'JOB'}

    def listed() -> int:
        return table.query(IndexName='UserJobs', KeyConditionExpression=Key('owner').eq(owner))['Count']

    table.put_item(Item={**key, 'owner': owner, 'created_key': '0001'})
    assert listed() == 0  # the index does not show the new item yet
    assert table.get_item(Key=key, ConsistentRead=True)['Item']['owner'] == owner  # the table does
    deadline = time.monotonic() + 10
    while listed() == 0:  # as a client would: read the index again until it catches up
        assert time.monotonic() < deadline, 'the index never showed the item'
        time.sleep(0.05)
    table.delete_item(Key=key)
    assert listed() == 1  # a deleted item stays listed for the lag too
