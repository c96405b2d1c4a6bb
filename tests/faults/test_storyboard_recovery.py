"""Crash injection for storyboards: the process dies at each step of a storyboard, and the sweep finishes it,
losing no credit, charging no scene twice and leaving no scene without its job.

A crash of the Lambda running a step is modelled as in test_crash_recovery.py: the step's execution is stopped
(by the test's admin identity: the storyboard function's role rightly cannot stop executions), then the step
raises, so no Retry or Catch runs. The patches reach the handlers through `handler_patch` (environments
recycled) and what the handlers record crosses to the test through `shared_state` files. The ticker is off:
the sweeps are the ones each test calls, and counted.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from faults_support import account, conservation, entries_by_job, record_figures, table, wait_for
from support import Api, admin_client
from vidgen import executions
from vidgen.jobs.storyboards import steps, writer
from vidgen.store import storyboards as store

pytestmark = pytest.mark.faults

TIME_SCALE = 20.0
GRACE = 2
ENV = {
    'QUEUED_GRACE_SECONDS': str(GRACE),
    'SWEEP_LIVENESS_SECONDS': str(GRACE),
    'CALLBACK_WAIT_SECONDS': '4',
    'POLL_INTERVALS': '20,40',
    'POWERTOOLS_LOG_LEVEL': 'CRITICAL',
}
CREDITS = 100
COST = 20  # kling-v2-6, 5 s, std
SCENES = 3
MAX_SWEEPS = 8

FIGURES: dict[str, Any] = {}


class SimulatedCrash(Exception):
    """The process running a step died here (the injected crash)."""


@pytest.fixture(scope='module')
def cloud():
    from vidgen_local.cloud import LocalCloud
    from vidgen_local.simulators.kling import KlingSimConfig

    for name in ('KLING_BASE_URL', 'KIE_BASE_URL', 'LLM_BASE_URL'):
        os.environ.pop(name, None)
    local = LocalCloud(port=0, time_scale=TIME_SCALE, env=ENV, admin_key='sb-crash-admin-key', sweep=False,
                       kling_sim_config=KlingSimConfig(generation_seconds=1.0, result_bytes=50_000))
    local.start()
    yield local
    local.stop()
    record_figures('storyboard_crash_recovery', FIGURES, [f'{name}: {row["summary"]}' for name, row in FIGURES.items()])


@pytest.fixture
def user(cloud) -> Api:
    return Api(cloud.api_url, cloud.admin_key).create_user(f'sb-crash-{uuid.uuid4().hex[:8]}', CREDITS)


def storyboard_execution_arn(cloud, storyboard_id: str) -> str:
    return cloud.handler_env['STORYBOARD_STATE_MACHINE_ARN'].replace(':stateMachine:', ':execution:') + f':{storyboard_id}'


def crash(cloud, storyboard_id: str, where: str) -> None:
    """Die here: the execution is stopped first, so the state machine cannot retry or catch the step."""
    admin_client(cloud, 'stepfunctions').stop_execution(executionArn=storyboard_execution_arn(cloud, storyboard_id),
                                                        error='Crash', cause=f'injected {where}')
    raise SimulatedCrash(f'the storyboard step died {where}')


def execution_status(cloud, storyboard_id: str) -> str | None:
    try:
        return boto3.client('stepfunctions').describe_execution(
            executionArn=storyboard_execution_arn(cloud, storyboard_id))['status']
    except ClientError:
        return None


def item(cloud, storyboard_id: str) -> dict[str, Any]:
    return table(cloud).get_item(Key={'PK': f'STORYBOARD#{storyboard_id}', 'SK': 'STORYBOARD'},
                                 ConsistentRead=True)['Item']


def assert_no_scene_without_its_job(cloud, storyboard_id: str) -> None:
    """While `generating` or after, every scene has its job: they are created in one transaction."""
    record = item(cloud, storyboard_id)
    if record['status'] != 'writing':
        for job_id in record['job_ids']:
            assert 'Item' in table(cloud).get_item(Key={'PK': f'JOB#{job_id}', 'SK': 'JOB'}, ConsistentRead=True)


def sweep_until_done(cloud, user: Api, storyboard_id: str) -> int:
    """Sweep (each time after the sweep windows passed) until the storyboard ended; returns how many sweeps."""
    for sweeps in range(1, MAX_SWEEPS + 1):
        time.sleep(GRACE + 1)
        report = cloud.sweep_now()
        assert report['errors'] == [], report
        assert_no_scene_without_its_job(cloud, storyboard_id)
        if user.get(f'/v1/storyboards/{storyboard_id}').json()['status'] not in ('writing', 'generating'):
            return sweeps
    raise AssertionError(f'storyboard {storyboard_id} not finished after {MAX_SWEEPS} sweeps')


def assert_finished_and_charged_once(cloud, user: Api, storyboard_id: str) -> dict[str, Any]:
    done = wait_for(lambda: (sb := user.get(f'/v1/storyboards/{storyboard_id}').json())['status']
                    not in ('writing', 'generating') and sb, 30, 'the storyboard to end')
    assert done['status'] == 'succeeded', done
    assert len(done['scenes']) == SCENES and all(s['job'] and s['job']['status'] == 'succeeded' for s in done['scenes'])
    acct = account(cloud, user.user_id)
    by_job = entries_by_job(acct)
    assert all(by_job[s['job_id']] == {'debit': 1} for s in done['scenes']), by_job
    figures = conservation(acct) | {'active_jobs': acct['active_jobs']}
    assert figures == {'grants': CREDITS, 'debits': SCENES * COST, 'refunds': 0, 'ledger_sum': CREDITS - SCENES * COST,
                       'balance': CREDITS - SCENES * COST, 'active_jobs': 0}, figures
    return figures | {'scenes_source': done['scenes_source']}


def record(name: str, sweeps: int, figures: dict[str, Any], state: str) -> None:
    FIGURES[name] = {'sweeps': sweeps, 'left_behind': state, **figures,
                     'summary': f'left {state}; finished by {sweeps} sweep(s) as succeeded, scenes from '
                                f'{figures["scenes_source"]}; one debit per scene, refunds {figures["refunds"]}, '
                                f'balance {figures["balance"]} = ledger {figures["ledger_sum"]}, active jobs '
                                f'{figures["active_jobs"]}'}


def submit(user: Api, label: str) -> str:
    response = user.post('/v1/storyboards', json={'product': {'name': f'Lamp {label}', 'description': 'A brass lamp.'},
                                                  'scenes': SCENES, 'model': 'kling-v2-6'})
    assert response.status_code == 202, response.text
    return response.json()['id']


# --- the crashes ---------------------------------------------------------------------------------------------------


def test_a_lost_start_after_the_transaction_is_started_by_the_sweep(cloud, user, handler_patch, shared_state):
    def start_storyboard(storyboard_id: str) -> bool:
        shared_state.append('refused', storyboard_id)
        raise ClientError({'Error': {'Code': 'ServiceUnavailable', 'Message': 'injected'}}, 'StartExecution')

    handler_patch.setattr(executions, 'start_storyboard', start_storyboard)
    storyboard_id = submit(user, 'lost start')
    handler_patch.undo()  # the sweep's own start must work
    assert shared_state.items('refused') == [storyboard_id] and execution_status(cloud, storyboard_id) is None
    assert account(cloud, user.user_id)['balance'] == CREDITS - SCENES * COST  # paid, and held

    sweeps = sweep_until_done(cloud, user, storyboard_id)

    figures = assert_finished_and_charged_once(cloud, user, storyboard_id)
    assert figures['scenes_source'] == 'llm'
    record('before_start_execution', sweeps, figures, 'writing, no execution')


def test_a_writer_step_that_fails_is_caught_into_the_built_in_scenes(cloud, user, handler_patch):
    def write_scenes(brief):
        raise SimulatedCrash('the scene writer blew up')

    handler_patch.setattr(writer, 'write_scenes', write_scenes)
    storyboard_id = submit(user, 'writer fails')

    figures = assert_finished_and_charged_once(cloud, user, storyboard_id)  # no sweep needed

    done = user.get(f'/v1/storyboards/{storyboard_id}').json()
    assert done['scenes_source'] == 'fallback' and done['scenes_note'].startswith(steps.CRASHED_WRITER_NOTE)
    record('writer_step_fails', 0, figures, 'nothing: the Catch wrote built-in scenes')


@pytest.mark.parametrize('where', ['in-write', 'create-before-commit', 'create-after-commit', 'in-start', 'in-settle'])
def test_a_crash_at_each_step_is_finished_by_the_sweep(cloud, user, handler_patch, shared_state, where):
    original_write, original_create = writer.write_scenes, store.create_scene_jobs
    original_start, original_finish = executions.start, store.finish

    def once(step_where: str) -> bool:
        """True the first time the step of this test is reached, in whichever environment reaches it."""
        if where == step_where and shared_state.first('crash'):
            shared_state.append('crashed', where)
            return True
        return False

    def write_scenes(brief):
        if once('in-write'):
            crash(cloud, shared_state.get('current'), 'while writing the scenes')
        return original_write(brief)

    def create_scene_jobs(storyboard, jobs, **kwargs):
        if once('create-before-commit'):
            crash(cloud, storyboard.id, 'before the scene jobs transaction')
        created = original_create(storyboard, jobs, **kwargs)
        if once('create-after-commit'):
            crash(cloud, storyboard.id, 'after the scene jobs transaction')
        return created

    def start(job_id: str) -> bool:
        started = original_start(job_id)
        if once('in-start'):
            crash(cloud, shared_state.get('current'), 'after starting the first scene job')
        return started

    def finish(storyboard_id: str, status: str, **kwargs):
        if once('in-settle'):
            crash(cloud, storyboard_id, 'before setting the final status')
        return original_finish(storyboard_id, status, **kwargs)

    original_start_storyboard = executions.start_storyboard

    def start_storyboard(storyboard_id: str) -> bool:
        # The submit function starts it; the storyboard function's steps read which storyboard is under test.
        shared_state.set('current', storyboard_id)
        return original_start_storyboard(storyboard_id)

    handler_patch.setattr(executions, 'start_storyboard', start_storyboard)
    handler_patch.setattr(writer, 'write_scenes', write_scenes)
    handler_patch.setattr(store, 'create_scene_jobs', create_scene_jobs)
    handler_patch.setattr(executions, 'start', start)
    handler_patch.setattr(store, 'finish', finish)

    storyboard_id = submit(user, where)
    wait_for(lambda: shared_state.items('crashed') and execution_status(cloud, storyboard_id) not in (None, 'RUNNING'),
             40, f'the crash {where} to end the execution')
    assert shared_state.items('crashed') == [where]
    left = item(cloud, storyboard_id)
    state = left['status'] + (' with scenes' if left.get('scenes_source') else '')
    assert left['status'] in ('writing', 'generating')  # still active: the sweep must finish it
    assert account(cloud, user.user_id)['balance'] == CREDITS - SCENES * COST  # nothing lost, nothing refunded
    assert_no_scene_without_its_job(cloud, storyboard_id)

    sweeps = sweep_until_done(cloud, user, storyboard_id)

    figures = assert_finished_and_charged_once(cloud, user, storyboard_id)
    done = user.get(f'/v1/storyboards/{storyboard_id}').json()
    if where == 'in-write':
        assert done['scenes_source'] == 'fallback' and done['scenes_note'].startswith(steps.SWEPT_WRITER_NOTE)
    else:
        assert done['scenes_source'] == 'llm'
    before = item(cloud, storyboard_id)
    assert cloud.sweep_now()['errors'] == [] and item(cloud, storyboard_id) == before  # a further sweep: no change
    record(f'crash_{where}', sweeps, figures, state)


def test_a_crash_between_the_final_status_and_the_notification_is_notified_once_by_the_sweep(
        cloud, user, handler_patch, shared_state, receiver):
    hook = receiver()
    original_notify = steps.notify

    def notify(storyboard_id: str) -> bool:
        if shared_state.first('crash'):
            shared_state.append('crashed', storyboard_id)
            crash(cloud, storyboard_id, 'after the final status, before the notification')
        return original_notify(storyboard_id)

    handler_patch.setattr(steps, 'notify', notify)
    response = user.post('/v1/storyboards', json={
        'product': {'name': 'Lamp notify', 'description': 'A brass lamp.'}, 'scenes': SCENES, 'model': 'kling-v2-6',
        'webhook_url': hook.url})
    assert response.status_code == 202, response.text
    storyboard_id = response.json()['id']
    wait_for(lambda: shared_state.items('crashed') and execution_status(cloud, storyboard_id) not in (None, 'RUNNING'),
             60, 'the crash before the notification to end the execution')
    figures = assert_finished_and_charged_once(cloud, user, storyboard_id)
    assert hook.calls == [] and item(cloud, storyboard_id)['sweep_status'] == 'storyboard.notify'

    sweeps = 0
    while not hook.calls and sweeps < MAX_SWEEPS:
        time.sleep(GRACE + 1)
        assert cloud.sweep_now()['errors'] == []
        sweeps += 1
    [call] = hook.wait_for(1)
    assert call.body['type'] == 'storyboard.succeeded' and call.headers['webhook-id'] == f'{storyboard_id}.succeeded'
    assert 'sweep_status' not in item(cloud, storyboard_id)  # sent: the sweep no longer looks for it
    time.sleep(GRACE + 1)
    assert cloud.sweep_now()['errors'] == [] and len(hook.calls) == 1  # once
    record('crash_before_notify', sweeps, figures | {'notifications': len(hook.calls)}, 'succeeded, not notified')


def test_a_notification_sent_by_the_execution_is_not_sent_again_by_the_sweep(cloud, user, receiver):
    hook = receiver()
    response = user.post('/v1/storyboards', json={
        'product': {'name': 'Lamp notified', 'description': 'A brass lamp.'}, 'scenes': 1, 'model': 'kling-v2-6',
        'webhook_url': hook.url})
    storyboard_id = response.json()['id']
    [call] = hook.wait_for(1, timeout=60)
    assert call.body['type'] == 'storyboard.succeeded'
    wait_for(lambda: 'sweep_status' not in item(cloud, storyboard_id), 10, 'the notification mark to go')
    time.sleep(GRACE + 1)
    assert cloud.sweep_now()['errors'] == [] and len(hook.calls) == 1


def test_after_every_storyboard_crash_the_usage_counters_reconcile(cloud, capsys):
    """Crashes between a storyboard's writes leave its scenes counted once, in the cell they were paid in:
    `vidgen admin usage-check` over every user and the service-wide counters finds no difference."""
    from vidgen_local.cli import main

    code = main(['admin', 'usage-check', '--api-url', cloud.api_url, '--admin-key', cloud.admin_key])
    printed = capsys.readouterr().out
    assert code == 0 and 'no differences' in printed, printed
    FIGURES['usage_check'] = {'summary': printed.strip()}
