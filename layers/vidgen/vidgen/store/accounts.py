"""Users and their API keys. Keys are stored only as SHA-256 hashes: a key is 256 random bits, so a fast
hash is enough (no dictionary to attack), and lookup stays one GetItem.

A user may hold several keys. Each key is two items written and revoked together in one transaction: the
lookup item (`APIKEY#<hash>`, what a request's key is checked against) and the owner's record of it
(`USER#<user>` / `KEY#<key_id>`: label, prefix, dates, never the key), which lists a user's keys in one
query. A revoked key keeps both items with `revoked_at`, so usage by that key still has a name.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.conditions import Attr, Key

from vidgen import ids
from vidgen.errors import TooManyKeys, TransactionCanceled, UnknownKey, UnknownUser, UserExists
from vidgen.store.ledger import entry_op
from vidgen.store.pages import PageKey
from vidgen.store.table import api_key_key, plain, table, transact, user_key

API_KEY_PREFIX = 'vg_'
# How much of a key its owner's list shows: enough to tell keys apart, far too little to guess the rest.
SHOWN_PREFIX_CHARS = 8
# Keys a user may hold at once (revoked ones do not count).
MAX_ACTIVE_KEYS = 20
_SCAN_PAGE_ITEMS = 500  # items a scan reads per call while looking for users


@dataclass(frozen=True)
class ApiKeyRecord:
    key_id: str
    label: str | None
    prefix: str
    created_at: str
    revoked_at: str | None


@dataclass(frozen=True)
class Caller:
    """Who a valid key belongs to, and which of their keys it is."""

    user_id: str
    key_id: str | None  # None: a key issued before keys had ids


def hash_api_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    return f'key_{ids.ulid().lower()}'


def user_key_record_key(user_id: str, key_id: str) -> dict[str, str]:
    return {'PK': user_key(user_id)['PK'], 'SK': f'KEY#{key_id}'}


def _key_items(user_id: str, api_key: str, key_id: str, label: str | None, at: str) -> dict[str, dict[str, Any]]:
    digest = hash_api_key(api_key)
    record = {'key_id': key_id, 'key_hash': digest, 'prefix': api_key[:SHOWN_PREFIX_CHARS], 'created_at': at}
    if label:
        record['label'] = label
    return {
        'api_key': {'Put': {'TableName': table().name,
                            'Item': api_key_key(digest) | {'user_id': user_id, 'key_id': key_id, 'created_at': at},
                            'ConditionExpression': 'attribute_not_exists(PK)'}},
        'key_record': {'Put': {'TableName': table().name, 'Item': user_key_record_key(user_id, key_id) | record,
                               'ConditionExpression': 'attribute_not_exists(PK)'}},
    }


def create_user(user_id: str, credits: int, now: float) -> str:
    """Create the user, their first API key (labelled 'default') and (if any) the opening grant; return the
    key (shown once). Raises `UserExists`."""
    api_key = new_api_key()
    at = ids.iso(now)
    items: dict[str, dict[str, Any]] = {
        'profile': {'Put': {'TableName': table().name,
                            'Item': user_key(user_id) | {'user_id': user_id, 'balance': credits, 'active_jobs': 0,
                                                         'active_keys': 1, 'created_at': at},
                            'ConditionExpression': 'attribute_not_exists(PK)'}},
        **_key_items(user_id, api_key, new_key_id(), 'default', at),
    }
    if credits:
        items['entry'] = entry_op(user_id, type_='grant', amount=credits, at=now, reference_id=f'signup:{user_id}',
                                  reason='opening balance')
    try:
        transact(items)
    except TransactionCanceled as exc:
        if exc.refused('profile'):
            raise UserExists(user_id) from exc
        raise
    return api_key


def create_key(user_id: str, label: str | None, now: float) -> tuple[str, ApiKeyRecord]:
    """Give the user one more key; returns it (shown once) and its record. Raises `UnknownUser`, `TooManyKeys`."""
    api_key = new_api_key()
    key_id = new_key_id()
    at = ids.iso(now)
    items = {
        'profile': {'Update': {
            'TableName': table().name, 'Key': user_key(user_id), 'UpdateExpression': 'ADD active_keys :one',
            'ConditionExpression': 'attribute_exists(PK) AND (attribute_not_exists(active_keys) OR active_keys < :max)',
            'ExpressionAttributeValues': {':one': 1, ':max': MAX_ACTIVE_KEYS}}},
        **_key_items(user_id, api_key, key_id, label, at),
    }
    try:
        transact(items)
    except TransactionCanceled as exc:
        if exc.refused('profile'):
            if exc.old('profile') is None:
                raise UnknownUser(user_id) from exc
            raise TooManyKeys(user_id, MAX_ACTIVE_KEYS) from exc
        raise
    return api_key, ApiKeyRecord(key_id=key_id, label=label, prefix=api_key[:SHOWN_PREFIX_CHARS], created_at=at,
                                 revoked_at=None)


def list_keys(user_id: str) -> list[ApiKeyRecord]:
    """The user's keys, oldest first (their ids sort by creation time), revoked ones included."""
    kwargs: dict[str, Any] = {'KeyConditionExpression': Key('PK').eq(user_key(user_id)['PK'])
                              & Key('SK').begins_with('KEY#'), 'ConsistentRead': True}
    records: list[ApiKeyRecord] = []
    while True:
        response = table().query(**kwargs)
        records.extend(_record(plain(item)) for item in response.get('Items', []))
        if 'LastEvaluatedKey' not in response:
            return records
        kwargs['ExclusiveStartKey'] = response['LastEvaluatedKey']


