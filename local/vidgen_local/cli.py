"""The `vidgen` command: run the local cloud (`serve`) and use any vidgen API (local or deployed).

Client commands read --api-url / VIDGEN_API_URL (default http://127.0.0.1:3000), --api-key /
VIDGEN_API_KEY and --admin-key / VIDGEN_ADMIN_KEY. An API error prints its message and exits 1.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from vidgen_local import storyboard_cli
from vidgen_local.client import ApiError, VidgenClient, image_input, output_filename

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
    parser.add_argument('--version', action='version', version=f'vidgen {version()}')
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
    command('demo', cmd_demo, 'Run a set of jobs against a fresh local cloud and show how each ends.')

    submit = command('submit', cmd_submit, 'Submit a job.')
    submit.add_argument('--model', required=True)
    submit.add_argument('--prompt', default='')
    submit.add_argument('--negative-prompt')
    submit.add_argument('--image', help='Start frame: a file path or an http(s) URL.')
    submit.add_argument('--end-image', help='End frame: a file path or an http(s) URL.')
    submit.add_argument('--reference-image', action='append', default=[], metavar='PATH|URL',
                        help='A reference image (repeatable), for reference-image video.')
    submit.add_argument('--duration', type=int)
    submit.add_argument('--aspect-ratio')
    submit.add_argument('--mode', help='Quality mode, e.g. std or pro.')
    submit.add_argument('--option', action='append', default=[], metavar='KEY=VALUE',
                        help='A model-specific parameter (repeatable); VALUE is JSON if it parses, else text.')
    submit.add_argument('--metadata', action='append', default=[], metavar='KEY=VALUE',
                        help='A string kept with the job (repeatable).')
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
    cancel = command('cancel', cmd_cancel, 'Cancel a queued or running job (its credits are refunded).')
    cancel.add_argument('job_id', metavar='ID')
    command('credits', cmd_credits, 'Show your balance and ledger.')
    storyboard_cli.add_commands(lambda name, run, help_text: command(name, _with_client(run), help_text))
    usage = command('usage', cmd_usage, 'Show your usage: jobs and credits per model (default: the last 30 days).')
    usage.add_argument('--from', dest='start', metavar='DATE', help='Start, ISO 8601 (e.g. 2026-11-01).')
    usage.add_argument('--to', dest='end', metavar='DATE', help='End, ISO 8601.')
    command('models', cmd_models, 'List the models: modes, parameters, prices and input image rules.')
    doctor = command('doctor', cmd_doctor, 'Check the API, your key and (with --providers) the provider accounts.')
    doctor.add_argument('--providers', action='store_true',
                        help="Check each provider's credentials and the callback URL (needs the admin key).")

    admin = commands.add_parser('admin', help='Admin commands (need the admin key).')
    admin_commands = admin.add_subparsers(dest='admin_command', required=True, metavar='COMMAND')
    create_user = admin_commands.add_parser('create-user', help='Create a user and its API key (shown once).')
    grant = admin_commands.add_parser('grant', help='Grant credits; the same --reference-id grants once.')
    for sub, run in ((create_user, cmd_create_user), (grant, cmd_grant)):
        _add_connection(sub, argparse.SUPPRESS)
        sub.set_defaults(run=run)
    create_user.add_argument('--user-id')
    create_user.add_argument('--credits', type=int)
    grant.add_argument('user_id', metavar='USER')
    grant.add_argument('--amount', type=int, required=True)
    grant.add_argument('--reference-id', required=True)
    grant.add_argument('--reason')
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


def version() -> str:
    try:
        return importlib.metadata.version('vidgen')
    except importlib.metadata.PackageNotFoundError:
        from vidgen.version import VERSION

        return VERSION


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=False))


def word(value: Any) -> str:
    """Booleans as words (true/false), everything else as itself."""
    return ('true' if value else 'false') if isinstance(value, bool) else '' if value is None else str(value)


def signed(amount: Any) -> str:
    """Credits with their sign: +20 for a grant or a refund, -20 for a debit."""
    return f'{int(amount):+d}' if isinstance(amount, (int, float)) and not isinstance(amount, bool) else word(amount)


def _table(rows: list[list[Any]], headers: list[str]) -> None:
    cells = [headers, *[[word(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        print('  '.join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


# --- client commands -----------------------------------------------------------------------------------


_REPLAYED = ('replayed: an earlier submit with this Idempotency-Key created this job; '
             'nothing was charged again')


def cmd_submit(args: argparse.Namespace) -> int:
    client = _client(args)
    job, replayed = client.submit_detailed(_job_request(args), idempotency_key=args.idempotency_key)
    if replayed and not args.json:
        print(_REPLAYED, file=sys.stderr)
    if not args.wait:
        _print_json(job) if args.json else print(f'{job["id"]}  {job["status"]}  {job.get("credits", "?")} credits'
                                                 + ('  (replayed)' if replayed else ''))
        return 0
    job = _wait(client, job, timeout=args.timeout, interval=args.poll_interval)
    if job['status'] != 'succeeded':
        error = job.get('error') or {}
        refund = f'; refunded: {word(job.get("refunded"))}' + (f' ({signed(job["credits"])} credits)'
                                                                if job.get('refunded') else '')
        provider = f', provider code {error["provider_code"]}' if error.get('provider_code') else ''
        print(f'{job["id"]} {job["status"]}: {error.get("message", "no reason given")} '
              f'({error.get("code", "?")}{provider}{refund})', file=sys.stderr)
        return 1
    args.output.mkdir(parents=True, exist_ok=True)
    for index, output in enumerate(job.get('outputs') or []):
        target = args.output / output_filename(job['id'], index, output)
        size = _download(client, output, target)
        print(f'saved {target} ({size} bytes)')
    if args.json:
        _print_json(job)
    return 0


def _job_request(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {'model': args.model, 'prompt': args.prompt}
    optional = {'negative_prompt': args.negative_prompt, 'duration': args.duration, 'aspect_ratio': args.aspect_ratio,
                'mode': args.mode, 'webhook_url': args.webhook_url,
                'image': image_input(args.image) if args.image else None,
                'end_image': image_input(args.end_image) if args.end_image else None,
                'reference_images': [image_input(item) for item in args.reference_image] or None}
    body.update({k: v for k, v in optional.items() if v is not None})
    options = dict(parse_option(item) for item in args.option)
    if options:
        body['options'] = options
    metadata = dict(parse_pair(item, '--metadata') for item in args.metadata)
    if metadata:
        body['metadata'] = metadata
    return body


def parse_pair(item: str, flag: str) -> tuple[str, str]:
    key, sep, value = item.partition('=')
    if not sep or not key:
        raise ApiError(f'{flag} {item!r}: use KEY=VALUE')
    return key, value


def parse_option(item: str) -> tuple[str, Any]:
    key, sep, raw = item.partition('=')
    if not sep or not key:
        raise ApiError(f'--option {item!r}: use KEY=VALUE')
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def _wait(client: VidgenClient, job: dict[str, Any], *, timeout: float, interval: float) -> dict[str, Any]:
    """Poll the job until it ends: a live line with its status and the time elapsed on a terminal, else a
    line per status change (logs and pipes)."""
    console = Console()
    started, shown = time.monotonic(), None
    # No total is known while a provider works: the bar pulses, the status and the time elapsed say the rest.
    columns = (SpinnerColumn(), TextColumn('{task.description}'), BarColumn(), TextColumn('[bold]{task.fields[status]}'),
               TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        bar = progress.add_task(job['id'], total=None, status=job['status'])
        while True:
            elapsed = time.monotonic() - started
            progress.update(bar, status=job['status'])
            if not console.is_terminal and job['status'] != shown:
                print(f'{job["id"]}  {job["status"]:<9}  {elapsed:5.0f}s', flush=True)
            shown = job['status']
            if job['status'] in TERMINAL:
                return job
            if elapsed > timeout:
                raise ApiError(f'{job["id"]} is still {job["status"]} after {timeout:.0f}s; check it with `vidgen job`.')
            time.sleep(interval)
            job = client.job(job['id'])


def _download(client: VidgenClient, output: dict[str, Any], target: Path) -> int:
    """Download one output with a byte progress bar (on a terminal)."""
    console = Console()
    columns = (TextColumn('{task.description}'), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        bar = progress.add_task(target.name, total=output.get('bytes') or None)
        return client.download(output['url'], target,
                               progress=lambda done, total: progress.update(bar, completed=done, total=total))


def cmd_jobs(args: argparse.Namespace) -> int:
    page = _client(args).jobs(status=args.status, limit=args.limit, cursor=args.cursor)
    if args.json:
        _print_json(page)
        return 0
    _table([[j['id'], j['status'], j['model'], j.get('kind'), j.get('credits'), j.get('refunded'), j.get('created_at')]
            for j in page.get('jobs', [])], ['ID', 'STATUS', 'MODEL', 'KIND', 'CREDITS', 'REFUNDED', 'CREATED'])
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
    _table([[e.get('at'), e.get('type'), signed(e.get('amount')), e.get('job_id') or e.get('reference_id'), e.get('reason')]
            for e in credits.get('ledger', [])], ['AT', 'TYPE', 'AMOUNT', 'JOB/REFERENCE', 'REASON'])
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    models = _client(args).models()
    if args.json:
        _print_json(models)
        return 0
    _table([[m.get('id'), m.get('kind'), ','.join(m.get('modes', [])), price_text(m), parameters_text(m),
             images_text(m.get('input_images'))] for m in models.get('models', [])],
           ['ID', 'KIND', 'MODES', 'CREDITS', 'PARAMETERS (default)', 'INPUT IMAGES'])
    return 0


def price_text(model: dict[str, Any]) -> str:
    """The range of a model's prices: "20-70", or "4-8/s" for a price per second."""
    flat = [int(p['credits']) for p in model.get('prices', []) if 'credits' in p]
    per_second = [int(p['credits_per_second']) for p in model.get('prices', []) if 'credits_per_second' in p]
    parts = [f'{min(v)}' if min(v) == max(v) else f'{min(v)}-{max(v)}' for v in (flat, per_second) if v]
    return ' or '.join(parts[:1] + [f'{parts[-1]}/s'] if per_second and flat else
                       [f'{parts[0]}/s'] if per_second else parts)


