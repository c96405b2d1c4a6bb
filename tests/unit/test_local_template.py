"""vidgen_local.template: the local stack reads template.yaml, never a copy of it."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from pathlib import Path

import pytest
import yaml
from vidgen_local.resources import generate_secret_value, secret_values
from vidgen_local.schedule import Ticker, next_fire
from vidgen_local.template import LocalTemplate, SecretSpec, TemplateError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def template() -> LocalTemplate:
    return LocalTemplate.load(ROOT)


def _raw_template() -> dict:
    """template.yaml read with every CloudFormation tag ignored: an independent view of its literal values."""
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor('!', lambda loader, suffix, node: None)
    return yaml.load((ROOT / 'template.yaml').read_text(), Loader=Loader)  # noqa: S506


# --- the real template ----------------------------------------------------------------------------------


@pytest.mark.parametrize('machine_id, function_id', [('JobStateMachine', 'PollerFunction'),
                                                     ('StoryboardStateMachine', 'StoryboardFunction')])
def test_every_asl_placeholder_is_substituted_with_a_template_arn(template, machine_id, function_id):
    # Given the state machine's DefinitionUri and DefinitionSubstitutions
    machine = next(m for m in template.state_machines() if m.logical_id == machine_id)
    raw = machine.definition_path.read_text()
    # When the local stack substitutes them
    definition = machine.definition()
    # Then nothing like ${...} is left, and every Lambda target is its function's ARN (the job machine's
    # media steps run in the media function, where FFmpeg is)
    assert set(re.findall(r'\$\{(\w+)\}', raw)) == set(machine.substitutions)
    assert '${' not in definition
    function = template.function(function_id)
    targets = {name: state['Parameters']['FunctionName'] for name, state in json.loads(definition)['States'].items()
               if state['Type'] == 'Task'}
    media = template.function('MediaFunction')
    on_media = {name for name, arn in targets.items() if arn == media.arn}
    assert on_media == ({'InspectMedia', 'DiscardResults'} if machine_id == 'JobStateMachine' else set())
    assert {arn for name, arn in targets.items() if name not in on_media} == {function.arn}
    assert function.arn == f'arn:aws:lambda:us-east-1:123456789012:function:{function.name}'
    assert machine.arn == f'arn:aws:states:us-east-1:123456789012:stateMachine:{machine.name}'


def test_function_environment_is_resolved_and_points_at_the_stack(template):
    (table,) = template.tables()
    machines = {m.logical_id: m for m in template.state_machines()}
    secret_names = {spec.name for spec in template.secrets()}
    for spec in template.functions():
        env = spec.environment
        assert all(isinstance(v, str) and '${' not in v and not v.startswith('{') for v in env.values()), env
        assert env['TABLE_NAME'] == table.name
        assert env['BUCKET_NAME'] == template.buckets()[0]
        assert env['STATE_MACHINE_ARN'] == machines['JobStateMachine'].arn
        assert env['STORYBOARD_STATE_MACHINE_ARN'] == machines['StoryboardStateMachine'].arn
        assert {v for k, v in env.items() if k.endswith('_SECRET_NAME')} <= secret_names
        assert env['CALLBACK_WAIT_SECONDS'] == str(_raw_template()['Parameters']['CallbackWaitSeconds']['Default'])
        assert env['POWERTOOLS_LOG_LEVEL'] == _raw_template()['Mappings']['StageSettings']['dev']['LogLevel']


def test_the_layer_settings_accept_the_resolved_environment(template):
    from vidgen.config import load_settings

    env = template.function('PollerFunction').environment
    settings = load_settings(env)
    assert settings.table_name == env['TABLE_NAME'] and settings.state_machine_arn == env['STATE_MACHINE_ARN']
    assert settings.callback_wait_seconds == int(env['CALLBACK_WAIT_SECONDS'])


def test_routes_are_exactly_the_templates_http_api_events(template):
    raw = _raw_template()['Resources']
    expected = {(resource_id, str(event['Properties']['Method']).upper(), event['Properties']['Path'])
                for resource_id, resource in raw.items()
                for event in ((resource.get('Properties') or {}).get('Events') or {}).values()
                if event['Type'] == 'HttpApi'}
    got = {(route.function, route.method, route.path) for route in template.routes()}
    assert got == expected and len(template.routes()) == len(expected)
    assert ('StatusFunction', 'GET', '/v1/jobs/{job_id}') in got


def test_schedule_comes_from_the_sweep_parameter(template):
    (schedule,) = template.schedules()
    assert schedule.function == 'PollerFunction'
    assert schedule.expression == _raw_template()['Parameters']['SweepSchedule']['Default']
    assert schedule.input == {'action': 'sweep'} and schedule.enabled


def test_table_definition_is_the_templates(template):
    (table,) = template.tables()
    props = _raw_template()['Resources']['VidgenTable']['Properties']
    kwargs = table.create_table_kwargs()
    assert kwargs['KeySchema'] == props['KeySchema']
    assert kwargs['AttributeDefinitions'] == props['AttributeDefinitions']
    assert kwargs['GlobalSecondaryIndexes'] == props['GlobalSecondaryIndexes']
    assert table.ttl_attribute == props['TimeToLiveSpecification']['AttributeName']


def test_function_settings_merge_globals(template):
    globals_ = _raw_template()['Globals']['Function']
    poller = template.function('PollerFunction')
    assert poller.timeout == 300 and poller.memory_size == 1024  # its own values win
    status = template.function('StatusFunction')
    assert status.timeout == globals_['Timeout'] and status.runtime == globals_['Runtime']
    assert 'PUBLIC_API_URL' in poller.environment and 'PUBLIC_API_URL' not in status.environment
    assert poller.handler_path(ROOT) == (ROOT / 'functions/poller/app.py', 'lambda_handler')


def test_parameter_overrides_are_checked(template):
    prod = LocalTemplate.load(ROOT, {'Stage': 'prod', 'CallbackWaitSeconds': 60})
    assert prod.function('StatusFunction').environment['POWERTOOLS_LOG_LEVEL'] == 'INFO'
    assert prod.function('StatusFunction').environment['CALLBACK_WAIT_SECONDS'] == '60'
    with pytest.raises(TemplateError, match='not one of'):
        LocalTemplate.load(ROOT, {'Stage': 'staging'})
    with pytest.raises(TemplateError, match='MinValue'):
        LocalTemplate.load(ROOT, {'CallbackWaitSeconds': 1})
    with pytest.raises(TemplateError, match='Unknown'):
        LocalTemplate.load(ROOT, {'NoSuchParameter': 'x'})


# --- intrinsic functions on a small template ------------------------------------------------------------

SMALL = """
Parameters:
  Stage: {Type: String, Default: dev, AllowedValues: [dev, prod]}
  Sizes: {Type: CommaDelimitedList, Default: 'a,b,c'}
