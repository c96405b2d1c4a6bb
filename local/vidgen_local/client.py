"""A small client for any vidgen API (local or deployed), used by the `vidgen` command.

Errors follow the API contract (README.md, 'The HTTP API (v1)'): the API answers
`{"error": {"code", "message", "request_id"}}`, which becomes an `ApiError` carrying the message; API
Gateway's own answers (`{"message": ...}`) are mapped the same way.
"""

from __future__ import annotations

import base64
import mimetypes
import re
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests

_TIMEOUT = (5.0, 60.0)
# `download`'s progress(done, total) callback, and what opens one for a named download of a known size.
OnProgress = Callable[[int, 'int | None'], None]
ByteBar = Callable[[str, 'int | None'], AbstractContextManager[OnProgress]]
_MAGIC = ((b'\x89PNG\r\n\x1a\n', 'image/png'), (b'\xff\xd8\xff', 'image/jpeg'), (b'RIFF', 'image/webp'))


class ApiError(Exception):
    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id

    def __str__(self) -> str:
        detail = ', '.join(p for p in (self.code, f'HTTP {self.status}' if self.status else None,
                                       f'request {self.request_id}' if self.request_id else None) if p)
        return f'{self.message} ({detail})' if detail else self.message


class VidgenClient:
    def __init__(self, api_url: str, api_key: str | None = None, admin_key: str | None = None,
                 session: requests.Session | None = None) -> None:
        self.api_url = api_url.rstrip('/')
        self.api_key = api_key
        self.admin_key = admin_key
        self.session = session or requests.Session()

    def request(self, method: str, path: str, *, admin: bool = False, auth: bool = True, **kwargs: Any) -> Any:
        return self.request_with_headers(method, path, admin=admin, auth=auth, **kwargs)[0]

    def request_with_headers(self, method: str, path: str, *, admin: bool = False, auth: bool = True,
                             **kwargs: Any) -> tuple[Any, Mapping[str, str]]:
        key = self.admin_key if admin else self.api_key
        headers = dict(kwargs.pop('headers', None) or {})
        if auth:
            if not key:
                raise ApiError('No admin key: pass --admin-key or set VIDGEN_ADMIN_KEY.' if admin else
                               'No API key: pass --api-key or set VIDGEN_API_KEY.')
            headers['authorization'] = f'Bearer {key}'
        try:
            response = self.session.request(method, self.api_url + path, headers=headers, timeout=_TIMEOUT, **kwargs)
        except requests.ConnectionError as exc:
            raise ApiError(f'Cannot reach {self.api_url}: is it running (`vidgen serve`)?') from exc
        except requests.Timeout as exc:
            raise ApiError(f'{self.api_url} did not answer in time.') from exc
        return _decode(response), response.headers

    # -- the API (README.md, 'The HTTP API (v1)') -----------------------------------------------------------------------

    def health(self) -> Any:
        return self.request('GET', '/v1/health', auth=False)

    def models(self) -> Any:
        return self.request('GET', '/v1/models', auth=False)

    def submit(self, body: dict[str, Any], idempotency_key: str | None = None) -> Any:
        return self.submit_detailed(body, idempotency_key)[0]

    def submit_detailed(self, body: dict[str, Any], idempotency_key: str | None = None) -> tuple[Any, bool]:
        """The job, and whether it is the replay of an earlier submit with the same Idempotency-Key."""
        headers = {'idempotency-key': idempotency_key} if idempotency_key else {}
        job, answer_headers = self.request_with_headers('POST', '/v1/jobs', json=body, headers=headers)
        return job, answer_headers.get('Idempotent-Replayed', '').lower() == 'true'

    def cancel(self, job_id: str) -> Any:
        return self.request('POST', f'/v1/jobs/{quote(job_id, safe="")}/cancel')

    def providers(self) -> Any:
        return self.request('GET', '/v1/admin/providers', admin=True)

    def job(self, job_id: str) -> Any:
        return self.request('GET', f'/v1/jobs/{quote(job_id, safe="")}')

    def jobs(self, status: str | None = None, limit: int | None = None, cursor: str | None = None) -> Any:
        params = {k: v for k, v in (('status', status), ('limit', limit), ('cursor', cursor)) if v is not None}
        return self.request('GET', '/v1/jobs', params=params)

    def credits(self) -> Any:
        return self.request('GET', '/v1/credits')

    def submit_storyboard(self, body: dict[str, Any], idempotency_key: str | None = None) -> Any:
        headers = {'idempotency-key': idempotency_key} if idempotency_key else {}
        return self.request('POST', '/v1/storyboards', json=body, headers=headers)

    def storyboard(self, storyboard_id: str) -> Any:
        return self.request('GET', f'/v1/storyboards/{quote(storyboard_id, safe="")}')

    def storyboards(self, limit: int | None = None, cursor: str | None = None) -> Any:
        params = {k: v for k, v in (('limit', limit), ('cursor', cursor)) if v is not None}
        return self.request('GET', '/v1/storyboards', params=params)

    def create_user(self, user_id: str | None = None, credits: int | None = None) -> Any:
        body = {k: v for k, v in (('user_id', user_id), ('credits', credits)) if v is not None}
        return self.request('POST', '/v1/admin/users', admin=True, json=body)

    def grant(self, user_id: str, amount: int, reference_id: str, reason: str | None = None) -> Any:
        body: dict[str, Any] = {'amount': amount, 'reference_id': reference_id}
        if reason:
            body['reason'] = reason
        return self.request('POST', f'/v1/admin/users/{quote(user_id, safe="")}/credits', admin=True, json=body)

    def usage(self, **filters: str | None) -> Any:
        """GET /v1/usage; filters: start (from), end (to), model, type."""
        return self.request('GET', '/v1/usage', params=_usage_params(filters))

    def service_usage(self, top: int | None = None, **filters: str | None) -> Any:
        params = _usage_params(filters) | ({'top': top} if top else {})
        return self.request('GET', '/v1/admin/usage', admin=True, params=params)

    def usage_check(self, user_id: str | None = None, *, cursor: str | None = None, scope: str = 'users') -> Any:
        params = {k: v for k, v in (('user', user_id), ('cursor', cursor)) if v} | {'scope': scope}
        return self.request('GET', '/v1/admin/usage-check', admin=True, params=params)

    def create_key(self, user_id: str, label: str | None = None) -> Any:
        return self.request('POST', f'/v1/admin/users/{quote(user_id, safe="")}/keys', admin=True,
                            json={'label': label} if label else {})

    def keys(self, user_id: str) -> Any:
        return self.request('GET', f'/v1/admin/users/{quote(user_id, safe="")}/keys', admin=True)

    def revoke_key(self, user_id: str, key_id: str) -> Any:
        return self.request('DELETE', f'/v1/admin/users/{quote(user_id, safe="")}/keys/{quote(key_id, safe="")}',
                            admin=True)

    def download(self, url: str, target: Path, progress: OnProgress | None = None) -> int:
        """Stream `url` into `target` (no auth header: output URLs are presigned); returns the bytes written.

        `progress(done, total)` is called after each chunk (total from Content-Length, None when unknown).
        """
        try:
            with self.session.get(url, stream=True, timeout=_TIMEOUT) as response:
                if response.status_code != 200:
                    raise ApiError(f'Downloading {urlsplit(url).path} failed', status=response.status_code)
                length = response.headers.get('Content-Length', '')
                total = int(length) if length.isdigit() else None
                written = 0
                partial = target.with_name(target.name + '.part')
                with partial.open('wb') as handle:
                    for chunk in response.iter_content(chunk_size=256 * 1024):
                        handle.write(chunk)
                        written += len(chunk)
                        if progress is not None:
                            progress(written, total)
                partial.replace(target)
                return written
        except requests.RequestException as exc:
            raise ApiError(f'Downloading {urlsplit(url).path} failed: {type(exc).__name__}') from exc