def parameters_text(model: dict[str, Any]) -> str:
    shown = []
    for name, rule in model.get('parameters', {}).items():
        if 'values' in rule:
            allowed = '|'.join(word(v) for v in rule['values'])
        elif 'minimum' in rule or 'maximum' in rule:
            allowed = f'{rule.get("minimum", "")}..{rule.get("maximum", "")}'
        else:
            allowed = rule.get('type', '')
        default = f' ({word(rule["default"])})' if 'default' in rule else ' (required)' if rule.get('required') else ''
        shown.append(f'{name}={allowed}{default}')
    return ', '.join(shown)


def images_text(rules: dict[str, Any] | None) -> str:
    if not rules:
        return ''
    parts = ['/'.join(rules.get('formats', []))]
    if rules.get('min_width') or rules.get('min_height'):
        parts.append(f'>={rules.get("min_width")}x{rules.get("min_height")} px')
    if rules.get('max_width') or rules.get('max_height'):
        parts.append(f'<={rules.get("max_width")}x{rules.get("max_height")} px')
    if rules.get('aspect_ratio'):
        parts.append(f'w/h {rules["aspect_ratio"]["min"]:g}-{rules["aspect_ratio"]["max"]:g}')
    if rules.get('max_bytes'):
        parts.append(f'<={rules["max_bytes"] / 1024 / 1024:g} MB')
    return ', '.join(parts)


