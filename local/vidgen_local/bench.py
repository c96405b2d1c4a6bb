"""`make bench`: submit throughput and latency of the local stack, against a bare moto baseline in the same run.

One process, one LocalCloud (the Kling simulator generating for `--generation-seconds`), and two series:

- vidgen submit: `--jobs` kling-v2-6 text-to-video jobs POSTed over HTTP by `--concurrency` threads, each
  through the gateway, the real submit handler, its reads, its TransactWriteItems and its StartExecution;
  then every job is followed to the end (callbacks, finalize, results copied to S3).
- bare TransactWriteItems: the same number of the same three-item transactions (conditional debit, job
  put, ledger put), issued with boto3 straight at the same moto server, with the same concurrency.

The ratio of the two is the cost of everything vidgen adds around its one write. Both series write into
tables that start nearly empty and grow by the same two items per call: moto deep-copies the whole table
for every item of a TransactWriteItems (its rollback copy), so a transaction gets slower as its table
grows, and a shared table would charge whichever series ran second for the other's items. Both series
run after a warm-up that is not counted. Exits non-zero if a submit or a job failed, a job did not end in
time, or the credits do not add up.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from vidgen_local.client import ApiError, VidgenClient
from vidgen_local.simulators.kling import CALLBACK_TIMEOUT

MODEL = 'kling-v2-6'
JOB_CREDITS = 20  # kling-v2-6, std, 5 s: the catalog's price, checked against every submit's answer
SPARE_CREDITS = 1000  # the bench user's balance must end here when every job succeeded
TIME_SCALE = 10.0  # the LocalCloud default: Wait states and the sweep schedule 10x faster
TERMINAL = ('succeeded', 'failed', 'canceled')
# Every poll is a few listing requests through the same stack it measures; the completion figures come from
# the jobs' own completed_at, so polling less often costs only a little waiting at the end.
POLL_SECONDS = 2.0
# After the last job ends the simulator may still be sending stale status callbacks (the stack answered a
# `processing` callback by finding the task already done); stopping under them makes error noise.
CALLBACK_DRAIN_SECONDS = 30.0
PROGRESS_SECONDS = 5.0
BENCH_USER = 'bench'
WARMUP_USER = 'bench-warmup'
BASELINE_USER = 'bench-baseline'


@dataclass
class Series:
    """One measured series of calls: per-call latencies (seconds) and the wall time of the whole series."""

    name: str
    concurrency: int
    wall_seconds: float
    latencies: list[float]
    errors: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        return self.count / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def p(self, q: float) -> float:
        return percentile(self.latencies, q)

    def figures(self) -> dict[str, Any]:
        return {'name': self.name, 'count': self.count, 'concurrency': self.concurrency,
                'wall_seconds': round(self.wall_seconds, 3), 'throughput_per_s': round(self.throughput, 2),
                'p50_ms': round(self.p(50) * 1000, 2), 'p99_ms': round(self.p(99) * 1000, 2), 'errors': len(self.errors)}


@dataclass
class JobFigures:
    """How the submitted jobs ended, from the API's own timestamps."""

    jobs: int
    succeeded: int
    statuses: dict[str, int]
    completion_seconds: float  # first submit -> last completed_at
    job_seconds: list[float]  # created_at -> completed_at, per finished job
    timed_out: bool
    callback_wait_seconds: float = 0.0  # the state machine's wait for a callback, as the local cloud scaled it

    @property
    def past_callback_wait(self) -> int:
        """Jobs that outlasted the callback wait: no callback woke them in time, the poll loop finished them."""
        if self.callback_wait_seconds <= 0:
            return 0
        return sum(1 for seconds in self.job_seconds if seconds > self.callback_wait_seconds)

    @property
    def throughput(self) -> float:
        return self.succeeded / self.completion_seconds if self.completion_seconds > 0 else 0.0

    @property
    def all_succeeded(self) -> bool:
        return self.jobs > 0 and self.succeeded == self.jobs

    def figures(self) -> dict[str, Any]:
        return {'jobs': self.jobs, 'succeeded': self.succeeded, 'statuses': self.statuses,
                'completion_seconds': round(self.completion_seconds, 3),
                'completion_throughput_per_s': round(self.throughput, 2),
                'job_seconds_p50': round(percentile(self.job_seconds, 50), 3) if self.job_seconds else None,
                'job_seconds_p99': round(percentile(self.job_seconds, 99), 3) if self.job_seconds else None,
                'callback_wait_seconds': self.callback_wait_seconds, 'jobs_past_callback_wait': self.past_callback_wait,
                'all_succeeded': self.all_succeeded, 'timed_out': self.timed_out}


