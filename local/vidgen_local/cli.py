"""The `vidgen` command: run the local cloud (`serve`) and use any vidgen API (local or deployed).

Client commands read --api-url / VIDGEN_API_URL (default http://127.0.0.1:3000), --api-key /
VIDGEN_API_KEY and --admin-key / VIDGEN_ADMIN_KEY. An API error prints its message and exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vidgen_local import storyboard_cli
from vidgen_local.client import ApiError, VidgenClient, image_input, media_summary, save_output

TERMINAL = ('succeeded', 'failed', 'canceled')
LOCAL_USER_CREDITS = 1000


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except ApiError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


# --- argument parsing ----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='vidgen', description='Run vidgen locally and use its API.')
    _add_connection(parser, None)
    commands = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')

    def command(name: str, run: Any, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _add_connection(sub, argparse.SUPPRESS)  # the options work before or after the command name
        sub.set_defaults(run=run)
        return sub

    serve = command('serve', cmd_serve, 'Run the whole stack on this machine (moto + simulators) until Ctrl-C.')
    serve.add_argument('--port', type=int, help='Gateway port (default: VIDGEN_PORT or 3000).')
    serve.add_argument('--time-scale', type=float, default=10.0, help='Run waits and schedules N times faster.')
    serve.add_argument('--credits', type=int, default=LOCAL_USER_CREDITS, help='Credits of the ready local user.')
    demo = command('demo', cmd_demo, 'Run a set of jobs against a fresh local cloud and show how each ends.')
    demo.add_argument('--output', type=Path, default=Path('vidgen-downloads'),
                      help='Where the results and their posters are saved.')

    submit = command('submit', cmd_submit, 'Submit a job.')
    submit.add_argument('--model', required=True)
    submit.add_argument('--prompt', default='')
    submit.add_argument('--negative-prompt')
    submit.add_argument('--image', help='Start frame: a file path or an http(s) URL.')
    submit.add_argument('--end-image', help='End frame: a file path or an http(s) URL.')
    submit.add_argument('--duration', type=int)
    submit.add_argument('--aspect-ratio')
    submit.add_argument('--mode', help='Quality mode, e.g. std or pro.')
    submit.add_argument('--option', action='append', default=[], metavar='KEY=VALUE',
                        help='A model-specific parameter (repeatable); VALUE is JSON if it parses, else text.')
    submit.add_argument('--webhook-url')
    submit.add_argument('--idempotency-key')
    submit.add_argument('--wait', action='store_true', help='Wait for the job to finish and download its outputs.')
    submit.add_argument('--output', type=Path, default=Path('vidgen-downloads'), help='Where --wait saves outputs.')
    submit.add_argument('--timeout', type=float, default=3600, help='Seconds --wait waits at most.')
    submit.add_argument('--poll-interval', type=float, default=1.0, help=argparse.SUPPRESS)

    jobs = command('jobs', cmd_jobs, 'List your jobs, newest first.')
    jobs.add_argument('--status', choices=('queued', 'running', 'succeeded', 'failed', 'canceled'))
    jobs.add_argument('--limit', type=int)
    jobs.add_argument('--cursor')
    job = command('job', cmd_job, 'Show one job.')
    job.add_argument('job_id', metavar='ID')
    command('credits', cmd_credits, 'Show your balance and ledger.')
    storyboard_cli.add_commands(lambda name, run, help_text: command(name, _with_client(run), help_text))
    command('models', cmd_models, 'List the models and what they accept.')

    admin = commands.add_parser('admin', help='Admin commands (need the admin key).')
    admin_commands = admin.add_subparsers(dest='admin_command', required=True, metavar='COMMAND')
    create_user = admin_commands.add_parser('create-user', help='Create a user and its API key (shown once).')
    grant = admin_commands.add_parser('grant', help='Grant credits; the same --reference-id grants once.')
    usage_check = admin_commands.add_parser(
        'usage-check', help='Recompute the usage counters from the jobs and the ledger; exit 1 on any difference.')
    create_key = admin_commands.add_parser('create-key', help="Give a user another API key (shown once).")
    keys = admin_commands.add_parser('keys', help="List a user's API keys (labels and prefixes, never keys).")
    revoke_key = admin_commands.add_parser('revoke-key', help='Revoke one of a user\'s API keys, at once.')
    usage = admin_commands.add_parser('usage', help='Service-wide usage and the top users (GET /v1/admin/usage).')
    for sub, run in ((create_user, cmd_create_user), (grant, cmd_grant), (usage_check, cmd_usage_check),
                     (create_key, cmd_create_key), (keys, cmd_keys), (revoke_key, cmd_revoke_key),
                     (usage, cmd_service_usage)):
        _add_connection(sub, argparse.SUPPRESS)
        sub.set_defaults(run=run)
    create_user.add_argument('--user-id')
    create_user.add_argument('--credits', type=int)
    grant.add_argument('user_id', metavar='USER')
    grant.add_argument('--amount', type=int, required=True)
    grant.add_argument('--reference-id', required=True)
    grant.add_argument('--reason')
    usage_check.add_argument('--user', metavar='USER', help='Check this user only (default: every user and the '
                                                            'service-wide counters).')
    for sub in (create_key, keys, revoke_key):
        sub.add_argument('user_id', metavar='USER')
    create_key.add_argument('--label')
    revoke_key.add_argument('key_id', metavar='KEY_ID')
    usage.add_argument('--from', dest='start', metavar='DAY')
    usage.add_argument('--to', dest='end', metavar='DAY')
    usage.add_argument('--top', type=int)
    return parser


def _add_connection(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument('--api-url', default=default, help='vidgen API base URL (VIDGEN_API_URL).')
    parser.add_argument('--api-key', default=default, help='Your API key (VIDGEN_API_KEY).')
    parser.add_argument('--admin-key', default=default, help='The admin key (VIDGEN_ADMIN_KEY).')
    parser.add_argument('--json', action='store_true', default=False if default is None else default,
                        help='Print raw JSON.')


def _client(args: argparse.Namespace) -> VidgenClient:
    port = os.environ.get('VIDGEN_PORT', '3000')
    return VidgenClient(args.api_url or os.environ.get('VIDGEN_API_URL') or f'http://127.0.0.1:{port}',
                        api_key=args.api_key or os.environ.get('VIDGEN_API_KEY'),
                        admin_key=args.admin_key or os.environ.get('VIDGEN_ADMIN_KEY'))


def _with_client(run: Any) -> Any:
    return lambda args: run(args, _client(args))


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=False))


def _table(rows: list[list[Any]], headers: list[str]) -> None:
    cells = [headers, *[[('' if c is None else str(c)) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        print('  '.join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


# --- client commands -----------------------------------------------------------------------------------


def cmd_submit(args: argparse.Namespace) -> int:
    client = _client(args)
    job = client.submit(_job_request(args), idempotency_key=args.idempotency_key)
    if not args.wait:
        _print_json(job) if args.json else print(f'{job["id"]}  {job["status"]}  {job.get("credits", "?")} credits')
        return 0
    job = _wait(client, job, timeout=args.timeout, interval=args.poll_interval)
    if job['status'] != 'succeeded':
        error = job.get('error') or {}
        print(f'{job["id"]} {job["status"]}: {error.get("message", "no reason given")} '
              f'({error.get("code", "?")}; refunded: {job.get("refunded")})', file=sys.stderr)
        return 1
    for index, output in enumerate(job.get('outputs') or []):
        target, *poster = save_output(client, job['id'], index, output, args.output)
        facts = f': {media_summary(output)}' if output.get('media') else ''
        print(f'saved {target} ({target.stat().st_size} bytes){facts}')
        for path in poster:
            print(f'saved {path} (its poster)')
    if args.json:
        _print_json(job)
    return 0


def _job_request(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {'model': args.model, 'prompt': args.prompt}
    optional = {'negative_prompt': args.negative_prompt, 'duration': args.duration, 'aspect_ratio': args.aspect_ratio,
                'mode': args.mode, 'webhook_url': args.webhook_url,
                'image': image_input(args.image) if args.image else None,
                'end_image': image_input(args.end_image) if args.end_image else None}
    body.update({k: v for k, v in optional.items() if v is not None})
    options = dict(parse_option(item) for item in args.option)
    if options:
        body['options'] = options
    return body


def parse_option(item: str) -> tuple[str, Any]:
    key, sep, raw = item.partition('=')
    if not sep or not key:
        raise ApiError(f'--option {item!r}: use KEY=VALUE')
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def _wait(client: VidgenClient, job: dict[str, Any], *, timeout: float, interval: float) -> dict[str, Any]:
    """Poll the job until it ends, showing its status on one line (a line per change when not a terminal)."""
    started, shown = time.monotonic(), None
    tty = sys.stdout.isatty()
    while True:
        elapsed = time.monotonic() - started
        line = f'{job["id"]}  {job["status"]:<9}  {elapsed:5.0f}s'
        if tty:
            print(f'\r{line}', end='', flush=True)
        elif job['status'] != shown:
            print(line, flush=True)
        shown = job['status']
        if job['status'] in TERMINAL:
            if tty:
                print()
            return job
        if elapsed > timeout:
            if tty:
                print()
            raise ApiError(f'{job["id"]} is still {job["status"]} after {timeout:.0f}s; check it with `vidgen job`.')
        time.sleep(interval)
        job = client.job(job['id'])


def cmd_jobs(args: argparse.Namespace) -> int:
    page = _client(args).jobs(status=args.status, limit=args.limit, cursor=args.cursor)
    if args.json:
        _print_json(page)
        return 0
    _table([[j['id'], j['status'], j['model'], j.get('kind'), j.get('credits'), j.get('created_at')]
            for j in page.get('jobs', [])], ['ID', 'STATUS', 'MODEL', 'KIND', 'CREDITS', 'CREATED'])
    if page.get('next_cursor'):
        print(f'more: vidgen jobs --cursor {page["next_cursor"]}')
    return 0


def cmd_job(args: argparse.Namespace) -> int:
    _print_json(_client(args).job(args.job_id))
    return 0


def cmd_credits(args: argparse.Namespace) -> int:
    credits = _client(args).credits()
    if args.json:
        _print_json(credits)
        return 0
    print(f'balance: {credits["balance"]}')
    _table([[e.get('at'), e.get('type'), e.get('amount'), e.get('job_id') or e.get('reference_id'), e.get('reason')]
            for e in credits.get('ledger', [])], ['AT', 'TYPE', 'AMOUNT', 'JOB/REFERENCE', 'REASON'])
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    models = _client(args).models()
    if args.json:
        _print_json(models)
        return 0
    _table([[m.get('id'), m.get('provider'), m.get('kind'), ','.join(m.get('modes', [])), m.get('name')]
            for m in models.get('models', [])], ['ID', 'PROVIDER', 'KIND', 'MODES', 'NAME'])
    return 0


def cmd_create_user(args: argparse.Namespace) -> int:
    user = _client(args).create_user(user_id=args.user_id, credits=args.credits)
    if args.json:
        _print_json(user)
    else:
        print(f'user_id: {user["user_id"]}\napi_key: {user["api_key"]}   (shown once)\nbalance: {user["balance"]}')
    return 0


def cmd_grant(args: argparse.Namespace) -> int:
    result = _client(args).grant(args.user_id, args.amount, args.reference_id, args.reason)
    _print_json(result) if args.json else print(f'balance: {result.get("balance")}')
    return 0


def cmd_usage_check(args: argparse.Namespace) -> int:
    """One user; or every user, page by page, then the service-wide counters against the users' sum."""
    client = _client(args)
    if args.user:
        pages = [client.usage_check(args.user)]
    else:
        pages = [client.usage_check()]
        while pages[-1].get('next_cursor'):
            pages.append(client.usage_check(cursor=pages[-1]['next_cursor']))
    users, jobs = sum(p['users'] for p in pages), sum(p['jobs'] for p in pages)
    if not args.user:
        pages.append(client.usage_check(scope='service'))
    differences = [d for p in pages for d in p['differences']]
    if args.json:
        _print_json({'users': users, 'jobs': jobs, 'differences': differences})
    else:
        print(f'checked {users} users, {jobs} jobs{"" if args.user else " and the service-wide counters"}: '
              f'{len(differences) or "no"} difference{"" if len(differences) == 1 else "s"}')
        if differences:
            _table([[d['scope'], d['key'], d['figure'], d['expected'], d['stored']] for d in differences],
                   ['SCOPE', 'COUNTER', 'FIGURE', 'EXPECTED', 'STORED'])
    return 1 if differences else 0