def cmd_cancel(args: argparse.Namespace) -> int:
    job = _client(args).cancel(args.job_id)
    if args.json:
        _print_json(job)
    else:
        print(f'{job["id"]}  {job["status"]}  refunded: {word(job.get("refunded"))}'
              + (f' ({signed(job["credits"])} credits)' if job.get('refunded') else ''))
    return 0


def cmd_usage(args: argparse.Namespace) -> int:
    usage = _client(args).usage(args.start, args.end)
    if args.json:
        _print_json(usage)
        return 0
    totals = usage.get('totals', {})
    print(f'{usage.get("from")} to {usage.get("to")}: {totals.get("jobs", 0)} jobs, '
          f'{signed(-totals.get("credits_charged", 0))} charged, {signed(totals.get("credits_refunded", 0))} refunded, '
          f'{signed(-totals.get("credits_net", 0))} net' + ('  (truncated)' if usage.get('truncated') else ''))
    rows = [[model, b.get('jobs'), b.get('succeeded'), b.get('failed'), b.get('canceled'), b.get('active'),
             signed(-b.get('credits_charged', 0)), signed(b.get('credits_refunded', 0)), signed(-b.get('credits_net', 0))]
            for model, b in sorted(usage.get('by_model', {}).items())]
    _table(rows, ['MODEL', 'JOBS', 'SUCCEEDED', 'FAILED', 'CANCELED', 'ACTIVE', 'CHARGED', 'REFUNDED', 'NET'])
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """A line per check and a verdict; exit 0 only when every check passed."""
    client = _client(args)
    results: list[bool] = []

    def line(ok: bool, text: str) -> None:
        results.append(ok)
        print(f'{"ok  " if ok else "FAIL"}  {text}')

    try:
        health = client.health()
        line(True, f'API {client.api_url} answers (vidgen {health.get("version", "?")})')
    except ApiError as exc:
        line(False, f'API {client.api_url}: {exc}')
        print('verdict: the API is not reachable; nothing else was checked')
        return 1
    if client.api_key:
        _check(line, 'user key', lambda: f'works (balance {client.credits()["balance"]})')
    report = None
    if client.admin_key:
        def admin() -> str:
            nonlocal report
            report = client.providers()
            return 'works'
        _check(line, 'admin key', admin)
    if not client.api_key and not client.admin_key:
        line(False, 'no key given: pass --api-key / VIDGEN_API_KEY or --admin-key / VIDGEN_ADMIN_KEY')
    if args.providers:
        if report is None:
            line(False, 'providers: --providers needs the admin key (--admin-key / VIDGEN_ADMIN_KEY)')
        else:
            for check in report['providers']:
                credit = (f'; {check["credits_remaining"]:g} left' if check.get('credits_remaining') is not None else '')
                code = f' (provider code {check["provider_code"]})' if check.get('provider_code') else ''
                line(check['ok'], f'{check["name"]} ({check["host"]}): {check["detail"]}{credit}{code}')
            callbacks = report['callbacks']
            line(callbacks['ok'], f'callbacks: {callbacks["detail"]}')
    failed = results.count(False)
    print('verdict: all checks passed' if not failed else f'verdict: {failed} of {len(results)} checks failed')
    return 0 if not failed else 1


def _check(line: Callable[[bool, str], None], name: str, run: Callable[[], str]) -> None:
    try:
        line(True, f'{name} {run()}')
    except ApiError as exc:
        line(False, f'{name}: {exc}')


def cmd_create_user(args: argparse.Namespace) -> int:
    user = _client(args).create_user(user_id=args.user_id, credits=args.credits)
    if args.json:
        _print_json(user)
    else:
        print(f'user_id: {user["user_id"]}\napi_key: {user["api_key"]}   (shown once)\nbalance: {user["balance"]}')
    return 0


def cmd_grant(args: argparse.Namespace) -> int:
    result = _client(args).grant(args.user_id, args.amount, args.reference_id, args.reason)
    if args.json:
        _print_json(result)
        return 0
    print(f'balance: {result.get("balance")}')
    granted = result.get('granted')
    print(f'granted: {word(granted)}' + ('' if granted else
                                         f' (reference {args.reference_id} was granted before; nothing changed)'))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from vidgen_local.demo import run_demo

    return run_demo()


# --- serve -------------------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from vidgen_local.serve import serve

    return serve(port=args.port, admin_key=args.admin_key, time_scale=args.time_scale, credits=args.credits)