@dataclass
class Money:
    start: int
    balance: int
    ledger_sum: int
    ledger_entries: int
    expected: int

    @property
    def ok(self) -> bool:
        return self.balance == self.ledger_sum == self.expected


# -- statistics -----------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile, interpolating linearly between the two nearest ranks (numpy's default), so a
    p99 of 200 samples sits between the 198th and 199th smallest instead of jumping to the maximum."""
    if not values:
        raise ValueError('percentile of no values')
    if not 0 <= q <= 100:
        raise ValueError('q must be within 0..100')
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def ratio(ours: float, baseline: float) -> float:
    return ours / baseline if baseline > 0 else math.inf


def timed_calls(name: str, call: Callable[[int], None], count: int, concurrency: int) -> Series:
    """Run call(0..count-1) on `concurrency` threads; each call's latency and the series' wall time."""
    latencies: list[float] = [0.0] * count
    errors: list[str] = []

    def one(index: int) -> None:
        began = time.perf_counter()
        try:
            call(index)
        except Exception as exc:  # noqa: BLE001 - a failed call is reported and fails the bench, not the pool
            errors.append(f'{type(exc).__name__}: {exc}')
        latencies[index] = time.perf_counter() - began

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f'bench-{name}') as pool:
        list(pool.map(one, range(count)))
    return Series(name, concurrency, time.perf_counter() - began, latencies, errors)


def iso_seconds(value: str) -> float:
    return datetime.fromisoformat(value.replace('Z', '+00:00')).timestamp()


# -- the vidgen series ------------------------------------------------------------------------------------------


def job_body(index: int) -> dict[str, Any]:
    return {'model': MODEL, 'prompt': f'Benchmark shot {index}: a lighthouse at dawn, waves rolling in',
            'aspect_ratio': '16:9'}


class ThreadClients:
    """One VidgenClient per thread: a requests.Session is not meant to be shared between threads."""

    def __init__(self, api_url: str, api_key: str) -> None:
        self.api_url, self.api_key = api_url, api_key
        self._local = threading.local()

    def get(self) -> VidgenClient:
        if not hasattr(self._local, 'client'):
            self._local.client = VidgenClient(self.api_url, api_key=self.api_key)
        return self._local.client


def submit_series(api_url: str, api_key: str, count: int, concurrency: int) -> tuple[Series, list[dict], float]:
    """POST `count` jobs; returns the series, the submitted jobs and the wall clock of the first submit."""
    clients = ThreadClients(api_url, api_key)
    submitted: list[dict | None] = [None] * count

    def submit(index: int) -> None:
        job = clients.get().submit(job_body(index))
        if job.get('credits') != JOB_CREDITS:
            raise ApiError(f'job {job.get("id")} cost {job.get("credits")} credits, expected {JOB_CREDITS}')
        submitted[index] = job

    first_submit = time.time()
    series = timed_calls('vidgen', submit, count, concurrency)
    return series, [job for job in submitted if job is not None], first_submit


def list_jobs(client: VidgenClient) -> list[dict]:
    """Every job of the client's user, through the API's paginated listing (a few requests, not one per job)."""
    jobs: list[dict] = []
    cursor = None
    while True:
        page = client.jobs(limit=100, cursor=cursor)
        jobs.extend(page['jobs'])
        cursor = page.get('next_cursor')
        if not cursor:
            return jobs


def follow_jobs(client: VidgenClient, job_ids: set[str], timeout: float,
                say: Callable[[str], None]) -> tuple[dict[str, dict], bool]:
    """Poll until every job in `job_ids` has ended or `timeout` passes; returns the latest views and timed_out."""
    started = last_progress = time.monotonic()
    latest: dict[str, dict] = {}
    while True:
        latest = {job['id']: job for job in list_jobs(client) if job['id'] in job_ids}
        done = sum(1 for job in latest.values() if job['status'] in TERMINAL)
        if done == len(job_ids):
            return latest, False
        now = time.monotonic()
        if now - started >= timeout:
            return latest, True
        if now - last_progress >= PROGRESS_SECONDS:
            say(f'  {now - started:5.1f}s  {done}/{len(job_ids)} jobs ended')
            last_progress = now
        time.sleep(POLL_SECONDS)


def job_figures(jobs: dict[str, dict], expected: int, first_submit: float, timed_out: bool) -> JobFigures:
    statuses: dict[str, int] = {}
    for job in jobs.values():
        statuses[job['status']] = statuses.get(job['status'], 0) + 1
    finished = [job for job in jobs.values() if job.get('completed_at')]
    job_seconds = [iso_seconds(job['completed_at']) - iso_seconds(job['created_at']) for job in finished]
    last = max((iso_seconds(job['completed_at']) for job in finished), default=first_submit)
    return JobFigures(jobs=expected, succeeded=statuses.get('succeeded', 0), statuses=statuses,
                      completion_seconds=last - first_submit, job_seconds=job_seconds, timed_out=timed_out)


def check_money(client: VidgenClient, start: int, jobs: int) -> Money:
    """Balance, the sum of the whole ledger (every page), and what they must be if every job succeeded."""
    entries: list[dict] = []
    cursor = None
    balance = 0
    while True:
        params: dict[str, Any] = {'limit': 100, **({'cursor': cursor} if cursor else {})}
        page = client.request('GET', '/v1/credits', params=params)
        balance = page['balance']
        entries.extend(page['ledger'])
        cursor = page.get('next_cursor')
        if not cursor:
            break
    return Money(start=start, balance=balance, ledger_sum=sum(entry['amount'] for entry in entries),
                 ledger_entries=len(entries), expected=start - jobs * JOB_CREDITS)


@dataclass
class Callbacks:
    """The Kling simulator's callbacks: `unanswered` ones got no 2xx within its callback timeout."""

    expected: int
    sent: int
    unanswered: int
    drained: bool


