"""Fault injection: a batch of jobs across Kling and Kie while both simulators misbehave at seeded rates.

On create and on status: 429s, 5xx, answers later than our read timeout, connection resets, bodies that are
not JSON. Callbacks: dropped, duplicated, reordered (Kling: an older status delivered after the final one),
and every Kie callback held back past the callback wait. Result downloads: cut off half way through.

Whatever happens, four things must hold, and the suite prints the figures behind each:
- every job reaches a terminal state within a bound (the job deadline plus one sweep period);
- credits are conserved for every user: grants - debits + refunds = balance = the ledger's sum;
- every failed job is refunded exactly once (one refund entry), a succeeded job never;
- no job is charged twice (one debit entry per job), and every succeeded job's results are whole in S3.

The suite runs its own LocalCloud (module scope): with the ticker on, the sweep runs every 6 s meanwhile.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import random
import statistics
import time
from collections import Counter
from typing import Any

import boto3
import pytest
from faults_support import account, conservation, entries_by_job, job_item, record_figures
from support import TERMINAL, Api

pytestmark = pytest.mark.faults

SEED = 20261121
TIME_SCALE = 20.0  # Wait states and Retry sleeps 20x faster; the sweep (rate 2 minutes) every 6 s
CALLBACK_WAIT = 3  # seconds a job waits for its callback before polling
READ_TIMEOUT = 2.0
DEADLINE = 60  # JOB_DEADLINE_SECONDS: the smallest the settings allow
# Every job must be terminal this long after it was created (the server's clock): the deadline, one sweep
# period, the sweep's liveness window, and slack for a 2-core machine.
BOUND = DEADLINE + 120 / TIME_SCALE + 5 + 20
ENV = {
    'CALLBACK_WAIT_SECONDS': str(CALLBACK_WAIT),
    'POLL_INTERVALS': '20,40',  # 1 s, then 2 s
    'PROVIDER_TIMEOUT': f'1,{READ_TIMEOUT:g}',
    'JOB_DEADLINE_SECONDS': str(DEADLINE),
    'QUEUED_GRACE_SECONDS': '5',
    'SWEEP_LIVENESS_SECONDS': '5',
    'POWERTOOLS_LOG_LEVEL': 'ERROR',
}
KLING_RESULT_BYTES = 300_000
KIE_RESULT_BYTES = 200_000

USERS = 4
CREDITS = 2000
MODELS: dict[str, dict[str, Any]] = {  # model -> extra request fields
    'kling-v2-6': {},
    'kling-v1-6': {},
    'veo-3-1-fast': {},
    'kie-kling-2-6': {},
    'seedream-4-5': {},
    'flux-2-pro': {'options': {'resolution': '1K', 'aspect_ratio': '1:1'}},
}
# scenario -> (prompt tag, how many of every 16 jobs of a model, the outcome without faults)
SCENARIOS: dict[str, tuple[str, int, tuple[str, str | None]]] = {
    'normal': ('', 10, ('succeeded', None)),
    'content-policy': ('[sim:content-policy]', 3, ('failed', 'CONTENT_POLICY')),
    'generation-fails': ('[sim:fail]', 2, ('failed', 'GENERATION_FAILED')),
    'refused-at-create': ('[sim:reject-create]', 1, ('failed', 'CONTENT_POLICY')),
}
# Transient faults may legitimately exhaust a step's retries: the job then fails as PROVIDER_UNAVAILABLE (or
# PROVIDER_TIMEOUT, or GENERATION_FAILED for a copy that never completed) and is refunded. Allowed, counted,
# and bounded: more than this share of such jobs means the retries are not doing their work.
TRANSIENT_CODES = ('PROVIDER_UNAVAILABLE', 'PROVIDER_TIMEOUT', 'GENERATION_FAILED')
MAX_TRANSIENT_SHARE = 0.05

# Per request, by stage. A request rolls reset, timeout, malformed, server_error, throttle in that order and
# takes the first that hits, so the later kinds get higher rates. Every kind should be injected several times
# in one batch (about 140 creates and 200 status queries).
REQUEST_FAULT_RATES = {
    'create': {'reset': 0.07, 'timeout': 0.07, 'malformed': 0.07, 'server_error': 0.08, 'throttle': 0.10},
    'status': {'reset': 0.05, 'timeout': 0.05, 'malformed': 0.05, 'server_error': 0.06, 'throttle': 0.08},
}
CALLBACK_FAULT_RATES = {'callback_drop': 0.2, 'callback_duplicate': 0.3}
KLING_REORDER_RATE = 0.5  # of final callbacks: the previous status is delivered after the final one
DOWNLOAD_FAIL_RATE = 0.15


def fault_plan(seed: int, **extra: Any) -> Any:
    from vidgen_local.simulators.faults import FaultPlan

    rates = {f'{stage}_{kind}': rate for stage, kinds in REQUEST_FAULT_RATES.items() for kind, rate in kinds.items()}
    return FaultPlan(**rates, **CALLBACK_FAULT_RATES, download_fail_midway=DOWNLOAD_FAIL_RATE,
                     timeout_sleep_seconds=READ_TIMEOUT + 1.5, seed=seed, **extra)


@pytest.fixture(scope='module')
def cloud():
    from vidgen_local.cloud import LocalCloud
    from vidgen_local.simulators.kie import KieSimConfig
    from vidgen_local.simulators.kling import KlingSimConfig

    os.environ.pop('KLING_BASE_URL', None)
    os.environ.pop('KIE_BASE_URL', None)
    kling = KlingSimConfig(generation_seconds=1.5, result_bytes=KLING_RESULT_BYTES,
                           faults=fault_plan(SEED, callback_reorder=KLING_REORDER_RATE))
    # Kie's own rate limit (20 creates per 10 s) would turn a 100-job burst into a test of backoff alone; the
    # plan's create_throttle injects its 429s instead. Every Kie callback arrives after the callback wait.
    kie = KieSimConfig(generation_seconds=1.5, result_bytes=KIE_RESULT_BYTES, rate_limit_per_10s=10_000,
                       callback_retry_seconds=(0.5, 1.0), faults=fault_plan(SEED + 1, callback_delay_seconds=CALLBACK_WAIT + 2))
    local = LocalCloud(port=0, time_scale=TIME_SCALE, env=ENV, admin_key='faults-admin-key',
                       kling_sim_config=kling, kie_sim_config=kie)
    local.start()
    yield local
    local.stop()


def plan_jobs() -> list[dict[str, Any]]:
    """96 jobs: every model gets every scenario in the same proportion; a seeded shuffle mixes them."""
    jobs = []
    for model, extra in MODELS.items():
        for scenario, (tag, count, _) in SCENARIOS.items():
            for n in range(count):
                prompt = f'{scenario} {model} #{n} {tag}'.strip()
                jobs.append({'model': model, 'scenario': scenario, 'body': {'model': model, 'prompt': prompt, **extra}})
    random.Random(SEED).shuffle(jobs)
    for index, job in enumerate(jobs):
        job['user'] = index % USERS
    return jobs


@pytest.fixture(scope='module')
def batch(cloud) -> dict[str, Any]:
    """Submit the batch, then wait (bounded) until every job is terminal; returns what was seen."""
    admin = Api(cloud.api_url, cloud.admin_key)
    users = []
    for n in range(USERS):
        response = admin.post('/v1/admin/users', json={'user_id': f'faults-{n}', 'credits': CREDITS})
        assert response.status_code == 201, response.text
        users.append(admin.as_user(response.json()['api_key']))
    jobs = plan_jobs()
    started = time.monotonic()

    def submit(job: dict[str, Any]) -> dict[str, Any]:
        response = users[job['user']].submit(job['body'])
        assert response.status_code == 202, response.text
        return {**job, 'id': response.json()['id'], 'credits': response.json()['credits']}

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        jobs = list(pool.map(submit, jobs))
    submit_seconds = time.monotonic() - started
    by_id = {job['id']: job for job in jobs}
    pending = set(by_id)
    while pending and time.monotonic() - started < submit_seconds + BOUND + 10:
        time.sleep(1.0)
        for user in users:
            listed = user.get('/v1/jobs', params={'limit': 100}).json()['jobs']
            pending -= {seen['id'] for seen in listed if seen['status'] in TERMINAL}
    batch_seconds = time.monotonic() - started
    time.sleep(CALLBACK_WAIT + 3)  # late, delayed and duplicated callbacks land on finished jobs
    before_sweep = {job_id: job_item(cloud, job_id) for job_id in by_id}
    sweep = cloud.sweep_now()
    after_sweep = {job_id: job_item(cloud, job_id) for job_id in by_id}
    return {'jobs': jobs, 'users': [f'faults-{n}' for n in range(USERS)], 'pending': sorted(pending),
            'seconds': batch_seconds, 'submit_seconds': submit_seconds, 'sweep': sweep, 'changed_by_last_sweep':
            sorted(j for j in by_id if before_sweep[j] != after_sweep[j]), 'items': after_sweep}


@pytest.fixture(scope='module')
def figures(cloud, batch) -> dict[str, Any]:
    """Everything the assertions look at, recorded (and printed) before any assertion can fail."""
    jobs, items = batch['jobs'], batch['items']
    outcomes: Counter[str] = Counter()
    by_scenario: dict[str, Counter[str]] = {}
    unexpected: list[dict[str, Any]] = []
    for job in jobs:
        item = items[job['id']]
        code = (item.get('error') or {}).get('code')
        outcome = f'{item["status"]}' + (f' {code}' if code else '')
        job.update(status=item['status'], code=code)
        outcomes[outcome] += 1
        by_scenario.setdefault(job['scenario'], Counter())[outcome] += 1
        if (item['status'], code) != SCENARIOS[job['scenario']][2]:
            unexpected.append({'job': job['id'], 'model': job['model'], 'scenario': job['scenario'], 'outcome': outcome,
                               'message': (item.get('error') or {}).get('message'), 'path': execution_path(cloud, job)})

    accounts = {user: account(cloud, user) for user in batch['users']}
    totals: Counter[str] = Counter()
    per_user = {}
    for user, acct in accounts.items():
        sums = conservation(acct)
        per_user[user] = sums | {'active_jobs': acct['active_jobs'],
                                 'holds': sums['grants'] - sums['debits'] + sums['refunds'] == sums['balance']
                                 == sums['ledger_sum']}
        totals.update(sums)
    entries: dict[str, Counter[str]] = {}
    for acct in accounts.values():
        entries.update(entries_by_job(acct))
    debits = Counter(entries.get(job['id'], Counter())['debit'] for job in jobs)
    refunds = {status: Counter(entries.get(j['id'], Counter())['refund'] for j in jobs if j['status'] == status)
               for status in ('succeeded', 'failed')}

    injected: Counter[str] = Counter()
    by_simulator = {}
    for name, sim in (('kling', cloud.kling_sim), ('kie', cloud.kie_sim)):
        counts = sim.config.faults.injected.snapshot()
        by_simulator[name] = dict(sorted(counts.items()))
        injected.update(counts)
    kie_stats, kling_stats = cloud.kie_sim.stats.snapshot(), cloud.kling_sim.stats.snapshot()
    kie_finished = sum(1 for task in cloud.kie_sim.tasks() if task['callback_done'])
    callbacks = {
        'kling': {k: kling_stats.get(f'callbacks_{k}', 0) for k in ('sent', 'delivered', 'failed', 'dropped',
                                                                       'duplicated', 'reordered')},
        'kie': {k: kie_stats.get(f'callbacks_{k}', 0) for k in ('delivered', 'failed', 'dropped', 'duplicated')}
        | {'delayed_past_wait': kie_finished - kie_stats.get('callbacks_dropped', 0),
           'delay_seconds': CALLBACK_WAIT + 2, 'callback_wait_seconds': CALLBACK_WAIT},
    }
    kinds = ('create_throttle', 'create_server_error', 'create_timeout', 'create_reset', 'create_malformed',
             'status_throttle', 'status_server_error', 'status_timeout', 'status_reset', 'status_malformed',
             'callback_drop', 'callback_duplicate', 'callback_reorder', 'download_fail_midway')
    faults = {kind: injected.get(kind, 0) for kind in kinds}
    faults['callback_delayed_past_wait'] = callbacks['kie']['delayed_past_wait']
    for job in jobs:  # the server's own clock: created -> completed
        item = items[job['id']]
        if item.get('completed_at') is not None:
            job['seconds'] = float(item['completed_at']) - float(item['created_at'])
    times = [job['seconds'] for job in jobs if 'seconds' in job]
    slowest = max((job for job in jobs if 'seconds' in job), key=lambda job: job['seconds'], default=None)
    result = {
        'seed': SEED,
        'jobs': len(jobs),
        'jobs_by_model': dict(Counter(job['model'] for job in jobs)),
        'jobs_by_scenario': dict(Counter(job['scenario'] for job in jobs)),
        'faults_injected': faults,
        'faults_injected_total': sum(faults.values()),
        'faults_by_simulator': by_simulator,
        'fault_rates': {'request': REQUEST_FAULT_RATES, **CALLBACK_FAULT_RATES, 'callback_reorder (kling)': KLING_REORDER_RATE,
                        'download_fail_midway': DOWNLOAD_FAIL_RATE, 'callback_delay_seconds (kie)': CALLBACK_WAIT + 2},
        'callbacks': callbacks,
        'provider_tasks': {'kling': kling_stats.get('tasks_created', 0), 'kie': kie_stats.get('tasks_created', 0)},
        'provider_requests': {'kling': {'creates': kling_stats.get('creates', 0), 'status': kling_stats.get('gets', 0)},
                              'kie': {'creates': kie_stats.get('creates', 0), 'status': kie_stats.get('gets', 0)},
                              'result_downloads': kling_stats.get('downloads', 0) + kie_stats.get('downloads', 0)},
        'outcomes': dict(sorted(outcomes.items())),
        'outcomes_by_scenario': {s: dict(sorted(c.items())) for s, c in by_scenario.items()},
        'unexpected_outcomes': unexpected,
        'not_terminal': batch['pending'],
        'conservation': {'users': per_user, 'totals': dict(totals),
                         'holds_for_every_user': all(u['holds'] for u in per_user.values())},
        'debit_entries_per_job': {str(k): v for k, v in sorted(debits.items())},
        'refund_entries_per_failed_job': {str(k): v for k, v in sorted(refunds['failed'].items())},
        'refund_entries_per_succeeded_job': {str(k): v for k, v in sorted(refunds['succeeded'].items())},
        'changed_by_last_sweep': batch['changed_by_last_sweep'],
        'slowest_job': slowest and {'model': slowest['model'], 'scenario': slowest['scenario'], 'outcome': f'{slowest["status"]}',
                                    'path': execution_path(cloud, slowest)},
        'seconds': {'batch': round(batch['seconds'], 1), 'submits': round(batch['submit_seconds'], 1), 'bound_per_job': BOUND,
                    'max_to_terminal': round(max(times), 1) if times else None,
                    'median_to_terminal': round(statistics.median(times), 1) if times else None},
    }
    record_figures('fault_injection', result, summary_lines(result))
    return result


def execution_path(cloud, job: dict[str, Any]) -> list[str]:
    """The job's execution as 'seconds-since-it-started state-or-error' lines: how a job got where it ended."""
    sfn = boto3.client('stepfunctions')
    arn = cloud.handler_env['STATE_MACHINE_ARN'].replace(':stateMachine:', ':execution:') + f':{job["id"]}'
    try:
        events = sfn.get_execution_history(executionArn=arn, maxResults=1000)['events']
    except sfn.exceptions.ExecutionDoesNotExist:
        return ['no execution']
    start = events[0]['timestamp'].timestamp() if events else 0.0
    path = []
    for event in events:
        name = (event.get('stateEnteredEventDetails') or {}).get('name')
        failure = event.get('taskFailedEventDetails') or event.get('executionFailedEventDetails') or {}
        error = failure.get('error')
        if error:
            try:
                error += ': ' + json.loads(failure.get('cause') or '{}').get('errorMessage', '')[:90]
            except (ValueError, AttributeError):
                pass
        if name or error or event['type'] in ('TaskTimedOut', 'ExecutionSucceeded', 'ExecutionAborted'):
            path.append(f'{event["timestamp"].timestamp() - start:6.1f} {name or event["type"]} {error or ""}'.rstrip())
    return path