def cmd_create_key(args: argparse.Namespace) -> int:
    key = _client(args).create_key(args.user_id, args.label)
    if args.json:
        _print_json(key)
    else:
        print(f'key_id: {key["key_id"]}\napi_key: {key["api_key"]}   (shown once)')
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    listed = _client(args).keys(args.user_id)
    if args.json:
        _print_json(listed)
        return 0
    _table([[k['key_id'], k.get('label') or '', k['prefix'] + '…', k['created_at'], k.get('revoked_at') or '']
            for k in listed['keys']], ['KEY_ID', 'LABEL', 'PREFIX', 'CREATED', 'REVOKED'])
    return 0


def cmd_revoke_key(args: argparse.Namespace) -> int:
    key = _client(args).revoke_key(args.user_id, args.key_id)
    _print_json(key) if args.json else print(f'revoked {key["key_id"]} at {key["revoked_at"]}')
    return 0


def cmd_service_usage(args: argparse.Namespace) -> int:
    _print_json(_client(args).service_usage(top=args.top, start=args.start, end=args.end))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from vidgen_local.demo import run_demo

    return run_demo(downloads=args.output)


# --- serve -------------------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from vidgen_local.serve import serve

    return serve(port=args.port, admin_key=args.admin_key, time_scale=args.time_scale, credits=args.credits)