def _usage_params(filters: dict[str, str | None]) -> dict[str, str]:
    names = {'start': 'from', 'end': 'to', 'model': 'model', 'type': 'type'}
    return {names[k]: v for k, v in filters.items() if v is not None}


def _decode(response: requests.Response) -> Any:
    try:
        payload = response.json() if response.content else None
    except ValueError:
        payload = None
    if response.ok:
        return payload
    error = payload.get('error') if isinstance(payload, dict) else None
    if isinstance(error, dict):
        raise ApiError(str(error.get('message') or 'The API refused the request.'), status=response.status_code,
                       code=error.get('code'), request_id=error.get('request_id'))
    message = payload.get('message') if isinstance(payload, dict) else None
    raise ApiError(str(message or response.reason or 'The API refused the request.'), status=response.status_code)


def image_input(value: str) -> str:
    """An image argument: URLs and data: URIs pass through; a local file becomes a base64 data: URI."""
    if re.match(r'^(https?:|data:)', value):
        return value
    path = Path(value).expanduser()
    if not path.is_file():
        raise ApiError(f'{value} is neither an http(s) URL nor a readable file.')
    data = path.read_bytes()
    content_type = next((kind for magic, kind in _MAGIC if data.startswith(magic)), None)
    content_type = content_type or mimetypes.guess_type(path.name)[0]
    if not content_type or not content_type.startswith('image/'):
        raise ApiError(f'{value} does not look like an image (png, jpeg or webp).')
    return f'data:{content_type};base64,{base64.b64encode(data).decode()}'


def output_filename(job_id: str, index: int, output: dict[str, Any]) -> str:
    suffix = Path(urlsplit(output.get('url', '')).path).suffix
    guessed = mimetypes.guess_extension((output.get('content_type') or '').split(';')[0].strip())
    return f'{job_id}-{index}{guessed or suffix or ".bin"}'


def media_summary(output: dict[str, Any]) -> str:
    """One line of what an output is: '1920x1080 h264 mp4, 5.0 s, 24 fps, sound' or '1024x1024 png'."""
    media = output.get('media') or {}
    if not media:
        return 'not inspected'
    size = f'{media["width"]}x{media["height"]}'
    if 'duration_seconds' not in media:
        return f'{size} {media["format"]}'
    fps = f', {media["fps"]:g} fps' if media.get('fps') else ''
    return (f'{size} {media["video_codec"]} {media["container"]}, {media["duration_seconds"]:g} s{fps}, '
            f'{"sound" if media["has_audio"] else "silent"}')


def save_output(client: VidgenClient, job_id: str, index: int, output: dict[str, Any], directory: Path,
                bar: ByteBar | None = None) -> list[Path]:
    """Download an output into `directory`, and its poster next to it (`<name>.poster.jpg`) when it has one.

    `bar(name, total)` (e.g. `terminal.byte_bar`) shows the output's download progress.
    """
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / output_filename(job_id, index, output)
    if bar is None:
        client.download(output['url'], target)
    else:
        with bar(target.name, output.get('bytes') or None) as progress:
            client.download(output['url'], target, progress=progress)
    saved = [target]
    if output.get('poster_url'):
        poster = target.with_name(f'{target.stem}.poster.jpg')
        client.download(output['poster_url'], poster)
        saved.append(poster)
    return saved
