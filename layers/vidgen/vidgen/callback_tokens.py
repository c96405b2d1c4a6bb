"""Per-job callback tokens: the secret part of the URL a provider calls back on.

The token is an HMAC of the provider and job id under the callback signing key, so it needs no storage,
differs for every job, and cannot be derived from another job's token. It is compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote

from vidgen.config import get_settings
from vidgen.secrets import get_secret_field


def callback_token(provider: str, job_id: str) -> str:
    key = get_secret_field(get_settings().callback_secret_name, 'key').encode()
    digest = hmac.new(key, f'{provider}:{job_id}'.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip('=')


def token_matches(provider: str, job_id: str, token: str) -> bool:
    return hmac.compare_digest(callback_token(provider, job_id).encode(), token.encode())


def callback_url(provider: str, job_id: str) -> str | None:
    base = get_settings().public_api_url.rstrip('/')
    if not base:
        return None  # no public URL: the poll loop finishes the job
    return f'{base}/v1/callbacks/{quote(provider)}/{quote(job_id)}?token={callback_token(provider, job_id)}'
