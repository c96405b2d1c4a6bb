"""moto's Step Functions parser accepts the job state machine once its placeholders are substituted."""

import os
import re
import subprocess
import sys
from pathlib import Path

ASL_TEXT = (Path(__file__).resolve().parents[2] / 'statemachine' / 'job.asl.json').read_text()

_MOTO_CHECK = """
import json, sys
import boto3
from moto import mock_aws
with mock_aws():
    client = boto3.client('stepfunctions', region_name='us-east-1')
    arn = client.create_state_machine(name='job', definition=sys.stdin.read(),
                                      roleArn='arn:aws:iam::123456789012:role/sfn')['stateMachineArn']
    print(json.loads(client.describe_state_machine(stateMachineArn=arn)['definition'])['StartAt'])
"""


def test_moto_accepts_the_substituted_definition():
    """moto's parser rejects syntax and type errors. Run in a fresh interpreter: `mock_aws` resets moto's
    process-wide state, which the session's local cloud shares."""
    definition = re.sub(r'\$\{(\w+)\}', 'arn:aws:lambda:us-east-1:123456789012:function:poller', ASL_TEXT)
    assert '${' not in definition
    env = {**os.environ, 'AWS_ACCESS_KEY_ID': 'testing', 'AWS_SECRET_ACCESS_KEY': 'testing'}
    env.pop('AWS_ENDPOINT_URL', None)
    result = subprocess.run([sys.executable, '-c', _MOTO_CHECK], input=definition, capture_output=True, text=True,
                            env=env, timeout=60, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == 'CreateTask'
