"""template.yaml as a production stack: alarms, logs, data protection, limits, and the SAM CLI environments in
samconfig.toml. Read through the local stack's resolver (LocalTemplate), so intrinsics are evaluated the way
CloudFormation would with the default parameters, or with the ones a test passes."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest
from vidgen_local.template import CREATED_LOCALLY, NOT_MODELLED_LOCALLY, LocalTemplate, TemplateError

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ('SubmitFunction', 'StatusFunction', 'CallbackFunction', 'AdminFunction', 'PollerFunction',
             'MediaFunction', 'StoryboardFunction')
MACHINES = ('JobStateMachine', 'StoryboardStateMachine')


@pytest.fixture(scope='module')
def template() -> LocalTemplate:
    return LocalTemplate.load(ROOT)


def of_type(template: LocalTemplate, kind: str) -> dict[str, dict]:
    return {lid: template.resolve(r.get('Properties') or {}) for lid, r in template.resources.items()
            if r['Type'] == kind and template._included(r)}


def test_every_function_and_state_machine_has_a_log_group_with_the_retention_parameter():
    template = LocalTemplate.load(ROOT, {'LogRetentionDays': '60'})
    groups = of_type(template, 'AWS::Logs::LogGroup')
    assert {g['RetentionInDays'] for g in groups.values()} == {'60'}
    for function in FUNCTIONS:
        target = template.resolve(template.resources[function]['Properties']['LoggingConfig']['LogGroup'])
        assert target in {g['LogGroupName'] for g in groups.values()}, function
    for machine in MACHINES:
        (destination,) = template.resolve(template.resources[machine]['Properties']['Logging']['Destinations'])
        assert destination['CloudWatchLogsLogGroup']['LogGroupArn'].split(':log-group:')[1].removesuffix(':*') in \
            {g['LogGroupName'] for g in groups.values()}
    assert len(groups) == len(FUNCTIONS) + len(MACHINES) + 1  # + the HTTP API's access log


def test_the_access_log_is_json_without_query_strings_or_headers(template):
    settings = of_type(template, 'AWS::Serverless::HttpApi')['VidgenHttpApi']['AccessLogSettings']
    fields = json.loads(settings['Format'])
    assert {'requestId', 'status', 'route', 'path'} <= set(fields)
    text = settings['Format']
    assert '$context.path' in text and 'querystring' not in text.lower() and '$request.' not in text
    assert 'authorization' not in text.lower() and 'header' not in text.lower()


def test_alarms_cover_the_machines_every_function_the_api_and_money_at_risk(template):
    alarms = of_type(template, 'AWS::CloudWatch::Alarm').values()
    watched = {(a['Namespace'], a['MetricName'], a['Dimensions'][0]['Value']) for a in alarms}
    for machine in MACHINES:
        arn = template.ref(machine)
        for metric in ('ExecutionsFailed', 'ExecutionsTimedOut', 'ExecutionsAborted'):
            assert ('AWS/States', metric, arn) in watched, (machine, metric)
    for function in FUNCTIONS:
        for metric in ('Errors', 'Throttles'):
            assert ('AWS/Lambda', metric, template.ref(function)) in watched, (function, metric)
    assert ('AWS/ApiGateway', '5xx', 'local') in watched
    for metric in ('CallbackRejected', 'SweepStarted', 'SweepFailed'):
        assert ('Vidgen', metric, 'vidgen') in watched
    # ...and the layer really emits those names (the sweep's are Sweep + its report's field, capitalised).
    layer = ROOT / 'layers/vidgen/vidgen/jobs'
    assert "add_metric(name='CallbackRejected'" in (layer / 'callbacks.py').read_text()
    sweep = (layer / 'sweep.py').read_text()
    assert "for name in ('started', 'finalized', 'failed')" in sweep and "name=f'Sweep{name.capitalize()}'" in sweep
    topic = template.ref('AlarmTopic')
    assert all(a['AlarmActions'] == [topic] and a['TreatMissingData'] == 'notBreaching' for a in alarms)


def test_the_alarm_email_subscribes_only_when_given():
    assert not of_type(LocalTemplate.load(ROOT), 'AWS::SNS::Subscription')
    (subscription,) = of_type(LocalTemplate.load(ROOT, {'AlarmEmail': 'ops@example.com'}),
                              'AWS::SNS::Subscription').values()
    assert subscription['Protocol'] == 'email' and subscription['Endpoint'] == 'ops@example.com'


@pytest.mark.parametrize('stage', ['dev', 'prod'])
def test_data_is_protected_in_every_stage(stage):
    template = LocalTemplate.load(ROOT, {'Stage': stage})
    table = template.resources['VidgenTable']
    props = template.resolve(table['Properties'])
    assert props['PointInTimeRecoverySpecification'] == {'PointInTimeRecoveryEnabled': True}
    assert props['DeletionProtectionEnabled'] is True
    for lid, resource in template.resources.items():
        if resource['Type'] in ('AWS::DynamoDB::Table', 'AWS::S3::Bucket', 'AWS::SecretsManager::Secret'):
            assert resource.get('DeletionPolicy') == resource.get('UpdateReplacePolicy') == 'Retain', lid
    (policy,) = of_type(template, 'AWS::S3::BucketPolicy').values()
    (statement,) = policy['PolicyDocument']['Statement']
    assert statement['Effect'] == 'Deny' and statement['Condition'] == {'Bool': {'aws:SecureTransport': 'false'}}
    assert set(statement['Resource']) == {template.get_att('ResultsBucket', 'Arn'),
                                          template.get_att('ResultsBucket', 'Arn') + '/*'}


def test_inputs_expire_and_results_only_when_asked():
    def rules(**parameters: str) -> dict[str, dict]:
        bucket = of_type(LocalTemplate.load(ROOT, parameters), 'AWS::S3::Bucket')['ResultsBucket']
        return {rule['Id']: rule for rule in bucket['LifecycleConfiguration']['Rules']}

    default = rules()
    assert default['ExpireInputImages']['ExpirationInDays'] == '7' and default['ExpireInputImages']['Prefix'] == 'inputs/'
    assert default['ExpireResults']['Status'] == 'Disabled'
    kept = rules(InputRetentionDays='2', ResultRetentionDays='30')
    assert kept['ExpireInputImages']['ExpirationInDays'] == '2'
    assert kept['ExpireResults'] == {'Id': 'ExpireResults', 'Status': 'Enabled', 'Prefix': 'results/',
                                     'ExpirationInDays': '30'}


def test_given_secret_arns_replace_the_created_placeholders():
    arn = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:my-kling-AbCdEf'
    template = LocalTemplate.load(ROOT, {'KlingSecretArn': arn})
    assert 'KlingCredentialsSecret' not in {s.logical_id for s in template.secrets()}
    assert template.function('PollerFunction').environment['KLING_SECRET_NAME'] == arn
    poller = template.resolve(template.resources['PollerFunction']['Properties']['Policies'])
    assert arn in json.dumps(poller)
    assert {s.logical_id for s in LocalTemplate.load(ROOT).secrets()} >= {'KlingCredentialsSecret',
                                                                         'KieCredentialsSecret', 'LlmCredentialsSecret'}


def test_limits_reserved_concurrency_route_throttles_and_the_sweeps_failure_queue():
    default = LocalTemplate.load(ROOT)
    assert 'ReservedConcurrentExecutions' not in default.resolve(default.resources['PollerFunction']['Properties'])
    reserved = LocalTemplate.load(ROOT, {'PollerReservedConcurrency': '50', 'CallbackReservedConcurrency': '20'})
    assert reserved.resolve(reserved.resources['PollerFunction']['Properties'])['ReservedConcurrentExecutions'] == '50'
    assert reserved.resolve(reserved.resources['CallbackFunction']['Properties'])['ReservedConcurrentExecutions'] == '20'
    api = of_type(default, 'AWS::Serverless::HttpApi')['VidgenHttpApi']
    job_rate = api['DefaultRouteSettings']['ThrottlingRateLimit']
    routes = {route.route_key for route in default.routes()}
    for key, settings in api['RouteSettings'].items():
        assert key in routes, key  # a throttle on a route that does not exist would silently do nothing
        assert settings['ThrottlingRateLimit'] < job_rate, key
    # Every callback and admin route is throttled below the job routes, the ones added later too.
    tight = {key for key in routes if key.split(' ', 1)[1].startswith(('/v1/callbacks/', '/v1/admin/'))}
    assert tight and tight <= set(api['RouteSettings']), sorted(tight - set(api['RouteSettings']))
    invoke = default.resolve(default.resources['PollerFunction']['Properties']['EventInvokeConfig'])
    assert invoke['DestinationConfig']['OnFailure'] == {'Type': 'SQS',
                                                        'Destination': default.get_att('SweepFailureQueue', 'Arn')}


def test_every_checkov_skip_names_one_check_and_gives_a_reason():
    skips = re.findall(r'#\s*checkov:skip=([^:\n]*):?(.*)', (ROOT / 'template.yaml').read_text())
    assert skips
    for check, reason in skips:
        assert re.fullmatch(r'CKV_AWS_\d+', check), check
        assert len(reason.split()) >= 8, (check, reason)


def test_the_local_stack_refuses_resource_types_it_does_not_know(tmp_path):
    assert 'AWS::S3::BucketPolicy' in NOT_MODELLED_LOCALLY and 'AWS::CloudWatch::Alarm' in CREATED_LOCALLY
    (tmp_path / 'template.yaml').write_text('Resources:\n  Cache:\n    Type: AWS::ElastiCache::CacheCluster\n')
    with pytest.raises(TemplateError, match='ElastiCache'):
        LocalTemplate.load(tmp_path)


def test_samconfig_has_dev_and_prod_with_template_parameters_and_no_secrets(template):
    config = tomllib.loads((ROOT / 'samconfig.toml').read_text())
    for env, stack in (('default', 'vidgen-dev'), ('prod', 'vidgen-prod')):
        deploy = config[env]['deploy']['parameters']
        assert config[env]['global']['parameters']['stack_name'] == stack
        assert config[env]['global']['parameters']['region']
        assert deploy['capabilities'] == 'CAPABILITY_IAM' and deploy['resolve_s3'] is True
        overrides = dict(item.split('=', 1) for item in shlex.split(deploy['parameter_overrides']))
        assert set(overrides) <= set(template.document['Parameters']), env
        assert not any(re.search(r'key|secret|token|password', name, re.I) and 'Arn' not in name for name in overrides)
        LocalTemplate.load(ROOT, overrides)  # every value is one the template accepts
    assert overrides['Stage'] == 'prod'


def test_make_deploy_and_delete_use_the_samconfig_environment():
    makefile = (ROOT / 'Makefile').read_text()
    assert re.search(r'^deploy: check-template .*\n\t\$\(SAM\) deploy --config-env \$\(ENV\)$', makefile, re.M)
    assert re.search(r'^delete: .*\n\t\$\(SAM\) delete --config-env \$\(ENV\)$', makefile, re.M)
    assert re.search(r'^ENV \?= default$', makefile, re.M)


def test_per_model_records_feed_the_dashboards_per_model_widgets(template, caplog, monkeypatch):
    import logging

    from vidgen.observability import per_model
    from vidgen_local.runtime import METRICS_LOGGER, route_metrics_to_log

    monkeypatch.setenv('POWERTOOLS_SERVICE_NAME', 'vidgen')
    monkeypatch.setenv('POWERTOOLS_METRICS_NAMESPACE', 'Vidgen')
    route_metrics_to_log()
    with caplog.at_level(logging.DEBUG, logger=METRICS_LOGGER):
        per_model('JobSeconds', 'kling-v2-6', value=42.5)
    (line,) = [json.loads(r.getMessage()) for r in caplog.records if r.name == METRICS_LOGGER]
    (directive,) = line['_aws']['CloudWatchMetrics']
    assert directive['Namespace'] == 'Vidgen' and directive['Dimensions'] == [['model', 'service']]
    assert line['model'] == 'kling-v2-6' and line['JobSeconds'] == [42.5]

    (_, body), = template.dashboards()
    searches = [m[0]['expression'] for w in json.loads(body)['widgets'] for m in w['properties']['metrics']
                if isinstance(m[0], dict)]
    for name in ('JobSubmitted', 'JobSucceeded', 'JobFailed', 'JobSeconds', 'JobCredits'):
        assert any(f'{{Vidgen,model,service}} MetricName="{name}"' in s for s in searches), name
    layer = ROOT / 'layers/vidgen/vidgen/jobs'
    emitted = (layer / 'submit.py').read_text() + (layer / 'tasks.py').read_text()
    assert all(f"per_model('{name}'" in emitted for name in ('JobSubmitted', 'JobSucceeded', 'JobFailed',
                                                            'JobSeconds', 'JobCredits'))
