"""The storyboard commands of `vidgen`: `vidgen storyboard` (submit, optionally wait and download every scene)
and `vidgen storyboards` (list). Registered by `vidgen_local.cli`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

from vidgen_local.client import ApiError, VidgenClient, image_input, output_filename
from vidgen_local.terminal import byte_bar, signed, table

ACTIVE = ('writing', 'generating')


def add_commands(command: Callable[[str, Any, str], argparse.ArgumentParser]) -> None:
    storyboard = command('storyboard', cmd_storyboard,
                         'Submit a storyboard: scenes written from a product, one video per scene.')
    storyboard.add_argument('--name', required=True, help='The product name.')
    storyboard.add_argument('--description', required=True, help='What the product is and what matters about it.')
    storyboard.add_argument('--image', help='Product photo (file path or http(s) URL): every scene starts from it.')
    storyboard.add_argument('--scenes', type=int, default=3, help='How many scenes (1 to 6, default 3).')
    storyboard.add_argument('--model', required=True)
    storyboard.add_argument('--duration', type=int)
    storyboard.add_argument('--aspect-ratio')
    storyboard.add_argument('--mode', help='Quality mode, e.g. std or pro.')
    storyboard.add_argument('--style', help='The look to aim for, e.g. "warm, minimal".')
    storyboard.add_argument('--webhook-url')
    storyboard.add_argument('--idempotency-key')
    storyboard.add_argument('--wait', action='store_true', help='Wait until every scene ended; download the videos.')
    storyboard.add_argument('--output', type=Path, default=Path('vidgen-downloads'), help='Where --wait saves videos.')
    storyboard.add_argument('--timeout', type=float, default=3600, help='Seconds --wait waits at most.')
    storyboard.add_argument('--poll-interval', type=float, default=1.0, help=argparse.SUPPRESS)
    listing = command('storyboards', cmd_storyboards, 'List your storyboards, newest first.')
    listing.add_argument('--limit', type=int)
    listing.add_argument('--cursor')


def storyboard_request(args: argparse.Namespace) -> dict[str, Any]:
    product: dict[str, Any] = {'name': args.name, 'description': args.description}
    if args.image:
        product['image'] = image_input(args.image)
    body: dict[str, Any] = {'product': product, 'scenes': args.scenes, 'model': args.model}
    optional = {'duration': args.duration, 'aspect_ratio': args.aspect_ratio, 'mode': args.mode, 'style': args.style,
                'webhook_url': args.webhook_url}
    body.update({k: v for k, v in optional.items() if v is not None})
    return body


def cmd_storyboard(args: argparse.Namespace, client: VidgenClient) -> int:
    storyboard = client.submit_storyboard(storyboard_request(args), idempotency_key=args.idempotency_key)
    if not args.wait:
        if args.json:
            print(json.dumps(storyboard, indent=2))
        else:
            print(f'{storyboard["id"]}  {storyboard["status"]}  {storyboard["scene_count"]} scenes  '
                  f'{storyboard["credits"]} credits')
        return 0
    storyboard = wait(client, storyboard, timeout=args.timeout, interval=args.poll_interval)
    args.output.mkdir(parents=True, exist_ok=True)
    for scene in storyboard['scenes']:
        job = scene.get('job') or {}
        for index, output in enumerate(job.get('outputs') or []):
            target = args.output / f'{storyboard["id"]}-scene{scene["index"] + 1}-{output_filename(job["id"], index, output)}'
            with byte_bar(target.name, output.get('bytes') or None) as progress:
                size = client.download(output['url'], target, progress=progress)
            print(f'saved {target} ({size} bytes)')
    if args.json:
        print(json.dumps(storyboard, indent=2))
    if storyboard['status'] != 'succeeded':
        print(f'{storyboard["id"]} {storyboard["status"]}: {signed(storyboard["refunded_credits"])} credits refunded',
              file=sys.stderr)
        return 1
    return 0


def progress_lines(storyboard: dict[str, Any]) -> list[str]:
    """One line for the storyboard and one per scene: what changed since the last look is printed."""
    source = storyboard.get('scenes_source')
    head = f'{storyboard["id"]}  {storyboard["status"]}' + (f'  (scenes by {source})' if source else '')
    lines = [head]
    if storyboard.get('scenes_note'):
        lines.append(f'  note: {storyboard["scenes_note"]}')
    total = storyboard['scene_count']
    for scene in storyboard.get('scenes') or []:
        job = scene.get('job')
        status = job['status'] if job else 'waiting for its job'
        error = (job or {}).get('error') or {}
        reason = f' - {error.get("code")}: {error.get("message")}' if error else ''
        lines.append(f'  scene {scene["index"] + 1}/{total}  {status:<9}  {scene["title"]}{reason}')
    return lines


def wait(client: VidgenClient, storyboard: dict[str, Any], *, timeout: float, interval: float) -> dict[str, Any]:
    started, shown = time.monotonic(), set()
    while True:
        for line in progress_lines(storyboard):
            if line not in shown:
                shown.add(line)
                print(line, flush=True)
        if storyboard['status'] not in ACTIVE:
            return storyboard
        if time.monotonic() - started > timeout:
            raise ApiError(f'{storyboard["id"]} is still {storyboard["status"]} after {timeout:.0f}s.')
        time.sleep(interval)
        storyboard = client.storyboard(storyboard['id'])


def cmd_storyboards(args: argparse.Namespace, client: VidgenClient) -> int:
    page = client.storyboards(limit=args.limit, cursor=args.cursor)
    if args.json:
        print(json.dumps(page, indent=2))
        return 0
    table([[s['id'], s['status'], s['model'], s['scene_count'], s.get('scenes_source'), s['credits'],
            signed(s['refunded_credits']), s['created_at']] for s in page.get('storyboards', [])],
          ['ID', 'STATUS', 'MODEL', 'SCENES', 'SOURCE', 'CREDITS', 'REFUNDED', 'CREATED'])
    if page.get('next_cursor'):
        print(f'more: vidgen storyboards --cursor {page["next_cursor"]}')
    return 0
