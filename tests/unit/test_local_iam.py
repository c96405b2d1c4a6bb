"""vidgen_local.iam: each function's execution role is what SAM's translator makes of template.yaml."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import pytest
from vidgen_local.cfn import load_yaml
from vidgen_local.iam import derive_roles, sam_transform
from vidgen_local.template import LocalTemplate, TemplateError

ROOT = Path(__file__).resolve().parents[2]
BASIC = 'arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole'
XRAY = 'arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess'


class NoNames:
    """The managed-policy-name lookup: the real template names its managed policies by ARN only."""

    calls = 0

    def load(self) -> dict[str, str]:
        NoNames.calls += 1
        raise AssertionError('the template names no managed policy by name')


@pytest.fixture(scope='module')
def template() -> LocalTemplate:
    return LocalTemplate.load(ROOT)


@pytest.fixture(scope='module')
def roles(template):
    return derive_roles(template, NoNames())


def statements(role) -> list[dict]:
    return [statement for document in role.inline_policies.values() for statement in document['Statement']]


def grants(role, action: str) -> list[str]:
    """Every resource the role's inline policies grant `action` on."""
    found = []
    for statement in statements(role):
        actions = statement['Action'] if isinstance(statement['Action'], list) else [statement['Action']]
        if statement['Effect'] == 'Allow' and action in actions:
            resources = statement['Resource'] if isinstance(statement['Resource'], list) else [statement['Resource']]
            found.extend(resources)
    return found


def test_every_function_and_the_state_machine_run_as_the_role_sam_generates(template, roles):
    functions = {spec.logical_id for spec in template.functions()}
    assert set(roles.assignments) == functions | {'JobStateMachine', 'StoryboardStateMachine'}
    for logical_id in functions:
        role = roles.role_of(logical_id)
        assert role.logical_id == f'{logical_id}Role'
        assert role.arn == f'arn:aws:iam::123456789012:role/vidgen-local-{logical_id}Role'
        assert role.trusts('lambda.amazonaws.com') and not role.trusts('states.amazonaws.com')
        # SAM adds the basic execution role to every function and the X-Ray policy for Tracing: Active.
        assert set(role.managed_policy_arns) == {BASIC, XRAY}
    for machine_id in ('JobStateMachine', 'StoryboardStateMachine'):
        machine = roles.role_of(machine_id)
        assert machine.trusts('states.amazonaws.com') and machine.managed_policy_arns == (XRAY,)
    assert NoNames.calls == 0


def test_policies_are_resolved_against_the_local_resources(template, roles):
    (table,) = template.tables()
    table_arn = f'arn:aws:dynamodb:us-east-1:123456789012:table/{table.name}'
    bucket_arn = f'arn:aws:s3:::{template.buckets()[0]}'
    for role in roles.roles.values():
        text = json.dumps(role.inline_policies)
        assert 'Fn::' not in text and '"Ref"' not in text and '${' not in text, role.logical_id
    assert grants(roles.role_of('StatusFunction'), 'dynamodb:Query') == [
        table_arn, f'{table_arn}/index/UserJobs', f'{table_arn}/index/UserStoryboards']
    # The poller queries only the Sweep index; item actions are granted on the table, never on an index.
    assert grants(roles.role_of('PollerFunction'), 'dynamodb:Query') == [f'{table_arn}/index/Sweep']
    assert grants(roles.role_of('PollerFunction'), 'dynamodb:UpdateItem') == [table_arn]
    assert grants(roles.role_of('SubmitFunction'), 's3:PutObject') == [f'{bucket_arn}/inputs/*']
    # The SAM policy template LambdaInvokePolicy, expanded by the translator with the functions' names.
    poller, media = template.function('PollerFunction'), template.function('MediaFunction')
    assert sorted(grants(roles.role_of('JobStateMachine'), 'lambda:InvokeFunction')) == sorted(
        [f'{poller.arn}*', f'{media.arn}*'])
    # The media function reads, writes and deletes results and nothing else; only the poller may call it.
    for action in ('s3:GetObject', 's3:PutObject', 's3:DeleteObject'):
        assert grants(roles.role_of('MediaFunction'), action) == [f'{bucket_arn}/results/*']
    assert grants(roles.role_of('MediaFunction'), 'dynamodb:GetItem') == [table_arn]
    assert not grants(roles.role_of('MediaFunction'), 'dynamodb:UpdateItem')
    assert not grants(roles.role_of('MediaFunction'), 'secretsmanager:GetSecretValue')
    assert grants(roles.role_of('PollerFunction'), 'lambda:InvokeFunction') == [media.arn]
    storyboard = template.function('StoryboardFunction')
    assert grants(roles.role_of('StoryboardStateMachine'), 'lambda:InvokeFunction') == [f'{storyboard.arn}*']


