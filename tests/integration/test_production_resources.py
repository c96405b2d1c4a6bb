"""The production parts of template.yaml exist in the local cloud as CloudFormation would create them: the
log groups with their retention, the alarm topic, every alarm wired to it, the dashboard, the sweep's queue."""

from __future__ import annotations

import json

import boto3

FUNCTIONS = ('submit', 'status', 'callback', 'admin', 'poller', 'media', 'storyboard')


def test_log_groups_alarms_topic_dashboard_and_queue_are_created_from_the_template(cloud):
    stack = cloud.template.stack_name
    groups = {g['logGroupName']: g.get('retentionInDays')
              for g in boto3.client('logs').describe_log_groups()['logGroups']}
    for name in [f'/aws/lambda/{stack}/{f}' for f in FUNCTIONS] + [
            f'/aws/vendedlogs/states/{stack}-job', f'/aws/vendedlogs/states/{stack}-storyboard',
            f'/aws/http-api/{stack}/access']:
        assert groups.get(name) == 30, name  # LogRetentionDays' default

    topic = cloud.template.ref('AlarmTopic')
    assert topic in [t['TopicArn'] for t in boto3.client('sns').list_topics()['Topics']]
    alarms = boto3.client('cloudwatch').describe_alarms(AlarmNamePrefix=f'{stack}-')['MetricAlarms']
    assert len(alarms) == 25 and all(a['AlarmActions'] == [topic] for a in alarms)
    by_metric = {(a['Namespace'], a['MetricName']) for a in alarms}
    assert {('AWS/States', 'ExecutionsFailed'), ('AWS/Lambda', 'Throttles'), ('AWS/ApiGateway', '5xx'),
            ('Vidgen', 'CallbackRejected'), ('AWS/SQS', 'ApproximateNumberOfMessagesVisible')} <= by_metric

    board = boto3.client('cloudwatch').get_dashboard(DashboardName=stack)
    assert [w['properties']['title'] for w in json.loads(board['DashboardBody'])['widgets']][0] == 'Jobs'
    assert boto3.client('sqs').get_queue_url(QueueName=f'{stack}-sweep-failures')['QueueUrl']
