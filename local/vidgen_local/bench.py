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
import gc
import json
import math
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vidgen_local.client import ApiError, VidgenClient
from vidgen_local.simulators.kling import CALLBACK_TIMEOUT

MODEL = 'kling-v2-6'
JOB_CREDITS = 20  # kling-v2-6, std, 5 s: the catalog's price, checked against every submit's answer
SPARE_CREDITS = 1000  # the bench user's balance must end here when every job succeeded
TIME_SCALE = 10.0  # the LocalCloud default: Wait states and the sweep schedule 10x faster
TERMINAL = ('succeeded', 'failed', 'canceled')
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

    # Each series starts from a collected heap: a full collection of the local cloud's process (~300 ms,
    # holding the interpreter lock) landing inside the 2 s bare series made its p99 alone 3-4 times longer.
    gc.collect()
    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f'bench-{name}') as pool:
        list(pool.map(one, range(count)))
    return Series(name, concurrency, time.perf_counter() - began, latencies, errors)


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

        keys = cloud.admin_credentials  # the local endpoint enforces IAM: act as the local admin
        session = boto3.session.Session(aws_access_key_id=keys['AWS_ACCESS_KEY_ID'],
                                        aws_secret_access_key=keys['AWS_SECRET_ACCESS_KEY'], region_name='us-east-1')
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


def stored_jobs(cloud: Any, job_ids: set[str]) -> dict[str, Any]:
    """The jobs as stored, read from moto's memory: following jobs this way adds no request to the
    figures the meter counts (polling the API would)."""
    from boto3.dynamodb.types import TypeDeserializer
    from moto.backends import get_backend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from vidgen.store import jobs as job_store

    from vidgen_local import patches

    table = get_backend('dynamodb')['123456789012']['us-east-1'].get_table(cloud.handler_env['TABLE_NAME'])
    deserialize = TypeDeserializer().deserialize
    found = {}
    with patches.DYNAMODB_LOCK:
        for job_id in job_ids:
            item = table.get_item(DynamoType({'S': f'JOB#{job_id}'}), DynamoType({'S': 'JOB'}))
            if item is not None:
                attributes = item.to_json()['Attributes']
                found[job_id] = job_store.Job.from_item({k: deserialize(v) for k, v in attributes.items()})
    return found


def follow_stored(cloud: Any, job_ids: set[str], timeout: float, say: Callable[[str], None]) -> tuple[dict, bool]:
    started = last_progress = time.monotonic()
    jobs: dict[str, Any] = {}
    while True:
        # An ended job's record no longer changes, so only the others are read again: each read holds the
        # DynamoDB lock and this process's interpreter lock, which the jobs still running need.
        jobs.update(stored_jobs(cloud, {job_id for job_id in job_ids
                                        if job_id not in jobs or jobs[job_id].status not in TERMINAL}))
        done = sum(1 for job in jobs.values() if job.status in TERMINAL)
        if done == len(job_ids):
            return jobs, False
        now = time.monotonic()
        if now - started >= timeout:
            return jobs, True
        if now - last_progress >= PROGRESS_SECONDS:
            say(f'  {now - started:5.1f}s  {done}/{len(job_ids)} jobs ended')
            last_progress = now
        time.sleep(0.25)


def stored_job_figures(jobs: dict[str, Any], expected: int, first_submit: float, timed_out: bool) -> JobFigures:
    statuses: dict[str, int] = {}
    for job in jobs.values():
        statuses[job.status] = statuses.get(job.status, 0) + 1
    finished = [job for job in jobs.values() if job.completed_at]
    last = max((job.completed_at for job in finished), default=first_submit)
    return JobFigures(jobs=expected, succeeded=statuses.get('succeeded', 0), statuses=statuses,
                      completion_seconds=last - first_submit,
                      job_seconds=[job.completed_at - job.created_at for job in finished], timed_out=timed_out)


@dataclass
class PathCost:
    """One path's usage per job (the meter's window over its jobs), with state transitions from histories."""

    name: str
    jobs: int
    usage: Any  # metering.Usage
    cost: Any  # prices.JobCost per job


