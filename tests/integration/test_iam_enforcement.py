"""IAM bites: each function runs the flow it serves with one permission taken out of a copy of template.yaml,
and the local endpoint refuses the call with AccessDenied naming the action and the resource, while the money
and the job come out as the design says. The full template runs every one of those flows to success (the
control), so each refusal is the removed permission's doing and nothing else's.

A LocalCloud owns process-wide state and the session's cloud may be running in this process, so each scenario
runs in a fresh interpreter (this file as a script: `python test_iam_enforcement.py <scenario> <out.json>`),
one cloud per scenario. What it saw comes back as JSON; what its handlers logged comes back as the script's
stdout and stderr (execution environments forward their output to it, as Lambda sends it to CloudWatch).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TIME_SCALE = 20.0
CALLBACK_WAIT = 5  # seconds (an env override is not scaled): room for the callback to arrive first
GRACE = 2  # QUEUED_GRACE_SECONDS / SWEEP_LIVENESS_SECONDS
RESULT_BYTES = 120_000
CREDITS = 100
COST = 20  # kling-v2-6, 5 s, std
ENV = {'QUEUED_GRACE_SECONDS': str(GRACE), 'SWEEP_LIVENESS_SECONDS': str(GRACE),
       'CALLBACK_WAIT_SECONDS': str(CALLBACK_WAIT), 'POLL_INTERVALS': '20,40', 'POWERTOOLS_LOG_LEVEL': 'WARNING'}


# --- taking one permission out of the template, structurally ------------------------------------------------------


@dataclass(frozen=True)
class Removal:
    """`action` taken from `function`'s inline policy statements; with `resource`, only on the resources whose
    CloudFormation value mentions it (e.g. 'CallbackSigningSecret' matches `!Ref CallbackSigningSecret`,
    '/results/*' matches `!Sub ${ResultsBucket.Arn}/results/*`): the action stays granted on the others."""

    function: str
    action: str
    resource: str | None = None


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def without_permission(document: dict[str, Any], removal: Removal) -> dict[str, Any]:
    """A copy of the parsed template (vidgen_local.cfn.load_yaml: intrinsics in their long form) in which
    `removal.function` no longer has the permission. Raises if nothing matched, so a renamed statement
    cannot turn a scenario into a run of the full template."""
    changed = copy.deepcopy(document)
    function = changed['Resources'][removal.function]
    removed = 0
    for policy in function['Properties'].get('Policies') or []:
        if not isinstance(policy, dict) or 'Statement' not in policy:
            continue  # a managed policy or a SAM policy template: not what these scenarios take apart
        statements = []
        for statement in policy['Statement']:
            actions = _as_list(statement.get('Action'))
            if statement.get('Effect') != 'Allow' or removal.action not in actions:
                statements.append(statement)
                continue
            resources = _as_list(statement['Resource'])
            hit = [r for r in resources if removal.resource is None or removal.resource in json.dumps(r)]
            if not hit:
                statements.append(statement)
                continue
            removed += len(hit)
            others = [a for a in actions if a != removal.action]
            if others:  # the statement's other actions keep every resource
                statements.append({**statement, 'Action': others})
            kept = [r for r in resources if r not in hit]
            if kept:  # the action keeps the resources that were not named
                statements.append({**statement, 'Action': [removal.action], 'Resource': kept})
        policy['Statement'] = statements
    if not removed:
        raise ValueError(f'{removal.function} has no statement granting {removal.action} on {removal.resource or "*"}')
    return changed


def write_template(document: dict[str, Any], directory: Path) -> Path:
    """The template as JSON (which is YAML): the long forms of the intrinsics need no tags."""
    path = directory / 'template.json'
    path.write_text(json.dumps(document, indent=1))
    return path


# --- what the scenarios look at ---------------------------------------------------------------------------------------


def denial(action: str, resource: str) -> re.Pattern[str]:
    """AWS's refusal of an identity-based call, naming the action and the resource (a prefix of it)."""
    return re.compile(rf'is not authorized to perform: {re.escape(action)} on resource: "?{re.escape(resource)}')


