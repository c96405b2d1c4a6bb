"""The one HTTP path every provider adapter uses.

It owns the session, the explicit (connect, read) timeouts and the translation of transport failures into
typed errors. It does not retry: retries belong to the state machine (ASL `Retry` with backoff and jitter),
so every attempt is visible in the execution history. Interpreting a provider's envelope and codes is
the adapter's job. Nothing here logs a header or a body: auth headers carry secrets.

A call may also be given a `deadline` (a `time.monotonic()` value) by which it ends whatever the server
does; the (connect, read) timeouts alone bound each read, not the call (see `providers.deadline`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping

import requests

from vidgen.errors import ProviderUnavailableError
from vidgen.providers.deadline import Deadline, DeadlineAdapter

DEFAULT_TIMEOUT = (5.0, 30.0)


@dataclass(frozen=True)
class HttpReply:
    status: int
    body: Any
    headers: Mapping[str, str]

    def retry_after(self) -> float | None:
        value = self.headers.get('Retry-After') or self.headers.get('retry-after')
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None


class DeadlinePassed(requests.Timeout):
    """The call's total deadline passed before its reply was complete."""


class ProviderHttp:
    """JSON over HTTP to one provider host."""

    def __init__(self, provider: str, base_url: str, *, session: requests.Session | None = None,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip('/')
        if session is None:
            session = requests.Session()
            for prefix in ('http://', 'https://'):
                session.mount(prefix, DeadlineAdapter())
        self.session = session
        self.timeout = timeout

    def request(self, method: str, path: str, *, headers: Mapping[str, str] | None = None,
                json: Any = None, params: Mapping[str, Any] | None = None,
                files: Any = None, data: Any = None, deadline: float | None = None) -> HttpReply:
        """Send one request; return the decoded JSON reply whatever its status.

        Raises `ProviderUnavailableError` when there is no usable reply: connection refused or reset,
        timeout, or a body that is not JSON (a gateway error page, a truncated reply). With `deadline`, the
        call ends by that `time.monotonic()` value; past it, the error's cause is a `DeadlinePassed`.
        """
        url = f'{self.base_url}{path}'
        call = dict(headers=headers, json=json, params=params, files=files, data=data)
        if deadline is None:
            return self._send(method, url, call, self.timeout)
        left = deadline - time.monotonic()
        if left <= 0:
            raise self._too_late() from DeadlinePassed()
        if not all(isinstance(self.session.adapters.get(p), DeadlineAdapter) for p in ('http://', 'https://')):
            raise TypeError('a deadline needs the session ProviderHttp makes itself (its DeadlineAdapter)')
        connect, read = self.timeout
        with Deadline(left).running() as running:
            try:
                return self._send(method, url, call, (min(connect, left), min(read, left)))
            except ProviderUnavailableError as exc:
                if running.expired:
                    raise self._too_late() from DeadlinePassed()
                raise exc

    def close(self) -> None:
        self.session.close()

    def _too_late(self) -> ProviderUnavailableError:
        return ProviderUnavailableError(f'{self.provider} did not answer in time; the call will be retried.')

    def _send(self, method: str, url: str, call: dict[str, Any], timeout: tuple[float, float]) -> HttpReply:
        try:
            response = self.session.request(method, url, timeout=timeout, **call)
        except requests.Timeout as exc:
            raise self._too_late() from exc
        except requests.RequestException as exc:
            raise ProviderUnavailableError(f'{self.provider} could not be reached; the call will be retried.') from exc
        try:
            body = response.json()
        except ValueError as exc:
            raise ProviderUnavailableError(
                f'{self.provider} answered HTTP {response.status_code} with a body that is not JSON; '
                'the call will be retried.',
                provider_code=response.status_code,
            ) from exc
        return HttpReply(status=response.status_code, body=body, headers=dict(response.headers))
