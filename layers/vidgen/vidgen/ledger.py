"""Credits: every change to a balance is one DynamoDB transaction with a ledger entry in it.

Nothing reads a balance, computes and writes it back. A debit is conditioned on `balance >= cost` (and
on the owner's active-job cap), a refund on the job still being active (so it can happen once), a grant
on its reference id never having been used. Hence, for every user, at every moment:
    balance == sum(grants) - sum(debits) + sum(refunds) == sum of the ledger's amounts.
"""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.conditions import Key

from vidgen import ids
from vidgen.errors import NotFoundError
from vidgen.store import jobs as job_store
from vidgen.store.table import (
    TransactionCanceled,
    grant_key,
    ledger_key,
    plain,
    table,
    transact,
    user_key,
)


def entry_op(user_id: str, *, type_: str, amount: int, at: float, job_id: str | None = None,
             reference_id: str | None = None, reason: str | None = None) -> dict[str, Any]:
    entry = {'type': type_, 'amount': amount, 'at': ids.iso(at), 'job_id': job_id, 'reference_id': reference_id,
             'reason': reason}
    item = ledger_key(user_id, ids.ulid(int(at * 1000))) | {k: v for k, v in entry.items() if v is not None}
    return {'Put': {'TableName': table().name, 'Item': item, 'ConditionExpression': 'attribute_not_exists(PK)'}}


def debit_op(user_id: str, cost: int, max_active_jobs: int) -> dict[str, Any]:
    """Take `cost` credits and one active-job slot, or fail the whole submit transaction."""
    return {'Update': {
        'TableName': table().name,
        'Key': user_key(user_id),
        'UpdateExpression': 'SET balance = balance - :cost ADD active_jobs :one',
        'ConditionExpression': 'attribute_exists(PK) AND balance >= :cost '
                               'AND (attribute_not_exists(active_jobs) OR active_jobs < :cap)',
        'ExpressionAttributeValues': {':cost': cost, ':one': 1, ':cap': max_active_jobs},
    }}


def settle_job(job: job_store.Job, *, status: str, now: float, refund: bool,
               extra: dict[str, Any]) -> bool:
    """End an active job: one transaction sets its final state, frees the owner's active-job slot and,
    when `refund`, gives back its credits with a ledger entry. Returns False when the job was no longer
    active (someone else settled it first) — then nothing changed."""
    if refund:
        extra = {**extra, 'refunded': True}
    items = [job_store.settle_op(job, status=status, now=now, extra=extra)]
    owner_update = 'ADD active_jobs :minus_one'
    values: dict[str, Any] = {':minus_one': -1}
    if refund and job.credits:
        owner_update = 'SET balance = balance + :credits ADD active_jobs :minus_one'
        values[':credits'] = job.credits
        items.append(entry_op(job.owner, type_='refund', amount=job.credits, at=now, job_id=job.id,
                              reason=(extra.get('error') or {}).get('code')))
    items.insert(1, {'Update': {
        'TableName': table().name, 'Key': user_key(job.owner), 'UpdateExpression': owner_update,
        'ConditionExpression': 'attribute_exists(PK)', 'ExpressionAttributeValues': values,
    }})
    try:
        transact(items)
    except TransactionCanceled as exc:
        if exc.failed(0):
            return False
        raise
    return True


def grant(user_id: str, amount: int, reference_id: str, reason: str | None, now: float) -> tuple[int, bool]:
    """Add credits once per `reference_id`. Returns (balance, granted); a repeat grants nothing."""
    items = [
        {'Put': {'TableName': table().name, 'Item': grant_key(user_id, reference_id) | {'amount': amount},
                 'ConditionExpression': 'attribute_not_exists(PK)'}},
        {'Update': {'TableName': table().name, 'Key': user_key(user_id),
                    'UpdateExpression': 'SET balance = balance + :amount',
                    'ConditionExpression': 'attribute_exists(PK)',
                    'ExpressionAttributeValues': {':amount': amount}}},
        entry_op(user_id, type_='grant', amount=amount, at=now, reference_id=reference_id, reason=reason),
    ]
    try:
        transact(items)
        granted = True
    except TransactionCanceled as exc:
        if exc.failed(1):
            raise NotFoundError(f'No user {user_id!r}.') from exc
        if not exc.failed(0):
            raise
        granted = False
    return balance(user_id), granted


def balance(user_id: str) -> int:
    item = table().get_item(Key=user_key(user_id), ConsistentRead=True).get('Item')
    if item is None:
        raise NotFoundError(f'No user {user_id!r}.')
    return int(item.get('balance', 0))


def ledger_page(user_id: str, *, limit: int, cursor: dict[str, Any] | None) -> tuple[list[dict[str, Any]], dict | None]:
    """The user's ledger entries, newest first."""
    kwargs: dict[str, Any] = {
        'KeyConditionExpression': Key('PK').eq(user_key(user_id)['PK']) & Key('SK').begins_with('LEDGER#'),
        'ScanIndexForward': False, 'Limit': limit, 'ConsistentRead': True,
    }
    if cursor:
        kwargs['ExclusiveStartKey'] = cursor
    response = table().query(**kwargs)
    entries = [{k: v for k, v in plain(item).items() if k not in ('PK', 'SK')} for item in response.get('Items', [])]
    return entries, response.get('LastEvaluatedKey')
