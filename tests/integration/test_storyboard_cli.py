"""`vidgen storyboard` and `vidgen storyboards` against the local cloud: what a user sees and what lands on disk."""

from __future__ import annotations

import json
import uuid

import pytest
from support import PNG_IMAGE, listed_once_caught_up
from vidgen_local import cli

PRICE = 20  # kling-v2-6, 5 s, std


def _listed_once_finished(user, status: str) -> list:
    """The user's storyboards once the listing (an index, which lags a write) shows the one storyboard `status`."""
    def read() -> list:
        return user.get('/v1/storyboards').json()['storyboards']
    listed_once_caught_up(lambda: [s['status'] for s in read()], [status])
    return read()


@pytest.fixture
def as_user(cloud, new_user, monkeypatch):
    """Run `vidgen` as a new user of the local cloud: returns (run(argv) -> exit code, the user's Api)."""
    for name in ('VIDGEN_API_URL', 'VIDGEN_API_KEY', 'VIDGEN_ADMIN_KEY'):
        monkeypatch.delenv(name, raising=False)

    def make(credits: int = 1000):
        user = new_user(credits)
        return (lambda *argv: cli.main(['--api-url', cloud.api_url, '--api-key', user.key, *argv])), user
    return make


def _product(tag: str = '') -> list[str]:
    name = f'Lumen lamp {uuid.uuid4().hex[:6]}'
    return ['--name', name, '--description', f'A brass desk lamp with a warm light. {tag}'.strip()]


def test_storyboard_wait_shows_each_scene_and_saves_every_video(as_user, tmp_path, capsys):
    run, user = as_user()
    photo = tmp_path / 'lamp.png'
    photo.write_bytes(PNG_IMAGE)
    out = tmp_path / 'videos'

    code = run('storyboard', *_product(), '--image', str(photo), '--scenes', '3', '--model', 'kling-v2-6',
               '--style', 'warm, minimal', '--wait', '--output', str(out), '--poll-interval', '0.2')

    printed = capsys.readouterr()
    assert code == 0, printed
    [storyboard] = _listed_once_finished(user, 'succeeded')
    assert storyboard['status'] == 'succeeded' and storyboard['product']['image_url']
    lines = printed.out.splitlines()
    assert f'{storyboard["id"]}  writing' in lines and f'{storyboard["id"]}  succeeded  (scenes by llm)' in lines
    for scene in storyboard['scenes']:
        # Progress per scene: each scene's line as its job moves, ending in its final status.
        mine = [line for line in lines if line.startswith(f'  scene {scene["index"] + 1}/3 ')]
        assert mine and mine[-1].split()[2] == 'succeeded' and mine[-1].endswith(scene['title']), lines
        assert len(mine) == len(set(mine))  # a line is printed when it changes, not at every poll
    saved = sorted(out.iterdir())
    assert [p.name.split('-')[1] for p in saved] == ['scene1', 'scene2', 'scene3']
    for path, scene in zip(saved, storyboard['scenes'], strict=True):
        output = scene['job']['outputs'][0]
        assert path.name.startswith(f'{storyboard["id"]}-scene{scene["index"] + 1}-{scene["job_id"]}')
        assert path.stat().st_size == output['bytes'] > 0
        assert f'saved {path} ({output["bytes"]} bytes)' in lines
    assert printed.err == ''


def test_a_partial_storyboard_saves_what_succeeded_and_exits_1_saying_what_was_refunded(as_user, tmp_path, capsys):
    run, user = as_user()
    out = tmp_path / 'videos'

    code = run('storyboard', *_product('[scene-2 sim:content-policy]'), '--model', 'kling-v2-6', '--wait',
               '--output', str(out), '--poll-interval', '0.2')

    printed = capsys.readouterr()
    assert code == 1
    [storyboard] = _listed_once_finished(user, 'partial')
    assert storyboard['status'] == 'partial'
    refused = [line for line in printed.out.splitlines() if line.startswith('  scene 2/3 ')][-1]
    assert refused.split()[2] == 'failed' and '- CONTENT_POLICY: ' in refused
    assert sorted(p.name.split('-')[1] for p in out.iterdir()) == ['scene1', 'scene3']
    assert printed.err.strip() == f'{storyboard["id"]} partial: +{PRICE} credits refunded'  # refunds with their sign
    assert user.credits()['balance'] == 1000 - 2 * PRICE


def test_without_wait_it_prints_the_storyboard_and_returns_at_once(as_user, capsys):
    run, user = as_user()
    assert run('storyboard', *_product(), '--scenes', '2', '--model', 'kling-v2-6',
               '--idempotency-key', 'cli-sb-1') == 0
    line = capsys.readouterr().out.strip()
    storyboard_id = line.split()[0]
    assert storyboard_id.startswith('sb_') and line == f'{storyboard_id}  writing  2 scenes  {2 * PRICE} credits'
    assert run('storyboard', *_product(), '--scenes', '2', '--model', 'kling-v2-6', '--json',
               '--idempotency-key', f'cli-sb-{uuid.uuid4().hex}') == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed['id'].startswith('sb_') and printed['scene_count'] == 2
    both = {storyboard_id, printed['id']}
    assert listed_once_caught_up(lambda: {s['id'] for s in user.get('/v1/storyboards').json()['storyboards']}, both) == both


def test_a_refused_storyboard_prints_the_reason_and_exits_1(as_user, capsys):
    run, user = as_user(credits=PRICE)
    assert run('storyboard', *_product(), '--scenes', '3', '--model', 'kling-v2-6') == 1
    err = capsys.readouterr().err
    assert 'INSUFFICIENT_CREDITS' in err and '60 credits (3 scenes at 20)' in err
    assert run('storyboard', *_product(), '--scenes', '9', '--model', 'kling-v2-6') == 1
    assert 'scenes' in capsys.readouterr().err
    assert user.get('/v1/storyboards').json()['storyboards'] == []


def test_storyboards_lists_newest_first_page_by_page(as_user, capsys):
    run, user = as_user()
    ids = []
    for _ in range(3):
        assert run('storyboard', *_product(), '--scenes', '1', '--model', 'kling-v2-6') == 0
        ids.append(capsys.readouterr().out.split()[0])
    # The listing reads an index, which shows a write after a lag (on AWS too): list once it has caught up.
    listed_once_caught_up(lambda: [s['id'] for s in user.get('/v1/storyboards').json()['storyboards']], ids[::-1])

    assert run('storyboards', '--limit', '2') == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ['ID', 'STATUS', 'MODEL', 'SCENES', 'SOURCE', 'CREDITS', 'REFUNDED', 'CREATED']
    rows = [line.split() for line in lines if line.startswith('sb_')]
    assert [row[0] for row in rows] == ids[::-1][:2]
    assert all(row[2:4] == ['kling-v2-6', '1'] for row in rows)
    [more] = [line for line in lines if line.startswith('more: ')]
    cursor = more.split('--cursor ')[1]

    assert run('storyboards', '--limit', '2', '--cursor', cursor, '--json') == 0
    page = json.loads(capsys.readouterr().out)
    assert [s['id'] for s in page['storyboards']] == ids[:1] and page['next_cursor'] is None