def summary_lines(f: dict[str, Any]) -> list[str]:
    t = f['conservation']['totals']
    faults = ', '.join(f'{k} {v}' for k, v in f['faults_injected'].items())
    return [
        f'jobs: {f["jobs"]} ({", ".join(f"{k} {v}" for k, v in f["jobs_by_model"].items())})',
        f'scenarios: {", ".join(f"{k} {v}" for k, v in f["jobs_by_scenario"].items())}',
        f'faults injected: {f["faults_injected_total"]} ({faults})',
        f'callbacks: kling {f["callbacks"]["kling"]}; kie {f["callbacks"]["kie"]}',
        f'provider tasks created: {f["provider_tasks"]}; requests: {f["provider_requests"]}',
        f'outcomes: {f["outcomes"]}',
        f'outcomes other than the scenario\'s own (transient faults outlasting the retries): '
        f'{len(f["unexpected_outcomes"])} {[u["outcome"] for u in f["unexpected_outcomes"]]}',
        f'not terminal within {f["seconds"]["bound_per_job"]:g} s: {len(f["not_terminal"])}; '
        f'batch {f["seconds"]["batch"]} s (submits {f["seconds"]["submits"]} s); created to completed: slowest job '
        f'{f["seconds"]["max_to_terminal"]} s, median {f["seconds"]["median_to_terminal"]} s',
        f'conservation ({len(f["conservation"]["users"])} users): grants {t["grants"]} - debits {t["debits"]} + refunds '
        f'{t["refunds"]} = {t["grants"] - t["debits"] + t["refunds"]}; balances {t["balance"]}; ledger sum '
        f'{t["ledger_sum"]}; holds for every user: {f["conservation"]["holds_for_every_user"]}',
        f'debit entries per job {f["debit_entries_per_job"]}; refund entries per failed job '
        f'{f["refund_entries_per_failed_job"]}; per succeeded job {f["refund_entries_per_succeeded_job"]}',
        f'jobs changed by a sweep after the batch: {len(f["changed_by_last_sweep"])}',
    ]


