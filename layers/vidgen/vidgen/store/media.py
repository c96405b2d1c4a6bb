"""The results bucket: input images the client sent inline, the copies of generated results, and their
posters and thumbnails.

Results are streamed from the provider straight into a multipart upload (boto3's managed transfer with
8 MiB parts and one thread), so memory stays bounded whatever the file size; the media step reads them
back with ranged GETs (`result_reader`). Keys: `inputs/{user_id}/{job_id}/{name}.{ext}`,
`results/{user_id}/{job_id}/{index}.{ext}` and beside it `{index}.poster.jpg` and `{index}.thumb.jpg`.
"""

from __future__ import annotations

import base64
import mimetypes
from typing import IO, TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import urljoin, urlsplit

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError

from vidgen import aws
from vidgen.config import get_settings
from vidgen.errors import MediaStorageError, OutputDownloadError, UnsafeUrlError
from vidgen.media.ranged import RangedReader
from vidgen.netguard import check_url, pinned_session
from vidgen.store.jobs import StoredOutput

if TYPE_CHECKING:
    import requests

_TRANSFER = TransferConfig(multipart_threshold=8 * 1024**2, multipart_chunksize=8 * 1024**2, max_concurrency=1,
                           use_threads=False)
_MAX_REDIRECTS = 3
_EXTENSIONS = {'video/mp4': 'mp4', 'video/quicktime': 'mov', 'video/webm': 'webm', 'image/png': 'png',
               'image/jpeg': 'jpg', 'image/webp': 'webp', 'image/gif': 'gif'}


def save_input_image(user_id: str, job_id: str, name: str, data_uri: str) -> str:
    """Store an inline image; the job keeps the returned `s3://` reference instead of megabytes of base64."""
    header, payload = data_uri.split(',', 1)
    content_type = header[5:].split(';', 1)[0]
    key = f'inputs/{user_id}/{job_id}/{name}.{_EXTENSIONS.get(content_type, "bin")}'
    aws.s3().put_object(Bucket=get_settings().bucket_name, Key=key, Body=base64.b64decode(payload),
                                ContentType=content_type)
    return f's3://{key}'


def load_input_image(reference: str) -> str:
    """The image as the adapters take it: the client's URL as given, or a data URI rebuilt from S3."""
    if not reference.startswith('s3://'):
        return reference
    response = aws.s3().get_object(Bucket=get_settings().bucket_name, Key=reference[5:])
    data = base64.b64encode(response['Body'].read()).decode()
    return f'data:{response.get("ContentType", "image/png")};base64,{data}'


def presigned_url(key: str) -> str:
    settings = get_settings()
    return aws.s3().generate_presigned_url(
        'get_object', Params={'Bucket': settings.bucket_name, 'Key': key}, ExpiresIn=settings.result_url_ttl_seconds,
    )


def bucket_origin() -> str:
    """The scheme://host[:port] that presigned URLs point at: the pages' CSP allows media from it. Signing is
    local (no request is made), so this costs nothing and always agrees with `presigned_url`."""
    parts = urlsplit(presigned_url('results/origin-probe'))
    return f'{parts.scheme}://{parts.netloc}'


def result_reader(key: str, size: int) -> RangedReader:
    """A stored result as a seekable file that fetches only the byte ranges it is asked for."""
    s3, bucket = aws.s3(), get_settings().bucket_name

    def fetch(start: int, end: int) -> bytes:
        try:
            return s3.get_object(Bucket=bucket, Key=key, Range=f'bytes={start}-{end - 1}')['Body'].read()
        except (BotoCoreError, ClientError) as exc:
            raise MediaStorageError('Reading a stored result failed; it will be retried.') from exc

    return RangedReader(fetch, size)


def picture_keys(result_key: str) -> tuple[str, str]:
    """(poster key, thumbnail key) beside a result."""
    stem = result_key.rsplit('.', 1)[0]
    return f'{stem}.poster.jpg', f'{stem}.thumb.jpg'


def put_picture(key: str, data: bytes) -> str:
    try:
        aws.s3().put_object(Bucket=get_settings().bucket_name, Key=key, Body=data, ContentType='image/jpeg')
    except (BotoCoreError, ClientError) as exc:
        raise MediaStorageError('Storing a poster failed; it will be retried.') from exc
    return key


def discard_results(keys: list[str]) -> None:
    """Delete results (and whatever was stored beside them): a result that does not play is not kept."""
    if not keys:
        return
    try:
        response = aws.s3().delete_objects(
            Bucket=get_settings().bucket_name, Delete={'Objects': [{'Key': k} for k in keys], 'Quiet': True})
    except (BotoCoreError, ClientError) as exc:
        raise MediaStorageError('Deleting a result that does not play failed; it will be retried.') from exc
    if response.get('Errors'):
        raise MediaStorageError('Deleting a result that does not play failed; it will be retried.')


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


