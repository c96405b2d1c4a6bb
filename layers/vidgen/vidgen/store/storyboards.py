"""Storyboard records, and every write that moves a storyboard's money or state.

A storyboard holds `scene_count` scenes, each paid for at `price` credits. Its money moves in three places,
each one transaction with its ledger entries and its usage counters (`vidgen.store.usage`) in it:

- `submit`: the owner pays for every scene at once (`balance >= credits`, room for `scene_count` more active
  jobs), the storyboard is created with its scene job ids chosen up front, and one debit entry per scene
  (naming that scene's job id) is written. Nothing is written when any condition fails.
- `create_scene_jobs`: `writing -> generating`, and one ordinary job per scene, already paid (the submit
  debited it and took its active-job slot), so from here each scene's credits follow its job: a failed or
  canceled job refunds itself once through the job's own settle transaction.
- `cancel_writing`: `writing -> canceled` before any job exists: every scene is refunded in one transaction.

An ended storyboard with a `webhook_url` stays in the Sweep index (as `storyboard.notify`) until its one
notification was sent (`notified`), so a crash between its final status and the notification is made good by
the sweep.

So at every moment `balance == sum(ledger)`, and a storyboard's credits are held either by the storyboard
(while `writing`) or by its jobs (after), never by both and never by neither.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, NoReturn

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from vidgen import ids
from vidgen.errors import (
    NotFoundError,
    StoreError,
    StoryboardMovedOn,
    StoryboardReplayed,
    TransactionCanceled,
)
from vidgen.store import jobs as job_store
from vidgen.store import usage
from vidgen.store.idempotency import IdempotencyClaim, claim_op
from vidgen.store.ledger import debit_op, entry_op, raise_submit_refusal
from vidgen.store.pages import PageKey
from vidgen.store.table import (
    SWEEP_INDEX,
    USER_STORYBOARDS_INDEX,
    plain,
    storable,
    storyboard_key,
    table,
    transact,
    user_key,
)

WRITING, GENERATING = 'writing', 'generating'
ACTIVE_STATUSES = (WRITING, GENERATING)
NOTIFY = 'notify'  # not a status: the Sweep index's mark of an ended storyboard whose webhook is not sent yet
# Storyboards share the sparse Sweep index with jobs; their hash keys cannot collide with a job status.
SWEEP_PREFIX = 'storyboard.'


@dataclass
class Scene:
    index: int
    title: str
    description: str
    prompt: str


@dataclass
class Storyboard:
    id: str
    owner: str
    status: str
    product: dict[str, str]  # name, description, image (an s3:// reference or the client's URL)
    model: str
    provider: str
    provider_model: str
    kind: str  # the scene jobs' mode: t2v or i2v
    params: dict[str, Any]
    scene_count: int
    price: int  # credits per scene
    credits: int  # scene_count * price, debited at submit
    job_ids: list[str]
    created_at: float
    updated_at: float
    style: str | None = None
    webhook_url: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    request_hash: str | None = None
    scenes: list[Scene] = field(default_factory=list)
    scenes_source: str | None = None  # 'llm' | 'fallback' once written
    scenes_note: str | None = None
    refunded_credits: int = 0  # refunded by the storyboard itself (canceled while writing)
    completed_at: float | None = None
    api_key_id: str | None = None  # the key that submitted it; its scene jobs carry it too
    provider_cost_micro_usd: int = 0  # what the provider charges for one scene

    @property
    def usage_day(self) -> str:
        """The day the storyboard's scenes are counted under: the day they were paid for."""
        return ids.day(self.created_at)

    def usage_cell(self) -> usage.Cell:
        """The cell its scenes are counted in (the same one their jobs settle in)."""
        duration = self.params.get('duration')
        return usage.Cell(day=self.usage_day, model=self.model, kind=self.kind, type=usage.type_of(self.kind),
                          duration=duration if isinstance(duration, int) and not isinstance(duration, bool) else None,
                          api_key_id=self.api_key_id)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> 'Storyboard':
        data = plain(item)
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in known and k != 'owner'}
        values['owner'] = data['storyboard_owner']
        values['scenes'] = [Scene(**s) for s in data.get('scenes', [])]
        return cls(**values)

    def to_item(self) -> dict[str, Any]:
        item = {k: v for k, v in asdict(self).items() if v is not None and k != 'owner'}
        item.update(storyboard_key(self.id))
        # Not `owner`: that is the UserJobs index's hash key, and a storyboard is not a job.
        item['storyboard_owner'] = self.owner
        item['created_key'] = f'{self.created_at:017.6f}#{self.id}'
        item['sweep_status'] = SWEEP_PREFIX + self.status
        stored: dict[str, Any] = storable(item)
        return stored