def test_faults_were_injected_of_every_kind(figures):
    missing = [kind for kind, count in figures['faults_injected'].items() if count == 0]
    assert not missing, f'no fault of these kinds was injected: {missing}'


def test_every_job_reaches_a_terminal_state_within_the_bound(figures, batch):
    assert figures['not_terminal'] == []
    assert all(job.get('seconds', float('inf')) <= BOUND for job in batch['jobs']), figures['seconds']
    assert all(item['status'] in TERMINAL for item in batch['items'].values())


def test_credits_are_conserved_for_every_user(figures):
    for user, sums in figures['conservation']['users'].items():
        assert sums['grants'] == CREDITS, (user, sums)
        assert sums['grants'] - sums['debits'] + sums['refunds'] == sums['balance'] == sums['ledger_sum'], (user, sums)
        assert sums['active_jobs'] == 0, (user, sums)  # every slot given back


def test_no_job_is_charged_twice(figures, batch):
    assert figures['debit_entries_per_job'] == {'1': len(batch['jobs'])}
    totals = figures['conservation']['totals']
    assert totals['debits'] == sum(job['credits'] for job in batch['jobs'])


def test_every_failed_job_is_refunded_exactly_once(figures, batch):
    failed = [job for job in batch['jobs'] if job['status'] == 'failed']
    succeeded = [job for job in batch['jobs'] if job['status'] == 'succeeded']
    assert failed and succeeded
    assert figures['refund_entries_per_failed_job'] == {'1': len(failed)}
    assert figures['refund_entries_per_succeeded_job'] == {'0': len(succeeded)}
    assert all(batch['items'][job['id']].get('refunded') is True for job in failed)
    assert figures['conservation']['totals']['refunds'] == sum(job['credits'] for job in failed)


