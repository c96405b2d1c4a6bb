"""The execution roles bite: each function's flow, run on a copy of template.yaml with one of its grants
removed, meets AWS's AccessDenied — and no job or credit is harmed by it.

Each scenario needs a local cloud of its own template, and one local cloud runs per process (the session's
owns this one), so the scenarios run one after another in a fresh interpreter (this file, run as a script)
and report what they observed as JSON; each test checks one scenario.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

if __name__ == '__main__':  # run as the scenario script: conftest has not put tests/ on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support import run_scenario_script, scenario  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def observed() -> dict[str, Any]:
    return run_scenario_script(__file__, timeout=540)


def test_poller_without_put_object_on_results_fails_the_job_refunds_it_and_writes_nothing(observed):
    result = scenario(observed, 'poller without s3:PutObject')
    assert result['job']['status'] == 'failed' and result['job']['refunded'] is True
    assert result['balance'] == result['granted']  # debited once, refunded once
    assert result['ledger'] == ['debit', 'grant', 'refund']
    assert result['objects under results/'] == []
    assert 'AccessDenied' in result['refusal'] and 's3:PutObject' in result['refusal']
    assert 'assumed-role/vidgen-local-PollerFunctionRole/vidgen-local-PollerFunction' in result['refusal']


def test_submit_without_start_execution_accepts_the_job_and_the_sweep_starts_it(observed):
    result = scenario(observed, 'submit without states:StartExecution')
    assert result['submit status'] == 202
    assert result['execution after submit'] == 'ExecutionDoesNotExist'
    assert 'states:StartExecution' in result['refusal'] and 'AccessDeniedException' in result['refusal']
    assert result['job']['status'] == 'succeeded'
    assert result['debits'] == 1 and result['balance'] == result['granted'] - result['job']['credits']


def test_callback_without_its_signing_secret_answers_5xx_and_the_job_still_finishes(observed):
    result = scenario(observed, 'callback without its secret')
    assert result['callback status'] >= 500
    assert 'secretsmanager:GetSecretValue' in result['refusal']
    assert result['job']['status'] == 'succeeded'  # the poll loop finished it
    assert result['debits'] == 1 and result['refunds'] == 0


def test_status_without_query_cannot_list_and_its_urls_without_get_object_answer_403(observed):
    result = scenario(observed, 'status without dynamodb:Query and s3:GetObject')
    assert result['list status'] == 500
    assert result['get status'] == 200  # GetItem is still granted
    status, code, message = result['result url']
    assert (status, code) == (403, 'AccessDenied')
    assert 's3:GetObject' in message and 'vidgen-local-StatusFunction' in message


def test_admin_without_put_item_creates_no_user(observed):
    result = scenario(observed, 'admin without dynamodb:PutItem')
    assert result['create status'] == 500
    assert result['user item'] is None and result['api key items'] == 0
    assert 'dynamodb:PutItem' in result['refusal']


def test_a_state_machine_that_may_not_invoke_the_poller_leaves_no_job_stuck(observed):
    result = scenario(observed, 'state machine without lambda:InvokeFunction')
    assert result['execution']['status'] == 'FAILED'
    history = result['execution']['history']  # CreateTask, then FailJob, each refused
    assert 'AccessDeniedException' in history and 'lambda:InvokeFunction' in history
    assert 'assumed-role/vidgen-local-JobStateMachineRole' in history
    assert result['job']['status'] == 'failed' and result['job']['refunded'] is True  # settled by the sweep
    assert result['balance'] == result['granted']


# --- the scenarios (run in a fresh interpreter) ---------------------------------------------------------


def _main() -> None:  # noqa: C901 - one script, one scenario per block
    import copy
    import logging
    import os
    import tempfile
    import time
    import traceback
    import xml.etree.ElementTree as ET

    import boto3
    import requests

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from support import Api
    from vidgen_local.cfn import load_yaml
    from vidgen_local.cloud import LocalCloud

    logging.basicConfig(level=logging.ERROR)
    for name in ('KLING_BASE_URL', 'KIE_BASE_URL', 'KIE_UPLOAD_BASE_URL', 'VIDGEN_ADMIN_KEY', 'VIDGEN_PUBLIC_URL'):
        os.environ.pop(name, None)  # the session cloud's simulators, inherited: each scenario starts its own
    out: dict[str, Any] = {}
    document = load_yaml(ROOT / 'template.yaml')
    workdir = Path(tempfile.mkdtemp(prefix='vidgen-iam-'))
    env = {'QUEUED_GRACE_SECONDS': '1', 'SWEEP_LIVENESS_SECONDS': '1', 'POLL_INTERVALS': '10,20',
           'CALLBACK_WAIT_SECONDS': '2', 'POWERTOOLS_LOG_LEVEL': 'ERROR'}
    def without(resource: str, action: str, resource_part: str | None = None) -> dict[str, Any]:
        return without_in(document, resource, action, resource_part)

    def without_in(base: dict[str, Any], resource: str, action: str, resource_part: str | None = None) -> dict[str, Any]:
        """`base` with `action` no longer granted on the resources containing `resource_part` (on any,
        without it): the statement granting it is split so that every other grant stays as it was."""
        edited = copy.deepcopy(base)
        props = edited['Resources'][resource]['Properties']
        for policy in props.get('Policies') or []:
            if not (isinstance(policy, dict) and 'Statement' in policy):
                continue
            for index, statement in enumerate(policy['Statement']):
                actions = statement['Action'] if isinstance(statement['Action'], list) else [statement['Action']]
                targets = statement['Resource'] if isinstance(statement['Resource'], list) else [statement['Resource']]
                removed = [r for r in targets if resource_part is None or resource_part in json.dumps(r)]
                if action not in actions or not removed:
                    continue
                split = []
                if len(actions) > 1:
                    split.append({**statement, 'Action': [a for a in actions if a != action]})
                if len(removed) < len(targets):
                    split.append({**statement, 'Action': [action], 'Resource': [r for r in targets if r not in removed]})
                policy['Statement'][index:index + 1] = split
                return edited
        raise AssertionError(f'{resource} does not grant {action} on {resource_part or "anything"}')

    def started(template: dict[str, Any], name: str) -> LocalCloud:
        path = workdir / f'{name}.yaml'
        path.write_text(json.dumps(template))  # JSON is YAML; intrinsics in their long form
        return LocalCloud(ROOT, port=0, time_scale=20.0, env=env, admin_key='iam-admin-key', sweep=False,
                          template_file=str(path))

    def refusal(cloud: LocalCloud, function: str, service: str, call: Any) -> str:
        """The error the function's own role gets for `call(client)`: the grant the flow missed."""
        keys = cloud.role_credentials[function]
        session = boto3.session.Session(aws_access_key_id=keys.access_key_id, aws_secret_access_key=keys.secret_access_key,
                                        aws_session_token=keys.session_token, region_name='us-east-1')
        try:
            call(session.client(service))
        except session.client(service).exceptions.ClientError as exc:
            return f'{exc.response["Error"]["Code"]}: {exc.response["Error"]["Message"]}'
        return 'allowed'

    def user_of(cloud: LocalCloud, credits: int) -> Api:
        admin = Api(cloud.api_url, cloud.admin_key)
        response = admin.post('/v1/admin/users', json={'user_id': f'u-{time.monotonic_ns()}', 'credits': credits})
        response.raise_for_status()
        api = admin.as_user(response.json()['api_key'])
        api.user_id = response.json()['user_id']  # type: ignore[attr-defined]
        return api

    def ledger_types(api: Api) -> list[str]:
        return sorted(entry['type'] for entry in api.credits()['ledger'])

    def record(name: str, run: Any) -> None:
        try:
            out[name] = run()
        except Exception:  # noqa: BLE001 - reported to the test that reads this scenario
            out[name] = {'error': traceback.format_exc()}

    def poller_put_object() -> dict[str, Any]:
        with started(without('PollerFunction', 's3:PutObject', 'results/*'), 'poller') as cloud:
            user = user_of(cloud, 100)
            job = user.submit({'model': 'kling-v2-6', 'prompt': 'a lighthouse'}).json()
            final = user.wait(job['id'], timeout=90)
            listed = boto3.client('s3').list_objects_v2(Bucket=cloud.handler_env['BUCKET_NAME'], Prefix='results/')
            denied = refusal(cloud, 'PollerFunction', 's3', lambda c: c.put_object(
                Bucket=cloud.handler_env['BUCKET_NAME'], Key=f'results/{user.user_id}/{job["id"]}/0.mp4', Body=b'x'))
            return {'job': final, 'balance': user.credits()['balance'], 'granted': 100, 'ledger': ledger_types(user),
                    'objects under results/': [o['Key'] for o in listed.get('Contents', [])], 'refusal': denied}

    def execution_history(cloud: LocalCloud, job_id: str) -> str:
        arn = f'{cloud.handler_env["STATE_MACHINE_ARN"].replace(":stateMachine:", ":execution:")}:{job_id}'
        events = boto3.client('stepfunctions').get_execution_history(executionArn=arn)['events']
        return json.dumps(events, default=str)

    def submit_start_execution() -> dict[str, Any]:
        with started(without('SubmitFunction', 'states:StartExecution'), 'submit') as cloud:
            user = user_of(cloud, 100)
            response = user.submit({'model': 'kling-v2-6', 'prompt': 'a lighthouse'})
            job = response.json()
            sfn = boto3.client('stepfunctions')
            arn = f'{cloud.handler_env["STATE_MACHINE_ARN"].replace(":stateMachine:", ":execution:")}:{job["id"]}'
            try:
                sfn.describe_execution(executionArn=arn)
                execution = 'exists'
            except sfn.exceptions.ExecutionDoesNotExist:
                execution = 'ExecutionDoesNotExist'
            denied = refusal(cloud, 'SubmitFunction', 'stepfunctions', lambda c: c.start_execution(
                stateMachineArn=cloud.handler_env['STATE_MACHINE_ARN'], name=f'probe-{job["id"]}', input='{}'))
            time.sleep(1.5)  # past QUEUED_GRACE_SECONDS
            cloud.sweep_now()
            final = user.wait(job['id'], timeout=90)
            credits = user.credits()
            return {'submit status': response.status_code, 'execution after submit': execution, 'refusal': denied,
                    'job': final, 'debits': sum(1 for e in credits['ledger'] if e['type'] == 'debit'),
                    'balance': credits['balance'], 'granted': 100}

    def callback_secret() -> dict[str, Any]:
        template = without('CallbackFunction', 'secretsmanager:GetSecretValue', 'CallbackSigningSecret')
        with started(template, 'callback') as cloud:
            from vidgen import callback_tokens

            user = user_of(cloud, 100)
            job = user.submit({'model': 'kling-v2-6', 'prompt': 'a lighthouse'}).json()
            token = callback_tokens.callback_token('kling', job['id'])  # this process reads it as the admin
            callback = requests.post(f'{cloud.api_url}/v1/callbacks/kling/{job["id"]}', params={'token': token},
                                     json={'task_id': 'whatever', 'task_status': 'succeed'}, timeout=30)
            final = user.wait(job['id'], timeout=90)
            ledger = user.credits()['ledger']
            denied = refusal(cloud, 'CallbackFunction', 'secretsmanager',
                             lambda c: c.get_secret_value(SecretId=cloud.handler_env['CALLBACK_SECRET_NAME']))
            return {'callback status': callback.status_code, 'refusal': denied, 'job': final,
                    'debits': sum(1 for e in ledger if e['type'] == 'debit'),
                    'refunds': sum(1 for e in ledger if e['type'] == 'refund')}

    def status_query_and_get_object() -> dict[str, Any]:
        document_without_query = without('StatusFunction', 'dynamodb:Query')
        with started(without_in(document_without_query, 'StatusFunction', 's3:GetObject'), 'status') as cloud:
            user = user_of(cloud, 100)
            job = user.submit({'model': 'kling-v2-6', 'prompt': 'a lighthouse'}).json()
            final = user.wait(job['id'], timeout=90)
            fetched = requests.get(final['outputs'][0]['url'], timeout=30)
            root = ET.fromstring(fetched.text)
            return {'list status': user.get('/v1/jobs').status_code, 'get status': user.get(f'/v1/jobs/{job["id"]}').status_code,
                    'result url': [fetched.status_code, root.findtext('Code'), root.findtext('Message')]}

    def admin_put_item() -> dict[str, Any]:
        with started(without('AdminFunction', 'dynamodb:PutItem'), 'admin') as cloud:
            response = Api(cloud.api_url, cloud.admin_key).post('/v1/admin/users', json={'user_id': 'nobody', 'credits': 5})
            table = boto3.resource('dynamodb').Table(cloud.handler_env['TABLE_NAME'])
            item = table.get_item(Key={'PK': 'USER#nobody', 'SK': 'PROFILE'}).get('Item')
            keys = table.scan(FilterExpression='SK = :k', ExpressionAttributeValues={':k': 'APIKEY'})['Items']
            denied = refusal(cloud, 'AdminFunction', 'dynamodb', lambda c: c.put_item(
                TableName=cloud.handler_env['TABLE_NAME'], Item={'PK': {'S': 'probe'}, 'SK': {'S': 'probe'}}))
            return {'create status': response.status_code, 'user item': item, 'api key items': len(keys),
                    'refusal': denied}

    def state_machine_invoke() -> dict[str, Any]:
        template = copy.deepcopy(document)
        props = template['Resources']['JobStateMachine']['Properties']
        props['Policies'] = [p for p in props['Policies'] if not (isinstance(p, dict) and 'LambdaInvokePolicy' in p)]
        with started(template, 'machine') as cloud:
            user = user_of(cloud, 100)
            job = user.submit({'model': 'kling-v2-6', 'prompt': 'a lighthouse'}).json()
            sfn = boto3.client('stepfunctions')
            arn = f'{cloud.handler_env["STATE_MACHINE_ARN"].replace(":stateMachine:", ":execution:")}:{job["id"]}'
            deadline = time.monotonic() + 60
            while (described := sfn.describe_execution(executionArn=arn))['status'] == 'RUNNING':
                if time.monotonic() > deadline:
                    raise TimeoutError('the execution is still running')
                time.sleep(0.1)
            time.sleep(1.5)  # past SWEEP_LIVENESS_SECONDS
            cloud.sweep_now()
            final = user.wait(job['id'], timeout=60)
            return {'execution': {'status': described['status'], 'history': execution_history(cloud, job['id'])},
                    'job': final, 'balance': user.credits()['balance'], 'granted': 100}

    record('poller without s3:PutObject', poller_put_object)
    record('submit without states:StartExecution', submit_start_execution)
    record('callback without its secret', callback_secret)
    record('status without dynamodb:Query and s3:GetObject', status_query_and_get_object)
    record('admin without dynamodb:PutItem', admin_put_item)
    record('state machine without lambda:InvokeFunction', state_machine_invoke)
    print(json.dumps(out, default=str))


if __name__ == '__main__':
    _main()