def drain_callbacks(simulator: Any, timeout: float) -> Callbacks:
    """Wait (bounded) until the simulator has sent every status callback: one at create, one per transition."""
    deadline = time.monotonic() + timeout
    while True:
        stats = simulator.stats
        expected = stats['tasks_created'] + sum(stats[f'transitions.{s}'] for s in ('processing', 'succeed', 'failed'))
        expected -= stats['callbacks_dropped'] + stats['callbacks_blocked']
        answered, unanswered = stats['callbacks_delivered'], stats['callbacks_failed']
        drained = stats['callbacks_sent'] >= expected and answered + unanswered >= stats['callbacks_sent']
        if drained or time.monotonic() >= deadline:
            return Callbacks(expected, stats['callbacks_sent'], unanswered, drained)
        time.sleep(0.2)


# -- the baseline series ----------------------------------------------------------------------------------------


class Baseline:
    """The submit's one transaction and nothing else, straight at moto with boto3.

    The three items are the layer's own (`vidgen.store.ledger.submit_transaction`), built from a copy of
    the job a real submit stored, so they carry the same conditions and attributes; they are
    built before the clock starts, so the series times the TransactWriteItems calls alone. They go into a
    twin of the service table (same keys and indexes): see the module docstring for why not the table itself.
    """

    def __init__(self, cloud: Any, concurrency: int, template_job: Any) -> None:
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(aws_access_key_id='testing', aws_secret_access_key='testing',
                                        region_name='us-east-1')
        # A resource's client, as the layer uses: it takes Python values and serialises them, as a submit does.
        config = Config(max_pool_connections=max(10, concurrency), retries={'mode': 'standard', 'max_attempts': 5})
        self.dynamodb = session.resource('dynamodb', endpoint_url=cloud.moto_url, config=config).meta.client
        self.source_table = cloud.handler_env['TABLE_NAME']
        self.table = f'{self.source_table}-bench-baseline-{uuid.uuid4().hex[:6]}'
        self.template_job = template_job
        self.cap = 10**6  # the cap condition is evaluated as in a submit, but never the limit here
        self._prepared: list[list[dict[str, Any]]] = []

    def create_table(self, credits: int) -> None:
        described = self.dynamodb.describe_table(TableName=self.source_table)['Table']
        indexes = [{k: index[k] for k in ('IndexName', 'KeySchema', 'Projection')}
                   for index in described.get('GlobalSecondaryIndexes', [])]
        self.dynamodb.create_table(TableName=self.table, KeySchema=described['KeySchema'],
                                   AttributeDefinitions=described['AttributeDefinitions'], BillingMode='PAY_PER_REQUEST',
                                   **({'GlobalSecondaryIndexes': indexes} if indexes else {}))
        from vidgen.store.table import user_key

        self.dynamodb.put_item(TableName=self.table, Item=user_key(BASELINE_USER) | {'balance': credits,
                                                                                     'active_jobs': 0})

    def prepare(self, count: int) -> None:
        self._prepared = [self.items() for _ in range(count)]

    def items(self) -> list[dict[str, Any]]:
        import dataclasses

        from vidgen import ids
        from vidgen.store import ledger

        now = ids.now()
        job = dataclasses.replace(self.template_job, id=ids.new_job_id(), owner=BASELINE_USER, created_at=now,
                                  updated_at=now, credits=JOB_CREDITS)
        items = list(ledger.submit_transaction(job, max_active_jobs=self.cap, sweep_at=now + 120,
                                               table_name=self.table).values())
        for item in items:
            op = next(iter(item.values()))
            op['ReturnValuesOnConditionCheckFailure'] = 'ALL_OLD'  # as vidgen.store.table.transact asks
        return items

    def call(self, index: int) -> None:
        self.dynamodb.transact_write_items(TransactItems=self._prepared[index])

    def balance(self) -> int:
        from vidgen.store.table import user_key

        item = self.dynamodb.get_item(TableName=self.table, Key=user_key(BASELINE_USER), ConsistentRead=True)['Item']
        return int(item['balance'])

    def drop_table(self) -> None:
        self.dynamodb.delete_table(TableName=self.table)