# --- submit ---------------------------------------------------------------------------------------------------


def submit(storyboard: Storyboard, *, max_active_jobs: int, sweep_at: float,
           idempotency: IdempotencyClaim | None) -> None:
    """Debit every scene of a new storyboard and create it, in one transaction (see the module docstring).

    Raises, in this order of precedence: `StoryboardReplayed` (the Idempotency-Key is live), `UnknownUser`,
    `InsufficientCredits(balance)`, `ActiveCapReached(active)` (no room for every scene).
    """
    sb = storyboard
    items: dict[str, dict[str, Any]] = {
        'debit': debit_op(sb.owner, sb.credits, slots=sb.scene_count, max_active_jobs=max_active_jobs),
        'storyboard': _put_new(sb.to_item() | {'sweep_at': storable(float(int(sweep_at)))}),
    }
    if idempotency:
        items['idempotency'] = claim_op(sb.owner, idempotency, sb.id, sb.created_at, field='storyboard_id')
    for index, job_id in enumerate(sb.job_ids):
        items[f'entry{index}'] = entry_op(sb.owner, type_='debit', amount=-sb.price, at=sb.created_at,
                                          job_id=job_id, storyboard_id=sb.id)
    items |= usage.transaction_items(sb.owner, sb.usage_cell(), usage.submitted(sb.scene_count, sb.credits),
                                     spread_by=sb.id)
    try:
        transact(items)
    except TransactionCanceled as exc:
        raise_submit_refusal(exc, sb.owner, sb.credits, lambda record: StoryboardReplayed(
            str(record.get('storyboard_id', '')), str(record['request_hash'])))


# --- the state machine's writes ---------------------------------------------------------------------------------


def save_scenes(storyboard_id: str, scenes: list[Scene], *, source: str, note: str | None, now: float,
                sweep_at: float) -> None:
    """Store the written scenes, once, while the storyboard is still `writing`. Raises `StoryboardMovedOn` when
    it is not (canceled) or the scenes were already written (a retried step): the first writer wins."""
    values = {':scenes': storable([asdict(s) for s in scenes]), ':source': source, ':now': storable(now),
              ':writing': WRITING, ':sweep_at': storable(float(int(sweep_at)))}
    expression = 'SET scenes = :scenes, scenes_source = :source, updated_at = :now, sweep_at = :sweep_at'
    if note:
        expression += ', scenes_note = :note'
        values[':note'] = note
    try:
        table().update_item(
            Key=storyboard_key(storyboard_id), UpdateExpression=expression,
            ConditionExpression='#status = :writing AND attribute_not_exists(scenes_source)',
            ExpressionAttributeNames={'#status': 'status'}, ExpressionAttributeValues=values)
    except ClientError as exc:
        _raise_moved_on_or_store_error(exc, storyboard_id)


def create_scene_jobs(storyboard: Storyboard, jobs: list[job_store.Job], *, now: float, job_sweep_at: float,
                      sweep_at: float) -> None:
    """`writing -> generating` and one job per scene, in one transaction: no scene is ever without its job.
    The jobs are paid for already (see `submit`). Raises `StoryboardMovedOn` when the storyboard is no longer
    `writing` (or has no scenes yet)."""
    sb = storyboard
    items: dict[str, dict[str, Any]] = {'storyboard': {'Update': {
        'TableName': table().name, 'Key': storyboard_key(sb.id),
        'UpdateExpression': 'SET #status = :generating, sweep_status = :sweep_status, sweep_at = :sweep_at, '
                            'updated_at = :now',
        'ConditionExpression': '#status = :writing AND attribute_exists(scenes_source)',
        'ExpressionAttributeNames': {'#status': 'status'},
        'ExpressionAttributeValues': {':generating': GENERATING, ':writing': WRITING, ':now': storable(now),
                                      ':sweep_status': SWEEP_PREFIX + GENERATING,
                                      ':sweep_at': storable(float(int(sweep_at)))},
    }}}
    items |= {f'job{index}': job_store.put_item_op(job, sweep_at=job_sweep_at) for index, job in enumerate(jobs)}
    try:
        transact(items)
    except TransactionCanceled as exc:
        if exc.refused('storyboard'):
            raise StoryboardMovedOn(sb.id) from exc
        raise


