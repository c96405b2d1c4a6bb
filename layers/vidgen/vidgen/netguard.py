"""Outbound URL checks (SSRF): the service copies provider results and calls client webhooks, and neither
may be turned against the network it runs in (in Lambda, the Runtime API listens on 127.0.0.1:9001).

Two layers, both needed:

- `check_url` answers early, with a clear error: the scheme is http(s) (https only for webhooks in AWS),
  and every address the host resolves to now is public.
- `pinned_session` is what actually connects. A DNS answer may change between the check and the request
  (rebinding), so the connection is made to the address resolved and checked for that very connection:
  requests-hardened's `IPFilterAdapter` resolves once, refuses private ranges and connects to that IP while
  the Host header, SNI and certificate check keep the URL's name. On top of its filter we apply
  `refusal` to the pinned address, which also refuses the IPv6 forms that embed an IPv4 address
  (IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`, Teredo) whatever they embed.

Local mode (VIDGEN_ALLOW_LOOPBACK_URLS, set by the local cloud only) allows loopback addresses, where the
simulators and a test's receivers listen, and nothing else that is private: 169.254.169.254, 10/8 and the
rest stay refused there too. Redirects are never followed by the session; callers follow them one hop at a
time, each hop checked and pinned again.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from vidgen.errors import UnsafeUrlError

if TYPE_CHECKING:
    import requests

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 ranges that carry an IPv4 address inside them: a gateway may forward them to that IPv4 address, so
# they are refused outright rather than judged by their (formally global) IPv6 value.
_EMBEDDING_RANGES = tuple(ipaddress.IPv6Network(net) for net in (
    '::/96',            # IPv4-compatible (deprecated): [::127.0.0.1]
    '::ffff:0:0/96',    # IPv4-mapped: [::ffff:127.0.0.1]
    '::ffff:0:0:0/96',  # IPv4-translated (SIIT)
    '64:ff9b::/96',     # NAT64, well-known prefix
    '64:ff9b:1::/48',   # NAT64, local-use prefix
    '2002::/16',        # 6to4
    '2001::/32',        # Teredo
))


def refusal(address: IpAddress, *, allow_loopback: bool) -> str | None:
    """Why the service must not connect to this address, or None. Loopback passes only in local mode."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return 'a scoped IPv6 address'
        if address == ipaddress.IPv6Address('::1') and allow_loopback:
            return None
        if any(address in net for net in _EMBEDDING_RANGES):
            return 'an IPv6 address that embeds an IPv4 address'
    if allow_loopback and address.is_loopback:
        return None
    if not address.is_global or address.is_multicast:
        return 'a private or reserved address'
    return None


def check_url(url: str, *, allow_loopback: bool, https_only: bool = False) -> None:
    """Refuse a URL whose scheme is wrong or whose host resolves to any address `refusal` objects to."""
    parts = urlsplit(url)
    schemes = ('https',) if https_only else ('http', 'https')
    if parts.scheme not in schemes or not parts.hostname:
        raise UnsafeUrlError(f'Only {" or ".join(schemes)} URLs with a host name can be used.')
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == 'https' else 80),
                                   proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, ValueError) as exc:
        raise UnsafeUrlError(f'The host {parts.hostname!r} does not resolve.') from exc
    for info in infos:
        reason = refusal(ipaddress.ip_address(info[4][0]), allow_loopback=allow_loopback)
        if reason:
            raise UnsafeUrlError(f'The host {parts.hostname!r} resolves to {reason}.')


def pinned_session(*, allow_loopback: bool) -> requests.Session:
    """A `requests` session whose every connection goes to an address checked for that connection.

    Refusals raise `UnsafeUrlError` (never a `requests.RequestException`), so callers do not mistake them
    for a transient failure worth retrying.
    """
    from requests_hardened import Config, HTTPSession
    from requests_hardened.ip_filter import InvalidIPAddress
    from requests_hardened.ip_filter_adapter import IPFilterAdapter

    class PinnedAdapter(IPFilterAdapter):  # type: ignore[misc]  # requests-hardened ships no type hints (Any)
        def build_connection_pool_key_attributes(self, request: requests.PreparedRequest, verify: Any,
                                                 cert: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
            try:
                host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
            except InvalidIPAddress as exc:
                raise UnsafeUrlError('The host resolves to a private or reserved address.') from exc
            # The library has replaced the host by the one address it resolved: that is where urllib3 connects.
            reason = refusal(ipaddress.ip_address(str(host_params['host']).strip('[]')), allow_loopback=allow_loopback)
            if reason:
                raise UnsafeUrlError(f'The host {request.url and urlsplit(request.url).hostname!r} resolves to {reason}.')
            return host_params, pool_kwargs

    # never_redirect: each hop is the caller's to check (see the module docstring).
    session: requests.Session = HTTPSession(Config(ip_filter_enable=False, ip_filter_allow_loopback_ips=allow_loopback,
                                 never_redirect=True, default_timeout=(3.0, 10.0)))
    for prefix, https in (('http://', False), ('https://', True)):
        session.mount(prefix, PinnedAdapter(is_https_proto=https, allow_loopback=allow_loopback))
    return session
