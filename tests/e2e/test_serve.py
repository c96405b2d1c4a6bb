"""`vidgen serve` as a user runs it (e2e: over HTTP only): a process on 127.0.0.1, driven by the `vidgen` client commands,
stopped by SIGTERM or Ctrl-C with exit code 0 and nothing left listening."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from support import listed_once_caught_up
from vidgen_local import cli

ROOT = Path(__file__).resolve().parents[2]
VIDGEN = Path(sys.executable).with_name('vidgen')


class Served:
    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc = proc
        self.port = port
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)

    def wait_for(self, pattern: str, timeout: float = 90) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if found := re.search(pattern, line):
                return found
        raise AssertionError(f'no {pattern!r} in the output:\n{"".join(self.output)[-4000:]}')

    def stop(self, signum: int) -> int:
        self.proc.send_signal(signum)
        return self.proc.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _serve() -> Iterator[Served]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(('KLING_', 'KIE_', 'LLM_', 'VIDGEN_', 'AWS_'))}
    env.update(VIDGEN_PORT=str(port), PYTHONUNBUFFERED='1', POWERTOOLS_LOG_LEVEL='WARNING')
    proc = subprocess.Popen([str(VIDGEN), 'serve'], cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    served = Served(proc, port)
    try:
        yield served
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def served() -> Iterator[Served]:
    yield from _serve()


def _closed(port: int) -> bool:
    try:
        socket.create_connection(('127.0.0.1', port), timeout=0.5).close()
    except OSError:
        return True
    return False


def test_serve_prints_keys_serves_the_client_commands_and_stops_on_sigterm(served, tmp_path, monkeypatch, capsys):
    # Given `vidgen serve` is up, naming the playground first
    playground = served.wait_for(r'playground\s+(http://127\.0\.0\.1:\d+/)').group(1)
    api_url = served.wait_for(r'API\s+(http://127\.0\.0\.1:\d+)').group(1)
    admin_key = served.wait_for(r'admin key\s+(\S+)').group(1)
    user_key = served.wait_for(r'user key\s+(\S+)').group(1)
    export = served.wait_for(r'export (VIDGEN_API_URL=\S+ VIDGEN_API_KEY=\S+ VIDGEN_ADMIN_KEY=\S+)').group(1)
    served.wait_for('Ctrl-C stops everything')
    assert api_url == f'http://127.0.0.1:{served.port}' and playground == f'{api_url}/'
    page = requests.get(playground, timeout=30)
    assert page.status_code == 200 and '<title>vidgen playground</title>' in page.text
    # the line to paste names all three settings the client commands read, admin key included
    assert export == f'VIDGEN_API_URL={api_url} VIDGEN_API_KEY={user_key} VIDGEN_ADMIN_KEY={admin_key}'
    monkeypatch.setenv('VIDGEN_API_URL', api_url)
    monkeypatch.setenv('VIDGEN_API_KEY', user_key)
    monkeypatch.setenv('VIDGEN_ADMIN_KEY', admin_key)
    capsys.readouterr()

    # When a user drives it with the client commands
    assert cli.main(['credits']) == 0
    assert 'balance: 1000' in capsys.readouterr().out
    assert cli.main(['admin', 'create-user', '--credits', '20']) == 0
    assert re.search(r'api_key: \S+', capsys.readouterr().out)
    assert cli.main(['submit', '--model', 'kling-v2-6', '--prompt', 'a red fox in the snow', '--wait',
                     '--output', str(tmp_path), '--poll-interval', '0.2', '--timeout', '120']) == 0
    out = capsys.readouterr().out
    saved = sorted(tmp_path.iterdir(), key=lambda path: path.suffix)
    # Then the job succeeded and its output was downloaded from the local bucket, its poster next to it
    assert [path.suffix for path in saved] == ['.jpg', '.mp4'] and saved[1].stat().st_size > 0, out
    assert saved[0].name == saved[1].name.replace('.mp4', '.poster.jpg') and '480x270 h264 mp4, 5 s' in out
    job_id = saved[1].name.split('-0.')[0]

    def listed() -> bool:
        assert cli.main(['jobs', '--status', 'succeeded']) == 0
        return job_id in capsys.readouterr().out

    assert listed_once_caught_up(listed, True)  # the listing reads an index, which lags the job's last write
    assert cli.main(['job', job_id]) == 0
    assert '"status": "succeeded"' in capsys.readouterr().out

    # And SIGTERM stops everything with exit code 0
    assert served.stop(signal.SIGTERM) == 0
    assert 'stopped' in ''.join(served.output)
    assert _closed(served.port)


def test_ctrl_c_stops_serve_cleanly(served):
    served.wait_for('Ctrl-C stops everything')
    assert served.stop(signal.SIGINT) == 0
    assert 'stopped' in ''.join(served.output) and 'Traceback' not in ''.join(served.output)
    assert _closed(served.port)


def test_serve_never_prints_the_provider_secrets(served):
    from vidgen_local.simulators.kie import KieSimConfig
    from vidgen_local.simulators.kling import KlingSimConfig

    served.wait_for('Ctrl-C stops everything')
    assert served.stop(signal.SIGTERM) == 0
    output = ''.join(served.output)
    assert KlingSimConfig().secret_key not in output and KieSimConfig().api_key not in output