def run_scenario(name: str, removal: Removal | None, flow: str) -> dict[str, Any]:
    """Start a cloud from the template (without `removal`'s permission), run `flow`, return what it saw, with
    everything the process printed (the handlers' log lines among it) as `logs`."""
    with tempfile.TemporaryDirectory(prefix=f'iam-{name}-') as work:
        out = Path(work) / 'observed.json'
        args = [sys.executable, __file__, flow, str(out)]
        if removal is not None:
            from vidgen_local.cfn import load_yaml

            template = write_template(without_permission(load_yaml(ROOT / 'template.yaml'), removal), Path(work))
            args.append(str(template))
        proc = subprocess.run(args, capture_output=True, text=True, timeout=240, cwd=ROOT)
        logs = proc.stdout + proc.stderr
        assert proc.returncode == 0 and out.is_file(), logs[-6000:]
        return json.loads(out.read_text()) | {'logs': logs}


_observed: dict[str, dict[str, Any]] = {}


def observed(name: str) -> dict[str, Any]:
    if name not in _observed:
        removal, flow = SCENARIOS[name]
        _observed[name] = run_scenario(name, removal, flow)
    return _observed[name]


SCENARIOS: dict[str, tuple[Removal | None, str]] = {
    'control': (None, 'control'),
    'poller-put-results': (Removal('PollerFunction', 's3:PutObject', '/results/*'), 'job'),
    'submit-start-execution': (Removal('SubmitFunction', 'states:StartExecution'), 'unstarted_job'),
    'callback-secret': (Removal('CallbackFunction', 'secretsmanager:GetSecretValue', 'CallbackSigningSecret'), 'job'),
    'status-get-item': (Removal('StatusFunction', 'dynamodb:GetItem'), 'status_read'),
    'admin-update-item': (Removal('AdminFunction', 'dynamodb:UpdateItem'), 'admin_grant'),
    'media-get-results': (Removal('MediaFunction', 's3:GetObject', '/results/*'), 'job'),
    'storyboard-llm-secret': (Removal('StoryboardFunction', 'secretsmanager:GetSecretValue', 'LlmCredentialsSecret'),
                              'storyboard'),
}


def assert_charged_once(money: dict[str, Any], *, refunded: bool) -> None:
    if refunded:
        assert money == {'balance': CREDITS, 'debits': 1, 'refunds': 1, 'active_jobs': 0}, money
    else:
        assert money == {'balance': CREDITS - COST, 'debits': 1, 'refunds': 0, 'active_jobs': 0}, money


def assert_succeeded(job: dict[str, Any]) -> None:
    assert job['status'] == 'succeeded' and not job.get('refunded') and job['error'] is None, job
    assert [o['bytes'] for o in job['outputs']] == [RESULT_BYTES]
    kept = sorted(k for o in job['outputs'] for k in (o['key'], o.get('poster_key'), o.get('thumbnail_key')) if k)
    assert job['objects'] == kept, job  # the result, its poster and its thumbnail, and nothing else


# --- the removal helper itself (no cloud) -------------------------------------------------------------------------------


def test_a_removal_takes_out_only_the_named_action_on_the_named_resource():
    from vidgen_local.cfn import load_yaml

    full = load_yaml(ROOT / 'template.yaml')
    removal = Removal('CallbackFunction', 'secretsmanager:GetSecretValue', 'CallbackSigningSecret')
    changed = without_permission(full, removal)

    def grants(document: dict[str, Any]) -> list[tuple[str, str]]:
        return sorted((action, json.dumps(resource, sort_keys=True))
                      for policy in document['Resources']['CallbackFunction']['Properties']['Policies']
                      for statement in policy['Statement']
                      for action in _as_list(statement['Action']) for resource in _as_list(statement['Resource']))

    lost = sorted(set(grants(full)) - set(grants(changed)))
    assert lost == [('secretsmanager:GetSecretValue', json.dumps({'Ref': 'CallbackSigningSecret'}))]
    assert set(grants(changed)) < set(grants(full))
    assert full == load_yaml(ROOT / 'template.yaml')  # the parsed original is left alone
    with pytest.raises(ValueError, match='no statement granting s3:DeleteObject'):
        without_permission(full, Removal('StatusFunction', 's3:DeleteObject'))