def cancel_writing(storyboard: Storyboard, *, now: float, notify_at: float | None = None) -> None:
    """Cancel a storyboard whose scene jobs do not exist yet: `writing -> canceled`, every scene refunded and
    its active-job slot freed, in one transaction. Raises `StoryboardMovedOn` when it was no longer `writing`.
    `notify_at`: see `finish`."""
    sb = storyboard
    sweep_update, sweep_values = _after_end(notify_at)
    items: dict[str, dict[str, Any]] = {
        'storyboard': {'Update': {
            'TableName': table().name, 'Key': storyboard_key(sb.id),
            'UpdateExpression': 'SET #status = :canceled, updated_at = :now, completed_at = :now, '
                                'refunded_credits = :credits' + sweep_update,
            'ConditionExpression': '#status = :writing',
            'ExpressionAttributeNames': {'#status': 'status'},
            'ExpressionAttributeValues': {':canceled': 'canceled', ':writing': WRITING, ':now': storable(now),
                                          ':credits': sb.credits} | sweep_values,
        }},
        'owner': {'Update': {
            'TableName': table().name, 'Key': user_key(sb.owner),
            'UpdateExpression': 'SET balance = balance + :credits ADD active_jobs :minus',
            'ConditionExpression': 'attribute_exists(PK)',
            'ExpressionAttributeValues': {':credits': sb.credits, ':minus': -sb.scene_count},
        }},
    }
    for index, job_id in enumerate(sb.job_ids):
        items[f'entry{index}'] = entry_op(sb.owner, type_='refund', amount=sb.price, at=now, job_id=job_id,
                                          storyboard_id=sb.id, reason='CANCELED')
    items |= usage.transaction_items(sb.owner, sb.usage_cell(),
                                     usage.ended('canceled', count=sb.scene_count, refunded=sb.credits),
                                     spread_by=sb.id)
    try:
        transact(items)
    except TransactionCanceled as exc:
        if exc.refused('storyboard'):
            raise StoryboardMovedOn(sb.id) from exc
        raise


def finish(storyboard_id: str, status: str, *, now: float, from_statuses: tuple[str, ...] = (GENERATING,),
           notify_at: float | None = None) -> None:
    """Give a storyboard its final status (once: only from `from_statuses`). Raises `StoryboardMovedOn` when it
    had moved on. With `notify_at` (it has a webhook), it stays in the Sweep index as `storyboard.notify`, due
    then, until `notified`; without, it leaves the index."""
    sweep_update, sweep_values = _after_end(notify_at)
    values: dict[str, Any] = {':status': status, ':now': storable(now)} | sweep_values
    values |= {f':from{i}': s for i, s in enumerate(from_statuses)}
    try:
        table().update_item(
            Key=storyboard_key(storyboard_id),
            UpdateExpression='SET #status = :status, updated_at = :now, completed_at = :now' + sweep_update,
            ConditionExpression=f'#status IN ({", ".join(f":from{i}" for i in range(len(from_statuses)))})',
            ExpressionAttributeNames={'#status': 'status'}, ExpressionAttributeValues=values)
    except ClientError as exc:
        _raise_moved_on_or_store_error(exc, storyboard_id)


def notified(storyboard_id: str) -> None:
    """The ended storyboard's notification was sent (or can never be): it leaves the Sweep index."""
    try:
        table().update_item(
            Key=storyboard_key(storyboard_id), UpdateExpression='REMOVE sweep_status, sweep_at',
            ConditionExpression='sweep_status = :notify',
            ExpressionAttributeValues={':notify': SWEEP_PREFIX + NOTIFY})
    except ClientError as exc:
        if exc.response['Error']['Code'] != 'ConditionalCheckFailedException':  # already marked
            raise StoreError('The database refused a storyboard update; try again.') from exc


def awaiting_notification(storyboard_id: str) -> bool:
    """Whether the ended storyboard's notification is still to be sent (a consistent read of its mark)."""
    item = table().get_item(Key=storyboard_key(storyboard_id), ConsistentRead=True,
                            ProjectionExpression='sweep_status').get('Item') or {}
    return item.get('sweep_status') == SWEEP_PREFIX + NOTIFY


def defer_notify(storyboard_id: str, sweep_at: float) -> None:
    """Look again later at an ended storyboard whose notification is still with its execution."""
    try:
        table().update_item(
            Key=storyboard_key(storyboard_id), UpdateExpression='SET sweep_at = :at',
            ConditionExpression='sweep_status = :notify',
            ExpressionAttributeValues={':at': storable(float(int(sweep_at))), ':notify': SWEEP_PREFIX + NOTIFY})
    except ClientError as exc:
        if exc.response['Error']['Code'] != 'ConditionalCheckFailedException':
            raise StoreError('The database refused a storyboard update; try again.') from exc


