"""Users and their API keys. Keys are stored only as SHA-256 hashes: a key is 256 random bits, so a fast
hash is enough (no dictionary to attack), and lookup stays one GetItem."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from vidgen import ids
from vidgen.errors import TransactionCanceled, UserExists
from vidgen.store.ledger import entry_op
from vidgen.store.table import api_key_key, table, transact, user_key

API_KEY_PREFIX = 'vg_'


def hash_api_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def create_user(user_id: str, credits: int, now: float) -> str:
    """Create the user, their first API key and (if any) the opening grant; return the key (shown once).
    Raises `UserExists`."""
    api_key = new_api_key()
    at = ids.iso(now)
    items: dict[str, dict[str, Any]] = {
        'profile': {'Put': {'TableName': table().name,
                            'Item': user_key(user_id) | {'user_id': user_id, 'balance': credits, 'active_jobs': 0,
                                                         'created_at': at},
                            'ConditionExpression': 'attribute_not_exists(PK)'}},
        'api_key': {'Put': {'TableName': table().name,
                            'Item': api_key_key(hash_api_key(api_key)) | {'user_id': user_id, 'created_at': at},
                            'ConditionExpression': 'attribute_not_exists(PK)'}},
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


def user_for_api_key(api_key: str) -> str | None:
    item = table().get_item(Key=api_key_key(hash_api_key(api_key))).get('Item')
    return str(item['user_id']) if item else None
