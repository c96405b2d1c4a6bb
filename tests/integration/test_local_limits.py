"""Lambda's and Step Functions' limits, enforced by the local cloud on the real stack: a step past its
function's Timeout is stopped and the job still ends refunded; an API function past its Timeout answers as API
Gateway does and the next request is served by a new environment; state data over 256 KiB fails the execution
past every States.ALL catch, and the sweep still finishes the job; and what a job carries through the state
machine does not grow with its prompt or its images. (Payload sizes: test_security.py and test_local_runtime.py;
DynamoDB's limits and the index lag: test_local_patches.py.)"""

from __future__ import annotations

import base64
import json
import os
import struct
import zlib

import boto3
import pytest
import requests

MB = 1024 * 1024


@pytest.fixture
def configure(cloud):
    """configure(function, **changes): UpdateFunctionConfiguration for one test; put back afterwards."""
    def change(function: str, **changes) -> None:
        cloud.update_function_configuration(function, **changes)
    yield change
    cloud.reset_function_configuration()


def noisy_png(side: int) -> bytes:
    """An RGB PNG of random pixels: it does not compress, so its size is about 3 x side x side bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    rows = b''.join(b'\x00' + os.urandom(side * 3) for _ in range(side))
    header = struct.pack('>IIBBBBB', side, side, 8, 2, 0, 0, 0)
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IDAT', zlib.compress(rows, 1)) + chunk(b'IEND', b'')


def history(cloud, job_id: str) -> list[dict]:
    sfn = boto3.client('stepfunctions')
    arn = cloud.handler_env['STATE_MACHINE_ARN'].replace(':stateMachine:', ':execution:') + f':{job_id}'
    events, token = [], None
    while True:
        page = sfn.get_execution_history(executionArn=arn, maxResults=1000, **({'nextToken': token} if token else {}))
        events += page['events']
        token = page.get('nextToken')
        if not token:
            return events


def execution_status(cloud, job_id: str) -> str:
    arn = cloud.handler_env['STATE_MACHINE_ARN'].replace(':stateMachine:', ':execution:') + f':{job_id}'
    return boto3.client('stepfunctions').describe_execution(executionArn=arn)['status']


def test_a_step_past_its_functions_timeout_is_stopped_and_the_job_ends_refunded(cloud, new_user, configure):
    user = new_user(100)
    timeouts_before = cloud.environment_stats()['PollerFunction']['timeouts']
    configure('PollerFunction', timeout=3, init_hooks=('limit_hooks:stall_creates',), environment={'STALL_SECONDS': '60'})

    job_id = user.submit({'model': 'kling-v2-6', 'prompt': 'stall-past-timeout'}).json()['id']
    job = user.wait(job_id, timeout=60)

    assert job['status'] == 'failed' and job['refunded'] is True, job
    assert user.credits()['balance'] == 100
    assert cloud.environment_stats()['PollerFunction']['timeouts'] == timeouts_before + 1
    failed = [e['taskFailedEventDetails'] for e in history(cloud, job_id) if 'taskFailedEventDetails' in e]
    assert failed[0]['error'] == 'Sandbox.Timedout'
    assert 'Task timed out after 3.00 seconds' in json.loads(failed[0]['cause'])['errorMessage']


def test_an_api_function_past_its_timeout_answers_500_and_a_new_environment_serves_the_next(cloud, admin, configure):
    stats = cloud.environment_stats()['StatusFunction']
    configure('StatusFunction', handler='limit_hooks:slow_http', timeout=1)

    reply = requests.get(f'{cloud.api_url}/v1/health', timeout=30)

    assert reply.status_code == 500 and reply.json() == {'message': 'Internal Server Error'}  # API Gateway's answer
    assert cloud.environment_stats()['StatusFunction']['timeouts'] == stats['timeouts'] + 1
    cloud.reset_function_configuration('StatusFunction')
    assert requests.get(f'{cloud.api_url}/v1/health', timeout=30).status_code == 200


def test_state_data_over_256_kib_fails_the_execution_and_the_sweep_still_finishes_the_job(
        cloud, new_user, configure):
    user = new_user(100)
    configure('SubmitFunction', environment={'CALLBACK_WAIT_SECONDS': '1'})  # straight to the poll loop
    configure('PollerFunction', init_hooks=('limit_hooks:bloat_polls',))

    job_id = user.submit({'model': 'kling-v2-6', 'prompt': 'bloat-state [sim:drop-callbacks]'}).json()['id']
    job = user.wait(job_id, timeout=90)

    # Uncaught by the poll step's States.ALL, as on AWS: the execution failed with the job still running,
    # and the scheduled sweep found the provider's task done and finished the job.
    assert execution_status(cloud, job_id) == 'FAILED'
    failed = [e['executionFailedEventDetails'] for e in history(cloud, job_id) if 'executionFailedEventDetails' in e]
    assert failed and failed[0]['error'] == 'States.DataLimitExceeded'
    assert job['status'] == 'succeeded' and job['refunded'] is False, job
    assert user.credits()['balance'] == 100 - job['credits']


def test_what_a_job_carries_through_the_state_machine_does_not_grow_with_its_prompt_or_images(cloud, new_user):
    user = new_user(100)
    image = 'data:image/png;base64,' + base64.b64encode(noisy_png(600)).decode()
    assert len(image) > MB
    reply = user.submit({'model': 'kling-v2-6', 'prompt': 'p' * 2500, 'image': image})
    assert reply.status_code == 202, reply.text
    job_id = reply.json()['id']
    assert user.wait(job_id, timeout=60)['status'] == 'succeeded'

    sizes = []
    for event in history(cloud, job_id):
        for details in ('executionStartedEventDetails', 'stateEnteredEventDetails', 'stateExitedEventDetails'):
            data = (event.get(details) or {}).get('input') or (event.get(details) or {}).get('output')
            if data:
                sizes.append(len(data.encode()))
    assert sizes and max(sizes) < 4096, max(sizes)  # job id, waits and small outcomes only, far below 256 KiB
