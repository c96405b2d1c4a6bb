"""Usage aggregates: counters written in the very transactions that move the credits they count.

A job is counted in one *cell*: its owner, the UTC day it was submitted (`usage_day`), its model, kind
(t2v, i2v, ...), duration and the API key that submitted it (a model's type, video or image, follows from
the model). Every grouping of GET /v1/usage is a sum of cells, so the report reads days x cells items and
never a job. Three items carry the same counters (and nothing else: their facts are in their keys):

| item                 | PK                       | SK                                          |
|----------------------|--------------------------|---------------------------------------------|
| the owner's cell     | USAGE#<owner>            | DAY#<day>#<model>#<kind>#<duration>#<key>   |
| a service-wide cell  | USAGE#SERVICE#<shard>    | DAY#<day>#<model>#<kind>#<duration>         |
| the owner's day      | USAGE#USERS#<shard>      | DAY#<day>#<owner>                           |

The service-wide cells and the owners' days are written by every user's traffic, so each is spread over
`SHARDS` partitions (the service cell by the job's id, the owner's day by the owner): no single partition
takes the whole service's writes, and a reader sums the shards.

The counters only ever grow (`ADD`), by the deltas below, each added in the transaction that makes it true:
the submit's debit adds `jobs` and `credits_charged`; the settle adds one of `succeeded`/`failed`/`canceled`,
`credits_refunded` with the refund's ledger entry, and for a success its `output_bytes`, its provider cost
and one count in the histogram bucket of its processing time. `active` is `jobs` minus the ended ones.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from typing import Any

from boto3.dynamodb.conditions import Attr, Key

from vidgen.store.table import plain, table

SHARDS = 16
# Upper bounds (seconds, inclusive) of the processing-time histogram's buckets; one more bucket holds the
# rest. Fixed for good: a stored count means "this many jobs took at most this long", so changing a bound
# would change what old counts mean.
SECONDS_BOUNDS: tuple[int, ...] = (15, 30, 45, 60, 90, 120, 180, 240, 300, 450, 600, 900, 1200, 1800, 3600)
BUCKETS = len(SECONDS_BOUNDS) + 1
# Numbers the counters' names stand for, in this order everywhere (deltas, items, sums).
COUNTERS: tuple[str, ...] = ('jobs', 'succeeded', 'failed', 'canceled', 'credits_charged', 'credits_refunded',
                             'output_bytes', 'cost_micro_usd') + tuple(f'h{i:02d}' for i in range(BUCKETS))
# What an owner's day counts (for the top users).
DAY_COUNTERS: tuple[str, ...] = ('jobs', 'credits_charged', 'credits_refunded', 'cost_micro_usd')
_NO_VALUE = '-'
_FIRST_DAY, _LAST_DAY = '0000-00-00', '9999-99-99'  # bounds of every day, for whole-history reads


@dataclass(frozen=True)
class Cell:
    """What a job is counted under. `duration` is None for a job without one (images, fixed-length models);
    `api_key_id` is None for a job submitted before keys had ids."""

    day: str  # YYYY-MM-DD, UTC
    model: str
    kind: str
    type: str  # video | image
    duration: int | None
    api_key_id: str | None

    def sort_key(self) -> str:
        return f'{self.service_sort_key()}#{self.api_key_id or _NO_VALUE}'

    def service_sort_key(self) -> str:
        duration = _NO_VALUE if self.duration is None else str(self.duration)
        return f'DAY#{self.day}#{self.model}#{self.kind}#{duration}'

    def facts(self) -> dict[str, Any]:
        return {'day': self.day, 'model': self.model, 'kind': self.kind, 'type': self.type,
                'duration': self.duration, 'api_key_id': self.api_key_id}

    @classmethod
    def from_sort_key(cls, sort_key: str) -> 'Cell':
        """The cell a user's or a service-wide sort key names (no part of one holds a '#': model ids, kinds and
        key ids never do). The facts live in the key only: an item holds nothing but its counters, which keeps
        every write a short ADD."""
        _, day, model, kind, duration, *key = sort_key.split('#')
        api_key_id = key[0] if key and key[0] != _NO_VALUE else None
        return cls(day=day, model=model, kind=kind, type=type_of(kind),
                   duration=None if duration == _NO_VALUE else int(duration), api_key_id=api_key_id)


IMAGE_KINDS = ('t2i', 'i2i')


def type_of(kind: str) -> str:
    """video or image, from a job's kind."""
    return 'image' if kind in IMAGE_KINDS else 'video'


