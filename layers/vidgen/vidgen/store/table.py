"""The single DynamoDB table: its key design, and the one way this service writes transactions.

Key design (also in the README):

| item              | PK                         | SK                  | indexes                                   |
|-------------------|----------------------------|---------------------|-------------------------------------------|
| user profile      | USER#<user_id>             | PROFILE             | balance, active_jobs                      |
| ledger entry      | USER#<user_id>             | LEDGER#<ulid>       | time-ordered by the ulid                  |
| grant reference   | USER#<user_id>             | GRANT#<reference>   | makes a grant happen once                 |
| API key           | APIKEY#<sha256 of key>     | APIKEY              | user_id                                   |
| job               | JOB#<job_id>               | JOB                 | UserJobs (owner, created_key), Sweep      |
| idempotency key   | IDEMPOTENCY#<user>#<hash>  | IDEMPOTENCY         | expires_at (TTL)                          |
| storyboard        | STORYBOARD#<id>            | STORYBOARD          | UserStoryboards (storyboard_owner,        |
|                   |                            |                     | created_key), Sweep                       |

`Sweep` is sparse: only active jobs and storyboards (as `storyboard.<status>`) carry `sweep_status`/`sweep_at`,
so a sweep reads what needs attention and nothing else.
"""

from __future__ import annotations

import hashlib
import random
import time
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Mapping

import boto3
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from vidgen.aws import CLIENT_CONFIG
from vidgen.config import get_settings
from vidgen.errors import StoreError, TransactionCanceled

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBServiceResource
    from mypy_boto3_dynamodb.service_resource import Table

USER_JOBS_INDEX = 'UserJobs'
SWEEP_INDEX = 'Sweep'
USER_STORYBOARDS_INDEX = 'UserStoryboards'


def user_key(user_id: str) -> dict[str, str]:
    return {'PK': f'USER#{user_id}', 'SK': 'PROFILE'}


def ledger_key(user_id: str, entry_id: str) -> dict[str, str]:
    return {'PK': f'USER#{user_id}', 'SK': f'LEDGER#{entry_id}'}


def grant_key(user_id: str, reference_id: str) -> dict[str, str]:
    return {'PK': f'USER#{user_id}', 'SK': f'GRANT#{reference_id}'}


def api_key_key(key_hash: str) -> dict[str, str]:
    return {'PK': f'APIKEY#{key_hash}', 'SK': 'APIKEY'}


def job_key(job_id: str) -> dict[str, str]:
    return {'PK': f'JOB#{job_id}', 'SK': 'JOB'}


def storyboard_key(storyboard_id: str) -> dict[str, str]:
    return {'PK': f'STORYBOARD#{storyboard_id}', 'SK': 'STORYBOARD'}


def idempotency_key(user_id: str, key: str) -> dict[str, str]:
    digest = hashlib.sha256(key.encode()).hexdigest()
    return {'PK': f'IDEMPOTENCY#{user_id}#{digest}', 'SK': 'IDEMPOTENCY'}


@lru_cache(maxsize=1)
def _resource() -> DynamoDBServiceResource:
    return boto3.resource('dynamodb', config=CLIENT_CONFIG)


def table() -> Table:
    return _table(get_settings().table_name)


@lru_cache(maxsize=4)
def _table(name: str) -> Table:
    # boto3 builds a new resource class for every Table() (a quarter of a millisecond, dozens of times per
    # job); the object holds only its name and the resource's client, so one per name serves every call.
    return _resource().Table(name)


def client() -> Any:
    """The resource's client: the low-level calls, but taking and returning Python values (the resource
    installs its serializer on it). The stubs type it as the wire-format client, whose items are
    `{'S': ...}` maps, so it stays untyped here: a real boundary."""
    return _resource().meta.client


def number(value: object) -> int:
    """A stored whole number as Python reads it (boto3 returns DynamoDB numbers as Decimal)."""
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return int(value)
    raise StoreError(f'A stored number is a {type(value).__name__}.')


def plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; the service only stores whole numbers and ratios."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def storable(value: Any) -> Any:
    """The inverse of `plain` for writes: floats become Decimal (boto3 refuses floats)."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable(v) for v in value]
    return value


_MAX_CONFLICT_RETRIES = 8


def transact(items: dict[str, dict[str, Any]]) -> None:
    """Write all items or none. `items` maps each item's role in the transaction ('debit', 'job', ...) to
    the item; every item should carry a condition, and each asks for ALL_OLD on failure.

    Retries only `TransactionConflict` (another transaction touched the same item at the same time),
    with jittered backoff; a failed condition is a business outcome and raises `TransactionCanceled`, whose
    reasons are keyed by role, so the caller's reading does not depend on the order of the items.
    """
    roles = list(items)
    ops = list(items.values())
    for op in ops:
        next(iter(op.values())).setdefault('ReturnValuesOnConditionCheckFailure', 'ALL_OLD')
    for attempt in range(_MAX_CONFLICT_RETRIES + 1):
        try:
            client().transact_write_items(TransactItems=ops)
            return
        except ClientError as exc:
            if exc.response['Error']['Code'] != 'TransactionCanceledException':
                raise StoreError('The database refused a write; try again.') from exc
            reasons = exc.response.get('CancellationReasons', [])
            codes = tuple(r.get('Code', 'None') for r in reasons)
            if 'ConditionalCheckFailed' in codes or attempt == _MAX_CONFLICT_RETRIES:
                if 'ConditionalCheckFailed' not in codes:
                    raise StoreError('The database was too busy to take the write; try again.') from exc
                raise TransactionCanceled(dict(zip(roles, codes, strict=False)),
                                          dict(zip(roles, (_old_item(r) for r in reasons), strict=False))) from exc
            time.sleep(random.uniform(0, 0.05 * 2**attempt))


_DESERIALIZER = TypeDeserializer()


def _old_item(reason: Mapping[str, Any]) -> dict[str, Any] | None:
    """Cancellation reasons are error payloads, which boto3 does not convert: deserialize them here."""
    raw = reason.get('Item')
    if not raw:
        return None
    item: dict[str, Any] = plain({k: _DESERIALIZER.deserialize(v) for k, v in raw.items()})
    return item
