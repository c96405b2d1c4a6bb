"""Accounts: who a caller is (an API key's user), and the operator's user and credit administration."""

from __future__ import annotations

from dataclasses import dataclass

from vidgen import ids
from vidgen.errors import ConflictError, NotFoundError, UnknownUser, UserExists
from vidgen.store import accounts, ledger


@dataclass(frozen=True)
class Grant:
    balance: int
    granted: bool  # False: this reference_id was granted before, and nothing changed


def user_for_api_key(api_key: str) -> str | None:
    """The user id an API key belongs to, or None for a key vidgen never issued."""
    return accounts.user_for_api_key(api_key)


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
