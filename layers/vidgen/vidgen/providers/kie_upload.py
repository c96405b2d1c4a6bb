"""Kie's file-upload API (docs/providers/kie.md §5): how a `data:` image becomes a URL Kie can fetch.

Kie's generation endpoints take image URLs only. A `data:` URI is uploaded to the separate upload host
right before the task is created (uploads are deleted after 3 days): as JSON base64 when it is small, as a
multipart stream above `stream_threshold_bytes` (base64 inflates a body by a third). https URLs pass
through untouched.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Mapping

from vidgen.errors import ProviderRejectedError, ProviderUnavailableError
from vidgen.providers.base import ImageInput
from vidgen.providers.http import ProviderHttp
from vidgen.providers.kie_common import unwrap

DEFAULT_STREAM_THRESHOLD = 1_000_000  # decoded bytes
UPLOAD_PATH = 'vidgen/inputs'
_EXTENSIONS = {'image/png': 'png', 'image/jpeg': 'jpg', 'image/jpg': 'jpg', 'image/webp': 'webp'}


class KieUploader:
    def __init__(self, http: ProviderHttp, auth_headers: Mapping[str, str], *,
                 stream_threshold_bytes: int = DEFAULT_STREAM_THRESHOLD, upload_path: str = UPLOAD_PATH,
                 secrets: tuple[str, ...] = ()) -> None:
        self._http = http
        self._auth = dict(auth_headers)
        self._secrets = secrets
        self.stream_threshold_bytes = stream_threshold_bytes
        self.upload_path = upload_path

    def __repr__(self) -> str:
        return f'KieUploader({self._http.base_url!r})'

    def url_for(self, image: ImageInput, file_stem: str) -> str:
        """A URL Kie can fetch for this image; uploads it first when it is a `data:` URI."""
        if not image.is_data_uri:
            return image.value
        mime = image.mime_type or 'image/png'
        raw = _decode(image)
        file_name = f'{file_stem}.{_EXTENSIONS.get(mime, "png")}'
        if len(raw) > self.stream_threshold_bytes:
            data = self._stream(raw, mime, file_name)
        else:
            data = self._base64(raw, mime, file_name)
        return _download_url(data)

    def _base64(self, raw: bytes, mime: str, file_name: str) -> Any:
        body = {'base64Data': f'data:{mime};base64,{base64.b64encode(raw).decode("ascii")}',
                'uploadPath': self.upload_path, 'fileName': file_name}
        reply = self._http.request('POST', '/api/file-base64-upload', json=body,
                                   headers={**self._auth, 'Content-Type': 'application/json'})
        return unwrap(reply, operation='upload', secrets=self._secrets)

    def _stream(self, raw: bytes, mime: str, file_name: str) -> Any:
        # No Content-Type header here: requests sets the multipart boundary itself.
        reply = self._http.request('POST', '/api/file-stream-upload', headers=self._auth,
                                   files={'file': (file_name, raw, mime)},
                                   data={'uploadPath': self.upload_path, 'fileName': file_name})
        return unwrap(reply, operation='upload', secrets=self._secrets)


def _decode(image: ImageInput) -> bytes:
    payload = ''.join(image.base64_payload.split())
    payload += '=' * (-len(payload) % 4)  # some clients strip the padding
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProviderRejectedError('An input image is not valid base64; send it again as a data:image URI.') from exc
    if not raw:
        raise ProviderRejectedError('An input image is empty.')
    return raw


def _download_url(data: Any) -> str:
    # The upload pages document `downloadUrl`; the quickstart shows `fileUrl`. Accept either.
    url = (data.get('downloadUrl') or data.get('fileUrl')) if isinstance(data, dict) else None
    if not isinstance(url, str) or not url:
        raise ProviderUnavailableError('Kie.ai stored an input image but returned no URL for it; will retry.')
    return url
