"""Small real media for the provider simulators, the demo, the tests and the benchmark, made with PyAV.

Every file is generated on first use (a few milliseconds, then cached): an H.264 MP4 of the asked size and
length, with a silent AAC track when asked, whose picture (a colour that changes over time and a bar that
moves) makes a poster's aspect and content easy to check; PNG, JPEG and WebP images; and the bad files the
simulators' faults serve: noise behind an MP4 header, and a video whose first picture cannot be decoded.

`padded()` grows a file to a given size without changing what it plays: a `free` box is put before the
`moov` box, which FFmpeg's MP4 muxer writes last, so no sample offset moves.
"""

from __future__ import annotations

import io
import random
import struct
from fractions import Fraction
from functools import lru_cache

import av

MP4_HEADER = struct.pack('>I', 24) + b'ftypmp42' + b'\x00\x00\x00\x00' + b'isommp42'
SAMPLE_RATE = 16_000
LONG_SIDE = 480  # px on the long side of the simulators' videos: small files, thumbnails still scale down


def dimensions(aspect_ratio: str | None, long_side: int = LONG_SIDE) -> tuple[int, int]:
    """Even width and height for a `W:H` ratio (16:9 when absent or unreadable), `long_side` on the long side."""
    try:
        w, h = (float(part) for part in (aspect_ratio or '16:9').split(':'))
    except ValueError:
        w, h = 16.0, 9.0
    if w <= 0 or h <= 0:
        w, h = 16.0, 9.0
    scale = long_side / max(w, h)
    return max(2, round(w * scale / 2) * 2), max(2, round(h * scale / 2) * 2)


@lru_cache(maxsize=32)
def video(width: int, height: int, seconds: float, *, fps: int = 8, audio: bool = True) -> bytes:
    """A real H.264 MP4 (`moov` last, as FFmpeg writes it) of exactly `seconds`, at `fps` frames a second."""
    buffer = io.BytesIO()
    with av.open(buffer, 'w', format='mp4') as out:
        stream = out.add_stream('libx264', rate=fps, options={'preset': 'ultrafast', 'crf': '32', 'g': str(fps * 2)})
        stream.width, stream.height, stream.pix_fmt = width, height, 'yuv420p'
        sound = out.add_stream('aac', rate=SAMPLE_RATE, layout='mono') if audio else None
        frames = max(1, round(seconds * fps))
        for index in range(frames):
            for packet in stream.encode(_picture(width, height, index, frames)):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if sound is not None:
            _silence(out, sound, frames / fps)
    return buffer.getvalue()


def _picture(width: int, height: int, index: int, frames: int) -> av.VideoFrame:
    frame = av.VideoFrame(width, height, 'rgb24')
    plane = frame.planes[0]
    shade = 40 + 160 * index // max(1, frames - 1)
    row = bytearray(bytes((shade, 90, 255 - shade)) * width)
    bar = (index * 7) % max(1, width - width // 8)
    row[bar * 3:(bar + width // 8) * 3] = b'\xf0\xf0\xf0' * (width // 8)
    row += bytes(plane.line_size - len(row))
    plane.update(bytes(row) * height)
    frame.pts = index
    return frame


def _silence(out: av.container.OutputContainer, stream: av.AudioStream, seconds: float) -> None:
    samples = int(seconds * SAMPLE_RATE)
    size = stream.codec_context.frame_size or 1024
    for start in range(0, samples, size):
        frame = av.AudioFrame(format='fltp', layout='mono', samples=size)
        frame.planes[0].update(bytes(frame.planes[0].buffer_size))
        frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, start, Fraction(1, SAMPLE_RATE)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)


@lru_cache(maxsize=32)
def image(width: int, height: int, fmt: str = 'png') -> bytes:
    """A real PNG, JPEG or WebP picture of the given size."""
    codec, pix_fmt = {'png': ('png', 'rgb24'), 'jpeg': ('mjpeg', 'yuvj420p'), 'webp': ('libwebp', 'yuv420p')}[fmt]
    context = av.CodecContext.create(codec, 'w')
    context.width, context.height, context.pix_fmt = width, height, pix_fmt
    context.time_base = Fraction(1, 1)
    frame = _picture(width, height, 3, 8).reformat(format=pix_fmt)
    return b''.join(bytes(packet) for packet in [*context.encode(frame), *context.encode()])


def padded(data: bytes, size: int) -> bytes:
    """`data` grown to `size` bytes with a `free` box before its `moov` box (unchanged if already that big)."""
    missing = size - len(data)
    moov = _top_level_box(data, b'moov')
    if missing < 8 or moov is None:
        return data
    return data[:moov] + struct.pack('>I', missing) + b'free' + bytes(missing - 8) + data[moov:]


def _top_level_box(data: bytes, kind: bytes) -> int | None:
    offset = 0
    while offset + 8 <= len(data):
        size, name = struct.unpack('>I4s', data[offset:offset + 8])
        if name == kind:
            return offset
        if size < 8:
            return None
        offset += size
    return None


def noise_video(size: int, seed: str) -> bytes:
    """An MP4 `ftyp` header followed by seeded noise: looks like a video to anything that reads only the header."""
    noise = random.Random(seed).randbytes(max(size - len(MP4_HEADER), 0))
    return (MP4_HEADER + noise)[:size]


@lru_cache(maxsize=8)
def with_broken_first_picture(data: bytes) -> bytes:
    """The same MP4 with the slice data of its first pictures overwritten: the container, its `moov` and every
    stream fact stay intact, so it probes as a video, but its first frames cannot be decoded."""
    broken = bytearray(data)
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        for count, packet in enumerate(container.demux(stream)):
            if packet.pos is None or packet.size == 0 or count >= 8:
                break
            # Keep the NAL length prefix (4 bytes); scramble the rest of the sample.
            start = packet.pos + 4
            broken[start:packet.pos + packet.size] = random.Random(count).randbytes(packet.size - 4)
    return bytes(broken)


# --- what the provider simulators serve ----------------------------------------------------------------------

# Bad results a prompt can ask for with `[sim:<name>]` (or the `download_undecodable` fault serves the first):
# noise behind an MP4 header, a video whose first pictures do not decode, a PNG where a video was due.
BAD_RESULTS = ('undecodable', 'broken-frame', 'still-image')


def bad_result(prompt: object) -> str | None:
    """The bad result a prompt's `[sim:...]` tags ask for, if any."""
    text = prompt if isinstance(prompt, str) else ''
    return next((name for name in BAD_RESULTS if f'[sim:{name}]' in text), None)


def video_result(*, aspect_ratio: str | None, seconds: float, audio: bool, size: int, seed: str,
                 bad: str | None = None, long_side: int = LONG_SIDE) -> bytes:
    """A video result of the asked shape and length, padded to `size` bytes (never cut); or the `bad` one."""
    if bad == 'undecodable':
        return noise_video(max(size, 4096), seed)
    if bad == 'still-image':
        return image(*dimensions(aspect_ratio, long_side), 'png')
    clip = video(*dimensions(aspect_ratio, long_side), seconds, audio=audio)
    return padded(with_broken_first_picture(clip) if bad == 'broken-frame' else clip, size)


def image_result(*, aspect_ratio: str | None, seed: str, bad: str | None = None) -> bytes:
    """A PNG result of the asked aspect (512 px on its long side); noise behind a PNG signature when `bad`."""
    if bad is not None:
        return b'\x89PNG\r\n\x1a\n' + random.Random(seed).randbytes(2048)
    return image(*dimensions(aspect_ratio, long_side=512), 'png')