class _CountingReader:
    """Reads the response body for the uploader, counting bytes and stopping at the size limit."""

    def __init__(self, raw: _Readable, limit: int) -> None:
        self._raw = raw
        self._limit = limit
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._raw.read(size)
        self.count += len(chunk)
        if self.count > self._limit:
            raise OutputDownloadError(f'The result is larger than the {self._limit}-byte limit.')
        return chunk


def copy_result(url: str, user_id: str, job_id: str, index: int, content_type_hint: str | None) -> StoredOutput:
    """Stream one provider result into the bucket. Raises `OutputDownloadError` (retryable) on any
    failure part-way; a retry overwrites the same key, so a partial attempt leaves nothing behind."""
    # Imported here: only finalize downloads, and the submit and status functions start faster without them.
    import requests
    import urllib3

    settings = get_settings()
    response = _open(url, allow_loopback=settings.allow_loopback_urls, timeout=settings.provider_timeout)
    with response:
        content_type = (response.headers.get('Content-Type') or content_type_hint or '').split(';')[0].strip()
        if not content_type or content_type == 'application/octet-stream':
            content_type = content_type_hint or mimetypes.guess_type(urlsplit(url).path)[0] or 'application/octet-stream'
        key = f'results/{user_id}/{job_id}/{index}.{_EXTENSIONS.get(content_type, "bin")}'
        expected = response.headers.get('Content-Length')
        reader = _CountingReader(response.raw, settings.max_output_bytes)
        try:
            # The managed transfer only calls read(): the counting reader is file-like enough.
            aws.s3().upload_fileobj(cast(IO[bytes], reader), settings.bucket_name, key, Config=_TRANSFER,
                                    ExtraArgs={'ContentType': content_type})
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, BotoCoreError, ClientError) as exc:
            # urllib3 raises its own ProtocolError when the provider cuts the body short.
            raise OutputDownloadError('Copying a result into storage failed part-way; it will be retried.') from exc
    if expected is not None and int(expected) != reader.count:
        raise OutputDownloadError('The provider sent fewer bytes than it announced; the copy will be retried.')
    return StoredOutput(key=key, content_type=content_type, bytes=reader.count)


def read_image_head(url: str, max_bytes: int) -> tuple[bytes, int | None]:
    """The first `max_bytes` of a client's https image and its full size when the server tells it.

    Asks for a byte range (a server that ignores it is read only that far, then hung up on), through the
    same SSRF guard as result copies. Raises `OutputDownloadError` when the image cannot be read.
    """
    settings = get_settings()
    response = _open(url, allow_loopback=settings.allow_loopback_urls, timeout=settings.provider_timeout,
                     headers={'Range': f'bytes=0-{max_bytes - 1}'}, ok=(200, 206))
    with response:
        total = _full_size(response)
        head = b''
        for chunk in response.iter_content(chunk_size=64 * 1024):
            head += chunk
            if len(head) >= max_bytes:
                break
    return head[:max_bytes], total if total is not None else (len(head) if len(head) < max_bytes else None)


def _full_size(response: requests.Response) -> int | None:
    content_range = response.headers.get('Content-Range', '')  # bytes 0-262143/1048576
    if response.status_code == 206 and '/' in content_range and content_range.rsplit('/', 1)[1].isdigit():
        return int(content_range.rsplit('/', 1)[1])
    length = response.headers.get('Content-Length', '')
    return int(length) if response.status_code == 200 and length.isdigit() else None


def _open(url: str, *, allow_loopback: bool, timeout: Any, headers: dict[str, str] | None = None,
          ok: tuple[int, ...] = (200,)) -> requests.Response:
    import requests

    # One pinned session for the hops: each hop is checked here and again at connect time (netguard.py).
    session = pinned_session(allow_loopback=allow_loopback)
    for _ in range(_MAX_REDIRECTS + 1):
        check_url(url, allow_loopback=allow_loopback)
        try:
            response = session.get(url, stream=True, timeout=timeout, allow_redirects=False, headers=headers)
        except requests.RequestException as exc:
            raise OutputDownloadError('The result could not be downloaded from the provider; it will be retried.') from exc
        if response.is_redirect:
            url = urljoin(url, response.headers['Location'])
            response.close()
            continue
        if response.status_code not in ok:
            response.close()
            raise OutputDownloadError(f'The provider answered HTTP {response.status_code} for a result; it will be retried.',
                                      details={'status': response.status_code})
        response.raw.decode_content = True
        return response
    raise UnsafeUrlError('The result URL redirected too many times.')