@dataclass
class Result:
    vidgen: Series
    baseline: Series
    jobs: JobFigures
    money: Money
    baseline_money_ok: bool
    callbacks: Callbacks
    setup_seconds: float
    fast: PathCost | None = None
    poll: PathCost | None = None
    poll_jobs: JobFigures | None = None
    sweep: PathCost | None = None
    polled_during_fast: int = 0
    cold_starts: dict[str, int] = field(default_factory=dict)
    imports: Any = None  # coldstart.ImportFigures
    layer: Any = None  # coldstart.LayerFigures
    streaming: Any = None  # streaming.StreamingFigures
    seeds: dict[str, Any] = field(default_factory=dict)
    usage: Any = None  # bench_usage.UsageBench
    generation_seconds: float = 0.0
    total_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (not self.vidgen.errors and not self.baseline.errors and self.jobs.all_succeeded and self.money.ok
                and self.baseline_money_ok and (self.poll_jobs is None or self.poll_jobs.all_succeeded)
                and (self.usage is None or self.usage.ok))

    def targets(self) -> list[tuple[str, str, str, bool | None]]:
        """(target, measured, bound, verdict); None = not measured in this run."""
        rows: list[tuple[str, str, str, bool | None]] = []
        p50 = ratio(self.vidgen.p(50), self.baseline.p(50))
        p99 = ratio(self.vidgen.p(99), self.baseline.p(99))
        rows.append(('submit p50 / bare TransactWriteItems p50', f'x{p50:.2f}', '<= x2.0', p50 <= 2.0))
        rows.append(('submit p99 / bare TransactWriteItems p99', f'x{p99:.2f}', '<= x2.5', p99 <= 2.5))
        if self.jobs.job_seconds:
            job_p50 = percentile(self.jobs.job_seconds, 50)
            bound = self.generation_seconds + 2
            rows.append((f'job seconds p50 at {self.jobs.jobs} concurrent jobs', f'{job_p50:.1f} s', f'<= {bound:g} s',
                         job_p50 <= bound))
        rows.append(('jobs finished by the poll loop while callbacks were delivered', str(self.polled_during_fast), '0',
                     self.polled_during_fast == 0))
        if self.imports is not None:
            rows += cold_import_targets(self.imports)
        if self.usage is not None:
            r = self.usage.ratio
            rows.append(('GET /v1/usage p50, 10,000 jobs / 10 jobs in the window', f'x{r:.2f}', '<= x1.5', r <= 1.5))
        if self.streaming is not None:
            s = self.streaming
            ok = s.added_mb <= 64 and s.stored_bytes == s.object_bytes == s.size_bytes
            rows.append((f'peak RSS added by streaming {s.size_bytes // 1024**2} MB into S3', f'{s.added_mb:.1f} MB',
                         '<= 64 MB', ok))
        return rows

    def figures(self, args: argparse.Namespace) -> dict[str, Any]:
        def cost(path: PathCost | None) -> dict[str, Any] | None:
            if path is None:
                return None
            return {'jobs': path.jobs, 'per_job': asdict(path.cost), 'usd_per_1000_jobs': round(path.cost.per_thousand(), 4)}

        return {'config': {'jobs': args.jobs, 'concurrency': args.concurrency, 'poll_jobs': args.poll_jobs,
                           'generation_seconds': args.generation_seconds, 'model': MODEL, 'time_scale': TIME_SCALE},
                'vidgen_submit': self.vidgen.figures(), 'bare_transact_write_items': self.baseline.figures(),
                'ratios': {'p50': round(ratio(self.vidgen.p(50), self.baseline.p(50)), 2),
                           'p99': round(ratio(self.vidgen.p(99), self.baseline.p(99)), 2),
                           'throughput': round(ratio(self.vidgen.throughput, self.baseline.throughput), 3)},
                'end_to_end': self.jobs.figures(), 'money': {**asdict(self.money), 'ok': self.money.ok},
                'baseline_money_ok': self.baseline_money_ok, 'callbacks': asdict(self.callbacks),
                'cost': {'fast_path': cost(self.fast), 'poll_path': cost(self.poll), 'sweep_run': cost(self.sweep),
                         'seeds_usd_per_1000_jobs': {k: round(v.per_thousand(), 4) for k, v in self.seeds.items()}},
                'cold_starts': self.cold_starts,
                'imports': asdict(self.imports) if self.imports else None,
                'layer': asdict(self.layer) if self.layer else None,
                'streaming': ({**asdict(self.streaming), 'added_mb': round(self.streaming.added_mb, 1)}
                              if self.streaming else None),
                'usage': ({'series': [asdict(s) for s in self.usage.series], 'ratio': round(self.usage.ratio, 3)}
                          if self.usage else None),
                'targets': [{'target': t, 'measured': m, 'bound': b, 'met': v} for t, m, b, v in self.targets()],
                'setup_seconds': round(self.setup_seconds, 2), 'total_seconds': round(self.total_seconds, 2), 'ok': self.ok}


