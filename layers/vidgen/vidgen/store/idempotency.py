"""Idempotency-Key records: which job a key created, for which request, until when.

A record is written only inside a submit's transaction (`vidgen.store.ledger.submit_debit`), conditioned on
no live record existing; DynamoDB's TTL deletes it some time after `expires_at`, so readers check the expiry
themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from vidgen.store.table import idempotency_key, number, table


@dataclass(frozen=True)
class IdempotencyClaim:
    """What a submit with an Idempotency-Key asks to record."""

    key: str
    request_hash: str
    ttl_seconds: int


@dataclass(frozen=True)
class IdempotencyRecord:
    job_id: str  # '' when the key created a storyboard
    request_hash: str
    expires_at: int
    storyboard_id: str | None = None


def claim_op(owner: str, claim: IdempotencyClaim, job_id: str, now: float, *,
             field: str = 'job_id') -> dict[str, Any]:
    """The transaction item that records the key, unless a live record holds it. `field` names what the key
    created: `job_id`, or `storyboard_id` (then `job_id` is the storyboard's id)."""
    # Rounded up: a key is kept at least the whole TTL (int() cut up to a second off the 24 hours).
    expires_at = math.ceil(now + claim.ttl_seconds)
    item = idempotency_key(owner, claim.key) | {field: job_id, 'request_hash': claim.request_hash,
                                                 'expires_at': expires_at}
    return {'Put': {'TableName': table().name, 'Item': item,
                    'ConditionExpression': 'attribute_not_exists(PK) OR expires_at < :now',
                    'ExpressionAttributeValues': {':now': int(now)}}}


def find_live(owner: str, key: str, now: float) -> IdempotencyRecord | None:
    """The key's record if it is still live (TTL deletion lags, so the expiry is checked here too)."""
    item = table().get_item(Key=idempotency_key(owner, key), ConsistentRead=True).get('Item')
    if item is None or number(item['expires_at']) < now:
        return None
    return IdempotencyRecord(job_id=str(item.get('job_id', '')), request_hash=str(item['request_hash']),
                             expires_at=number(item['expires_at']), storyboard_id=_text_or_none(item.get('storyboard_id')))


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)
