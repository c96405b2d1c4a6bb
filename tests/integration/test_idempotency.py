"""Idempotency-Key on POST /v1/jobs: a retried submit returns the first job and charges once, also when the
retries race each other; a key reused for another request is a 409; keys are per user and kept 24 hours."""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time

import boto3
from support import ledger_sum, listed_once_caught_up
from vidgen.store.table import idempotency_key

BODY = {'model': 'kling-v1-6', 'prompt': 'a paper boat on a river', 'duration': 5}  # 10 credits
DAY = 86400


def idempotency_record(cloud, user_id: str, key: str) -> dict | None:
    table = boto3.resource('dynamodb').Table(cloud.handler_env['TABLE_NAME'])
    return table.get_item(Key=idempotency_key(user_id, key), ConsistentRead=True).get('Item')


def debits(credits: dict) -> list[dict]:
    return [entry for entry in credits['ledger'] if entry['type'] == 'debit']


def test_same_key_and_body_returns_the_same_job_and_charges_once(cloud, new_user):
    user = new_user(100)
    headers = {'Idempotency-Key': 'order-1001'}

    first = user.submit(BODY, headers=headers)
    again = user.submit(BODY, headers=headers)
    # The same request, written differently: keys reordered, other whitespace. Still a replay.
    reordered = user.post('/v1/jobs', data=json.dumps(dict(reversed(BODY.items())), indent=2),
                          headers={**headers, 'Content-Type': 'application/json'})

    assert first.status_code == 202 and 'Idempotent-Replayed' not in first.headers
    for replay in (again, reordered):
        assert replay.status_code == 202, replay.text
        assert replay.headers['Idempotent-Replayed'] == 'true'
        assert replay.json()['id'] == first.json()['id']
    credits = user.credits()
    assert credits['balance'] == 90 == ledger_sum(credits)
    assert len(debits(credits)) == 1
    listed = listed_once_caught_up(lambda: [j['id'] for j in user.get('/v1/jobs').json()['jobs']], [first.json()['id']])
    assert listed == [first.json()['id']]


def test_twenty_concurrent_duplicates_make_one_job_and_one_debit(cloud, new_user):
    user = new_user(100)
    start = threading.Barrier(20)

    def submit(_: int):
        start.wait()  # all twenty leave together
        return user.submit(BODY, headers={'Idempotency-Key': 'double-click'})

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        replies = list(pool.map(submit, range(20)))

    assert [r.status_code for r in replies] == [202] * 20, [r.text for r in replies if r.status_code != 202]
    assert len({r.json()['id'] for r in replies}) == 1
    assert sum(r.headers.get('Idempotent-Replayed') == 'true' for r in replies) == 19
    credits = user.credits()
    assert credits['balance'] == 90 == ledger_sum(credits)
    assert len(debits(credits)) == 1
    assert listed_once_caught_up(lambda: [j['id'] for j in user.get('/v1/jobs').json()['jobs']], [replies[0].json()['id']]) == [
        replies[0].json()['id']]


def test_twenty_parallel_submits_of_the_use_case_make_one_job(cloud, new_user):
    """The local gateway hands API requests to the handlers one at a time (Powertools keeps the current
    request in process-global state). Separate Lambda environments run them truly in parallel, so the use
    case is also driven from twenty threads at once: only DynamoDB's conditions keep it to one job."""
    from vidgen.jobs import submit
    from vidgen.models import JobRequest

    user = new_user(100)
    start = threading.Barrier(20)

    def submit_in_parallel(_: int):
        start.wait()
        return submit.submit_job(user.user_id, JobRequest(**BODY), 'parallel-retry')

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        results = list(pool.map(submit_in_parallel, range(20)))

    assert len({r.job.id for r in results}) == 1
    assert sorted(r.replayed for r in results) == [False] + [True] * 19
    credits = user.credits()
    assert credits['balance'] == 90 == ledger_sum(credits) and len(debits(credits)) == 1


