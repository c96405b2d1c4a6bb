"""The store names a refused transaction's outcome from the item that refused it.

A fake DynamoDB client cancels the items a test picks by what they are (the owner's profile, the job, the
Idempotency-Key record, the grant reference), wherever the store put them in the list, and answers with
DynamoDB's cancellation reasons; the store must turn them into `InsufficientCredits(balance)`,
`ActiveCapReached(active)`, `Replayed(job_id)`, `AlreadySettled` or `UnknownUser`.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import pytest
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError
from vidgen.errors import (
    ActiveCapReached,
    AlreadySettled,
    InsufficientCredits,
    Replayed,
    StoreError,
    UnknownUser,
    UserExists,
)
from vidgen.store import accounts, ledger, table
from vidgen.store.idempotency import IdempotencyClaim
from vidgen.store.jobs import Job

_SERIALIZER = TypeSerializer()

# Refusal = (which item, given its key, refuses) -> the item as it was (None: it did not exist)
Refusal = Callable[[dict[str, Any]], tuple[bool, dict[str, Any] | None]]


class FakeClient:
    def __init__(self, refuse: Refusal) -> None:
        self.refuse = refuse
        self.calls: list[list[dict[str, Any]]] = []

    def transact_write_items(self, TransactItems: list[dict[str, Any]]) -> None:  # noqa: N803 (boto3's name)
        self.calls.append(TransactItems)
        reasons = []
        for op in TransactItems:
            body = next(iter(op.values()))
            key = body.get('Key') or {k: body['Item'][k] for k in ('PK', 'SK')}
            refused, old = self.refuse(key)
            reason: dict[str, Any] = {'Code': 'ConditionalCheckFailed' if refused else 'None'}
            if refused and old is not None:
                reason['Item'] = {k: _SERIALIZER.serialize(v) for k, v in old.items()}
            reasons.append(reason)
        if any(r['Code'] != 'None' for r in reasons):
            raise ClientError({'Error': {'Code': 'TransactionCanceledException', 'Message': 'canceled'},
                               'CancellationReasons': reasons}, 'TransactWriteItems')


@pytest.fixture
def store(monkeypatch):
    """Install a fake client; returns a function that sets which items refuse."""
    monkeypatch.setenv('AWS_DEFAULT_REGION', os.environ.get('AWS_DEFAULT_REGION', 'us-east-1'))
    holder: dict[str, FakeClient] = {}

    def install(refuse: Refusal) -> FakeClient:
        holder['client'] = FakeClient(refuse)
        return holder['client']

    monkeypatch.setattr(table, 'client', lambda: holder['client'])
    return install


def job(credits: int = 20) -> Job:
    return Job(id='job_1', owner='alice', status='queued', model='kling-v2-6', provider='kling',
               provider_model='kling-v2-6', kind='t2v', prompt='x', params={}, credits=credits,
               created_at=1_800_000_000.0, updated_at=1_800_000_000.0, deadline_at=1_800_003_600.0)


def refusing(sk_prefix: str, old: dict[str, Any] | None) -> Refusal:
    return lambda key: (key['SK'].startswith(sk_prefix), old) if key['SK'].startswith(sk_prefix) else (False, None)


CLAIM = IdempotencyClaim('key-1', 'hash-1', 86400)


def usage_updates(items: list[dict[str, Any]]) -> dict[Any, dict[str, int]]:
    """The usage counter updates of a transaction: each item's key, with what it ADDs by counter name."""
    found = {}
    for op in items:
        body = op.get('Update', {})
        if not str(body.get('Key', {}).get('PK', '')).startswith('USAGE#'):
            continue
        assert body['UpdateExpression'].startswith('ADD ') and 'ConditionExpression' not in body
        added = body['UpdateExpression'].removeprefix('ADD ').split(', ')
        found[KeyView(body['Key'])] = {a.split()[0]: body['ExpressionAttributeValues'][a.split()[1]] for a in added}
    return found


class KeyView(dict):  # a hashable dict for the keys above
    def __hash__(self) -> int:
        return hash(tuple(sorted(self.items())))