def test_a_template_copy_with_a_removal_translates_to_a_role_without_it(tmp_path):
    """The copy goes through the same loader and SAM translation as template.yaml, and the derived role
    lacks exactly the removed grant (what the endpoint then enforces)."""
    from vidgen_local.cfn import load_yaml
    from vidgen_local.iam import sam_transform
    from vidgen_local.template import LocalTemplate

    class NoManagedPolicyNames:
        def load(self) -> dict[str, str]:
            return {}

    path = write_template(without_permission(load_yaml(ROOT / 'template.yaml'),
                                             Removal('SubmitFunction', 'states:StartExecution')), tmp_path)
    roles = {}
    for filename in ('template.yaml', str(path)):
        translated = sam_transform(LocalTemplate.load(ROOT, filename=filename), NoManagedPolicyNames())
        policies = translated['Resources']['SubmitFunctionRole']['Properties']['Policies']
        roles[filename] = json.dumps(policies)
    assert 'states:StartExecution' in roles['template.yaml'] and 'states:StartExecution' not in roles[str(path)]
    assert 'states:StopExecution' in roles[str(path)]


# --- the control: the full template runs every flow below -----------------------------------------------------------


@pytest.fixture(scope='module')
def control() -> dict[str, Any]:
    return observed('control')


def test_control_every_flow_passes_with_the_full_template(control):
    """The same flows as the scenarios below, with every permission in place: no AccessDenied anywhere."""
    assert 'AccessDenied' not in control['logs'] and 'not authorized' not in control['logs'], control['logs'][-4000:]
    job = control['job']
    assert_succeeded(job)
    assert_charged_once(job['money'], refunded=False)
    assert 'PollProvider' not in job['states'], job['states']  # the callback woke it: no poll loop needed
    assert job['callbacks']['delivered'] >= 1
    assert job['media']['video_codec'] == 'h264'  # the media function read the result
    unstarted = control['unstarted_job']
    assert unstarted['submit_status'] == 202 and unstarted['execution_after_submit'] == 'RUNNING'
    assert_succeeded(unstarted['job'])
    reads = control['status_read']
    assert reads['get_job'][0] == 200 and reads['get_job'][1]['id'] == reads['job_id']
    assert reads['before'] == reads['after']
    grant = control['admin_grant']
    assert grant['status'] == 200 and grant['balance_after'] == grant['balance_before'] + 25
    assert grant['grant_entries'] == 1
    storyboard = control['storyboard']
    assert storyboard['status'] == 'succeeded' and storyboard['scenes_source'] == 'llm', storyboard


def test_control_every_url_in_the_webhook_gives_the_stored_bytes(control):
    """The notification's result, poster and thumbnail URLs are presigned by the Poller's role: each answers
    200 with exactly the object stored in the bucket (a signer without s3:GetObject would get 403)."""
    hook = control['webhook']
    assert hook['type'] == 'job.succeeded'
    assert len(hook['fetched']) == 3, hook  # the video, its poster and its thumbnail
    for fetched in hook['fetched']:
        assert fetched['status'] == 200 and fetched['sha256'] == fetched['stored_sha256'], fetched
        assert fetched['bytes'] == fetched['stored_bytes'] > 0, fetched


# --- each function without one of its permissions -------------------------------------------------------------------


def test_poller_without_put_on_results_fails_the_job_refunded_with_nothing_half_written():
    seen = observed('poller-put-results')
    job = seen['job']
    assert denial('s3:PutObject', f'arn:aws:s3:::{seen["bucket"]}/results/').search(job['failures']), job['failures']
    assert job['status'] == 'failed' and job['refunded'] is True, job
    assert job['outputs'] == [] and job['objects'] == [], job  # no result, poster or thumbnail left behind
    assert_charged_once(job['money'], refunded=True)
    assert 'Finalize' in job['states'] and 'MarkSucceeded' not in job['states'], job['states']


def test_submit_without_start_execution_accepts_the_job_and_the_sweep_starts_it():
    seen = observed('submit-start-execution')
    unstarted = seen['unstarted_job']
    assert denial('states:StartExecution', seen['job_state_machine']).search(seen['logs']), seen['logs'][-4000:]
    assert unstarted['submit_status'] == 202 and unstarted['execution_after_submit'] is None, unstarted
    assert unstarted['queued_money'] == {'balance': CREDITS - COST, 'debits': 1, 'refunds': 0, 'active_jobs': 1}
    assert unstarted['sweep_started'] == [unstarted['job']['id']], unstarted  # the sweep runs as the Poller
    assert_succeeded(unstarted['job'])
    assert_charged_once(unstarted['job']['money'], refunded=False)


