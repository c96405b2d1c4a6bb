"""The usage report's latency against the number of jobs it covers (part of `make bench`).

GET /v1/usage reads usage counters, never jobs. Three users are seeded through the layer's own store code
(`vidgen.store.usage.transaction_items`, the items a debit and a settle add, with the counts of many jobs at
once, so seeding 10,000 jobs takes seconds):

- `small`: 10 jobs, one a day over 10 days, one model;
- `large`: 10,000 jobs over the same 10 days and model: the same cells, a thousand times the jobs;
- `diverse`: 10,000 jobs over 30 days x 3 models x 2 durations x 2 keys (360 cells), to show what does grow.

Each is read through the gateway and the status function as a client would, `rounds` times; the target is
the large user's p50 over the small user's (<= x1.5). The diverse user's figure is reported as measured.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Callable

from vidgen_local.client import VidgenClient

_MODELS = (('kling-v2-6', 20, 210_000), ('kling-v1-6', 10, 140_000), ('kie-kling-2-6', 25, 275_000))


@dataclass
class UsageSeries:
    name: str
    jobs: int
    cells: int
    p50_ms: float
    p95_ms: float
    counted_jobs: int  # what the report said: must equal `jobs`


@dataclass
class UsageBench:
    series: list[UsageSeries]

    def by_name(self, name: str) -> UsageSeries:
        return next(s for s in self.series if s.name == name)

    @property
    def ratio(self) -> float:
        return self.by_name('large').p50_ms / max(self.by_name('small').p50_ms, 1e-9)

    @property
    def ok(self) -> bool:
        return all(s.counted_jobs == s.jobs for s in self.series)


def cells(days: list[str], models: tuple[tuple[str, int, int], ...], durations: tuple[int, ...],
          keys: tuple[str, ...], jobs: int) -> list[tuple[Any, int, int, int]]:
    """(cell, jobs in it, credits per job, provider cost per job) with `jobs` spread evenly over the cells."""
    from vidgen.store.usage import Cell

    grid = [(Cell(day=day, model=model, kind='t2v', type='video', duration=duration, api_key_id=key), credits, cost)
            for day in days for model, credits, cost in models for duration in durations for key in keys]
    share, rest = divmod(jobs, len(grid))
    return [(cell, share + (1 if index < rest else 0), credits, cost)
            for index, (cell, credits, cost) in enumerate(grid)]


def seed(owner: str, grid: list[tuple[Any, int, int, int]]) -> None:
    """Write the counters of `grid`'s jobs, all succeeded in 30 s, one transaction per cell."""
    from vidgen.store import usage
    from vidgen.store.table import transact

    for cell, count, credits, cost in grid:
        if not count:
            continue
        delta = usage.Delta(jobs=count, succeeded=count, credits_charged=count * credits, output_bytes=count * 300_000,
                            cost_micro_usd=count * cost, seconds_bucket=usage.bucket_of(30))
        transact(usage.transaction_items(owner, cell, delta, spread_by=f'{owner}/{cell.sort_key()}'))


def measure(cloud: Any, say: Callable[[str], None], rounds: int) -> UsageBench:
    admin = VidgenClient(cloud.api_url, admin_key=cloud.admin_key)
    today = date.today()
    ten_days = [(today - timedelta(days=n)).isoformat() for n in range(9, -1, -1)]
    thirty_days = [(today - timedelta(days=n)).isoformat() for n in range(29, -1, -1)]
    plans = {
        'small': (ten_days, _MODELS[:1], (5,), 1, 10),
        'large': (ten_days, _MODELS[:1], (5,), 1, 10_000),
        'diverse': (thirty_days, _MODELS, (5, 10), 2, 10_000),
    }
    series = []
    for name, (days, models, durations, key_count, jobs) in plans.items():
        user = admin.create_user(user_id=f'bench-usage-{name}', credits=0)
        keys = tuple(f'key_bench_{n}' for n in range(key_count))
        grid = cells(days, models, durations, keys, jobs)
        started = time.monotonic()
        seed(user['user_id'], grid)
        say(f'  {name}: {jobs} jobs in {len(grid)} cells seeded in {time.monotonic() - started:.1f}s')
        client = VidgenClient(cloud.api_url, api_key=user['api_key'])
        window = {'start': days[0], 'end': days[-1]}
        for _ in range(5):  # warm: the status function's environment and connections
            client.usage(**window)
        times = []
        counted = 0
        for _ in range(rounds):
            began = time.perf_counter()
            counted = int(client.usage(**window)['totals']['jobs'])
            times.append(time.perf_counter() - began)
        times.sort()
        series.append(UsageSeries(name, jobs, len(grid), _at(times, 0.50) * 1000, _at(times, 0.95) * 1000, counted))
    return UsageBench(series)


def report(bench: UsageBench, say: Callable[[str], None]) -> None:
    say('\nGET /v1/usage (read from usage counters; HTTP -> gateway -> status function -> DynamoDB)')
    for s in bench.series:
        say(f'  {s.name:<8} {s.jobs:>6} jobs in {s.cells:>3} cells: p50 {s.p50_ms:.1f} ms, p95 {s.p95_ms:.1f} ms'
            f'{"" if s.counted_jobs == s.jobs else f" (COUNTED {s.counted_jobs})"}')
    say(f'  10,000 jobs / 10 jobs in the window (same cells): p50 x{bench.ratio:.2f}')


def _at(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]
