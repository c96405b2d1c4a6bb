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

from vidgen_local import storyboard_cli
from vidgen_local.client import ApiError, VidgenClient, image_input, media_summary, save_output
from vidgen_local.terminal import byte_bar, signed, status_bar, table, word

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
    demo = command('demo', cmd_demo, 'Run a set of jobs against a fresh local cloud and show how each ends.')
    demo.add_argument('--output', type=Path, default=Path('vidgen-downloads'),
                      help='Where the results and their posters are saved.')

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


def version() -> str:
    try:
        return importlib.metadata.version('vidgen')
    except importlib.metadata.PackageNotFoundError:
        from vidgen.version import VERSION

        return VERSION


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=False))


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
    for index, output in enumerate(job.get('outputs') or []):
        target, *poster = save_output(client, job['id'], index, output, args.output, bar=byte_bar)
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
    started, shown = time.monotonic(), None
    with status_bar(job['id'], job['status']) as (show, live):
        while True:
            elapsed = time.monotonic() - started
            show(job['status'])
            if not live and job['status'] != shown:
                print(f'{job["id"]}  {job["status"]:<9}  {elapsed:5.0f}s', flush=True)
            shown = job['status']
            if job['status'] in TERMINAL:
                return job
            if elapsed > timeout:
                raise ApiError(f'{job["id"]} is still {job["status"]} after {timeout:.0f}s; check it with `vidgen job`.')
            time.sleep(interval)
            job = client.job(job['id'])


def cmd_jobs(args: argparse.Namespace) -> int:
    page = _client(args).jobs(status=args.status, limit=args.limit, cursor=args.cursor)
    if args.json:
        _print_json(page)
        return 0
    table([[j['id'], j['status'], j['model'], j.get('kind'), j.get('credits'), j.get('refunded'), j.get('created_at')]
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
    table([[e.get('at'), e.get('type'), signed(e.get('amount')), e.get('job_id') or e.get('reference_id'), e.get('reason')]
            for e in credits.get('ledger', [])], ['AT', 'TYPE', 'AMOUNT', 'JOB/REFERENCE', 'REASON'])
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    models = _client(args).models()
    if args.json:
        _print_json(models)
        return 0
    table([[m.get('id'), m.get('kind'), ','.join(m.get('modes', [])), price_text(m), parameters_text(m),
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
    usage = _client(args).usage(start=args.start, end=args.end)
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
    table(rows, ['MODEL', 'JOBS', 'SUCCEEDED', 'FAILED', 'CANCELED', 'ACTIVE', 'CHARGED', 'REFUNDED', 'NET'])
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
            table([[d['scope'], d['key'], d['figure'], d['expected'], d['stored']] for d in differences],
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
    table([[k['key_id'], k.get('label') or '', k['prefix'] + '…', k['created_at'], k.get('revoked_at') or '']
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