def warm_up(cloud: Any, client: VidgenClient, timeout: float) -> dict:
    """One submit by another user, followed to its end: imports, boto3 clients and moto's first calls are
    paid here, not by the first measured submits. Its stored items are the baseline's template."""
    job = client.submit(job_body(-1))
    ended, timed_out = follow_stored(cloud, {job['id']}, timeout, lambda _line: None)
    if timed_out or ended[job['id']].status != 'succeeded':
        raise RuntimeError(f'the warm-up job did not succeed: {getattr(ended.get(job["id"]), "status", None)}')
    return job


def execution_arns(cloud: Any, job_ids: Iterable[str]) -> list[str]:
    """Executions are named after their job (name = job id)."""
    machine = next(iter(cloud.resources.state_machines.values()))
    prefix = machine.replace(':stateMachine:', ':execution:')
    return [f'{prefix}:{job_id}' for job_id in job_ids]


def path_cost(meter: Any, cloud: Any, name: str, start: Any, job_ids: list[str]) -> PathCost:
    from vidgen_local.prices import JobCost

    usage = meter.between(start, meter.snapshot())
    usage.state_transitions = meter.state_transitions(execution_arns(cloud, job_ids))
    return PathCost(name, len(job_ids), usage, JobCost(**usage.per(len(job_ids))))


def submit_poll_path(api_url: str, api_key: str, count: int) -> list[dict]:
    """Jobs whose callbacks the simulator drops: the state machine's wait times out and the poll loop ends them."""
    client = VidgenClient(api_url, api_key=api_key)
    body = {'model': MODEL, 'aspect_ratio': '16:9'}
    return [client.submit({**body, 'prompt': f'Poll path shot {i}: a harbour at night [sim:drop-callbacks]'})
            for i in range(count)]


def seed_costs(result: Result, meter: Any, submit_memory_mb: int) -> dict[str, Any]:
    from vidgen_local import prices

    usage = result.fast.usage if result.fast else None

    def mean(logical_id: str, step: str, fallback: float) -> float:
        found = meter.mean_seconds(usage, logical_id, step) if usage else None
        return found if found is not None else fallback

    submit_seconds = mean('SubmitFunction', 'POST /v1/jobs', 0.1)
    measured = prices.Measured(request_seconds=submit_seconds,
                               read_seconds=mean('StatusFunction', 'GET /v1/jobs/{job_id}', submit_seconds),
                               create_seconds=mean('PollerFunction', 'create_task', submit_seconds),
                               memory_gb=submit_memory_mb / 1024)
    g, burst = result.generation_seconds, result.jobs.jobs
    return {f'seed 000 ({g:g} s generation)': prices.seed_000(g, measured),
            f'seed 002 ({g:g} s generation, burst of {burst})': prices.seed_002(g, burst, measured),
            'seed 000 (120 s generation)': prices.seed_000(120, measured),
            f'seed 002 (120 s generation, burst of {burst})': prices.seed_002(120, burst, measured)}