def revoke_key(user_id: str, key_id: str, now: float) -> ApiKeyRecord:
    """Revoke one of the user's keys, at once: the next request with it is refused. Revoking a revoked key
    changes nothing and returns it. Raises `UnknownKey` for a key the user does not hold."""
    record = table().get_item(Key=user_key_record_key(user_id, key_id), ConsistentRead=True).get('Item')
    if record is None:
        raise UnknownKey(user_id, key_id)
    if 'revoked_at' in record:
        return _record(plain(record))
    at = ids.iso(now)
    revoke = {'UpdateExpression': 'SET revoked_at = :at', 'ConditionExpression': 'attribute_not_exists(revoked_at)',
              'ExpressionAttributeValues': {':at': at}}
    items = {
        'key_record': {'Update': {'TableName': table().name, 'Key': user_key_record_key(user_id, key_id), **revoke}},
        'api_key': {'Update': {'TableName': table().name, 'Key': api_key_key(str(record['key_hash'])), **revoke}},
        'profile': {'Update': {'TableName': table().name, 'Key': user_key(user_id),
                               'UpdateExpression': 'ADD active_keys :minus_one',
                               'ExpressionAttributeValues': {':minus_one': -1}}},
    }
    try:
        transact(items)
    except TransactionCanceled as exc:
        if not exc.refused('key_record'):
            raise
        # Revoked by a concurrent call meanwhile: the same outcome.
    return _record(plain(record) | {'revoked_at': at})


def caller_for_api_key(api_key: str) -> Caller | None:
    """The user and key id behind a key, or None for a key never issued or revoked. A strongly consistent
    read, so that a revocation holds from the moment it returns."""
    item = table().get_item(Key=api_key_key(hash_api_key(api_key)), ConsistentRead=True).get('Item')
    if item is None or 'revoked_at' in item:
        return None
    key_id = item.get('key_id')
    return Caller(user_id=str(item['user_id']), key_id=str(key_id) if key_id else None)


def user_ids_page(cursor: PageKey | None, *, at_least: int) -> tuple[list[str], PageKey | None]:
    """Some user ids, from a scan of the table that goes on until `at_least` are found or the table ends, and
    where to go on from (reconciliation of every user only: page by page, it reads every item once)."""
    kwargs: dict[str, Any] = {'FilterExpression': Attr('SK').eq('PROFILE') & Attr('PK').begins_with('USER#'),
                              'ProjectionExpression': 'user_id', 'Limit': _SCAN_PAGE_ITEMS}
    if cursor:
        kwargs['ExclusiveStartKey'] = cursor
    found: list[str] = []
    while True:
        response = table().scan(**kwargs)
        found.extend(str(item['user_id']) for item in response.get('Items', []))
        last = response.get('LastEvaluatedKey')
        if last is None or len(found) >= at_least:
            return found, last
        kwargs['ExclusiveStartKey'] = last


def user_exists(user_id: str) -> bool:
    return 'Item' in table().get_item(Key=user_key(user_id), ProjectionExpression='PK')


def _record(item: dict[str, Any]) -> ApiKeyRecord:
    return ApiKeyRecord(key_id=str(item['key_id']), label=item.get('label'), prefix=str(item['prefix']),
                        created_at=str(item['created_at']), revoked_at=item.get('revoked_at'))
