"""Accounts: who a caller is (an API key's user), and the operator's user and credit administration."""

from __future__ import annotations

from dataclasses import dataclass

from vidgen import ids
from vidgen.errors import (
    ConflictError,
    NotFoundError,
        TooManyKeys,
    UnknownKey,
    UnknownUser,
    UserExists,
)
from vidgen.store import accounts, ledger
from vidgen.store.accounts import MAX_ACTIVE_KEYS, ApiKeyRecord, Caller

__all__ = ['MAX_ACTIVE_KEYS', 'ApiKeyRecord', 'Caller', 'Grant', 'caller_for_api_key', 'create_key', 'create_user',
           'grant_credits', 'list_keys', 'revoke_key']


@dataclass(frozen=True)
class Grant:
    balance: int
    granted: bool  # False: this reference_id was granted before, and nothing changed


def caller_for_api_key(api_key: str) -> Caller | None:
    """The user (and which of their keys) an API key belongs to, or None for a key vidgen never issued or
    one that was revoked."""
    return accounts.caller_for_api_key(api_key)


def create_key(user_id: str, label: str | None) -> tuple[str, ApiKeyRecord]:
    """One more key for the user: (the key, shown this once, and its record)."""
    try:
        return accounts.create_key(user_id, label, ids.now())
    except UnknownUser as exc:
        raise NotFoundError(f'No user {user_id!r}.') from exc
    except TooManyKeys as exc:
        # Not a rate: a quota that stays until a key is revoked; 409 says "change the state first".
        raise ConflictError(f'{user_id} already holds {exc.limit} API keys; revoke one first.') from exc


def list_keys(user_id: str) -> list[ApiKeyRecord]:
    if not accounts.user_exists(user_id):
        raise NotFoundError(f'No user {user_id!r}.')
    return accounts.list_keys(user_id)


def revoke_key(user_id: str, key_id: str) -> ApiKeyRecord:
    """Revoke a key at once; revoking it again answers the same record."""
    try:
        return accounts.revoke_key(user_id, key_id, ids.now())
    except UnknownKey as exc:
        raise NotFoundError(f'{user_id!r} has no API key {key_id!r}.') from exc


def create_user(user_id: str | None, credits: int) -> tuple[str, str]:
    """Create a user (an id is made up when none is given) with an opening balance; returns (user_id, api_key).
    The key is shown this once: only its hash is stored."""
    user_id = user_id or f'user_{ids.ulid().lower()}'
    try:
        return user_id, accounts.create_user(user_id, credits, ids.now())
    except UserExists as exc:
        raise ConflictError(f'A user {user_id!r} already exists.') from exc


def grant_credits(user_id: str, amount: int, reference_id: str, reason: str | None) -> Grant:
    """Add credits once per reference_id; a repeat returns the balance and grants nothing."""
    try:
        balance, granted = ledger.grant(user_id, amount, reference_id, reason, ids.now())
    except UnknownUser as exc:
        raise NotFoundError(f'No user {user_id!r}.') from exc
    return Grant(balance, granted)