def run(args: argparse.Namespace, say: Callable[[str], None]) -> Result:
    from vidgen_local import coldstart, streaming
    from vidgen_local.cloud import LocalCloud, find_root
    from vidgen_local.metering import Meter
    from vidgen_local.simulators.kling import KlingSimConfig

    began = time.monotonic()
    root = find_root()
    layer = imports = None
    if args.layer:
        say('Building the layer as sam build does (wheels for arm64 / CPython 3.13, bytecode)...')
        layer = coldstart.build_layer(root)
    if args.import_rounds:
        say(f'Cold imports: each function and a bare import boto3, {args.import_rounds} fresh interpreters each...')
        imports = coldstart.import_times(root, args.import_rounds)
    total_jobs = args.jobs + args.poll_jobs
    start_credits = total_jobs * JOB_CREDITS + SPARE_CREDITS
    env = {'POWERTOOLS_LOG_LEVEL': 'ERROR', 'VIDGEN_MAX_ACTIVE_JOBS_PER_USER': str(total_jobs + 10)}
    say(f'Starting the local cloud (Kling simulator: {args.generation_seconds:g} s per generation)...')
    # No sweep ticker: its runs would land in the jobs' figures; one sweep is measured on its own instead.
    with LocalCloud(port=0, time_scale=TIME_SCALE, env=env, sweep=False,
                    kling_sim_config=KlingSimConfig(generation_seconds=args.generation_seconds)) as cloud:
        admin = VidgenClient(cloud.api_url, admin_key=cloud.admin_key)
        user = admin.create_user(user_id=BENCH_USER, credits=start_credits)
        warm = admin.create_user(user_id=WARMUP_USER, credits=10 * JOB_CREDITS)
        warm_client = VidgenClient(cloud.api_url, api_key=warm['api_key'])
        warm_job = warm_up(cloud, warm_client, args.timeout)
        template_job = queued_copy(warm_job['id'])
        setup_seconds = time.monotonic() - began
        say(f'  ready and warmed up in {setup_seconds:.1f}s at {cloud.api_url}')

        say(f'Bare TransactWriteItems: {args.jobs} calls, {args.concurrency} threads, boto3 -> moto...')
        base, baseline_money_ok = run_baseline(cloud, template_job, start_credits, args.jobs, args.concurrency)

        with Meter(cloud) as meter:
            say(f'vidgen submit: {args.jobs} {MODEL} jobs, {args.concurrency} threads, HTTP -> gateway -> handler...')
            client = VidgenClient(cloud.api_url, api_key=user['api_key'])
            fast_start = meter.snapshot()
            ours, submitted, first_submit = submit_series(cloud.api_url, user['api_key'], args.jobs, args.concurrency)
            say(f'  {len(submitted)} submitted in {ours.wall_seconds:.1f}s; following them to the end '
                f'(at most {args.timeout:g}s)...')
            fast_ids = [job['id'] for job in submitted]
            ended, timed_out = follow_stored(cloud, set(fast_ids), args.timeout, say)
            callbacks = drain_callbacks(cloud.kling_sim, CALLBACK_DRAIN_SECONDS)
            fast = path_cost(meter, cloud, 'callback fast path', fast_start, fast_ids)
            jobs = stored_job_figures(ended, args.jobs, first_submit, timed_out)
            jobs.callback_wait_seconds = float(cloud.handler_env.get('CALLBACK_WAIT_SECONDS') or 0)

            poll = poll_jobs = None
            if args.poll_jobs:
                say(f'Poll path: {args.poll_jobs} jobs whose callbacks are all lost...')
                poll_start, poll_began = meter.snapshot(), time.time()
                poll_submitted = submit_poll_path(cloud.api_url, user['api_key'], args.poll_jobs)
                poll_ids = [job['id'] for job in poll_submitted]
                poll_ended, poll_timed_out = follow_stored(cloud, set(poll_ids), args.timeout, say)
                poll = path_cost(meter, cloud, 'poll path', poll_start, poll_ids)
                poll_jobs = stored_job_figures(poll_ended, args.poll_jobs, poll_began, poll_timed_out)

            say('One scheduled sweep, on its own...')
            sweep_start = meter.snapshot()
            cloud.sweep_now()
            sweep = path_cost(meter, cloud, 'sweep run', sweep_start, [])
            sweep = PathCost(sweep.name, 1, sweep.usage, sweep.cost)

        money = check_money(client, start_credits, total_jobs)
        usage = None
        if args.usage_rounds:
            from vidgen_local import bench_usage

            say(f'GET /v1/usage for 10 and 10,000 jobs in the window, {args.usage_rounds} reads each...')
            usage = bench_usage.measure(cloud, say, args.usage_rounds)
        stream = None
        if args.stream_mb:
            say(f'Streaming a {args.stream_mb} MB result into S3 through the layer\'s copy path...')
            stream = streaming.measure(cloud, args.stream_mb * 1024 * 1024)
        cold_starts = {lid: stats.cold_starts for lid, stats in cloud.environment_stats().items()}
        submit_memory_mb = cloud.function('SubmitFunction').memory_size  # read while the cloud runs
    result = Result(ours, base, jobs, money, baseline_money_ok, callbacks, setup_seconds, fast=fast, poll=poll,
                    poll_jobs=poll_jobs, sweep=sweep, polled_during_fast=len(fast.usage.polled_jobs & set(fast_ids)),
                    cold_starts=cold_starts, imports=imports, layer=layer, streaming=stream, usage=usage,
                    generation_seconds=args.generation_seconds)
    result.seeds = seed_costs(result, meter, submit_memory_mb)
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
    jobs = result.jobs
    job_p = (f'{percentile(jobs.job_seconds, 50):.1f} s / {percentile(jobs.job_seconds, 99):.1f} s'
             if jobs.job_seconds else '-')
    say(f'\nEnd to end: {jobs.jobs} jobs, {jobs.succeeded} succeeded'
        f'{"" if jobs.all_succeeded else " " + json.dumps(jobs.statuses)}{" (TIMED OUT)" if jobs.timed_out else ""}; '
        f'{jobs.throughput:.1f} jobs/s completed (first submit -> last completion: {jobs.completion_seconds:.1f} s); '
        f'job seconds p50/p99 {job_p}')
    say(f'Jobs that reached the poll loop although their callbacks were sent: {result.polled_during_fast}')
    if result.poll_jobs is not None:
        pj = result.poll_jobs
        say(f'Poll path: {pj.jobs} jobs with every callback lost, {pj.succeeded} succeeded, job seconds p50 '
            f'{percentile(pj.job_seconds, 50):.1f} s' if pj.job_seconds else f'Poll path: {pj.statuses}')
    calls = result.callbacks
    say(f'Kling callbacks: {calls.sent} sent, {calls.unanswered} not answered within the simulator\'s '
        f'{CALLBACK_TIMEOUT[1]:g} s read timeout'
        f'{"" if calls.drained else f" ({calls.expected - calls.sent} still queued at shutdown)"}')
    if result.cold_starts:
        say('Cold starts (new execution environments): '
            + ', '.join(f'{lid} {count}' for lid, count in sorted(result.cold_starts.items())))
    money = result.money
    say(f'Credits: balance {money.balance}, ledger sum {money.ledger_sum} ({money.ledger_entries} entries), '
        f'expected {money.start} - {money.start - money.expected} = {money.expected}: '
        f'{"adds up" if money.ok else "DOES NOT add up"}'
        f'{"" if result.baseline_money_ok else "; the baseline balance DOES NOT add up"}')
    report_cost(result, say)
    report_cold_start(result, say)
    if result.usage is not None:
        from vidgen_local import bench_usage

        bench_usage.report(result.usage, say)
    if result.streaming is not None:
        s = result.streaming
        say(f'\nStreaming {s.size_bytes / 1024**2:.0f} MB into S3 (copy_result, 8 MiB parts): peak RSS '
            f'{s.peak_before_mb:.0f} -> {s.peak_after_mb:.0f} MB (+{s.added_mb:.1f} MB) in {s.seconds:.1f} s; '
            f'stored {s.object_bytes} bytes')
    say('\nTargets')
    for target, measured, bound, met in result.targets():
        verdict = 'n/a' if met is None else ('MET' if met else 'MISSED')
        say(f'  {verdict:<7} {target}: {measured} (target {bound})')
    for series in (ours, base):
        for error in series.errors[:5]:
            say(f'  {series.name} error: {error}')
    say(f'\n{"OK" if result.ok else "FAILED"} ({result.total_seconds:.0f}s, of which setup {result.setup_seconds:.0f}s)')


