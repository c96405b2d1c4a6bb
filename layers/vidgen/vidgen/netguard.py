"""Outbound URL checks (SSRF): the service fetches provider results and calls client webhooks, and
neither may be turned against the network it runs in.

A URL passes when its scheme is http(s) and every address its host resolves to is public. Redirects are
followed by the caller one hop at a time, each hop checked again. Local mode sets
VIDGEN_ALLOW_PRIVATE_URLS so the simulators on 127.0.0.1 can be reached; AWS deployments never do.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from vidgen.errors import UnsafeUrlError


def check_url(url: str, *, allow_private: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ('http', 'https') or not parts.hostname:
        raise UnsafeUrlError('Only http(s) URLs with a host name can be fetched.')
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == 'https' else 80),
                                   proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeUrlError(f'The host {parts.hostname!r} does not resolve.') from exc
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split('%', 1)[0])
        if not address.is_global:
            raise UnsafeUrlError(f'The host {parts.hostname!r} resolves to a private or reserved address.')
