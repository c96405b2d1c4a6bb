"""What `vidgen doctor --providers` asks a deployed stack: do the provider keys work, and can callbacks reach us.

Runs inside the stack (the admin function), so the provider keys never leave it: each provider is asked its
cheapest authenticated question (Kling: the free account query; Kie.ai: the credit balance) and only the
verdict, the provider's own summary and the credit it reports are returned.
"""

from __future__ import annotations

import ipaddress
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from vidgen import netguard
from vidgen.config import get_settings
from vidgen.errors import ProviderError
from vidgen.models import CallbackCheck, ProviderCheck, ProviderReport
from vidgen.providers.registry import get_provider

# One check per set of credentials: both Kie adapters share one key.
_CHECKS = (('kling', 'kling', 'kling_base_url'), ('kie', 'kie-market', 'kie_base_url'))
# Short timeouts, both checks at once: the report fits well inside the admin function's 30 s.
_TIMEOUT = (3.0, 8.0)


def provider_report() -> ProviderReport:
    settings = get_settings()
    with ThreadPoolExecutor(len(_CHECKS)) as pool:
        providers = list(pool.map(lambda check: _check(check[0], check[1], getattr(settings, check[2])), _CHECKS))
    return ProviderReport(providers=providers, callbacks=_callbacks([getattr(settings, u) for _, _, u in _CHECKS]))


def _check(name: str, adapter: str, base_url: str) -> ProviderCheck:
    host = urlsplit(base_url).hostname or base_url
    try:
        status = get_provider(adapter, timeout=_TIMEOUT).account_status()
    except ProviderError as exc:
        code = None if exc.provider_code is None else str(exc.provider_code)
        return ProviderCheck(name=name, host=host, ok=False, detail=exc.message, provider_code=code)
    return ProviderCheck(name=name, host=host, ok=True, detail=status.detail, credits_remaining=status.credits_remaining)


def _callbacks(provider_urls: list[str]) -> CallbackCheck:
    """Whether the URL providers call back on can reach this stack: it is set, and it is not a loopback or
    private address while a real (non-local) provider is configured (then it must be public https)."""
    url = get_settings().public_api_url.rstrip('/')
    if not url:
        return CallbackCheck(url=None, ok=False, detail='PUBLIC_API_URL is not set: providers cannot call back, '
                                                        'so every job waits for the poll loop.')
    remote = [u for u in provider_urls if not _is_local(urlsplit(u).hostname or '')]
    if _is_local(urlsplit(url).hostname or '') and remote:
        hosts = ', '.join(sorted({urlsplit(u).hostname or u for u in remote}))
        return CallbackCheck(url=url, ok=False, detail=f'{url} is a local address that {hosts} cannot reach: set '
                                                       'VIDGEN_PUBLIC_URL to a public https URL (e.g. a tunnel), '
                                                       'or jobs finish only by polling.')
    if not remote:
        return CallbackCheck(url=url, ok=True, detail=f'{url} is reachable by the local simulators')
    if urlsplit(url).scheme != 'https':
        return CallbackCheck(url=url, ok=False, detail=f'{url} is not https: providers may refuse to call it back.')
    return CallbackCheck(url=url, ok=True, detail=f'{url} is a public https URL')


def _is_local(host: str) -> bool:
    """A host the public internet cannot reach: a local name, or an address the SSRF guard calls private."""
    if host in ('localhost', '') or host.endswith(('.localhost', '.local')):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a public name, as far as its spelling tells
    return netguard.refusal(address, allow_loopback=False) is not None