def queued_copy(job_id: str) -> Any:
    """The warm-up job as the layer reads it, turned back into the queued job its submit wrote."""
    import dataclasses

    from vidgen.store import jobs as job_store

    job = job_store.get_job(job_id)
    return dataclasses.replace(job, status='queued', provider_task_id=None, task_token=None, outputs=[], error=None,
                               refunded=False, completed_at=None)


def run_baseline(cloud: Any, template_job: Any, credits: int, count: int, concurrency: int) -> tuple[Series, bool]:
    """A warm-up round (not counted, like the warm-up job), then the measured calls; True if the twin's
    balance fell by exactly the calls made."""
    baseline = Baseline(cloud, concurrency, template_job)
    baseline.create_table(credits)
    try:
        baseline.prepare(concurrency)
        timed_calls('warm-up', baseline.call, concurrency, concurrency)
        baseline.prepare(count)
        series = timed_calls('baseline', baseline.call, count, concurrency)
        return series, baseline.balance() == credits - (count + concurrency) * JOB_CREDITS
    finally:
        baseline.drop_table()


# -- the run -------------------------------------------------------------------------------------------------------


@dataclass
class Result:
    vidgen: Series
    baseline: Series
    jobs: JobFigures
    money: Money
    baseline_money_ok: bool
    callbacks: Callbacks
    setup_seconds: float
    total_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (not self.vidgen.errors and not self.baseline.errors and self.jobs.all_succeeded and self.money.ok
                and self.baseline_money_ok)

    def figures(self, args: argparse.Namespace) -> dict[str, Any]:
        return {'config': {'jobs': args.jobs, 'concurrency': args.concurrency,
                           'generation_seconds': args.generation_seconds, 'model': MODEL, 'time_scale': TIME_SCALE},
                'vidgen_submit': self.vidgen.figures(), 'bare_transact_write_items': self.baseline.figures(),
                'ratios': {'p50': round(ratio(self.vidgen.p(50), self.baseline.p(50)), 2),
                           'p99': round(ratio(self.vidgen.p(99), self.baseline.p(99)), 2),
                           'throughput': round(ratio(self.vidgen.throughput, self.baseline.throughput), 3)},
                'end_to_end': self.jobs.figures(), 'money': {**asdict(self.money), 'ok': self.money.ok},
                'baseline_money_ok': self.baseline_money_ok, 'callbacks': asdict(self.callbacks),
                'setup_seconds': round(self.setup_seconds, 2),
                'total_seconds': round(self.total_seconds, 2), 'ok': self.ok}