def test_a_submit_that_passes_every_condition_writes_one_transaction(store):
    client = store(lambda key: (False, None))
    ledger.submit_debit(job(), max_active_jobs=5, sweep_at=0, idempotency=CLAIM)
    [items] = client.calls
    assert sorted(next(iter(op)) for op in items) == ['Put', 'Put', 'Put', 'Update', 'Update', 'Update', 'Update']
    counted = usage_updates(items)
    # The job is counted, with its credits, in the owner's cell, one service shard and the owner's day.
    assert [key['SK'] for key in counted] == ['DAY#2027-01-15#kling-v2-6#t2v#-#-', 'DAY#2027-01-15#kling-v2-6#t2v#-',
                                              'DAY#2027-01-15#alice']
    assert all(added == {'jobs': 1, 'credits_charged': 20} for added in counted.values())


def test_a_debit_refused_with_too_small_a_balance_is_insufficient_credits(store):
    store(refusing('PROFILE', {'PK': 'x', 'SK': 'PROFILE', 'balance': 7, 'active_jobs': 0}))
    with pytest.raises(InsufficientCredits) as caught:
        ledger.submit_debit(job(credits=20), max_active_jobs=5, sweep_at=0)
    assert caught.value.balance == 7


def test_a_debit_refused_with_enough_balance_is_the_active_cap(store):
    store(refusing('PROFILE', {'PK': 'x', 'SK': 'PROFILE', 'balance': 500, 'active_jobs': 5}))
    with pytest.raises(ActiveCapReached) as caught:
        ledger.submit_debit(job(), max_active_jobs=5, sweep_at=0)
    assert caught.value.active == 5


def test_a_debit_refused_without_a_profile_is_an_unknown_user(store):
    store(refusing('PROFILE', None))
    with pytest.raises(UnknownUser):
        ledger.submit_debit(job(), max_active_jobs=5, sweep_at=0)


def test_a_live_idempotency_record_is_a_replay_and_wins_over_the_debit(store):
    record = {'PK': 'x', 'SK': 'IDEMPOTENCY', 'job_id': 'job_0', 'request_hash': 'hash-0', 'expires_at': 1}
    profile = {'PK': 'x', 'SK': 'PROFILE', 'balance': 0, 'active_jobs': 0}
    store(lambda key: (True, record) if key['SK'] == 'IDEMPOTENCY'
          else (True, profile) if key['SK'] == 'PROFILE' else (False, None))
    with pytest.raises(Replayed) as caught:
        ledger.submit_debit(job(), max_active_jobs=5, sweep_at=0, idempotency=CLAIM)
    assert (caught.value.job_id, caught.value.request_hash) == ('job_0', 'hash-0')


def test_a_refusal_of_an_item_with_no_outcome_is_a_store_error(store):
    store(refusing('JOB', None))  # a job id that exists: never happens, and must not pass for a named outcome
    with pytest.raises(StoreError):
        ledger.submit_debit(job(), max_active_jobs=5, sweep_at=0)


def test_settling_a_job_that_ended_is_already_settled(store):
    store(refusing('JOB', {'PK': 'x', 'SK': 'JOB', 'status': 'succeeded'}))
    with pytest.raises(AlreadySettled):
        ledger.settle(job(), status='failed', now=1.0, refund=True, extra={})


def test_a_refund_writes_the_job_the_owner_and_a_ledger_entry(store):
    client = store(lambda key: (False, None))
    ledger.settle(job(), status='failed', now=1.0, refund=True, extra={'error': {'code': 'X', 'message': 'y'}})
    [items] = client.calls
    assert len(items) == 6
    assert list(usage_updates(items).values()) == [{'failed': 1, 'credits_refunded': 20}] * 2 + [{'credits_refunded': 20}]


def test_a_repeated_grant_grants_nothing_and_a_grant_to_nobody_is_an_unknown_user(store, monkeypatch):
    monkeypatch.setattr(ledger, 'balance', lambda user_id: 40)
    store(refusing('GRANT#', {'PK': 'x', 'SK': 'GRANT#r', 'amount': 10}))
    assert ledger.grant('alice', 10, 'r', None, 1.0) == (40, False)
    store(refusing('PROFILE', None))
    with pytest.raises(UnknownUser):
        ledger.grant('nobody', 10, 'r', None, 1.0)
    store(lambda key: (False, None))
    assert ledger.grant('alice', 10, 'r2', None, 1.0) == (40, True)


def test_creating_a_user_that_exists_is_user_exists(store):
    store(refusing('PROFILE', {'PK': 'x', 'SK': 'PROFILE', 'balance': 0}))
    with pytest.raises(UserExists):
        accounts.create_user('alice', 10, 1.0)