def bucket_of(seconds: float) -> int:
    """The histogram bucket a processing time falls in."""
    for index, bound in enumerate(SECONDS_BOUNDS):
        if seconds <= bound:
            return index
    return len(SECONDS_BOUNDS)


@dataclass(frozen=True)
class Delta:
    """What one write adds to a cell's counters (zeros are not written)."""

    jobs: int = 0
    succeeded: int = 0
    failed: int = 0
    canceled: int = 0
    credits_charged: int = 0
    credits_refunded: int = 0
    output_bytes: int = 0
    cost_micro_usd: int = 0
    seconds_bucket: int | None = None  # the processing-time bucket of the successes

    def counters(self) -> dict[str, int]:
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != 'seconds_bucket'}
        if self.seconds_bucket is not None:  # every success of this delta took that long
            values[f'h{self.seconds_bucket:02d}'] = self.succeeded
        return {k: v for k, v in values.items() if v}


def submitted(count: int, credits: int) -> Delta:
    """`count` jobs paid for with `credits` in all."""
    return Delta(jobs=count, credits_charged=credits)


def ended(status: str, *, count: int = 1, refunded: int = 0, output_bytes: int = 0, cost_micro_usd: int = 0,
          seconds: float | None = None) -> Delta:
    """`count` jobs ended as `status`; a success brings its outputs' size, provider cost and processing time."""
    if status == 'succeeded':
        return Delta(succeeded=count, credits_refunded=refunded, output_bytes=output_bytes,
                     cost_micro_usd=cost_micro_usd, seconds_bucket=None if seconds is None else bucket_of(seconds))
    if status not in ('failed', 'canceled'):
        raise ValueError(f'a job does not end as {status!r}')
    return Delta(**{status: count}, credits_refunded=refunded)


def shard_of(text: str) -> int:
    """A stable shard for an id (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], 'big') % SHARDS


def user_cell_key(owner: str, cell: Cell) -> dict[str, str]:
    return {'PK': f'USAGE#{owner}', 'SK': cell.sort_key()}


def service_cell_key(shard: int, cell: Cell) -> dict[str, str]:
    return {'PK': f'USAGE#SERVICE#{shard:02d}', 'SK': cell.service_sort_key()}


def user_day_key(owner: str, day: str) -> dict[str, str]:
    return {'PK': f'USAGE#USERS#{shard_of(owner):02d}', 'SK': f'DAY#{day}#{owner}'}


def transaction_items(owner: str, cell: Cell, delta: Delta, *, spread_by: str,
                      table_name: str | None = None) -> dict[str, dict[str, Any]]:
    """The items, by role, that add `delta` to the owner's cell, to a shard of the service-wide cell (chosen
    by `spread_by`, a job or storyboard id) and to the owner's day. They carry no condition: counting never
    refuses, the transaction's other items decide whether it happens at all."""
    name = table_name or table().name
    counters = delta.counters()
    day_counters = {k: v for k, v in counters.items() if k in DAY_COUNTERS}
    items = {
        'usage': _add(name, user_cell_key(owner, cell), counters),
        'usage_service': _add(name, service_cell_key(shard_of(spread_by), cell), counters),
    }
    if day_counters:
        items['usage_day'] = _add(name, user_day_key(owner, cell.day), day_counters)
    return items