def report_cost(result: Result, say: Callable[[str], None]) -> None:
    from vidgen_local import prices

    paths = [p for p in (result.fast, result.poll) if p is not None]
    if not paths:
        return
    say(f'\nCost per job (counted from the local cloud\'s calls; prices {prices.PRICES_DATE}, us-east-1, arm64, '
        'on-demand, no free tier)')
    fields = [('state transitions', 'state_transitions', '.1f'), ('Lambda invocations', 'lambda_invocations', '.1f'),
              ('Lambda GB-seconds', 'lambda_gb_seconds', '.3f'), ('DynamoDB read units', 'dynamodb_read_units', '.1f'),
              ('DynamoDB write units', 'dynamodb_write_units', '.1f'), ('S3 PUT/POST/LIST', 's3_tier1_requests', '.1f'),
              ('S3 GET/HEAD', 's3_tier2_requests', '.1f'), ('API Gateway requests', 'api_requests', '.1f'),
              ('Secrets Manager calls', 'secrets_manager_calls', '.2f')]
    say(f'  {"per job":<24}' + ''.join(f'{p.name + f" ({p.jobs})":>26}' for p in paths))
    for label, name, fmt in fields:
        say(f'  {label:<24}' + ''.join(f'{format(getattr(p.cost, name), fmt):>26}' for p in paths))
    say(f'  {"USD per 1,000 jobs":<24}' + ''.join(f'{p.cost.per_thousand():>26.4f}' for p in paths))
    if result.sweep is not None:
        monthly = prices.fixed_monthly_cost(result.sweep.cost, 30 * 24 * 30)  # every 2 minutes
        say(f'  the sweep (every 2 min, whatever the load): USD {result.sweep.cost.dollars() * 1000:.4f} per 1,000 runs, '
            f'USD {monthly:.2f} a month')
    if result.seeds and result.fast is not None:
        ours = result.fast.cost.per_thousand()
        say('  The seed designs for the same jobs (modelled from their code, with our measured invocation times):')
        for name, cost in result.seeds.items():
            say(f'    {name:<46} USD {cost.per_thousand():>9.4f} per 1,000 jobs = x{ratio(cost.per_thousand(), ours):.2f} '
                'ours (fast path)')


