"""Credits: every change to a balance is one DynamoDB transaction with a ledger entry in it, and with the
usage counters it changes (`vidgen.store.usage`), so a counter cannot disagree with the ledger.

Nothing reads a balance, computes and writes it back. A debit is conditioned on `balance >= cost` (and
on the owner's active-job cap), a refund on the job still being active (so it can happen once), a grant
on its reference id never having been used. Hence, for every user, at every moment:
    balance == sum(grants) - sum(debits) + sum(refunds) == sum of the ledger's amounts.

Each money-moving operation is one function here that owns its whole transaction and names its outcome:
the items of a transaction are keyed by their role, and a refusal is read from the role that refused it
(`TransactionCanceled.refused('debit')`), never from a position in the list.
"""

from __future__ import annotations

from typing import Any, Callable, NoReturn

from boto3.dynamodb.conditions import Key

from vidgen import ids
from vidgen.errors import (
    ActiveCapReached,
    AlreadySettled,
    InsufficientCredits,
    Replayed,
    StoreOutcome,
    TransactionCanceled,
    UnknownUser,
)
from vidgen.store import jobs as job_store
from vidgen.store import usage
from vidgen.store.idempotency import IdempotencyClaim, claim_op
from vidgen.store.pages import PageKey
from vidgen.store.table import (
    grant_key,
    ledger_key,
    number,
    plain,
    table,
    transact,
    user_key,
)


def entry_op(user_id: str, *, type_: str, amount: int, at: float, job_id: str | None = None,
             reference_id: str | None = None, reason: str | None = None, storyboard_id: str | None = None,
             table_name: str | None = None) -> dict[str, Any]:
    """The transaction item that writes one ledger entry (its id sorts by time; entries written in the same
    millisecond still get distinct ids from the ulid's random part)."""
    entry = {'type': type_, 'amount': amount, 'at': ids.iso(at), 'job_id': job_id, 'reference_id': reference_id,
             'reason': reason, 'storyboard_id': storyboard_id}
    item = ledger_key(user_id, ids.ulid(int(at * 1000))) | {k: v for k, v in entry.items() if v is not None}
    return {'Put': {'TableName': table_name or table().name, 'Item': item,
                    'ConditionExpression': 'attribute_not_exists(PK)'}}


def debit_op(user_id: str, cost: int, *, slots: int, max_active_jobs: int,
             table_name: str | None = None) -> dict[str, Any]:
    """Take `cost` credits and `slots` active-job slots (one per job paid for: a job takes one, a storyboard
    one per scene), or fail the whole transaction. Read a refusal with `raise_submit_refusal`."""
    return {'Update': {
        'TableName': table_name or table().name,
        'Key': user_key(user_id),
        'UpdateExpression': 'SET balance = balance - :cost ADD active_jobs :slots',
        'ConditionExpression': 'attribute_exists(PK) AND balance >= :cost '
                               'AND (attribute_not_exists(active_jobs) OR active_jobs <= :room)',
        'ExpressionAttributeValues': {':cost': cost, ':slots': slots, ':room': max_active_jobs - slots},
    }}


def submit_transaction(job: job_store.Job, *, max_active_jobs: int, sweep_at: float,
                       idempotency: IdempotencyClaim | None = None,
                       table_name: str | None = None) -> dict[str, dict[str, Any]]:
    """The items of a submit's transaction, by role: debit the owner, create the job, write the ledger
    entry and, with an Idempotency-Key, its record. `table_name` lets the benchmark write the very same
    transaction to a twin table."""
    name = table_name or table().name
    job_item = job_store.put_item_op(job, sweep_at=sweep_at)
    job_item['Put']['TableName'] = name
    items = {
        'debit': debit_op(job.owner, job.credits, slots=1, max_active_jobs=max_active_jobs, table_name=name),
        'job': job_item,
        'entry': entry_op(job.owner, type_='debit', amount=-job.credits, at=job.created_at, job_id=job.id,
                          table_name=name),
    }
    if idempotency:
        claim = claim_op(job.owner, idempotency, job.id, job.created_at)
        claim['Put']['TableName'] = name
        items['idempotency'] = claim
    items |= usage.transaction_items(job.owner, job_store.usage_cell(job), usage.submitted(1, job.credits),
                                     spread_by=job.id, table_name=name)
    return items


def submit_debit(job: job_store.Job, *, max_active_jobs: int, sweep_at: float,
                 idempotency: IdempotencyClaim | None = None) -> None:
    """Store a new job and pay for it, in one transaction: all of it happens, or nothing.

    Raises, in this order of precedence: `Replayed` (the Idempotency-Key is live: the job it created and
    that request's fingerprint), `UnknownUser`, `InsufficientCredits(balance)`, `ActiveCapReached(active)`.
    """
    try:
        transact(submit_transaction(job, max_active_jobs=max_active_jobs, sweep_at=sweep_at, idempotency=idempotency))
    except TransactionCanceled as exc:
        raise_submit_refusal(exc, job.owner, job.credits,
                             lambda record: Replayed(str(record.get('job_id', '')), str(record['request_hash'])))