def _add(table_name: str, key: dict[str, str], counters: dict[str, int]) -> dict[str, Any]:
    # Counter names are plain words, none of them a DynamoDB reserved word, so no name placeholders.
    expression = 'ADD ' + ', '.join(f'{name} :{name}' for name in counters)
    return {'Update': {'TableName': table_name, 'Key': key, 'UpdateExpression': expression,
                       'ExpressionAttributeValues': {f':{name}': amount for name, amount in counters.items()}}}


# --- reads ------------------------------------------------------------------------------------------------------


def user_cells(owner: str, first_day: str, last_day: str) -> list[dict[str, Any]]:
    """The owner's cells of the days first_day..last_day (inclusive): each item's counters, `SK` and facts."""
    return [with_facts(item) for item in _query_days(f'USAGE#{owner}', first_day, last_day)]


def service_cells(first_day: str, last_day: str) -> list[dict[str, Any]]:
    """Every shard's service-wide cells of the days first_day..last_day."""
    cells: list[dict[str, Any]] = []
    for shard in range(SHARDS):
        cells.extend(with_facts(item) for item in _query_days(f'USAGE#SERVICE#{shard:02d}', first_day, last_day))
    return cells


def user_days(first_day: str, last_day: str) -> list[dict[str, Any]]:
    """Every owner's day totals of the days first_day..last_day, from every shard, with `day` and `user_id`."""
    days: list[dict[str, Any]] = []
    for shard in range(SHARDS):
        days.extend(_day_facts(item) for item in _query_days(f'USAGE#USERS#{shard:02d}', first_day, last_day))
    return days


def with_facts(item: dict[str, Any]) -> dict[str, Any]:
    return item | Cell.from_sort_key(str(item['SK'])).facts()


def _day_facts(item: dict[str, Any]) -> dict[str, Any]:
    _, day, user_id = str(item['SK']).split('#', 2)
    return item | {'day': day, 'user_id': user_id}


def every_user_cell() -> list[dict[str, Any]]:
    """Every user's cells of every day, from a scan of the table (the service-wide reconciliation only)."""
    kwargs: dict[str, Any] = {'FilterExpression': Attr('PK').begins_with('USAGE#')
                              & ~Attr('PK').begins_with('USAGE#SERVICE#') & ~Attr('PK').begins_with('USAGE#USERS#')}
    items: list[dict[str, Any]] = []
    while True:
        response = table().scan(**kwargs)
        items.extend(with_facts(plain(item)) for item in response.get('Items', []))
        if 'LastEvaluatedKey' not in response:
            return items
        kwargs['ExclusiveStartKey'] = response['LastEvaluatedKey']


def all_service_cells() -> list[dict[str, Any]]:
    """Every service-wide cell of every day (reconciliation)."""
    return service_cells(_FIRST_DAY, _LAST_DAY)


def user_days_of(owner: str) -> list[dict[str, Any]]:
    """All of one owner's day totals (reconciliation)."""
    days = (_day_facts(item) for item in _query_days(f'USAGE#USERS#{shard_of(owner):02d}', _FIRST_DAY, _LAST_DAY))
    return [item for item in days if item['user_id'] == owner]


def all_user_cells(owner: str) -> list[dict[str, Any]]:
    return user_cells(owner, _FIRST_DAY, _LAST_DAY)


def _query_days(partition: str, first_day: str, last_day: str) -> list[dict[str, Any]]:
    # '~' sorts after every character of a model id, kind or key id: the whole of last_day is in range.
    condition = Key('PK').eq(partition) & Key('SK').between(f'DAY#{first_day}', f'DAY#{last_day}#~')
    kwargs: dict[str, Any] = {'KeyConditionExpression': condition}
    items: list[dict[str, Any]] = []
    while True:
        response = table().query(**kwargs)
        items.extend(plain(item) for item in response.get('Items', []))
        if 'LastEvaluatedKey' not in response:
            return items
        kwargs['ExclusiveStartKey'] = response['LastEvaluatedKey']