def cold_import_targets(imports: Any) -> list[tuple[str, str, str, bool | None]]:
    """Each function's cold import against a bare `import boto3` of the same run (coldstart.ImportFigures)."""
    rows: list[tuple[str, str, str, bool | None]] = []
    for name, seconds in imports.functions.items():
        r = imports.ratio(name)
        rows.append((f'{name} cold import / bare import boto3', f'{seconds * 1000:.0f} ms = x{r:.2f}', '<= x1.5',
                     r <= 1.5))
    floor = imports.http_floor_seconds
    if floor:  # a reference, not a target: below it no HTTP function can go with these libraries
        rows.append(('floor of an HTTP function (boto3 + Powertools validating resolver) / bare import boto3',
                     f'{floor * 1000:.0f} ms = x{imports.against_boto3(floor):.2f}', 'reference', None))
    return rows


def report_cold_start(result: Any, say: Callable[[str], None]) -> None:
    """The layer's figures and the cold imports of `result` (a Result, or anything with .layer and .imports)."""
    if result.layer is not None:
        layer = result.layer
        say(f'\nLayer: {layer.unzipped_bytes / 1024**2:.1f} MB unzipped, {layer.zipped_bytes / 1024**2:.1f} MB zipped; '
            f'{layer.compiled}/{layer.modules} modules compiled ({layer.pyc_tag}, {layer.invalidation})'
            f'{" - " + layer.note if layer.note else ""}')
    if result.imports is not None:
        imp = result.imports
        say(f'Cold import (median of {imp.rounds} fresh interpreters): bare import boto3 {imp.boto3_seconds * 1000:.0f} ms; '
            + ', '.join(f'{name} {sec * 1000:.0f} ms (x{imp.ratio(name):.2f})' for name, sec in imp.functions.items())
            + f'; the X-Ray SDK, imported by the first traced invocation in Lambda: +{imp.xray_seconds * 1000:.0f} ms'
            + (f'; floor of an HTTP function (boto3 + Powertools validating resolver) '
               f'{imp.http_floor_seconds * 1000:.0f} ms' if imp.http_floor_seconds else ''))