def warm_up(client: VidgenClient, timeout: float) -> dict:
    """One submit by another user, followed to its end: imports, boto3 clients and moto's first calls are
    paid here, not by the first measured submits. Its stored items are the baseline's template."""
    job = client.submit(job_body(-1))
    ended, timed_out = follow_jobs(client, {job['id']}, timeout, lambda _line: None)
    if timed_out or ended[job['id']]['status'] != 'succeeded':
        raise RuntimeError(f'the warm-up job did not succeed: {ended.get(job["id"], {}).get("status")}')
    return job


def run(args: argparse.Namespace, say: Callable[[str], None]) -> Result:
    from vidgen_local.cloud import LocalCloud
    from vidgen_local.simulators.kling import KlingSimConfig

    began = time.monotonic()
    start_credits = args.jobs * JOB_CREDITS + SPARE_CREDITS
    env = {'POWERTOOLS_LOG_LEVEL': 'ERROR', 'VIDGEN_MAX_ACTIVE_JOBS_PER_USER': str(args.jobs + 10)}
    say(f'Starting the local cloud (Kling simulator: {args.generation_seconds:g} s per generation)...')
    with LocalCloud(port=0, time_scale=TIME_SCALE, env=env,
                    kling_sim_config=KlingSimConfig(generation_seconds=args.generation_seconds)) as cloud:
        admin = VidgenClient(cloud.api_url, admin_key=cloud.admin_key)
        user = admin.create_user(user_id=BENCH_USER, credits=start_credits)
        warm = admin.create_user(user_id=WARMUP_USER, credits=10 * JOB_CREDITS)
        warm_client = VidgenClient(cloud.api_url, api_key=warm['api_key'])
        warm_job = warm_up(warm_client, args.timeout)
        template_job = queued_copy(warm_job['id'])
        setup_seconds = time.monotonic() - began
        say(f'  ready and warmed up in {setup_seconds:.1f}s at {cloud.api_url}')

        say(f'Bare TransactWriteItems: {args.jobs} calls, {args.concurrency} threads, boto3 -> moto...')
        base, baseline_money_ok = run_baseline(cloud, template_job, start_credits, args.jobs, args.concurrency)

        say(f'vidgen submit: {args.jobs} {MODEL} jobs, {args.concurrency} threads, HTTP -> gateway -> handler...')
        client = VidgenClient(cloud.api_url, api_key=user['api_key'])
        ours, submitted, first_submit = submit_series(cloud.api_url, user['api_key'], args.jobs, args.concurrency)
        say(f'  {len(submitted)} submitted in {ours.wall_seconds:.1f}s; following them to the end '
            f'(at most {args.timeout:g}s)...')
        ended, timed_out = follow_jobs(client, {job['id'] for job in submitted}, args.timeout, say)
        jobs = job_figures(ended, args.jobs, first_submit, timed_out)
        jobs.callback_wait_seconds = float(cloud.handler_env.get('CALLBACK_WAIT_SECONDS') or 0)
        money = check_money(client, start_credits, args.jobs)
        callbacks = drain_callbacks(cloud.kling_sim, CALLBACK_DRAIN_SECONDS)
    result = Result(ours, base, jobs, money, baseline_money_ok, callbacks, setup_seconds)
    result.total_seconds = time.monotonic() - began
    return result


# -- output --------------------------------------------------------------------------------------------------------


