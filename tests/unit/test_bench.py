"""The benchmark's statistics and bookkeeping (`make bench` itself runs the whole stack and is not a test)."""

from __future__ import annotations

import math

import pytest
from vidgen_local import bench


def test_percentile_interpolates_between_nearest_ranks():
    values = [float(v) for v in range(1, 201)]  # 1..200, shuffled order must not matter
    assert bench.percentile(list(reversed(values)), 50) == pytest.approx(100.5)
    assert bench.percentile(values, 99) == pytest.approx(198.01)
    assert bench.percentile(values, 0) == 1.0
    assert bench.percentile(values, 100) == 200.0
    assert bench.percentile([7.0], 99) == 7.0
    assert bench.percentile([1.0, 3.0], 50) == 2.0


@pytest.mark.parametrize('values, q', [([], 50), ([1.0], -1), ([1.0], 101)])
def test_percentile_refuses_nonsense(values, q):
    with pytest.raises(ValueError):
        bench.percentile(values, q)


def test_series_throughput_and_ratio():
    series = bench.Series('x', concurrency=4, wall_seconds=2.0, latencies=[0.1, 0.2, 0.3, 0.4])
    assert series.count == 4 and series.throughput == 2.0
    assert series.figures()['p50_ms'] == 250.0
    assert bench.ratio(3.0, 1.5) == 2.0
    assert bench.ratio(1.0, 0.0) == math.inf


def test_job_figures_from_stored_jobs():
    from types import SimpleNamespace as Job

    jobs = {'a': Job(status='succeeded', created_at=100.0, completed_at=103.0),
            'b': Job(status='succeeded', created_at=101.0, completed_at=105.0),
            'c': Job(status='running', created_at=102.0, completed_at=None)}
    figures = bench.stored_job_figures(jobs, expected=3, first_submit=100.0, timed_out=True)
    assert figures.succeeded == 2 and figures.statuses == {'succeeded': 2, 'running': 1}
    assert sorted(figures.job_seconds) == [3.0, 4.0]
    assert figures.completion_seconds == 5.0 and figures.throughput == pytest.approx(0.4)
    assert not figures.all_succeeded
    assert figures.past_callback_wait == 0
    figures.callback_wait_seconds = 3.5
    assert figures.past_callback_wait == 1


def test_targets_carry_their_verdicts():
    fast = bench.Series('vidgen', 8, 10.0, [0.10] * 98 + [0.30] * 2)
    bare = bench.Series('bare', 8, 10.0, [0.06] * 98 + [0.10] * 2)
    jobs = bench.JobFigures(jobs=2, succeeded=2, statuses={'succeeded': 2}, completion_seconds=5, job_seconds=[3.0, 4.5],
                            timed_out=False)
    result = bench.Result(fast, bare, jobs, bench.Money(10, 0, 0, 1, 0), True,
                          bench.Callbacks(4, 4, 0, True), 1.0, polled_during_fast=1, generation_seconds=2.0)
    verdicts = {target: (measured, met) for target, measured, _bound, met in result.targets()}
    assert verdicts['submit p50 / bare TransactWriteItems p50'] == ('x1.67', True)
    assert verdicts['submit p99 / bare TransactWriteItems p99'][1] is False  # 0.30 / 0.10 > 2.5
    assert verdicts['job seconds p50 at 2 concurrent jobs'] == ('3.8 s', True)
    assert verdicts['jobs finished by the poll loop while callbacks were delivered'] == ('1', False)
    table = bench.markdown(result)
    assert '| submit p50 / bare TransactWriteItems p50 | x1.67 | <= x2.0 | met |' in table
    assert '| jobs finished by the poll loop while callbacks were delivered | 1 | 0 | **missed** |' in table


def test_money_adds_up_only_when_balance_ledger_and_expectation_agree():
    assert bench.Money(start=5000, balance=1000, ledger_sum=1000, ledger_entries=201, expected=1000).ok
    assert not bench.Money(start=5000, balance=1000, ledger_sum=1020, ledger_entries=201, expected=1000).ok
    assert not bench.Money(start=5000, balance=1020, ledger_sum=1020, ledger_entries=201, expected=1000).ok


def test_arguments_are_bounded():
    args = bench.parse_args([])
    assert (args.jobs, args.concurrency, args.generation_seconds, args.json) == (200, 8, 2.0, None)
    assert (args.poll_jobs, args.stream_mb, args.import_rounds, args.layer) == (20, 500, 7, True)
    with pytest.raises(SystemExit):
        bench.parse_args(['--concurrency', '1000'])
    with pytest.raises(SystemExit):
        bench.parse_args(['--jobs', '0'])
    with pytest.raises(SystemExit):
        bench.parse_args(['--stream-mb', '99999'])


def test_the_cold_start_only_mode_prints_each_functions_verdict_without_a_local_cloud(monkeypatch):
    from vidgen_local import coldstart

    figures = coldstart.ImportFigures(rounds=3, boto3_seconds=0.2, functions={'poller': 0.26, 'status': 0.5},
                                      xray_seconds=0.03, http_floor_seconds=0.35)
    monkeypatch.setattr(coldstart, 'import_times', lambda root, rounds: figures)
    monkeypatch.setattr(coldstart, 'build_layer', lambda root: pytest.fail('--no-layer builds no layer'))
    lines: list[str] = []
    assert bench.run_cold_start_only(bench.parse_args(['--cold-start-only', '--no-layer', '--import-rounds', '3']),
                                     lines.append) == 0
    assert '  MET     poller cold import / bare import boto3: 260 ms = x1.30 (target <= x1.5)' in lines
    assert '  MISSED  status cold import / bare import boto3: 500 ms = x2.50 (target <= x1.5)' in lines
    assert ('  n/a     floor of an HTTP function (boto3 + Powertools validating resolver) / bare import boto3: '
            '350 ms = x1.75 (target reference)') in lines
    assert any(line.startswith('Cold import (median of 3 fresh interpreters): bare import boto3 200 ms') for line in lines)
