"""How much memory copying a large result into S3 takes, measured (for `make bench`).

A result server on 127.0.0.1 produces `size` bytes on the fly (a 1 MiB block repeated, never held whole),
and a fresh interpreter, set up like the poller function (its environment and its role's credentials, the
local cloud's moto endpoint), runs the layer's real copy path, `vidgen.store.media.copy_result`: the
streamed download into boto3's multipart upload. The child samples its resident memory every 10 ms: the
figure is the peak during the large copy minus the resident memory just before it, after a 1 MiB warm-up
copy has paid for the imports, clients and connection pools. The object's size in S3 is checked against
what was served.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_BLOCK = os.urandom(1024 * 1024)

_CHILD = '''
import json, os, sys, threading, time
from vidgen.store import media

PAGE = os.sysconf('SC_PAGE_SIZE')

def rss_mb():
    with open('/proc/self/statm') as statm:
        return int(statm.read().split()[1]) * PAGE / 1024**2

small, large = sys.argv[1], sys.argv[2]
media.copy_result(small, 'bench', 'warmup', 0, 'video/mp4')
before = rss_mb()
peak = [before]
done = threading.Event()

def sample():
    while not done.wait(0.01):
        peak[0] = max(peak[0], rss_mb())

sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
stored = media.copy_result(large, 'bench', 'large', 0, 'video/mp4')
done.set()
sampler.join()
peak[0] = max(peak[0], rss_mb())
print(json.dumps({'before_mb': before, 'after_mb': peak[0], 'bytes': stored.bytes, 'key': stored.key}))
'''


@dataclass
class StreamingFigures:
    size_bytes: int
    stored_bytes: int
    object_bytes: int
    peak_before_mb: float
    peak_after_mb: float
    seconds: float

    @property
    def added_mb(self) -> float:
        return self.peak_after_mb - self.peak_before_mb


class _ResultServer:
    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                size = int(self.path.rsplit('/', 1)[-1])
                self.send_response(200)
                self.send_header('Content-Type', 'video/mp4')
                self.send_header('Content-Length', str(size))
                self.end_headers()
                left = size
                while left > 0:
                    chunk = _BLOCK[:min(left, len(_BLOCK))]
                    self.wfile.write(chunk)
                    left -= len(chunk)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True, name='bench-result-server')

    def __enter__(self) -> str:
        self.thread.start()
        host, port = self.server.server_address[:2]
        return f'http://{host}:{port}'

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def measure(cloud: Any, size: int, timeout: float = 600) -> StreamingFigures:
    import time

    # The poller's environment and its role's credentials: finalize is the step that copies results.
    env = {**os.environ, **cloud.function_env('PollerFunction'), 'AWS_ENDPOINT_URL': cloud.moto_url,
           'POWERTOOLS_LOG_LEVEL': 'ERROR'}
    with _ResultServer() as base:
        began = time.monotonic()
        proc = subprocess.run([sys.executable, '-c', _CHILD, f'{base}/result/{1024 * 1024}', f'{base}/result/{size}'],
                              capture_output=True, text=True, timeout=timeout, env=env)
        seconds = time.monotonic() - began
    if proc.returncode != 0:
        raise RuntimeError(f'the streaming copy failed: {proc.stderr[-2000:]}')
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    head = cloud._client('s3').head_object(Bucket=cloud.handler_env['BUCKET_NAME'], Key=found['key'])
    return StreamingFigures(size_bytes=size, stored_bytes=found['bytes'], object_bytes=head['ContentLength'],
                            peak_before_mb=found['before_mb'], peak_after_mb=found['after_mb'], seconds=seconds)
