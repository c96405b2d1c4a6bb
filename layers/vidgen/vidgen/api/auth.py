"""Who is calling: a user by their API key, or the operator by the admin key."""

from __future__ import annotations

import hmac
from typing import Any

from vidgen.config import get_settings
from vidgen.errors import AuthFailedError
from vidgen.jobs.accounts import Caller, caller_for_api_key
from vidgen.secrets import get_secret_field

_MISSING = 'Send your API key as `Authorization: Bearer <key>`.'
_INVALID = 'The API key is not valid.'


def bearer_token(event: Any) -> str:
    header = (event.headers or {}).get('authorization') or ''
    scheme, _, token = header.partition(' ')
    if scheme.lower() != 'bearer' or not token.strip():
        raise AuthFailedError(_MISSING)
    return token.strip()


def authenticate(event: Any) -> str:
    """The user id behind the request's API key."""
    return authenticate_caller(event).user_id


def authenticate_caller(event: Any) -> Caller:
    """The user behind the request's API key, and which of their keys it is (jobs record it)."""
    caller = caller_for_api_key(bearer_token(event))
    if caller is None:
        raise AuthFailedError(_INVALID)
    return caller


def require_admin(event: Any) -> None:
    admin_key = get_secret_field(get_settings().admin_secret_name, 'api_key')
    if not hmac.compare_digest(bearer_token(event).encode(), admin_key.encode()):
        raise AuthFailedError(_INVALID)