def test_callback_without_its_secret_answers_5xx_and_the_poll_loop_finishes_the_job():
    seen = observed('callback-secret')
    job = seen['job']
    assert denial('secretsmanager:GetSecretValue', seen['secrets']['CALLBACK_SECRET_NAME']).search(seen['logs']), \
        seen['logs'][-4000:]
    # The token cannot be checked without the key: the callback is refused as a server error (the provider
    # retries it), never accepted unchecked, and no job is harmed.
    assert job['callbacks']['delivered'] == 0 and job['callbacks']['failed'] >= 1, job['callbacks']
    assert_succeeded(job)
    assert_charged_once(job['money'], refunded=False)
    assert 'PollProvider' in job['states'], job['states']


def test_status_without_get_item_answers_5xx_and_changes_nothing():
    seen = observed('status-get-item')
    reads = seen['status_read']
    assert denial('dynamodb:GetItem', seen['table_arn']).search(seen['logs']), seen['logs'][-4000:]
    status, body = reads['get_job']
    assert status == 500 and body['error']['code'] == 'SYSTEM_ERROR', reads
    assert reads['before'] == reads['after'], reads


def test_admin_without_update_item_refuses_a_grant_and_changes_nothing():
    seen = observed('admin-update-item')
    grant = seen['admin_grant']
    assert denial('dynamodb:UpdateItem', seen['table_arn']).search(seen['logs']), seen['logs'][-4000:]
    assert grant['status'] == 500 and grant['body']['error']['code'] == 'SYSTEM_ERROR', grant
    assert grant['balance_after'] == grant['balance_before'] and grant['grant_entries'] == 0, grant


def test_media_without_get_on_results_fails_the_job_refunded_and_discards_the_copy():
    seen = observed('media-get-results')
    job = seen['job']
    assert denial('s3:GetObject', f'arn:aws:s3:::{seen["bucket"]}/results/').search(job['failures']), job['failures']
    assert job['status'] == 'failed' and job['refunded'] is True, job
    assert 'DiscardResults' in job['states'] and job['objects'] == [], job  # the copied result is deleted again
    assert_charged_once(job['money'], refunded=True)


def test_storyboard_without_the_llm_secret_writes_the_built_in_scenes_and_succeeds():
    seen = observed('storyboard-llm-secret')
    storyboard = seen['storyboard']
    assert denial('secretsmanager:GetSecretValue', seen['secrets']['LLM_SECRET_NAME']).search(
        seen['logs'] + storyboard['failures']), seen['logs'][-4000:]
    assert storyboard['status'] == 'succeeded' and storyboard['scenes_source'] == 'fallback', storyboard
    assert storyboard['money'] == {'balance': CREDITS - COST, 'debits': 1, 'refunds': 0, 'active_jobs': 0}


# --- the scenarios, run in their own interpreter ---------------------------------------------------------------------