Mappings:
  ByStage: {dev: {Level: DEBUG}, prod: {Level: INFO}}
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
  IsDev: !Not [!Condition IsProd]
Resources:
  Table: {Type: AWS::DynamoDB::Table, Properties: {TableName: !Sub '${AWS::StackName}-t'}}
  Bucket: {Type: AWS::S3::Bucket}
  OnlyProd: {Type: AWS::S3::Bucket, Condition: IsProd}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/x
      Handler: app.handler
      Environment:
        Variables:
          SUB_SHORT: !Sub arn:${AWS::Partition}:x:${AWS::Region}:${AWS::AccountId}:${Table}
          SUB_LONG: !Sub ['${Prefix}/${Bucket.Arn}/${!Literal}', {Prefix: !FindInMap [ByStage, !Ref Stage, Level]}]
          GETATT_LIST: !GetAtt [Table, Arn]
          IF: !If [IsDev, dev-value, !Ref AWS::NoValue]
          JOIN: !Join ['-', [!Select [1, !Ref Sizes], !Select [0, !Split [',', 'x,y']]]]
          SUFFIX: !Ref AWS::URLSuffix
          NUMBER: 5
          FLAG: true
"""


@pytest.fixture
def small(tmp_path: Path) -> LocalTemplate:
    (tmp_path / 'template.yaml').write_text(SMALL)
    return LocalTemplate.load(tmp_path, stack_name='stack')


def test_short_tags_and_pseudo_parameters_resolve(small):
    env = small.function('Fn').environment
    assert env['SUB_SHORT'] == 'arn:aws:x:us-east-1:123456789012:stack-t'
    assert env['SUB_LONG'] == 'DEBUG/arn:aws:s3:::stack-bucket/${Literal}'
    assert env['GETATT_LIST'] == 'arn:aws:dynamodb:us-east-1:123456789012:table/stack-t'
    assert env['IF'] == 'dev-value' and env['JOIN'] == 'b-x' and env['SUFFIX'] == 'amazonaws.com'
    assert env['NUMBER'] == '5' and env['FLAG'] == 'true'
    assert small.buckets() == ['stack-bucket']  # OnlyProd's condition is false


def test_conditions_and_no_value_follow_the_parameters(tmp_path):
    (tmp_path / 'template.yaml').write_text(SMALL)
    prod = LocalTemplate.load(tmp_path, {'Stage': 'prod'}, stack_name='stack')
    assert 'IF' not in prod.function('Fn').environment  # AWS::NoValue removes the key
    assert sorted(prod.buckets()) == ['stack-bucket', 'stack-onlyprod']


def test_bound_physical_ids_win(small):
    small.bind('Table', Ref='real-name', Arn='arn:real')
    assert small.function('Fn').environment['GETATT_LIST'] == 'arn:real'
    assert small.function('Fn').environment['SUB_SHORT'].endswith(':real-name')


def test_unknown_references_fail_loudly(small):
    with pytest.raises(TemplateError, match='neither a parameter nor a resource'):
        small.resolve({'Ref': 'Missing'})
    with pytest.raises(TemplateError, match='not supported'):
        small.resolve({'Fn::ImportValue': 'x'})
    with pytest.raises(TemplateError, match='no local value'):
        small.resolve({'Fn::GetAtt': ['Bucket', 'DomainName']})


def test_leftover_asl_placeholders_are_an_error(tmp_path, small):
    from vidgen_local.template import StateMachineSpec

    asl = tmp_path / 'm.asl.json'
    asl.write_text('{"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "${Known}", "Next": "${Missing}"}}}')
    with pytest.raises(TemplateError, match=r"\['Missing'\]"):
        StateMachineSpec('M', 'm', 'arn', 'STANDARD', asl, {'Known': 'arn:x'}).definition()


# --- secrets -------------------------------------------------------------------------------------------


def test_generated_secrets_follow_generate_secret_string():
    spec = SecretSpec('S', 's', None, {'SecretStringTemplate': '{"user": "u"}', 'GenerateStringKey': 'key',
                                       'PasswordLength': 40, 'ExcludePunctuation': True, 'ExcludeCharacters': 'abc'})
    value = generate_secret_value(spec)
    assert value['user'] == 'u' and len(value['key']) == 40 and value['key'].isalnum()
    assert not set('abc') & set(value['key'])
    assert generate_secret_value(spec)['key'] != value['key']


def test_local_secret_values_land_in_the_secret_the_env_var_names(template):
    values = secret_values(template, {'ADMIN_SECRET_NAME': {'api_key': 'admin-123'},
                                      'KLING_SECRET_NAME': {'access_key': 'ak', 'secret_key': 'sk'}})
    assert values['AdminKeySecret'] == {'api_key': 'admin-123'}
    assert values['KlingCredentialsSecret'] == {'access_key': 'ak', 'secret_key': 'sk'}
    assert len(values['CallbackSigningSecret']['key']) == 64
    with pytest.raises(TemplateError, match='no fields'):
        secret_values(template, {'KIE_SECRET_NAME': {'token': 'x'}})
    with pytest.raises(TemplateError, match='names a secret'):
        secret_values(template, {'NOT_A_VAR': {'x': 'y'}})


# --- schedules -------------------------------------------------------------------------------------------

T0 = dt.datetime(2025, 11, 21, 5, 47, 13, tzinfo=dt.timezone.utc)  # a Friday


@pytest.mark.parametrize(('expression', 'expected'), [
    ('rate(2 minutes)', T0 + dt.timedelta(minutes=2)),
    ('rate(1 hour)', T0 + dt.timedelta(hours=1)),
    ('cron(0/15 * * * ? *)', T0.replace(hour=6, minute=0, second=0)),
    ('cron(0 12 ? * MON-FRI *)', T0.replace(hour=12, minute=0, second=0)),
    ('cron(0 12 ? * SAT *)', T0.replace(day=22, hour=12, minute=0, second=0)),
    ('cron(30 2 1 JUL ? *)', dt.datetime(2026, 7, 1, 2, 30, tzinfo=dt.timezone.utc)),
])
def test_next_fire(expression, expected):
    assert next_fire(expression, T0, T0) == expected


def test_unsupported_schedules_are_refused():
    with pytest.raises(ValueError, match='Unsupported'):
        next_fire('at(2025-01-01T00:00:00)', T0, T0)
    with pytest.raises(ValueError, match='not supported'):
        next_fire('cron(0 12 L * ? *)', T0, T0)


def test_ticker_runs_on_the_scaled_clock_and_stops():
    fired: list[float] = []
    ticker = Ticker('rate(1 minute)', lambda: fired.append(time.monotonic()), time_scale=600).start()  # every 0.1 s
    time.sleep(0.55)
    ticker.stop()
    count = len(fired)
    time.sleep(0.25)
    assert 3 <= count <= 6 and len(fired) == count
    assert not ticker._thread.is_alive()
