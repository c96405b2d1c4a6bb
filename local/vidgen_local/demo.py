"""`vidgen demo`: a fresh local cloud, one user, a set of jobs that walk every path a user cares about, and a
storyboard of three scenes written from a product photo (by the LLM simulator), one video each.

Everything runs for real: the template's table, bucket and state machine on moto, the real handlers, the
provider simulators over loopback HTTP. Waits run faster (time scale) but nothing is skipped. The demo
exits 0 only if every job and the storyboard end as expected and the credits add up.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from vidgen_local.client import VidgenClient, media_summary, save_output
from vidgen_local.images import png_data_uri

START_CREDITS = 1000
TIME_SCALE = 20.0
TIMEOUT_SECONDS = 150


@dataclass
class Scenario:
    title: str
    body: dict[str, Any]
    expect_status: str
    expect_error: str | None = None


def scenarios() -> list[Scenario]:
    start, end = png_data_uri(shade=60), png_data_uri(shade=200)
    return [
        Scenario('Kling text-to-video', {'model': 'kling-v2-6', 'prompt': 'A lighthouse at dawn, waves rolling in',
                                         'aspect_ratio': '16:9'}, 'succeeded'),
        Scenario('Kling start+end frames', {'model': 'kling-v2-6', 'prompt': 'The sky turns from night to day',
                                            'image': start, 'end_image': end, 'mode': 'pro'}, 'succeeded'),
        Scenario('Kling, callbacks lost', {'model': 'kling-v2-6', 'prompt': 'A quiet harbour [sim:drop-callbacks]'},
                 'succeeded'),
        Scenario('Kling, content policy', {'model': 'kling-v2-6', 'prompt': 'Something forbidden [sim:content-policy]'},
                 'failed', 'CONTENT_POLICY'),
        Scenario('Kling, result does not play', {'model': 'kling-v2-6', 'prompt': 'Static noise [sim:undecodable]'},
                 'failed', 'GENERATION_FAILED'),
        Scenario('Veo 3.1 image-to-video', {'model': 'veo-3-1-fast', 'prompt': 'The camera drifts over the hills',
                                            'image': start, 'aspect_ratio': '9:16'}, 'succeeded'),
        Scenario('Seedream text-to-image', {'model': 'seedream-4-5', 'prompt': 'A red bicycle against a blue wall'},
                 'succeeded'),
    ]


STORYBOARD: dict[str, Any] = {
    'product': {'name': 'Aurora desk lamp', 'image': png_data_uri(shade=150),
                'description': 'A brass desk lamp with a warm, dimmable light and a base that folds flat.'},
    'scenes': 3, 'model': 'kling-v2-6', 'style': 'warm, minimal',
}


def run_demo(out: TextIO = sys.stdout, downloads: Path = Path('vidgen-downloads')) -> int:
    from vidgen_local.cloud import LocalCloud

    say = _printer(out)
    say('Starting the local cloud (moto, the template, the state machine, the provider simulators)...')
    began = time.monotonic()
    with LocalCloud(port=0, time_scale=TIME_SCALE, env={'POWERTOOLS_LOG_LEVEL': 'ERROR'}) as cloud:
        say(f'  ready in {time.monotonic() - began:.1f}s at {cloud.api_url}')
        admin = VidgenClient(cloud.api_url, admin_key=cloud.admin_key)
        user = admin.create_user(user_id='demo', credits=START_CREDITS)
        client = VidgenClient(cloud.api_url, api_key=user['api_key'])
        say(f'Created user "demo" with {START_CREDITS} credits.\n')
        plan = scenarios()
        jobs = []
        for scenario in plan:
            job = client.submit(scenario.body)
            jobs.append(job)
            say(f'  submitted {job["id"]}  {scenario.title:<28} {job["model"]:<14} {job["credits"]:>3} credits')
        storyboard = client.submit_storyboard(STORYBOARD)
        say(f'  submitted {storyboard["id"]}  storyboard of {storyboard["scene_count"]} scenes from a product photo, '
            f'{storyboard["credits"]} credits')
        say('')
        finished = _follow(client, jobs, plan, say)
        storyboard = _follow_storyboard(client, storyboard, say)
        credits = client.credits()
        _save_outputs(client, plan, finished, downloads, say)
    return _report(plan, finished, storyboard, credits, say, time.monotonic() - began)


def _save_outputs(client: VidgenClient, plan: list[Scenario], jobs: list[dict], downloads: Path, say: Any) -> None:
    """What each result is (read from the file before its job succeeded), downloaded with its poster."""
    say(f'\nOutputs (saved in {downloads}/, each poster next to its file):')
    for scenario, job in zip(plan, jobs, strict=True):
        for index, output in enumerate(job['outputs']):
            saved = save_output(client, job['id'], index, output, downloads)
            if len(saved) > 1:
                poster = f' + {saved[1].name}'
            else:
                poster = f' ({output["note"]})' if output.get('note') else ''
            say(f'  {scenario.title:<28} {media_summary(output):<38} {saved[0].name}{poster}')


def _follow(client: VidgenClient, jobs: list[dict], plan: list[Scenario], say: Any) -> list[dict]:
    """Poll every job until all have ended, printing each status change as it happens."""
    seen = {job['id']: job['status'] for job in jobs}
    latest = {job['id']: job for job in jobs}
    started = time.monotonic()
    while time.monotonic() - started < TIMEOUT_SECONDS:
        for job, scenario in zip(jobs, plan, strict=True):
            current = client.job(job['id'])
            latest[job['id']] = current
            if current['status'] != seen[job['id']]:
                seen[job['id']] = current['status']
                detail = f' ({current["error"]["code"]})' if current.get('error') else ''
                say(f'  {time.monotonic() - started:5.1f}s  {scenario.title:<28} -> {current["status"]}{detail}')
        if all(job['status'] in ('succeeded', 'failed', 'canceled') for job in latest.values()):
            break
        time.sleep(0.5)
    return [latest[job['id']] for job in jobs]


def _follow_storyboard(client: VidgenClient, storyboard: dict, say: Any) -> dict:
    """Poll the storyboard until it ended, printing its status and each scene's job as they change."""
    seen: set[str] = set()
    started = time.monotonic()
    while time.monotonic() - started < TIMEOUT_SECONDS:
        storyboard = client.storyboard(storyboard['id'])
        lines = [f'storyboard {storyboard["status"]}' + (f' (scenes by {storyboard["scenes_source"]})'
                                                         if storyboard['scenes_source'] else '')]
        lines += [f'scene {s["index"] + 1} "{s["title"]}" -> {s["job"]["status"] if s["job"] else "no job yet"}'
                  for s in storyboard['scenes']]
        for line in lines:
            if line not in seen:
                seen.add(line)
                say(f'  {time.monotonic() - started:5.1f}s  {line}')
        if storyboard['status'] not in ('writing', 'generating'):
            break
        time.sleep(0.5)
    return storyboard