def _script(flow: str, out: Path, template: Path | None) -> None:
    sys.path.insert(0, str(ROOT / 'tests'))
    # Each line a handler prints becomes a record of vidgen_local.lambda.<Function> here: print them all, so
    # the test reads the handlers' log lines (errors with their tracebacks among them) from this output.
    # A handler of its own, not the root's: Powertools puts a filter on the root handlers that drops every
    # record whose logger name contains its service name (vidgen).
    functions_log = logging.getLogger('vidgen_local.lambda')
    printer = logging.StreamHandler(sys.stderr)
    printer.setFormatter(logging.Formatter('%(name)s: %(message)s'))
    functions_log.addHandler(printer)
    functions_log.setLevel(logging.INFO)
    functions_log.propagate = False
    for name in ('KLING_BASE_URL', 'KIE_BASE_URL', 'LLM_BASE_URL', 'VIDGEN_LOCAL_IAM'):
        os.environ.pop(name, None)
    from vidgen_local.cloud import LocalCloud
    from vidgen_local.simulators.kling import KlingSimConfig

    kwargs: dict[str, Any] = {'template_file': str(template)} if template else {}
    cloud = LocalCloud(ROOT, port=0, time_scale=TIME_SCALE, env=ENV, admin_key='iam-admin-key', sweep=False,
                       kling_sim_config=KlingSimConfig(generation_seconds=0.5, result_bytes=RESULT_BYTES), **kwargs)
    with cloud:
        assert cloud.iam_enforced
        flows: dict[str, Callable[[Any], dict[str, Any]]] = {
            'job': lambda c: {'job': _job_flow(c)}, 'unstarted_job': lambda c: {'unstarted_job': _unstarted_flow(c)},
            'status_read': lambda c: {'status_read': _status_flow(c)},
            'admin_grant': lambda c: {'admin_grant': _admin_flow(c)},
            'storyboard': lambda c: {'storyboard': _storyboard_flow(c)},
        }
        if flow == 'control':
            result: dict[str, Any] = {}
            for each in flows.values():
                result |= each(cloud)
            result['webhook'] = _webhook_flow(cloud)
        else:
            result = flows[flow](cloud)
        result |= {'bucket': cloud.handler_env['BUCKET_NAME'], 'table_arn': _table_arn(cloud),
                   'job_state_machine': cloud.handler_env['STATE_MACHINE_ARN'],
                   'secrets': {k: v for k, v in cloud.handler_env.items() if k.endswith('_SECRET_NAME')}}
    out.write_text(json.dumps(result, default=str))


def _admin(cloud: Any, service: str) -> Any:
    from support import admin_client

    return admin_client(cloud, service)


def _table_arn(cloud: Any) -> str:
    return _admin(cloud, 'dynamodb').describe_table(TableName=cloud.handler_env['TABLE_NAME'])['Table']['TableArn']


def _user(cloud: Any, label: str) -> Any:
    from support import Api

    return Api(cloud.api_url, cloud.admin_key).create_user(f'iam-{label}-{os.getpid()}', CREDITS)


def _wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out after {timeout}s waiting for {what}')
        time.sleep(0.2)
    return value


