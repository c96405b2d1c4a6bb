"""The media section of `make bench`: a 500 MB video inspected from S3 with bounded memory.

A real H.264 MP4 of at least `--media-mb` megabytes (one group of noisy pictures, muxed again and again, so
`mdat` holds real samples and `moov` at the end indexes every one of them) is put into a moto S3 bucket.
A fresh child process then does what the media step does with it: ranged GETs through `result_reader`,
facts, completeness check, poster and thumbnail, pictures stored beside it. The child measures its own
peak RSS before and after (`ru_maxrss`), so neither moto nor the upload counts. The target: growth
<= 64 MB, whatever the file size.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from vidgen_local.coldstart import deployment_settings

RSS_GROWTH_LIMIT_MB = 64.0
BUCKET = 'vidgen-bench-media'
KEY = 'results/bench/job/0.mp4'
_GOP_FRAMES = 50
_FPS = 25


@dataclass
class MediaFigures:
    file_mb: float
    rss_before_mb: float = 0.0
    rss_peak_mb: float = 0.0
    seconds: float = 0.0
    range_requests: int = 0
    bytes_read: int = 0
    media: dict[str, Any] = field(default_factory=dict)
    poster: bool = False
    error: str | None = None

    @property
    def growth_mb(self) -> float:
        return self.rss_peak_mb - self.rss_before_mb

    @property
    def ok(self) -> bool:
        return self.error is None and self.poster and bool(self.media) and self.growth_mb <= RSS_GROWTH_LIMIT_MB

    def figures(self) -> dict[str, Any]:
        return asdict(self) | {'growth_mb': round(self.growth_mb, 1), 'limit_mb': RSS_GROWTH_LIMIT_MB, 'ok': self.ok}


def make_large_video(path: Path, min_bytes: int) -> tuple[int, float]:
    """Write an MP4 of at least `min_bytes` to `path`; returns (size, seconds of video)."""
    import av

    gop = io.BytesIO()
    with av.open(gop, 'w', format='mp4') as out:
        stream = out.add_stream('libx264', rate=_FPS, options={'preset': 'ultrafast', 'crf': '20',
                                                                'g': str(_GOP_FRAMES), 'bframes': '0'})
        stream.width, stream.height, stream.pix_fmt = 1280, 720, 'yuv420p'
        for index in range(_GOP_FRAMES):
            frame = av.VideoFrame(1280, 720, 'yuv420p')
            for plane in frame.planes:
                plane.update(os.urandom(plane.buffer_size))
            frame.pts = index
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with av.open(io.BytesIO(gop.getvalue())) as source:
        template = source.streams.video[0]
        packets = [(bytes(p), p.is_keyframe) for p in source.demux(template) if p.size]
        gop_bytes = sum(len(data) for data, _ in packets)
        repeats = -(-min_bytes // gop_bytes)
        with av.open(str(path), 'w', format='mp4') as out:
            stream = out.add_stream_from_template(template)
            stream.time_base = Fraction(1, _FPS)
            pts = 0
            for _ in range(repeats):
                for data, keyframe in packets:
                    packet = av.Packet(data)
                    packet.stream, packet.pts, packet.dts, packet.duration = stream, pts, pts, 1
                    packet.time_base = Fraction(1, _FPS)
                    packet.is_keyframe = keyframe
                    out.mux(packet)
                    pts += 1
    return path.stat().st_size, pts / _FPS


def _status_mb(field_name: str) -> float:
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(field_name + ':'):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f'/proc/self/status has no {field_name}')


def _reset_peak_rss() -> None:
    """Make the peak RSS (VmHWM) start from now. ru_maxrss would not do: Linux carries the parent's peak
    across fork and exec, and the parent holds moto with the whole file in memory."""
    Path('/proc/self/clear_refs').write_text('5')


def child(size: int) -> dict[str, Any]:
    """In a fresh process: warm up on a small file (imports, codecs), then inspect the large one."""
    from vidgen.media.inspect import inspect
    from vidgen.store import media as media_store

    from vidgen_local import sample_media

    inspect(io.BytesIO(sample_media.video(480, 270, 2.0)), 'video')
    _reset_peak_rss()
    before = _status_mb('VmRSS')
    started = time.monotonic()
    reader = media_store.result_reader(KEY, size)
    result = inspect(reader, 'video')
    poster_key, thumbnail_key = media_store.picture_keys(KEY)
    if result.poster and result.thumbnail:
        media_store.put_picture(poster_key, result.poster)
        media_store.put_picture(thumbnail_key, result.thumbnail)
    return {'rss_before_mb': before, 'rss_peak_mb': _status_mb('VmHWM'), 'seconds': time.monotonic() - started,
            'range_requests': reader.requests, 'bytes_read': reader.bytes_fetched, 'media': result.media,
            'poster': result.poster is not None}


def run_media_bench(megabytes: int, say: Callable[[str], None]) -> MediaFigures:
    import logging

    import boto3
    from boto3.s3.transfer import TransferConfig
    from moto.server import ThreadedMotoServer

    logging.getLogger('werkzeug').setLevel(logging.WARNING)  # one line per ranged GET otherwise

    with tempfile.TemporaryDirectory(prefix='vidgen-bench-media-') as folder:
        path = Path(folder) / 'large.mp4'
        began = time.monotonic()
        size, seconds = make_large_video(path, megabytes * 1024 * 1024)
        figures = MediaFigures(file_mb=round(size / 1024**2, 1))
        say(f'  made a {figures.file_mb:g} MB H.264 MP4 ({seconds:g} s of 1280x720, moov at the end) '
            f'in {time.monotonic() - began:.0f}s')
        server = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            env = {**os.environ, **deployment_settings('vidgen-bench'),
                   'AWS_ENDPOINT_URL': f'http://{host}:{port}', 'AWS_ACCESS_KEY_ID': 'bench',
                   'AWS_SECRET_ACCESS_KEY': 'bench', 'AWS_DEFAULT_REGION': 'us-east-1', 'BUCKET_NAME': BUCKET,
                   'POWERTOOLS_SERVICE_NAME': 'vidgen', 'POWERTOOLS_LOG_LEVEL': 'ERROR'}
            s3 = boto3.client('s3', endpoint_url=env['AWS_ENDPOINT_URL'], region_name='us-east-1',
                              aws_access_key_id='bench', aws_secret_access_key='bench')
            s3.create_bucket(Bucket=BUCKET)
            s3.upload_file(str(path), BUCKET, KEY, Config=TransferConfig(multipart_chunksize=64 * 1024**2))
            path.unlink()
            run = subprocess.run([sys.executable, '-m', 'vidgen_local.bench_media', '--child', str(size)], env=env,
                                 capture_output=True, text=True, timeout=300, check=False)
        finally:
            server.stop()
    if run.returncode != 0:
        figures.error = (run.stderr.strip().splitlines() or ['the child process failed'])[-1]
        return figures
    for name, value in json.loads(run.stdout.strip().splitlines()[-1]).items():
        setattr(figures, name, value)
    return figures


def report(figures: MediaFigures, say: Callable[[str], None]) -> None:
    media = figures.media
    facts = (f'{media.get("width")}x{media.get("height")} {media.get("video_codec")}, '
             f'{media.get("duration_seconds")} s' if media else 'no facts')
    say(f'Media: a {figures.file_mb:g} MB video inspected from S3 in {figures.seconds:.1f}s: {facts}, '
        f'poster {"made" if figures.poster else "MISSING"}; {figures.range_requests} ranged GETs read '
        f'{figures.bytes_read / 1024**2:.1f} MB; peak RSS {figures.rss_before_mb:.0f} -> {figures.rss_peak_mb:.0f} MB, '
        f'growth {figures.growth_mb:.1f} MB (limit {RSS_GROWTH_LIMIT_MB:g} MB): {"OK" if figures.ok else "FAILED"}'
        f'{"; " + figures.error if figures.error else ""}')


if __name__ == '__main__' and sys.argv[1:2] == ['--child']:
    print(json.dumps(child(int(sys.argv[2]))))
