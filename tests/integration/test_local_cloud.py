"""LocalCloud: starts from template.yaml, runs the real state machine, and stops without a trace.

A LocalCloud owns process-wide state (moto's backends, os.environ, the patches), and the session's cloud
may be running in this process, so the scenarios run in a fresh interpreter (this file as a script) and
report what they saw as JSON. Stub handlers (a constructor hook) drive the real ASL through each path;
one cloud runs the lead's real handlers for the health, admin and models routes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def observed() -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def scenario(observed: dict[str, Any], name: str) -> dict[str, Any]:
    result = observed[name]
    assert 'error' not in result, result.get('error')
    return result


def test_the_real_state_machine_runs_every_path_with_stub_handlers(observed):
    paths = scenario(observed, 'paths')
    callback = paths['callback']
    assert callback['status'] == 'SUCCEEDED'
    assert callback['actions'] == ['create_task', 'finalize', 'inspect', 'succeed', 'notify']
    failed = paths['content_policy']
    assert failed['status'] == 'SUCCEEDED' and failed['actions'] == ['create_task', 'fail', 'notify']
    assert failed['failure']['Error'] == 'ProviderContentPolicyError'
    assert json.loads(failed['failure']['Cause'])['errorMessage'] == 'refused'
    polled = paths['no_callback']
    assert polled['status'] == 'SUCCEEDED'
    assert polled['actions'] == ['create_task', 'poll', 'finalize', 'inspect', 'succeed', 'notify']
    assert 0.9 <= polled['seconds'] < 4  # CALLBACK_WAIT_SECONDS 300 at time scale 300 = 1 s, then one poll
    throttled = paths['throttled_once']
    assert throttled['status'] == 'SUCCEEDED'
    # Retry matched our error name
    assert throttled['actions'] == ['create_task', 'create_task', 'finalize', 'inspect', 'succeed', 'notify']
    unplayable = paths['unplayable']  # the media check refused the result: discarded, then failed and refunded
    assert unplayable['status'] == 'SUCCEEDED'
    assert unplayable['actions'] == ['create_task', 'finalize', 'inspect', 'discard', 'fail', 'notify']
    assert unplayable['failure']['Error'] == 'UnplayableResultError'


def test_routes_reach_the_handlers_and_schedules_fire(observed):
    result = scenario(observed, 'wiring')
    assert result['health'] == [200, {'route': 'GET /v1/health', 'function': 'vidgen-local-StatusFunction'}]
    assert result['unknown_route'] == 404
    assert result['sweep_now'] == {'swept': True}
    assert result['ticker_sweeps'] >= 3  # rate(2 minutes) at time scale 300: every 0.4 s, for 1.5 s


def test_handler_environment_and_secrets_are_the_local_ones(observed):
    result = scenario(observed, 'environment')
    env = result['env']
    assert env['PUBLIC_API_URL'] == result['api_url']
    assert env['CALLBACK_WAIT_SECONDS'] == '1'  # the template's 300 s / time scale 300
    assert env['VIDGEN_ALLOW_LOOPBACK_URLS'] == 'true' and env['VIDGEN_MAX_ACTIVE_JOBS_PER_USER'] == '7'
    assert env['KLING_BASE_URL'] == result['kling_sim_url'] and env['KIE_BASE_URL'] == result['kie_sim_url']
    assert env['KIE_UPLOAD_BASE_URL'] == env['KIE_BASE_URL']
    assert env['POWERTOOLS_LOG_LEVEL'] == 'WARNING'  # the `env` argument wins
    assert env['ADMIN_SECRET_NAME'].startswith('arn:aws:secretsmanager:us-east-1:123456789012:secret:')
    assert result['admin_secret'] == {'api_key': 'admin-test-key'} and result['admin_key'] == 'admin-test-key'
    assert result['kling_secret'] == result['kling_sim_keys']  # the simulator's own (fake) keys
    assert result['kie_secret']['api_key'] == result['kie_sim_key']
    assert result['second_cloud_refused'] is True


def test_stop_leaves_no_thread_port_module_or_setting_behind(observed):
    result = scenario(observed, 'after_stop')
    assert result['threads'] == ['MainThread']
    assert result['open_ports'] == []
    assert result['env_restored'] is True and result['moto_config_restored'] is True
    assert result['handler_modules'] == []
    assert result['stop_twice'] is True


def test_real_provider_settings_replace_the_simulator(observed):
    result = scenario(observed, 'real_kling')
    assert result['kling_sim'] is None and result['kling_base_url'] == 'http://127.0.0.1:9'
    assert result['kling_secret'] == {'access_key': 'real-ak', 'secret_key': 'real-sk'}
    assert 'KLING_ACCESS_KEY' in result['missing_keys_error']


def test_the_real_handlers_serve_health_admin_and_models(observed):
    result = scenario(observed, 'real_handlers')
    assert result['health'] == 200
    assert result['create_user'][0] == 201 and result['create_user'][1]['balance'] == 50
    assert result['create_user'][1]['api_key']
    assert result['models'] == 200 and result['model_count'] > 0


# --- the scenarios (run in a fresh interpreter) ---------------------------------------------------------


def _main() -> None:  # noqa: C901 - one script, one scenario per block
    import copy
    import logging
    import os
    import socket
    import threading
    import time
    import traceback

    import boto3
    import requests
    from moto.core import config as moto_config
    from vidgen_local.cloud import LocalCloud, LocalCloudError

    logging.basicConfig(level=logging.ERROR)
    out: dict[str, Any] = {}
    env_before = dict(os.environ)
    moto_config_before = copy.deepcopy(moto_config.default_user_config)
    for name in ('KLING_BASE_URL', 'KIE_BASE_URL', 'LLM_BASE_URL', 'VIDGEN_ADMIN_KEY', 'VIDGEN_PUBLIC_URL'):
        os.environ.pop(name, None)

    def record(name: str, run: Any) -> None:
        try:
            out[name] = run()
        except Exception:  # noqa: BLE001 - reported to the test that reads this scenario
            out[name] = {'error': traceback.format_exc()}

    class ProviderContentPolicyError(Exception):
        pass

    class ProviderThrottledError(Exception):
        pass

    class UnplayableResultError(Exception):
        pass

    # The stub handlers run in the cloud's execution environments (other processes): what they record
    # reaches this script through a Manager.
    import multiprocessing

    manager = multiprocessing.Manager()
    actions: Any = manager.dict()  # job -> actions, in order
    tokens: Any = manager.dict()
    failures: Any = manager.dict()
    sweeps: Any = manager.list()

    def poller(event: dict[str, Any], context: Any) -> Any:
        if event.get('action') == 'sweep':
            sweeps.append(time.monotonic())
            return {'swept': True}
        job = event['job_id']
        actions[job] = [*actions.get(job, []), event['action']]
        if event['action'] == 'create_task':
            if job.startswith('policy'):
                raise ProviderContentPolicyError('refused')
            if job.startswith('throttled') and actions[job].count('create_task') == 1:
                raise ProviderThrottledError('slow down')
            tokens[job] = event['task_token']
            return {}
        if event['action'] == 'poll':
            return {'state': 'succeeded', 'attempt': event['attempt'] + 1, 'wait_seconds': 0}
        if event['action'] == 'finalize':
            return {'kind': 'video', 'outputs': [{'key': f'results/u/{job}/0.mp4', 'content_type': 'video/mp4',
                                                  'bytes': 1}]}
        if event['action'] == 'fail':
            failures[job] = event['failure']
        return {}

    def media(event: dict[str, Any], context: Any) -> Any:
        job = event['job_id']
        actions[job] = [*actions.get(job, []), event['action']]
        if event['action'] == 'inspect':
            if job.startswith('unplayable'):
                raise UnplayableResultError('noise')
            return {'outputs': [o | {'media': {'format': 'png'}} for o in event['outputs']]}
        return {}

    def http(event: dict[str, Any], context: Any) -> Any:
        return {'statusCode': 200, 'body': json.dumps({'route': event['routeKey'], 'function': context.function_name})}

    stubs = {'PollerFunction': poller, 'StatusFunction': http, 'SubmitFunction': http, 'CallbackFunction': http,
             'AdminFunction': http, 'MediaFunction': media}
    cloud = LocalCloud(ROOT, port=0, time_scale=300, handlers=stubs, admin_key='admin-test-key',
                       env={'POWERTOOLS_LOG_LEVEL': 'WARNING', 'VIDGEN_MAX_ACTIVE_JOBS_PER_USER': '7'})
    cloud.start()
    sfn = boto3.client('stepfunctions')
    machine = cloud.resources.state_machines['JobStateMachine']

    def run(job: str, wait: int, answer: bool) -> dict[str, Any]:
        started = time.monotonic()
        arn = sfn.start_execution(stateMachineArn=machine, name=job,
                                  input=json.dumps({'job_id': job, 'callback_wait_seconds': wait}))['executionArn']
        answered = False
        while (status := sfn.describe_execution(executionArn=arn)['status']) == 'RUNNING':
            if answer and job in tokens and not answered:
                sfn.send_task_success(taskToken=tokens[job], output=json.dumps({'state': 'succeeded'}))
                answered = True
            if time.monotonic() - started > 30:
                raise TimeoutError(job)
            time.sleep(0.02)
        return {'status': status, 'actions': actions.get(job, []), 'seconds': time.monotonic() - started,
                'failure': failures.get(job)}

    record('paths', lambda: {'callback': run('callback-1', 30, True), 'content_policy': run('policy-1', 30, False),
                             'no_callback': run('silent-1', 1, False), 'throttled_once': run('throttled-1', 30, True),
                             'unplayable': run('unplayable-1', 30, True)})

    def wiring() -> dict[str, Any]:
        health = requests.get(f'{cloud.api_url}/v1/health', timeout=5)
        del sweeps[:]
        time.sleep(1.5)
        ticked = len(sweeps)
        return {'health': [health.status_code, health.json()], 'ticker_sweeps': ticked,
                'unknown_route': requests.get(f'{cloud.api_url}/v2/nothing', timeout=5).status_code,
                'sweep_now': cloud.sweep_now()}

    record('wiring', wiring)

    def environment() -> dict[str, Any]:
        secrets = boto3.client('secretsmanager')

        def secret(var: str) -> Any:
            return json.loads(secrets.get_secret_value(SecretId=cloud.handler_env[var])['SecretString'])

        try:
            LocalCloud(ROOT, port=0, handlers=stubs).start()
            refused = False
        except LocalCloudError:
            refused = True
        return {'env': cloud.handler_env, 'api_url': cloud.api_url, 'admin_key': cloud.admin_key,
                'kling_sim_url': cloud.kling_sim.base_url, 'kie_sim_url': cloud.kie_sim.base_url,
                'admin_secret': secret('ADMIN_SECRET_NAME'), 'kling_secret': secret('KLING_SECRET_NAME'),
                'kie_secret': secret('KIE_SECRET_NAME'), 'second_cloud_refused': refused,
                'kling_sim_keys': {'access_key': cloud.kling_sim.config.access_key,
                                   'secret_key': cloud.kling_sim.config.secret_key},
                'kie_sim_key': cloud.kie_sim.config.api_key}

    record('environment', environment)

    def after_stop() -> dict[str, Any]:
        ports = [int(url.rsplit(':', 1)[1]) for url in (cloud.api_url, cloud.moto_url, cloud.kling_sim.base_url,
                                                          cloud.kie_sim.base_url)]
        cloud.stop()
        cloud.stop()
        time.sleep(0.2)  # daemon threads of finished requests unwind
        open_ports = []
        for port in ports:
            try:
                socket.create_connection(('127.0.0.1', port), timeout=0.5).close()
                open_ports.append(port)
            except OSError:
                pass
        return {'threads': sorted(t.name for t in threading.enumerate()), 'open_ports': open_ports,
                'env_restored': dict(os.environ) == {k: v for k, v in env_before.items()
                                                     if k not in ('KLING_BASE_URL', 'KIE_BASE_URL', 'LLM_BASE_URL',
                                                                  'VIDGEN_ADMIN_KEY', 'VIDGEN_PUBLIC_URL')},
                'moto_config_restored': moto_config.default_user_config == moto_config_before,
                'handler_modules': [m for m in sys.modules if m.startswith('_vidgen_local_')], 'stop_twice': True}

    record('after_stop', after_stop)

    def real_kling() -> dict[str, Any]:
        try:
            LocalCloud(ROOT, port=0, handlers=stubs, env={'KLING_BASE_URL': 'http://127.0.0.1:9'}).start()
            missing = ''
        except LocalCloudError as exc:
            missing = str(exc)
        real = LocalCloud(ROOT, port=0, handlers=stubs, simulators=True, sweep=False, env={
            'KLING_BASE_URL': 'http://127.0.0.1:9', 'KLING_ACCESS_KEY': 'real-ak', 'KLING_SECRET_KEY': 'real-sk'})
        with real:
            value = boto3.client('secretsmanager').get_secret_value(SecretId=real.handler_env['KLING_SECRET_NAME'])
            return {'kling_sim': real.kling_sim, 'kling_base_url': real.handler_env['KLING_BASE_URL'],
                    'kling_secret': json.loads(value['SecretString']), 'missing_keys_error': missing}

    record('real_kling', real_kling)

    def real_handlers() -> dict[str, Any]:
        started = time.monotonic()
        with LocalCloud(ROOT, port=0, sweep=False, env={'POWERTOOLS_LOG_LEVEL': 'WARNING'}) as real:
            startup = time.monotonic() - started
            health = requests.get(f'{real.api_url}/v1/health', timeout=10)
            user = requests.post(f'{real.api_url}/v1/admin/users', json={'credits': 50}, timeout=10,
                                 headers={'authorization': f'Bearer {real.admin_key}'})
            models = requests.get(f'{real.api_url}/v1/models', timeout=10)
            return {'startup_seconds': startup, 'health': health.status_code,
                    'create_user': [user.status_code, user.json()], 'models': models.status_code,
                    'model_count': len(models.json().get('models', []))}

    record('real_handlers', real_handlers)
    manager.shutdown()
    print(json.dumps(out, default=str))


if __name__ == '__main__':
    _main()