def test_succeeded_jobs_have_whole_results_in_our_bucket(cloud, batch):
    s3 = boto3.client('s3')
    bucket = cloud.handler_env['BUCKET_NAME']
    for job in batch['jobs']:
        if job['status'] != 'succeeded':
            continue
        [output] = batch['items'][job['id']]['outputs']
        stored = s3.head_object(Bucket=bucket, Key=output['key'])
        assert stored['ContentLength'] == int(output['bytes']), (job['id'], output)  # never a half download
        if output['content_type'] == 'video/mp4':
            assert int(output['bytes']) in (KLING_RESULT_BYTES, KIE_RESULT_BYTES), (job['id'], output)


def test_outcomes_follow_the_scenarios(figures, batch):
    """Faults change how a job gets there, not where it ends: a scenario's own outcome, or, rarely, a refunded
    failure when transient faults outlasted every retry."""
    unexpected = figures['unexpected_outcomes']
    assert all(u['outcome'].startswith('failed ') and u['outcome'].split(' ', 1)[1] in TRANSIENT_CODES
               for u in unexpected), unexpected
    assert len(unexpected) <= MAX_TRANSIENT_SHARE * len(batch['jobs']), unexpected


def test_a_sweep_after_the_batch_changes_nothing(figures, batch):
    assert figures['changed_by_last_sweep'] == []
    assert sum(len(v) for k, v in batch['sweep'].items() if k != 'deferred') == 0, batch['sweep']


