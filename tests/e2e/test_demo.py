"""`vidgen demo` (what `make demo` runs) as a new user meets it: its own process, its own local cloud."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VIDGEN = Path(sys.executable).with_name('vidgen')


def test_demo_runs_every_scenario_and_the_money_adds_up(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(('AWS_', 'KLING_', 'KIE_', 'LLM_', 'VIDGEN_'))}
    started = time.monotonic()
    result = subprocess.run([str(VIDGEN), 'demo', '--output', str(tmp_path)], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=180, check=False)
    elapsed = time.monotonic() - started
    out = result.stdout

    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    assert 'All jobs ended as expected.' in out
    rows = [line for line in out.splitlines() if re.match(r'job_\w+ ', line)]
    assert len(rows) == 7
    statuses = [row.split()[2] for row in rows]
    assert statuses == ['succeeded', 'succeeded', 'succeeded', 'failed', 'failed', 'succeeded', 'succeeded']
    # each output's resolution and duration, and its poster saved next to the download
    assert re.search(r'Kling text-to-video +480x270 h264 mp4, 5 s, 8 fps', out)
    assert re.search(r'Veo 3.1 image-to-video +270x480 h264 mp4, 8 s, 8 fps, sound', out)
    assert re.search(r'Seedream text-to-image +512x512 png', out)
    videos = sorted(tmp_path.glob('*.mp4'))
    assert len(videos) == 4 and len(list(tmp_path.glob('*.png'))) == 1
    for video in videos:
        poster = video.with_name(f'{video.stem}.poster.jpg')
        assert poster.read_bytes()[:2] == b'\xff\xd8' and poster.name in out
    assert re.search(r'Balance: (\d+) credits = 1000 granted - (\d+) charged \+ (\d+) refunded \(matches', out)
    assert 'refund' in out and 'debit' in out and 'grant' in out
    assert re.search(r'Storyboard sb_\w+: succeeded, scenes written by llm, 60 credits paid at once', out)
    scenes = [line.split() for line in out.splitlines() if re.match(r'  scene \d  ', line)]
    assert [row[1] for row in scenes] == ['1', '2', '3'] and all('succeeded' in row for row in scenes)
    assert elapsed < 180