def raise_submit_refusal(exc: TransactionCanceled, owner: str, cost: int,
                         replayed: Callable[[dict[str, Any]], StoreOutcome]) -> NoReturn:
    """Raise what a refused submit transaction (a `debit_op` item keyed 'debit', perhaps a claim keyed
    'idempotency') means, in order of precedence: the key is live (`replayed(its record)`), else why the debit
    was refused (`debit_refusal`), else `exc` itself (another item's condition: a bug, not an outcome)."""
    record = exc.old('idempotency')
    if exc.refused('idempotency') and record is not None:
        raise replayed(record) from exc
    if exc.refused('debit'):
        raise debit_refusal(exc.old('debit'), owner, cost) from exc
    raise exc


def debit_refusal(profile: dict[str, Any] | None, owner: str, cost: int) -> StoreOutcome:
    """Why a debit's condition failed, read from the owner's profile as it was: no such user, not enough
    credits, or (the balance was enough) no room under the active-job cap."""
    if profile is None:
        return UnknownUser(owner)
    balance = int(profile.get('balance', 0))
    if balance < cost:
        return InsufficientCredits(balance)
    return ActiveCapReached(int(profile.get('active_jobs', 0)))


def settle(job: job_store.Job, *, status: str, now: float, refund: bool, extra: dict[str, Any]) -> None:
    """End an active job: one transaction sets its final state, frees the owner's active-job slot and,
    when `refund`, gives back its credits with a ledger entry. Raises `AlreadySettled` when the job was no
    longer active (someone else settled it first) — then nothing changed."""
    if refund:
        extra = {**extra, 'refunded': True}
    owner_update = 'ADD active_jobs :minus_one'
    values: dict[str, Any] = {':minus_one': -1}
    items = {'job': job_store.settle_op(job, status=status, now=now, extra=extra)}
    refunded = job.credits if refund else 0
    if refunded:
        owner_update = 'SET balance = balance + :credits ADD active_jobs :minus_one'
        values[':credits'] = job.credits
        items['entry'] = entry_op(job.owner, type_='refund', amount=job.credits, at=now, job_id=job.id,
                                  reason=(extra.get('error') or {}).get('code'))
    items['owner'] = {'Update': {
        'TableName': table().name, 'Key': user_key(job.owner), 'UpdateExpression': owner_update,
        'ConditionExpression': 'attribute_exists(PK)', 'ExpressionAttributeValues': values,
    }}
    ending = job_store.usage_ending(job, status=status, completed_at=now, refunded=refund,
                                    outputs=extra.get('outputs', []))
    items |= usage.transaction_items(job.owner, job_store.usage_cell(job), ending, spread_by=job.id)
    try:
        transact(items)
    except TransactionCanceled as exc:
        if exc.refused('job'):
            raise AlreadySettled(job.id) from exc
        raise


def grant(user_id: str, amount: int, reference_id: str, reason: str | None, now: float) -> tuple[int, bool]:
    """Add credits once per `reference_id`. Returns (balance, granted); a repeat grants nothing. Raises
    `UnknownUser`."""
    items = {
        'reference': {'Put': {'TableName': table().name, 'Item': grant_key(user_id, reference_id) | {'amount': amount},
                              'ConditionExpression': 'attribute_not_exists(PK)'}},
        'profile': {'Update': {'TableName': table().name, 'Key': user_key(user_id),
                               'UpdateExpression': 'SET balance = balance + :amount',
                               'ConditionExpression': 'attribute_exists(PK)',
                               'ExpressionAttributeValues': {':amount': amount}}},
        'entry': entry_op(user_id, type_='grant', amount=amount, at=now, reference_id=reference_id, reason=reason),
    }
    try:
        transact(items)
        granted = True
    except TransactionCanceled as exc:
        if exc.refused('profile'):
            raise UnknownUser(user_id) from exc
        if not exc.refused('reference'):
            raise
        granted = False
    return balance(user_id), granted


def balance(user_id: str, *, consistent: bool = True) -> int:
    """The user's balance; raises `UnknownUser`."""
    item = table().get_item(Key=user_key(user_id), ConsistentRead=consistent).get('Item')
    if item is None:
        raise UnknownUser(user_id)
    return number(item.get('balance', 0))


def ledger_page(user_id: str, *, limit: int,
                cursor: PageKey | None) -> tuple[list[dict[str, Any]], PageKey | None]:
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



def all_entries(user_id: str) -> list[dict[str, Any]]:
    """Every ledger entry of the user, oldest first (reconciliation)."""
    entries: list[dict[str, Any]] = []
    cursor: PageKey | None = None
    while True:
        page, cursor = ledger_page(user_id, limit=1000, cursor=cursor)
        entries.extend(page)
        if not cursor:
            return entries[::-1]