def test_the_usage_counters_reconcile_after_the_batch_and_count_it_exactly(cloud, batch, capsys):
    """`vidgen admin usage-check` over every user and the service-wide counters finds no difference, and the
    service-wide figures are the batch's own (this cloud ran nothing else)."""
    from vidgen_local.cli import main

    code = main(['admin', 'usage-check', '--api-url', cloud.api_url, '--admin-key', cloud.admin_key])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert printed.startswith(f'checked {USERS} users, {len(batch["jobs"])} jobs and the service-wide counters: '
                              'no differences'), printed
    admin = Api(cloud.api_url, cloud.admin_key)
    totals = admin.get('/v1/admin/usage', params={'top': USERS}).json()['totals']
    items = batch['items'].values()
    assert (totals['jobs'], totals['active']) == (len(batch['jobs']), 0)
    assert totals['credits_charged'] == sum(job['credits'] for job in batch['jobs'])
    assert totals['credits_refunded'] == sum(int(item['credits']) for item in items if item.get('refunded'))
    assert totals['succeeded'] == sum(item['status'] == 'succeeded' for item in items)
    record_figures('usage_reconciliation', {'printed': printed.strip(), 'totals': totals},
                   [printed.strip(), f'service-wide: {totals["jobs"]} jobs, {totals["credits_net"]} credits net, '
                                     f'{totals["provider_cost_usd"]} USD provider cost'])
