"""Input images against a model's rules, from the image's header alone.

Each catalog entry that takes images carries `input_images`: the formats, the smallest and largest width
and height, the aspect-ratio range and the largest file the provider accepts, with the source of each
rule (docs/providers/kling.md §7, docs/providers/kie.md §7). An inline `data:` image is checked at submit,
before anything is charged; an https image where it is first fetched, in the create step (a refusal there
fails the job with the same sentence, refunded).

Only the header is read: `imagesize` finds the dimensions (PNG IHDR, JPEG SOF after any EXIF, WebP
VP8/VP8L/VP8X), honouring an EXIF rotation; the format comes from the file's magic bytes, not from the
declared MIME type. Nothing is decoded into pixels, so even a 10 MB image (by URL) costs a few kilobytes of work.
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from typing import Any

from vidgen.errors import ImageRuleError

# Enough of a file for its dimensions: a JPEG's SOF marker can sit behind EXIF and ICC blocks of ~64 KB.
HEAD_BYTES = 256 * 1024
_MAGIC = ((b'\x89PNG\r\n\x1a\n', 'png'), (b'\xff\xd8\xff', 'jpeg'), (b'GIF87a', 'gif'), (b'GIF89a', 'gif'))
_FORMAT_NAMES = {'png': 'PNG', 'jpeg': 'JPEG', 'webp': 'WebP', 'gif': 'GIF'}


@dataclass(frozen=True)
class ImageFacts:
    format: str | None  # png | jpeg | webp | gif, None when the bytes are none of these
    width: int | None
    height: int | None
    bytes: int


def sniff_format(head: bytes) -> str | None:
    if head[:4] == b'RIFF' and head[8:12] == b'WEBP':
        return 'webp'
    return next((name for magic, name in _MAGIC if head.startswith(magic)), None)


def facts_from_head(head: bytes, total_bytes: int) -> ImageFacts:
    """What the first bytes of an image tell: its real format and its (displayed) width and height."""
    import imagesize  # only a request that carries an image needs it: a cold start without one skips it

    width, height = imagesize.get(io.BytesIO(head))
    known = width > 0 and height > 0
    return ImageFacts(format=sniff_format(head), width=width if known else None, height=height if known else None,
                      bytes=total_bytes)


def data_uri_facts(value: str) -> ImageFacts:
    """The facts of a `data:image/...;base64,` image, decoding only the base64 its header needs."""
    payload = value.split(',', 1)[1] if ',' in value else ''
    payload = ''.join(payload.split())
    padding = len(payload) - len(payload.rstrip('='))
    total = len(payload) * 3 // 4 - padding
    chunk = payload[:(HEAD_BYTES // 3) * 4]  # whole 4-character groups only
    try:
        head = base64.b64decode(chunk + '=' * (-len(chunk) % 4))
    except (binascii.Error, ValueError):
        head = b''
    return facts_from_head(head, total)


def check_image(facts: ImageFacts, rules: dict[str, Any], model_id: str) -> None:
    """Raise `ImageRuleError` naming the first rule of `rules` (a catalog `input_images`) the image breaks."""
    formats = rules.get('formats')
    if formats and facts.format not in formats:
        allowed = ', '.join(_FORMAT_NAMES.get(f, f) for f in formats)
        found = f'a {_FORMAT_NAMES[facts.format]} file' if facts.format else 'not an image we can read'
        raise ImageRuleError(f'is {found}; {model_id} takes {allowed}')
    max_bytes = rules.get('max_bytes')
    if max_bytes and facts.bytes > max_bytes:
        raise ImageRuleError(f'is {_megabytes(facts.bytes)}; {model_id} takes at most {_megabytes(max_bytes)}')
    if facts.width is None or facts.height is None:
        if any(key in rules for key in ('min_width', 'min_height', 'max_width', 'max_height', 'aspect_ratio')):
            raise ImageRuleError(f'has no width and height in its header; send a valid '
                                 f'{" or ".join(_FORMAT_NAMES.get(f, f) for f in formats or ("png", "jpeg"))} file')
        return
    size = f'{facts.width}×{facts.height} px'
    for side, value in (('width', facts.width), ('height', facts.height)):
        low, high = rules.get(f'min_{side}'), rules.get(f'max_{side}')
        if low and value < low:
            raise ImageRuleError(f'is {size}; {model_id} needs a {side} of at least {low} px')
        if high and value > high:
            raise ImageRuleError(f'is {size}; {model_id} takes a {side} of at most {high} px')
    ratio = rules.get('aspect_ratio')
    if ratio:
        shape = facts.width / facts.height
        if not ratio['min'] <= shape <= ratio['max']:
            raise ImageRuleError(f'is {size} (width/height {shape:.2f}); {model_id} takes width/height from '
                                 f'{ratio["min"]:g} to {ratio["max"]:g} ({ratio["text"]})')


def _megabytes(count: int) -> str:
    return f'{count / 1024 / 1024:.1f} MB'