def report(result: Result, say: Callable[[str], None]) -> None:
    rows = [('vidgen submit (HTTP -> gateway -> handler -> DynamoDB + StartExecution)', result.vidgen),
            ('bare TransactWriteItems (boto3 -> moto)', result.baseline)]
    width = max(len(name) for name, _ in rows)
    header = f'{"series":<{width}} {"count":>6} {"conc.":>6} {"calls/s":>8} {"p50 ms":>8} {"p99 ms":>8}'
    say('')
    say(header)
    say('-' * len(header))
    for name, series in rows:
        say(f'{name:<{width}} {series.count:>6} {series.concurrency:>6} {series.throughput:>8.1f} '
            f'{series.p(50) * 1000:>8.1f} {series.p(99) * 1000:>8.1f}')
    ours, base = result.vidgen, result.baseline
    say(f'\nvidgen / bare: p50 x{ratio(ours.p(50), base.p(50)):.1f}, p99 x{ratio(ours.p(99), base.p(99)):.1f}, '
        f'throughput x{ratio(ours.throughput, base.throughput):.2f}')
    say('(one process: client threads, gateway, handlers, moto and the simulator share one interpreter; the submit '
        'series also shares it with the state machine work its jobs start)')
    jobs = result.jobs
    job_p = (f'{percentile(jobs.job_seconds, 50):.1f} s / {percentile(jobs.job_seconds, 99):.1f} s'
             if jobs.job_seconds else '-')
    say(f'\nEnd to end: {jobs.jobs} jobs, {jobs.succeeded} succeeded'
        f'{"" if jobs.all_succeeded else " " + json.dumps(jobs.statuses)}{" (TIMED OUT)" if jobs.timed_out else ""}; '
        f'{jobs.throughput:.1f} jobs/s completed (first submit -> last completion: {jobs.completion_seconds:.1f} s); '
        f'job seconds p50/p99 {job_p}; all succeeded: {"yes" if jobs.all_succeeded else "no"}')
    if jobs.past_callback_wait:
        say(f'{jobs.past_callback_wait} jobs outlasted the {jobs.callback_wait_seconds:g} s callback wait: their callbacks came '
            'too late, and the poll loop finished them')
    calls = result.callbacks
    say(f'Kling callbacks: {calls.sent} sent, {calls.unanswered} not answered within the simulator\'s '
        f'{CALLBACK_TIMEOUT[1]:g} s read timeout'
        f'{"" if calls.drained else f" ({calls.expected - calls.sent} still queued at shutdown)"}')
    money = result.money
    say(f'Credits: balance {money.balance}, ledger sum {money.ledger_sum} ({money.ledger_entries} entries), '
        f'expected {money.start} - {jobs.jobs} x {JOB_CREDITS} = {money.expected}: '
        f'{"adds up" if money.ok else "DOES NOT add up"}'
        f'{"" if result.baseline_money_ok else "; the baseline balance DOES NOT add up"}')
    for series in (ours, base):
        for error in series.errors[:5]:
            say(f'  {series.name} error: {error}')
    say(f'\n{"OK" if result.ok else "FAILED"} ({result.total_seconds:.0f}s, of which setup {result.setup_seconds:.0f}s)')


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='python -m vidgen_local.bench', description=__doc__.split('\n\n')[0])
    parser.add_argument('--jobs', type=int, default=200, help='jobs to submit, and baseline calls (default 200)')
    parser.add_argument('--concurrency', type=int, default=8, help='client threads for both series (default 8)')
    parser.add_argument('--generation-seconds', type=float, default=2.0,
                        help="the Kling simulator's generation time per job (default 2.0)")
    parser.add_argument('--timeout', type=float, default=180.0, help='give up on unfinished jobs after this (default 180 s)')
    parser.add_argument('--json', type=Path, metavar='PATH', help='also write the figures as JSON to PATH')
    args = parser.parse_args(argv)
    # Bounded: the bench must end in minutes on a laptop, and the thread pool must stay small.
    if not 1 <= args.jobs <= 2000:
        parser.error('--jobs must be within 1..2000')
    if not 1 <= args.concurrency <= 64:
        parser.error('--concurrency must be within 1..64')
    if not 0 <= args.generation_seconds <= 60:
        parser.error('--generation-seconds must be within 0..60')
    if not 1 <= args.timeout <= 900:
        parser.error('--timeout must be within 1..900')
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    def say(line: str) -> None:
        print(line, flush=True)

    try:
        result = run(args, say)
    except (ApiError, RuntimeError) as exc:  # LocalCloudError is a RuntimeError
        say(f'The benchmark could not run: {exc}')
        return 1
    report(result, say)
    if args.json:
        args.json.write_text(json.dumps(result.figures(args), indent=2) + '\n')
        say(f'Figures written to {args.json}')
    return 0 if result.ok else 1


if __name__ == '__main__':
    sys.exit(main())