def _item(cloud: Any, key: dict[str, str]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    raw = _admin(cloud, 'dynamodb').get_item(TableName=cloud.handler_env['TABLE_NAME'], ConsistentRead=True,
                                             Key={k: {'S': v} for k, v in key.items()}).get('Item') or {}
    return {k: _plain(TypeDeserializer().deserialize(v)) for k, v in raw.items()}


def _plain(value: Any) -> Any:
    """DynamoDB's numbers (Decimal) as ints or floats, so an item compares and crosses as JSON."""
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _money(cloud: Any, user_id: str, job_ids: set[str]) -> dict[str, Any]:
    """The user's balance and active jobs, and the debit and refund entries of `job_ids`, from the table."""
    from boto3.dynamodb.types import TypeDeserializer
    from vidgen.store.table import ledger_key, user_key

    pk = user_key(user_id)['PK']
    items = _admin(cloud, 'dynamodb').query(
        TableName=cloud.handler_env['TABLE_NAME'], ConsistentRead=True, KeyConditionExpression='PK = :pk',
        ExpressionAttributeValues={':pk': {'S': pk}})['Items']
    rows = [{k: TypeDeserializer().deserialize(v) for k, v in item.items()} for item in items]
    profile = next(r for r in rows if r['SK'] == user_key(user_id)['SK'])
    entries = [r for r in rows if r['SK'].startswith(ledger_key(user_id, '')['SK']) and r.get('job_id') in job_ids]
    return {'balance': int(profile['balance']), 'debits': sum(e['type'] == 'debit' for e in entries),
            'refunds': sum(e['type'] == 'refund' for e in entries), 'active_jobs': int(profile.get('active_jobs', 0))}


def _history(cloud: Any, arn: str) -> tuple[list[str], str]:
    """The states an execution entered, and the text of every failure it recorded (errors and causes)."""
    events = _admin(cloud, 'stepfunctions').get_execution_history(executionArn=arn, maxResults=1000)['events']
    states = [e['stateEnteredEventDetails']['name'] for e in events if 'stateEnteredEventDetails' in e]
    failures = []
    for event in events:
        for name, details in event.items():
            if not name.endswith('FailedEventDetails'):
                continue
            failures.append(str(details.get('error')))
            try:  # a Lambda task's cause is the function's error payload: its message and stack trace, as text
                cause = json.loads(details.get('cause') or '')
                failures += [str(cause.get('errorMessage')), *map(str, cause.get('stackTrace') or [])]
            except (ValueError, AttributeError):
                failures.append(str(details.get('cause')))
    return states, '\n'.join(failures)


def _job_arn(cloud: Any, job_id: str) -> str:
    return cloud.handler_env['STATE_MACHINE_ARN'].replace(':stateMachine:', ':execution:') + f':{job_id}'


def _execution_status(cloud: Any, arn: str) -> str | None:
    sfn = _admin(cloud, 'stepfunctions')
    try:
        return sfn.describe_execution(executionArn=arn)['status']
    except sfn.exceptions.ExecutionDoesNotExist:
        return None


def _finished_job(cloud: Any, user: Any, job_id: str) -> dict[str, Any]:
    """The job once it ended and its execution closed: status, outputs, what is under its results/ prefix,
    the money, the states entered, the failures recorded and the simulator's callback counts for it."""
    from vidgen.store.table import job_key

    item = _wait(lambda: (i := _item(cloud, job_key(job_id))).get('status') in ('succeeded', 'failed', 'canceled') and i,
                 90, f'job {job_id} to end')
    _wait(lambda: _execution_status(cloud, _job_arn(cloud, job_id)) not in (None, 'RUNNING'), 30,
          f'the execution of {job_id} to close')
    listed = _admin(cloud, 's3').list_objects_v2(Bucket=cloud.handler_env['BUCKET_NAME'],
                                                 Prefix=f'results/{user.user_id}/{job_id}/')
    states, failures = _history(cloud, _job_arn(cloud, job_id))
    stats = cloud.kling_sim.stats.snapshot()
    outputs = item.get('outputs') or []
    return {'id': job_id, 'status': item['status'], 'refunded': bool(item.get('refunded')), 'error': item.get('error'),
            'outputs': [{k: o.get(k) for k in ('key', 'bytes', 'poster_key', 'thumbnail_key')} for o in outputs],
            'media': (outputs[0].get('media') if outputs else None),
            'objects': sorted(o['Key'] for o in listed.get('Contents', [])),
            'money': _money(cloud, user.user_id, {job_id}), 'states': states, 'failures': failures,
            'callbacks': {k: stats.get(f'callbacks_{k}', 0) for k in ('sent', 'delivered', 'failed')}}


def _job_flow(cloud: Any) -> dict[str, Any]:
    user = _user(cloud, 'job')
    response = user.submit({'model': 'kling-v2-6', 'prompt': 'a lighthouse at dusk'})
    assert response.status_code == 202, response.text
    return _finished_job(cloud, user, response.json()['id'])


def _unstarted_flow(cloud: Any) -> dict[str, Any]:
    """Submit; whether its execution runs right after; then, once the queued grace passed, one sweep."""
    from vidgen.store.table import job_key

    user = _user(cloud, 'unstarted')
    response = user.submit({'model': 'kling-v2-6', 'prompt': 'a quiet harbour'})
    assert response.status_code == 202, response.text
    job_id = response.json()['id']
    execution = _execution_status(cloud, _job_arn(cloud, job_id))
    queued_money = _money(cloud, user.user_id, {job_id})
    started: list[str] = []
    if execution is None:
        _wait(lambda: float(_item(cloud, job_key(job_id)).get('sweep_at', 0)) + 1 <= time.time(), GRACE + 15,
              'the queued grace to pass')
        report = cloud.sweep_now()
        assert report['errors'] == [], report
        started = report['started']
    return {'submit_status': response.status_code, 'execution_after_submit': execution, 'queued_money': queued_money,
            'sweep_started': started, 'job': _finished_job(cloud, user, job_id)}


def _status_flow(cloud: Any) -> dict[str, Any]:
    """A job made through the submit function, then read through the status function; the job's item and the
    user's money before and after the read."""
    from vidgen.store.table import job_key

    user = _user(cloud, 'status')
    job_id = user.submit({'model': 'kling-v2-6', 'prompt': 'a slow river [sim:slow=60]'}).json()['id']
    _wait(lambda: _item(cloud, job_key(job_id)).get('status') == 'running', 30, 'the job to run')
    before = [_item(cloud, job_key(job_id)), _money(cloud, user.user_id, {job_id})]
    response = user.get(f'/v1/jobs/{job_id}')
    after = [_item(cloud, job_key(job_id)), _money(cloud, user.user_id, {job_id})]
    cancel = user.post(f'/v1/jobs/{job_id}/cancel')  # the submit function ends it: nothing runs on afterwards
    assert cancel.status_code == 200, cancel.text
    return {'job_id': job_id, 'get_job': [response.status_code, response.json()], 'before': before, 'after': after}


def _admin_flow(cloud: Any) -> dict[str, Any]:
    from support import Api
    from vidgen.store.table import user_key

    user = _user(cloud, 'grant')
    admin = Api(cloud.api_url, cloud.admin_key)
    before = int(_item(cloud, user_key(user.user_id))['balance'])
    response = admin.post(f'/v1/admin/users/{user.user_id}/credits',
                          json={'amount': 25, 'reference_id': 'iam-grant-1', 'reason': 'iam test'})
    after = int(_item(cloud, user_key(user.user_id))['balance'])
    ledger = user.get('/v1/credits', params={'limit': 100}).json()['ledger']
    return {'status': response.status_code, 'body': response.json(), 'balance_before': before, 'balance_after': after,
            'grant_entries': sum(1 for e in ledger if e['type'] == 'grant' and e['amount'] == 25)}


def _storyboard_flow(cloud: Any) -> dict[str, Any]:
    user = _user(cloud, 'storyboard')
    response = user.post('/v1/storyboards', json={'product': {'name': 'Lamp', 'description': 'A brass lamp.'},
                                                  'scenes': 1, 'model': 'kling-v2-6'})
    assert response.status_code == 202, response.text
    storyboard_id = response.json()['id']
    done = _wait(lambda: (sb := user.get(f'/v1/storyboards/{storyboard_id}').json())['status']
                 not in ('writing', 'generating') and sb, 90, 'the storyboard to end')
    arn = cloud.handler_env['STORYBOARD_STATE_MACHINE_ARN'].replace(':stateMachine:', ':execution:') + f':{storyboard_id}'
    _wait(lambda: _execution_status(cloud, arn) not in (None, 'RUNNING'), 30, 'the storyboard execution to close')
    states, failures = _history(cloud, arn)
    return {'status': done['status'], 'scenes_source': done['scenes_source'], 'states': states, 'failures': failures,
            'money': _money(cloud, user.user_id, {s['job_id'] for s in done['scenes']})}


def _webhook_flow(cloud: Any) -> dict[str, Any]:
    """A job with a webhook: every URL in the delivered body, fetched, against the object in the bucket."""
    import hashlib

    import requests
    from support import Receiver
    from vidgen.store.table import job_key

    hook = Receiver()
    try:
        user = _user(cloud, 'webhook')
        job_id = user.submit({'model': 'kling-v2-6', 'prompt': 'a lantern', 'webhook_url': hook.url}).json()['id']
        [call] = hook.wait_for(1, timeout=90, accepted_only=True)
    finally:
        hook.close()
    stored = _item(cloud, job_key(job_id))['outputs']
    fetched = []
    s3 = _admin(cloud, 's3')
    for sent, kept in zip(call.body['data']['outputs'], stored, strict=True):
        for url_field, key_field in (('url', 'key'), ('poster_url', 'poster_key'), ('thumbnail_url', 'thumbnail_key')):
            if not sent.get(url_field):
                continue
            answer = requests.get(sent[url_field], timeout=30)
            body = s3.get_object(Bucket=cloud.handler_env['BUCKET_NAME'], Key=kept[key_field])['Body'].read()
            fetched.append({'field': url_field, 'status': answer.status_code, 'bytes': len(answer.content),
                            'sha256': hashlib.sha256(answer.content).hexdigest(), 'stored_bytes': len(body),
                            'stored_sha256': hashlib.sha256(body).hexdigest()})
    return {'type': call.body['type'], 'fetched': fetched}


if __name__ == '__main__':
    _script(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]) if len(sys.argv) > 3 else None)