def markdown(result: Result) -> str:
    """The targets and the cost of a job as the README's performance section shows them."""
    lines = ['| target | measured | bound | verdict |', '|---|---|---|---|']
    for target, measured, bound, met in result.targets():
        lines.append(f'| {target} | {measured} | {bound} | {"n/a" if met is None else "met" if met else "**missed**"} |')
    paths = [p for p in (result.fast, result.poll) if p is not None]
    if paths:
        lines += ['', '| per job | ' + ' | '.join(f'{p.name} ({p.jobs} jobs)' for p in paths) + ' |',
                  '|---|' + '---|' * len(paths)]
        for label, name in (('state transitions', 'state_transitions'), ('Lambda invocations', 'lambda_invocations'),
                            ('Lambda GB-seconds', 'lambda_gb_seconds'), ('DynamoDB RRU', 'dynamodb_read_units'),
                            ('DynamoDB WRU', 'dynamodb_write_units'), ('S3 PUT/POST/LIST', 's3_tier1_requests'),
                            ('S3 GET/HEAD', 's3_tier2_requests'), ('API Gateway requests', 'api_requests'),
                            ('Secrets Manager calls', 'secrets_manager_calls')):
            lines.append(f'| {label} | ' + ' | '.join(f'{getattr(p.cost, name):.2f}' for p in paths) + ' |')
        lines.append('| **USD per 1,000 jobs** | ' + ' | '.join(f'{p.cost.per_thousand():.4f}' for p in paths) + ' |')
    if result.seeds and result.fast is not None:
        ours = result.fast.cost.per_thousand()
        lines += ['', '| design | USD per 1,000 jobs | vs ours (fast path) |', '|---|---|---|',
                  f'| vidgen, callback fast path (measured) | {ours:.4f} | x1.00 |']
        for name, cost in result.seeds.items():
            lines.append(f'| {name} (modelled) | {cost.per_thousand():.4f} | x{ratio(cost.per_thousand(), ours):.2f} |')
    return '\n'.join(lines) + '\n'


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='python -m vidgen_local.bench', description=__doc__.split('\n\n')[0])
    parser.add_argument('--jobs', type=int, default=200, help='jobs to submit, and baseline calls (default 200)')
    parser.add_argument('--concurrency', type=int, default=8, help='client threads for both series (default 8)')
    parser.add_argument('--generation-seconds', type=float, default=2.0,
                        help="the Kling simulator's generation time per job (default 2.0)")
    parser.add_argument('--timeout', type=float, default=180.0, help='give up on unfinished jobs after this (default 180 s)')
    parser.add_argument('--poll-jobs', type=int, default=20,
                        help='jobs whose callbacks are lost, for the poll path cost (default 20; 0 skips it)')
    parser.add_argument('--stream-mb', type=int, default=500,
                        help='size of the result streamed into S3 for the memory figure (default 500; 0 skips it)')
    parser.add_argument('--import-rounds', type=int, default=7,
                        help='fresh interpreters per cold import figure (default 7; 0 skips them)')
    parser.add_argument('--usage-rounds', type=int, default=40,
                        help='reads of GET /v1/usage per seeded user (default 40; 0 skips the usage section)')
    parser.add_argument('--no-layer', dest='layer', action='store_false', help='skip building the layer')
    parser.add_argument('--cold-start-only', action='store_true',
                        help="only the layer's figures and the cold imports, with their targets (no local cloud)")
    parser.add_argument('--json', type=Path, metavar='PATH', help='also write the figures as JSON to PATH')
    parser.add_argument('--markdown', type=Path, metavar='PATH', help="also write the README's tables to PATH")
    parser.add_argument('--media-mb', type=int, default=500,
                        help='size of the video the media section inspects from S3 (default 500; 0 skips it)')
    args = parser.parse_args(argv)
    # Bounded: the bench must end in minutes on a laptop, and the thread pool must stay small.
    if not 1 <= args.jobs <= 2000:
        parser.error('--jobs must be within 1..2000')
    if not 1 <= args.concurrency <= 64:
        parser.error('--concurrency must be within 1..64')
    if not 0 <= args.generation_seconds <= 60:
        parser.error('--generation-seconds must be within 0..60')
    if not 0 <= args.poll_jobs <= 200:
        parser.error('--poll-jobs must be within 0..200')
    if not 0 <= args.stream_mb <= 2048:
        parser.error('--stream-mb must be within 0..2048')
    if not 0 <= args.import_rounds <= 50:
        parser.error('--import-rounds must be within 0..50')
    if not 1 <= args.timeout <= 900:
        parser.error('--timeout must be within 1..900')
    if not 0 <= args.usage_rounds <= 500:
        parser.error('--usage-rounds must be within 0..500')
    if not 0 <= args.media_mb <= 4096:
        parser.error('--media-mb must be within 0..4096')
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    def say(line: str) -> None:
        print(line, flush=True)

    if args.cold_start_only:
        return run_cold_start_only(args, say)
    try:
        result = run(args, say)
    except (ApiError, RuntimeError) as exc:  # LocalCloudError is a RuntimeError
        say(f'The benchmark could not run: {exc}')
        return 1
    report(result, say)
    media = run_media_section(args.media_mb, say)
    if args.json:
        figures = result.figures(args) | ({'media': media.figures()} if media else {})
        args.json.write_text(json.dumps(figures, indent=2) + '\n')
        say(f'Figures written to {args.json}')
    if args.markdown:
        args.markdown.write_text(markdown(result))
        say(f'Tables written to {args.markdown}')
    return 0 if result.ok and (media is None or media.ok) else 1


