"""Adapters by provider name, built from settings and secrets on first use per warm container."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from vidgen.config import get_settings
from vidgen.errors import ProviderAuthError, SecretUnavailableError
from vidgen.providers.base import VideoProvider
from vidgen.secrets import get_secret_json

if TYPE_CHECKING:
    import requests

PROVIDERS = ('kling', 'kie-veo', 'kie-market')


@lru_cache(maxsize=None)
def _session(name: str) -> requests.Session:
    # One pooled session per provider: connection reuse across invocations of a warm container.
    import requests

    return requests.Session()


def _credentials(secret_name: str, provider: str, *fields: str) -> dict[str, str]:
    try:
        secret = get_secret_json(secret_name)
    except SecretUnavailableError as exc:
        raise ProviderAuthError(f'{provider} credentials are not configured; an operator must set them.') from exc
    if any(not secret.get(f) for f in fields):
        raise ProviderAuthError(f'{provider} credentials are not configured; an operator must set them.')
    return secret


def get_provider(name: str, *, timeout: tuple[float, float] | None = None) -> VideoProvider:
    """The adapter for `name`; `timeout` (connect, read) overrides the setting for a quick check."""
    settings = get_settings()
    timeout = timeout or settings.provider_timeout
    if name == 'kling':
        from vidgen.providers.kling import KlingProvider

        creds = _credentials(settings.kling_secret_name, 'Kling', 'access_key', 'secret_key')
        return KlingProvider(settings.kling_base_url, creds['access_key'], creds['secret_key'],
                             session=_session(name), timeout=timeout)
    if name in ('kie-veo', 'kie-market'):
        from vidgen.providers.kie_market import KieMarketProvider
        from vidgen.providers.kie_veo import KieVeoProvider

        creds = _credentials(settings.kie_secret_name, 'Kie.ai', 'api_key')
        cls = KieVeoProvider if name == 'kie-veo' else KieMarketProvider
        return cls(settings.kie_base_url, settings.kie_upload_base_url, creds['api_key'],
                   webhook_hmac_key=creds.get('webhook_hmac_key') or None, session=_session(name),
                   timeout=timeout)
    raise ValueError(f'unknown provider {name!r}')