def _report(plan: list[Scenario], jobs: list[dict], storyboard: dict, credits: dict, say: Any, elapsed: float) -> int:
    say('')
    header = f'{"job":<30} {"model":<14} {"status":<10} {"seconds":>7} {"credits":>7} {"refunded":>8} {"output":>10}'
    say(header)
    say('-' * len(header))
    ok = True
    for scenario, job in zip(plan, jobs, strict=True):
        seconds = _seconds(job)
        size = sum(o['bytes'] for o in job['outputs'])
        expected = job['status'] == scenario.expect_status and (job['error'] or {}).get('code') == scenario.expect_error
        ok &= expected
        say(f'{job["id"]:<30} {job["model"]:<14} {job["status"]:<10} {seconds:>7} {job["credits"]:>7} '
            f'{"yes" if job["refunded"] else "no":>8} {_size(size):>10}{"" if expected else "   <- unexpected"}')
    say(f'\nStoryboard {storyboard["id"]}: {storyboard["status"]}, scenes written by {storyboard["scenes_source"]}, '
        f'{storyboard["credits"]} credits paid at once')
    for scene in storyboard['scenes']:
        job = scene['job'] or {}
        size = sum(o['bytes'] for o in job.get('outputs', []))
        say(f'  scene {scene["index"] + 1}  {scene["title"]:<34.34} {job.get("status", "-"):<10} {_size(size):>10}  '
            f'{scene["prompt"][:60]}')
    ok &= storyboard['status'] == 'succeeded' and len(storyboard['scenes']) == STORYBOARD['scenes']
    charged = sum(job['credits'] for job in jobs) + storyboard['credits']
    refunded = sum(job['credits'] for job in jobs if job['refunded']) + storyboard['refunded_credits']
    ledger_total = sum(entry['amount'] for entry in credits['ledger'])
    balanced = credits['balance'] == START_CREDITS - charged + refunded == ledger_total
    ok &= balanced
    say(f'\nBalance: {credits["balance"]} credits = {START_CREDITS} granted - {charged} charged + {refunded} refunded'
        f' ({"matches" if balanced else "DOES NOT match"} the ledger sum {ledger_total})')
    say('Ledger (newest first):')
    for entry in credits['ledger']:
        reference = entry.get('job_id') or entry.get('reference_id') or ''
        say(f'  {entry["at"]}  {entry["type"]:<6} {entry["amount"]:>+6}  {reference}')
    say(f'\n{"All jobs ended as expected." if ok else "Some jobs did not end as expected."} ({elapsed:.0f}s)')
    return 0 if ok else 1


def _seconds(job: dict) -> str:
    if not job.get('completed_at'):
        return '-'
    from datetime import datetime

    start = datetime.fromisoformat(job['created_at'].replace('Z', '+00:00'))
    end = datetime.fromisoformat(job['completed_at'].replace('Z', '+00:00'))
    return f'{(end - start).total_seconds():.1f}'


def _size(count: int) -> str:
    if count == 0:
        return '-'
    if count < 1024:
        return f'{count} B'
    return f'{count / 1024:.0f} KiB' if count < 1024**2 else f'{count / 1024**2:.1f} MiB'


def _printer(out: TextIO) -> Any:
    def say(line: str) -> None:
        print(line, file=out, flush=True)
    return say