@dataclass
class ColdStartFigures:
    layer: Any = None  # coldstart.LayerFigures
    imports: Any = None  # coldstart.ImportFigures


def run_cold_start_only(args: argparse.Namespace, say: Callable[[str], None]) -> int:
    """`--cold-start-only`: the layer and the cold imports, with their targets, and no local cloud."""
    from vidgen_local import coldstart
    from vidgen_local.cloud import find_root

    root = find_root()
    figures = ColdStartFigures()
    if args.layer:
        say('Building the layer as sam build does (wheels for arm64 / CPython 3.13, bytecode)...')
        figures.layer = coldstart.build_layer(root)
    if args.import_rounds:
        say(f'Cold imports: each function and a bare import boto3, {args.import_rounds} fresh interpreters each...')
        figures.imports = coldstart.import_times(root, args.import_rounds)
    report_cold_start(figures, say)
    if figures.imports is not None:
        say('\nTargets')
        for target, measured, bound, met in cold_import_targets(figures.imports):
            say(f'  {"n/a" if met is None else "MET" if met else "MISSED":<7} {target}: {measured} (target {bound})')
    return 0


def run_media_section(megabytes: int, say: Callable[[str], None]) -> Any:
    """Media: a large video inspected from S3 by the media step's code, its peak RSS growth against 64 MB."""
    if not megabytes:
        return None
    from vidgen_local import bench_media

    say(f'\nMedia: a {megabytes} MB video, inspected from S3 by the media step in its own process...')
    figures = bench_media.run_media_bench(megabytes, say)
    bench_media.report(figures, say)
    return figures


if __name__ == '__main__':
    sys.exit(main())