def defer_sweep(storyboard_id: str, status: str, sweep_at: float) -> None:
    """Push an active storyboard's next sweep check later."""
    try:
        table().update_item(
            Key=storyboard_key(storyboard_id), UpdateExpression='SET sweep_at = :at',
            ConditionExpression='#status = :status', ExpressionAttributeNames={'#status': 'status'},
            ExpressionAttributeValues={':at': storable(float(int(sweep_at))), ':status': status})
    except ClientError as exc:
        if exc.response['Error']['Code'] != 'ConditionalCheckFailedException':
            raise StoreError('The database refused a storyboard update; try again.') from exc


# --- reads ----------------------------------------------------------------------------------------------------


def get(storyboard_id: str) -> Storyboard:
    item = table().get_item(Key=storyboard_key(storyboard_id), ConsistentRead=True).get('Item')
    if item is None:
        raise NotFoundError(f'No storyboard {storyboard_id!r}.')
    return Storyboard.from_item(item)


def find(storyboard_id: str) -> Storyboard | None:
    try:
        return get(storyboard_id)
    except NotFoundError:
        return None


def scene_jobs(storyboard: Storyboard) -> dict[str, job_store.Job]:
    """The storyboard's scene jobs that exist, by id (at most six: one consistent read each)."""
    found = (job_store.find_job(job_id) for job_id in storyboard.job_ids)
    return {job.id: job for job in found if job is not None}


def list_for_owner(owner: str, *, limit: int, cursor: PageKey | None) -> tuple[list[Storyboard], PageKey | None]:
    kwargs: dict[str, Any] = {'IndexName': USER_STORYBOARDS_INDEX,
                              'KeyConditionExpression': Key('storyboard_owner').eq(owner),
                              'ScanIndexForward': False, 'Limit': limit}
    if cursor:
        kwargs['ExclusiveStartKey'] = cursor
    response = table().query(**kwargs)
    return [Storyboard.from_item(i) for i in response.get('Items', [])], response.get('LastEvaluatedKey')


def all_ids_of(owner: str) -> list[str]:
    """Every storyboard id of the owner (reconciliation; read each one again, the index may lag)."""
    kwargs: dict[str, Any] = {'IndexName': USER_STORYBOARDS_INDEX,
                              'KeyConditionExpression': Key('storyboard_owner').eq(owner), 'ProjectionExpression': 'PK'}
    found: list[str] = []
    while True:
        response = table().query(**kwargs)
        found.extend(str(item['PK']).removeprefix('STORYBOARD#') for item in response.get('Items', []))
        if 'LastEvaluatedKey' not in response:
            return found
        kwargs['ExclusiveStartKey'] = response['LastEvaluatedKey']


def needing_attention(status: str, now: float, limit: int) -> list[str]:
    """Ids of storyboards in `status` whose `sweep_at` has passed, from the sparse Sweep index."""
    response = table().query(
        IndexName=SWEEP_INDEX,
        KeyConditionExpression=Key('sweep_status').eq(SWEEP_PREFIX + status)
        & Key('sweep_at').lte(storable(float(int(now)))),
        Limit=limit)
    return [str(item['PK']).removeprefix('STORYBOARD#') for item in response.get('Items', [])]


# --- helpers --------------------------------------------------------------------------------------------------


def _after_end(notify_at: float | None) -> tuple[str, dict[str, Any]]:
    """The update clause (and its values) that takes an ending storyboard out of the Sweep index, or marks it
    `storyboard.notify` due at `notify_at`."""
    if notify_at is None:
        return ' REMOVE sweep_status, sweep_at', {}
    return (', sweep_status = :sweep_notify, sweep_at = :sweep_notify_at',
            {':sweep_notify': SWEEP_PREFIX + NOTIFY, ':sweep_notify_at': storable(float(int(notify_at)))})


def _put_new(item: dict[str, Any]) -> dict[str, Any]:
    return {'Put': {'TableName': table().name, 'Item': item, 'ConditionExpression': 'attribute_not_exists(PK)'}}


def _raise_moved_on_or_store_error(exc: ClientError, storyboard_id: str) -> NoReturn:
    if exc.response['Error']['Code'] == 'ConditionalCheckFailedException':
        raise StoryboardMovedOn(storyboard_id) from exc
    raise StoreError('The database refused a storyboard update; try again.') from exc
