"""What a result is, read with FFmpeg's libraries (PyAV): its facts, whether it is what its model makes, and
its poster and thumbnail.

A result passes when it opens as the kind its model produces: for a video model a real video container
with a video stream of known size and a positive length whose last samples are in the file; for an image
model a picture that decodes. Anything else (noise, an HTML page, a cut-off file, an image where a video
was due) raises `UnplayableResultError`, which fails the job as GENERATION_FAILED. A video whose picture
cannot be decoded still passes: it only loses its poster (`note` says so), because the poster must never
cost the user the job.

The work is bounded whatever the file size: the facts come from the container's index (`moov`), the
completeness check reads the last group of pictures, the poster decodes one frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import IO, Any

import av
import av.error

from vidgen.errors import UnplayableResultError

THUMBNAIL_LONG_SIDE = 320
POSTER_AT_SECONDS = 1.0  # later than a fade-in from black, early enough for any clip (halved for short ones)
_MAX_POSTER_PACKETS = 64  # a decoder that has not produced a frame after this many packets never will
_JPEG_QUALITY = 3  # FFmpeg's -q:v scale, 2 (best) to 31
# A clip whose samples stop this much before its declared end was cut off.
_TRUNCATION_TOLERANCE_SECONDS = 0.5
# FFmpeg demuxers that read one still picture, and the image codecs they hand out.
_IMAGE_DEMUXERS = {'image2', 'png_pipe', 'jpeg_pipe', 'webp_pipe', 'gif_pipe', 'bmp_pipe', 'tiff_pipe', 'gif'}
_IMAGE_CODECS = {'png': 'png', 'mjpeg': 'jpeg', 'webp': 'webp', 'gif': 'gif', 'bmp': 'bmp', 'tiff': 'tiff'}
_AFTER = 'the job failed and its credits were refunded; submitting it again usually gives a good result.'


@dataclass
class Inspection:
    media: dict[str, Any]  # the facts shown as outputs[].media
    poster: bytes | None = None  # JPEG, full size (videos only)
    thumbnail: bytes | None = None  # JPEG, at most THUMBNAIL_LONG_SIDE px on its long side
    note: str | None = None  # why a poster or thumbnail is missing


def not_playable(kind: str, reason: str) -> UnplayableResultError:
    what = 'a playable video' if kind == 'video' else 'a readable image'
    return UnplayableResultError(f'The provider returned a file that is not {what} ({reason}); {_AFTER}')


def inspect(file: IO[bytes], kind: str) -> Inspection:
    """Inspect one result of a model of `kind` ('video' or 'image'). Raises `UnplayableResultError`."""
    try:
        container = av.open(file, 'r')
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise not_playable(kind, 'no media format recognises it') from exc
    with container:
        if kind == 'video':
            return _inspect_video(container)
        return _inspect_image(container)


def _is_still_image(container: av.container.InputContainer) -> bool:
    names = set(container.format.name.split(','))
    streams = container.streams.video
    return bool(names & _IMAGE_DEMUXERS) or (len(streams) == 1 and streams[0].codec_context.name in _IMAGE_CODECS
                                              and not streams[0].frames > 1)


# --- videos ------------------------------------------------------------------------------------------------


def _inspect_video(container: av.container.InputContainer) -> Inspection:
    if _is_still_image(container):
        raise not_playable('video', 'it is a still image')
    if not container.streams.video:
        raise not_playable('video', 'it has no video stream')
    stream = container.streams.video[0]
    width, height = stream.codec_context.width, stream.codec_context.height
    duration = _duration(container, stream)
    if not width or not height:
        raise not_playable('video', 'its picture has no size')
    if duration is None or duration <= 0:
        raise not_playable('video', 'it has no length')
    _check_complete(container, stream, duration)
    rate = stream.average_rate or stream.guessed_rate
    media = {
        'container': _container_name(container, stream),
        'video_codec': stream.codec_context.name,
        'width': width,
        'height': height,
        'duration_seconds': round(duration, 3),
        'fps': round(float(rate), 3) if rate else None,
        'has_audio': bool(container.streams.audio),
    }
    frame = _poster_frame(container, stream, duration)
    if frame is None:
        return Inspection(media, note='No poster: the video plays, but its first frames could not be decoded.')
    return Inspection(media, poster=_jpeg(frame, width, height), thumbnail=_jpeg(frame, *thumbnail_size(width, height)))


def _duration(container: av.container.InputContainer, stream: av.VideoStream) -> float | None:
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _check_complete(container: av.container.InputContainer, stream: av.VideoStream, duration: float) -> None:
    """The last sample the index names must be in the file: a cut-off download ends before it. Only that
    sample is read (the demuxer goes straight to it), so the check costs one small range, not a GOP."""
    assert stream.time_base is not None
    start = stream.start_time or 0
    last = start + max(0, int(duration / stream.time_base) - 1)
    try:
        container.seek(last, stream=stream, backward=True, any_frame=True)
        packet = next((p for p in container.demux(stream) if p.size), None)
    except av.error.FFmpegError as exc:
        raise not_playable('video', 'its samples cannot be read') from exc
    end = None if packet is None or packet.pts is None else float(
        (packet.pts - start + (packet.duration or 0)) * stream.time_base)
    if end is None or end < duration - _TRUNCATION_TOLERANCE_SECONDS:
        raise not_playable('video', 'it ends before its declared length: the file was cut off')


def _container_name(container: av.container.InputContainer, stream: av.VideoStream) -> str:
    names = container.format.name.split(',')
    if 'mov' in names:
        return 'mov' if container.metadata.get('major_brand', '').startswith('qt') else 'mp4'
    if 'matroska' in names:
        return 'webm' if stream.codec_context.name in ('vp8', 'vp9', 'av1') else 'mkv'
    return names[0]


def _poster_frame(container: av.container.InputContainer, stream: av.VideoStream, duration: float) -> av.VideoFrame | None:
    """The first frame of the group of pictures around POSTER_AT_SECONDS (or mid-clip), or None if it does
    not decode."""
    assert stream.time_base is not None
    at = min(POSTER_AT_SECONDS, duration / 2)
    try:
        container.seek((stream.start_time or 0) + int(at / stream.time_base), stream=stream, backward=True)
        for count, packet in enumerate(container.demux(stream)):
            if count >= _MAX_POSTER_PACKETS:
                return None
            for frame in packet.decode():
                if isinstance(frame, av.VideoFrame) and not frame.is_corrupt:
                    return frame
                return None
    except av.error.FFmpegError:
        return None
    return None


# --- images ------------------------------------------------------------------------------------------------


def _inspect_image(container: av.container.InputContainer) -> Inspection:
    streams = container.streams.video
    if not streams or not _is_still_image(container):
        raise not_playable('image', 'it is not a still picture')
    stream = streams[0]
    try:
        frame = next((f for f in container.decode(stream) if isinstance(f, av.VideoFrame)), None)
    except av.error.FFmpegError as exc:
        raise not_playable('image', 'its picture does not decode') from exc
    if frame is None or frame.is_corrupt:
        raise not_playable('image', 'its picture does not decode')
    media = {'format': _IMAGE_CODECS.get(stream.codec_context.name, stream.codec_context.name),
             'width': frame.width, 'height': frame.height}
    return Inspection(media, thumbnail=_jpeg(frame, *thumbnail_size(frame.width, frame.height)))


# --- pictures ----------------------------------------------------------------------------------------------


def thumbnail_size(width: int, height: int) -> tuple[int, int]:
    """At most THUMBNAIL_LONG_SIDE on the long side, aspect kept; smaller pictures keep their size."""
    long_side = max(width, height)
    if long_side <= THUMBNAIL_LONG_SIDE:
        return width, height
    scale = THUMBNAIL_LONG_SIDE / long_side
    return max(1, round(width * scale)), max(1, round(height * scale))


def _jpeg(frame: av.VideoFrame, width: int, height: int) -> bytes:
    picture = frame.reformat(width=width, height=height, format='yuvj420p', interpolation='AREA')
    encoder = av.CodecContext.create('mjpeg', 'w')
    encoder.width, encoder.height, encoder.pix_fmt = width, height, 'yuvj420p'
    encoder.time_base = Fraction(1, 1)
    encoder.qscale = True  # fixed quality instead of a bit rate meant for motion JPEG streams
    encoder.global_quality = _JPEG_QUALITY * 118  # FF_QP2LAMBDA
    return b''.join(bytes(packet) for packet in [*encoder.encode(picture), *encoder.encode()])
