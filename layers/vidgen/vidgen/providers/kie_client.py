"""The Kie.ai connection both adapters share: API host, upload host, one Bearer key that is never shown."""

from __future__ import annotations

from typing import Any, Mapping

import requests

from vidgen.errors import ProviderUnavailableError
from vidgen.providers.base import AccountStatus, GenerationRequest, ImageInput
from vidgen.providers.http import DEFAULT_TIMEOUT, ProviderHttp
from vidgen.providers.kie_common import Operation, unwrap
from vidgen.providers.kie_upload import DEFAULT_STREAM_THRESHOLD, KieUploader


class KieClient:
    def __init__(self, name: str, base_url: str, upload_base_url: str, api_key: str, *,
                 session: requests.Session | None = None, timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                 stream_threshold_bytes: int = DEFAULT_STREAM_THRESHOLD) -> None:
        session = session or requests.Session()
        self._auth = {'Authorization': f'Bearer {api_key}'}
        self._secrets = (api_key,)  # removed from any provider text that reaches an error message
        self.api = ProviderHttp(name, base_url, session=session, timeout=timeout)
        self.uploader = KieUploader(ProviderHttp(name, upload_base_url, session=session, timeout=timeout),
                                    self._auth, stream_threshold_bytes=stream_threshold_bytes, secrets=self._secrets)

    def __repr__(self) -> str:
        return f'KieClient({self.api.base_url!r})'

    def call(self, method: str, path: str, *, json_body: Any = None, params: Mapping[str, Any] | None = None,
             operation: Operation = 'create') -> Any:
        """One request to the API host; returns the envelope's `data` or raises a typed provider error."""
        headers = {**self._auth, 'Content-Type': 'application/json'} if json_body is not None else self._auth
        reply = self.api.request(method, path, headers=headers, json=json_body, params=params)
        return unwrap(reply, operation=operation, secrets=self._secrets)

    def image_url(self, request: GenerationRequest, image: ImageInput, slot: str) -> str:
        """A fetchable URL for one input image, uploaded now if it is a `data:` URI.

        Named after the job and slot, so a retried create overwrites its own upload instead of piling up.
        """
        return self.uploader.url_for(image, f'{request.job_id}-{slot}')


class KieProvider:
    """What both Kie adapters share: the connection and the optional callback signing key."""

    name = 'kie'

    def __init__(self, base_url: str, upload_base_url: str, api_key: str, *, webhook_hmac_key: str | None = None,
                 session: requests.Session | None = None, timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                 stream_threshold_bytes: int = DEFAULT_STREAM_THRESHOLD) -> None:
        self._kie = KieClient(self.name, base_url, upload_base_url, api_key, session=session, timeout=timeout,
                              stream_threshold_bytes=stream_threshold_bytes)
        self._webhook_key = webhook_hmac_key

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self._kie.api.base_url!r})'

    def account_status(self) -> AccountStatus:
        """Kie's credit balance (`GET /api/v1/chat/credit`): free, and it proves the key."""
        credits = self._kie.call('GET', '/api/v1/chat/credit', operation='status')
        if isinstance(credits, bool) or not isinstance(credits, (int, float)):
            raise ProviderUnavailableError('Kie.ai answered the credit query without a number; try again.')
        return AccountStatus(detail='the key works (credit balance read)', credits_remaining=float(credits))
