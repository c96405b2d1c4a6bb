"""Admission control: a per-user cap on active jobs (429 + Retry-After, nothing written), and provider
concurrency limits retried with backoff without failing the job or charging twice."""

from __future__ import annotations

import boto3
import pytest
from support import ledger_sum, listed_once_caught_up


@pytest.fixture
def cap_of_three(settings_env):
    settings_env(VIDGEN_MAX_ACTIVE_JOBS_PER_USER='3')


def test_the_active_job_cap_answers_429_and_writes_nothing(cloud, new_user, cap_of_three):
    user = new_user(200)
    jobs = [user.submit({'model': 'kling-v2-6', 'prompt': f'hold {i} [sim:slow=60]'}).json() for i in range(3)]
    assert all(job['status'] == 'queued' for job in jobs)

    refused = user.submit({'model': 'kling-v2-6', 'prompt': 'one too many'})

    assert refused.status_code == 429
    assert refused.headers['Retry-After'] == '30'
    error = refused.json()['error']
    assert error['code'] == 'RATE_LIMIT_EXCEEDED' and '(the limit is 3)' in error['message']
    credits = user.credits()
    assert credits['balance'] == 140 == ledger_sum(credits)
    newest_first = [job['id'] for job in reversed(jobs)]
    assert listed_once_caught_up(lambda: [j['id'] for j in user.get('/v1/jobs').json()['jobs']], newest_first) == newest_first

    # A slot frees when a job ends: the next submit is accepted.
    assert user.post(f'/v1/jobs/{jobs[0]["id"]}/cancel').status_code == 200
    accepted = user.submit({'model': 'kling-v2-6', 'prompt': 'now there is room [sim:slow=60]'})
    assert accepted.status_code == 202
    for job in jobs[1:] + [accepted.json()]:
        user.post(f'/v1/jobs/{job["id"]}/cancel')
    credits = user.credits()
    assert credits['balance'] == 200 == ledger_sum(credits)


def test_the_cap_is_per_user(cloud, new_user, cap_of_three):
    busy, other = new_user(200), new_user(200)
    jobs = [busy.submit({'model': 'kling-v2-6', 'prompt': f'busy {i} [sim:slow=60]'}).json() for i in range(3)]
    assert busy.submit({'model': 'kling-v2-6', 'prompt': 'no'}).status_code == 429
    accepted = other.submit({'model': 'kling-v2-6', 'prompt': 'yes [sim:slow=60]'})
    assert accepted.status_code == 202
    for job in jobs:
        busy.post(f'/v1/jobs/{job["id"]}/cancel')
    other.post(f'/v1/jobs/{accepted.json()["id"]}/cancel')  # by its id: the lagging index may not list it yet


def test_the_template_and_the_local_cloud_use_the_same_setting(cloud):
    template_env = {name for spec in cloud.template.functions() for name in spec.environment}
    assert 'VIDGEN_MAX_ACTIVE_JOBS_PER_USER' in template_env
    assert cloud.handler_env['VIDGEN_MAX_ACTIVE_JOBS_PER_USER'] == '100'


@pytest.mark.parametrize('code', [1303, 1302])
def test_kling_concurrency_and_rate_limits_are_retried_and_charged_once(cloud, new_user, code):
    user = new_user(100)
    cloud.kling_sim.queue_error(code, times=2, stage='create')

    job = user.submit({'model': 'kling-v2-6', 'prompt': f'patience after {code}'}).json()
    done = user.wait(job['id'], timeout=60)

    assert done['status'] == 'succeeded', done
    creates = [t for t in cloud.kling_sim.tasks() if t['request'].get('external_task_id') == job['id']]
    assert len(creates) == 1
    credits = user.credits()
    assert credits['balance'] == 80 == ledger_sum(credits)
    assert [e['type'] for e in credits['ledger']].count('debit') == 1
    sfn = boto3.client('stepfunctions')
    arn = cloud.handler_env['STATE_MACHINE_ARN'].replace(':stateMachine:', ':execution:') + f':{job["id"]}'
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)['events']
    failed_attempts = [e for e in events if e['type'] == 'TaskFailed']
    assert len(failed_attempts) == 2 and all(e['taskFailedEventDetails']['error'] == 'ProviderThrottledError'
                                             for e in failed_attempts)
