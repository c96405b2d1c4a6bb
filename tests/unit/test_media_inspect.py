"""The media check on real files made with PyAV (vidgen_local.sample_media): facts, validation, posters and
thumbnails, and how little of a file it reads."""

from __future__ import annotations

import io
from pathlib import Path

import av
import pytest
from vidgen.errors import MediaStorageError, UnplayableResultError
from vidgen.media.inspect import inspect, thumbnail_size
from vidgen.media.ranged import RangedReader
from vidgen_local import sample_media


def picture_size(jpeg: bytes) -> tuple[int, int]:
    with av.open(io.BytesIO(jpeg)) as container:
        assert container.streams.video[0].codec_context.name == 'mjpeg'
        frame = next(container.decode(video=0))
        return frame.width, frame.height


@pytest.mark.parametrize(('ratio', 'seconds', 'audio', 'size', 'thumbnail'), [
    ('16:9', 5.0, True, (480, 270), (320, 180)),
    ('9:16', 10.0, False, (270, 480), (180, 320)),
])
def test_a_video_gives_its_facts_a_full_size_poster_and_a_thumbnail_of_its_aspect(ratio, seconds, audio, size, thumbnail):
    clip = sample_media.video(*sample_media.dimensions(ratio), seconds, audio=audio)
    result = inspect(io.BytesIO(clip), 'video')
    assert result.media == {'container': 'mp4', 'video_codec': 'h264', 'width': size[0], 'height': size[1],
                            'duration_seconds': seconds, 'fps': 8.0, 'has_audio': audio}
    assert result.poster is not None and result.thumbnail is not None and result.note is None
    assert result.poster[:2] == b'\xff\xd8' and picture_size(result.poster) == size
    assert picture_size(result.thumbnail) == thumbnail


@pytest.mark.parametrize('fmt', ['png', 'jpeg', 'webp'])
def test_an_image_gives_its_facts_and_a_thumbnail_but_no_poster(fmt):
    result = inspect(io.BytesIO(sample_media.image(1024, 576, fmt)), 'image')
    assert result.media == {'format': fmt, 'width': 1024, 'height': 576}
    assert result.poster is None and result.thumbnail is not None
    assert picture_size(result.thumbnail) == (320, 180)


def test_a_small_image_keeps_its_size_as_thumbnail():
    result = inspect(io.BytesIO(sample_media.image(200, 120)), 'image')
    assert result.thumbnail is not None and picture_size(result.thumbnail) == (200, 120)
    assert thumbnail_size(4000, 1000) == (320, 80) and thumbnail_size(1000, 4000) == (80, 320)


def _faststart(clip: bytes, path: Path) -> bytes:
    """The same clip with its `moov` box first, as web-optimised files have it."""
    with av.open(io.BytesIO(clip)) as source, av.open(str(path), 'w', format='mp4',
                                                      options={'movflags': 'faststart'}) as out:
        stream = out.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return path.read_bytes()


def bad_videos(tmp_path: Path) -> dict[str, tuple[bytes, str]]:
    clip = sample_media.video(480, 270, 5.0)
    faststart = _faststart(clip, tmp_path / 'faststart.mp4')
    return {
        'noise behind an MP4 header': (sample_media.noise_video(300_000, 'seed'), 'no media format'),
        'an HTML error page': (b'<html><body><h1>502 Bad Gateway</h1></body></html>', 'no media format'),
        'a download cut before its moov': (clip[:len(clip) // 2], 'no media format'),
        'a faststart file cut midway': (faststart[:len(faststart) // 2], 'cut off'),
        'an image where a video was due': (sample_media.image(480, 270), 'still image'),
        'an empty file': (b'', 'no media format'),
    }


@pytest.mark.parametrize('case', ['noise behind an MP4 header', 'an HTML error page', 'a download cut before its moov',
                                  'a faststart file cut midway', 'an image where a video was due', 'an empty file'])
def test_what_is_not_a_playable_video_is_refused_with_an_actionable_message(case, tmp_path):
    data, reason = bad_videos(tmp_path)[case]
    with pytest.raises(UnplayableResultError) as caught:
        inspect(io.BytesIO(data), 'video')
    message = caught.value.message
    assert message.startswith('The provider returned a file that is not a playable video') and reason in message
    assert 'refunded' in message and caught.value.job_code == 'GENERATION_FAILED'


def test_a_complete_faststart_file_passes(tmp_path):
    faststart = _faststart(sample_media.video(480, 270, 5.0), tmp_path / 'faststart.mp4')
    assert inspect(io.BytesIO(faststart), 'video').media['duration_seconds'] == 5.0


@pytest.mark.parametrize('data', [sample_media.video(480, 270, 2.0), b'\x89PNG\r\n\x1a\n' + bytes(500), b'GIF89a'])
def test_what_is_not_a_readable_image_is_refused(data):
    with pytest.raises(UnplayableResultError, match='not a readable image'):
        inspect(io.BytesIO(data), 'image')


def test_a_decodable_video_whose_frames_do_not_decode_passes_without_a_poster():
    broken = sample_media.with_broken_first_picture(sample_media.video(480, 270, 5.0))
    result = inspect(io.BytesIO(broken), 'video')
    assert result.media['width'] == 480 and result.media['duration_seconds'] == 5.0
    assert result.poster is None and result.thumbnail is None and 'No poster' in (result.note or '')


def test_a_large_file_is_read_by_a_few_ranges_only():
    clip = sample_media.padded(sample_media.video(480, 270, 10.0), 200 * 1024 * 1024)  # moov at the end
    reader = RangedReader(lambda start, end: clip[start:end], len(clip))
    assert inspect(reader, 'video').poster is not None
    assert reader.requests <= 8 and reader.bytes_fetched <= 4 * 1024 * 1024


def test_a_storage_failure_while_reading_is_retryable_not_a_bad_result():
    clip = sample_media.video(480, 270, 5.0)

    def failing(start: int, end: int) -> bytes:
        raise MediaStorageError('Reading a stored result failed; it will be retried.')
    with pytest.raises(MediaStorageError):
        inspect(RangedReader(failing, len(clip)), 'video')


def test_the_reader_seeks_and_reads_like_a_file():
    data = bytes(range(256)) * 4000
    reader = RangedReader(lambda start, end: data[start:end], len(data), block_size=1000, max_blocks=2)
    reader.seek(-10, io.SEEK_END)
    assert reader.read(100) == data[-10:] and reader.read(5) == b''
    reader.seek(999)
    assert reader.read(3) == data[999:1002] and reader.tell() == 1002
    assert len(reader._blocks) <= 2