def test_same_key_with_another_body_is_a_conflict_and_writes_nothing(cloud, new_user):
    user = new_user(100)
    headers = {'Idempotency-Key': 'order-2002'}
    first = user.submit(BODY, headers=headers).json()
    record = idempotency_record(cloud, user.user_id, 'order-2002')

    for other in ({**BODY, 'prompt': 'a different boat'}, {**BODY, 'duration': 10}, {**BODY, 'metadata': {'a': 'b'}}):
        reply = user.submit(other, headers=headers)
        assert reply.status_code == 409, reply.text
        error = reply.json()['error']
        assert error['code'] == 'IDEMPOTENCY_CONFLICT' and 'new key' in error['message']

    credits = user.credits()
    assert credits['balance'] == 90 and len(credits['ledger']) == 2  # the grant and the first debit
    assert listed_once_caught_up(lambda: [j['id'] for j in user.get('/v1/jobs').json()['jobs']], [first['id']]) == [first['id']]
    assert idempotency_record(cloud, user.user_id, 'order-2002') == record


def test_keys_belong_to_their_user(cloud, new_user):
    alice, bob = new_user(100), new_user(100)
    headers = {'Idempotency-Key': 'shared-key'}

    a = alice.submit(BODY, headers=headers)
    b = bob.submit(BODY, headers=headers)
    b_with_other_body = bob.submit({**BODY, 'prompt': 'not what alice asked'}, headers={'Idempotency-Key': 'alice-only'})
    a_again = alice.submit({**BODY, 'prompt': 'not what alice asked'}, headers={'Idempotency-Key': 'alice-only'})

    assert a.status_code == b.status_code == 202
    assert a.json()['id'] != b.json()['id'] and 'Idempotent-Replayed' not in b.headers
    assert b_with_other_body.status_code == a_again.status_code == 202  # no conflict across users
    assert alice.credits()['balance'] == 80 and bob.credits()['balance'] == 80
    assert bob.get(f'/v1/jobs/{a.json()["id"]}').status_code == 404


def test_a_key_is_kept_for_a_day_and_can_be_used_again_once_expired(cloud, new_user):
    user = new_user(100)
    headers = {'Idempotency-Key': 'renewable'}
    before = time.time()
    first = user.submit(BODY, headers=headers).json()

    record = idempotency_record(cloud, user.user_id, 'renewable')
    assert record['job_id'] == first['id']
    assert int(record['expires_at']) >= before + DAY
    ttl = boto3.client('dynamodb').describe_time_to_live(TableName=cloud.handler_env['TABLE_NAME'])
    assert ttl['TimeToLiveDescription']['AttributeName'] == 'expires_at'  # DynamoDB deletes it some time after

    # Past its expiry (DynamoDB's TTL deletion lags, so the record may still be there): a new request.
    boto3.resource('dynamodb').Table(cloud.handler_env['TABLE_NAME']).update_item(
        Key=idempotency_key(user.user_id, 'renewable'), UpdateExpression='SET expires_at = :past',
        ExpressionAttributeValues={':past': int(time.time()) - 1})
    second = user.submit(BODY, headers=headers)
    replay = user.submit(BODY, headers=headers)

    assert second.status_code == 202 and 'Idempotent-Replayed' not in second.headers
    assert second.json()['id'] != first['id']
    assert replay.headers['Idempotent-Replayed'] == 'true' and replay.json()['id'] == second.json()['id']
    assert idempotency_record(cloud, user.user_id, 'renewable')['job_id'] == second.json()['id']
    credits = user.credits()
    assert credits['balance'] == 80 == ledger_sum(credits) and len(debits(credits)) == 2


def test_key_length_is_checked_before_anything_is_charged(cloud, new_user):
    user = new_user(100)

    for key in ('', 'k' * 256):
        reply = user.submit(BODY, headers={'Idempotency-Key': key})
        assert reply.status_code == 422, (len(key), reply.text)
        error = reply.json()['error']
        assert error['code'] == 'INVALID_PARAMETERS' and error['field'] == 'Idempotency-Key'
        assert '255' in error['message']
    longest = user.submit(BODY, headers={'Idempotency-Key': 'k' * 255})

    assert longest.status_code == 202, longest.text
    assert user.submit(BODY, headers={'Idempotency-Key': 'k' * 255}).headers['Idempotent-Replayed'] == 'true'
    assert user.credits()['balance'] == 90