def test_the_grants_issue_8_found_wrong_are_fixed(template, roles):
    bucket_arn = f'arn:aws:s3:::{template.buckets()[0]}'
    # Presigned result URLs are signed by the poller (webhooks) and by submit (idempotent replays).
    assert f'{bucket_arn}/results/*' in grants(roles.role_of('PollerFunction'), 's3:GetObject')
    assert f'{bucket_arn}/results/*' in grants(roles.role_of('SubmitFunction'), 's3:GetObject')
    # SendTaskSuccess / SendTaskFailure have no resource type: only "*" grants them.
    assert grants(roles.role_of('CallbackFunction'), 'states:SendTaskSuccess') == ['*']
    assert grants(roles.role_of('CallbackFunction'), 'states:SendTaskFailure') == ['*']
    assert grants(roles.role_of('PollerFunction'), 'states:SendTaskSuccess') == ['*']
    # Grants no code path uses are gone: nothing sends a ConditionCheck or a heartbeat.
    for role in roles.roles.values():
        assert not grants(role, 'dynamodb:ConditionCheckItem') and not grants(role, 'states:SendTaskHeartbeat')


def _variant(edit) -> LocalTemplate:
    """The project's template with `edit(document)` applied (intrinsics in their long form)."""
    document = copy.deepcopy(load_yaml(ROOT / 'template.yaml'))
    edit(document)
    return LocalTemplate(ROOT, document)


def test_a_template_role_and_a_policy_named_by_name_are_honoured():
    def edit(document: dict) -> None:
        resources = document['Resources']
        resources['StatusRole'] = {'Type': 'AWS::IAM::Role', 'Properties': {
            'AssumeRolePolicyDocument': {'Version': '2012-10-17', 'Statement': [
                {'Effect': 'Allow', 'Principal': {'Service': 'lambda.amazonaws.com'}, 'Action': 'sts:AssumeRole'}]},
            'Policies': [{'PolicyName': 'read', 'PolicyDocument': {'Version': '2012-10-17', 'Statement': [
                {'Effect': 'Allow', 'Action': 'dynamodb:GetItem', 'Resource': '*'}]}}]}}
        status = resources['StatusFunction']['Properties']
        status.pop('Policies')
        status['Role'] = {'Fn::GetAtt': ['StatusRole', 'Arn']}
        resources['AdminFunction']['Properties']['Policies'].append('AmazonS3ReadOnlyAccess')

    class Names:
        def load(self) -> dict[str, str]:
            return {'AmazonS3ReadOnlyAccess': 'arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess'}

    roles = derive_roles(_variant(edit), Names())
    assert roles.assignments['StatusFunction'] == 'StatusRole'
    assert grants(roles.role_of('StatusFunction'), 'dynamodb:GetItem') == ['*']
    assert 'arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess' in roles.role_of('AdminFunction').managed_policy_arns


def test_a_role_lambda_cannot_assume_is_refused():
    def edit(document: dict) -> None:
        resources = document['Resources']
        resources['WrongRole'] = {'Type': 'AWS::IAM::Role', 'Properties': {
            'AssumeRolePolicyDocument': {'Version': '2012-10-17', 'Statement': [
                {'Effect': 'Allow', 'Principal': {'Service': 'ec2.amazonaws.com'}, 'Action': 'sts:AssumeRole'}]}}}
        status = resources['StatusFunction']['Properties']
        status.pop('Policies')
        status['Role'] = {'Fn::GetAtt': ['WrongRole', 'Arn']}

    with pytest.raises(TemplateError, match='does not trust lambda.amazonaws.com'):
        derive_roles(_variant(edit), NoNames())


SAM_VENV_PYTHON = ROOT / '.venv-sam' / 'bin' / 'python'


@pytest.mark.skipif(not SAM_VENV_PYTHON.exists(), reason='needs the SAM CLI venv (make check-template builds it)')
def test_the_roles_match_what_the_sam_cli_translator_makes(template):
    """The translator pinned here (compatible with the layer's pydantic) and the one the pinned SAM CLI ships
    make the same roles of this template."""
    script = (
        'import json, sys\n'
        'from samtranslator.translator.transform import transform\n'
        'class NoNames:\n'
        '    def load(self): raise AssertionError("names")\n'
        'document, parameters = json.load(sys.stdin)\n'
        'out = transform(document, parameters, NoNames())\n'
        'print(json.dumps({k: v for k, v in out["Resources"].items() if v["Type"] == "AWS::IAM::Role"}, sort_keys=True))\n'
    )
    ours = {k: v for k, v in sam_transform(template, NoNames())['Resources'].items() if v['Type'] == 'AWS::IAM::Role'}
    document = json.loads(json.dumps(template.document))
    for resource in document['Resources'].values():
        props = resource.get('Properties') or {}
        for key in ('CodeUri', 'ContentUri', 'DefinitionUri'):
            if isinstance(props.get(key), str):
                props[key] = f's3://vidgen-local-code/{props[key]}'
    parameters = {**template.parameters, 'AWS::Region': 'us-east-1', 'AWS::AccountId': '123456789012',
                  'AWS::StackName': 'vidgen-local', 'AWS::Partition': 'aws', 'AWS::URLSuffix': 'amazonaws.com'}
    result = subprocess.run([str(SAM_VENV_PYTHON), '-c', script], input=json.dumps([document, parameters]),
                            capture_output=True, text=True, timeout=120, check=False,
                            env={'AWS_DEFAULT_REGION': 'us-east-1', 'PATH': '/usr/bin:/bin'})
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout) == json.loads(json.dumps(ours, sort_keys=True))
