"""Stub handlers for tests/integration/test_local_cloud.py: they drive the real ASL through each path.

Each execution environment imports this module in its own process, so what the stubs see is written, one JSON
line per event, to the file named by STUB_LOG (set through the cloud's `env`), where the test reads it.
"""

from __future__ import annotations

import json
import os
from typing import Any


class ProviderContentPolicyError(Exception):
    pass


class ProviderThrottledError(Exception):
    pass


def record(**fields: Any) -> None:
    with open(os.environ['STUB_LOG'], 'a', encoding='utf-8') as log:  # one short append per line: never interleaved
        log.write(json.dumps(fields) + '\n')


def read(path: str) -> list[dict[str, Any]]:
    try:
        with open(path, encoding='utf-8') as log:
            return [json.loads(line) for line in log if line.strip()]
    except FileNotFoundError:
        return []


def poller(event: dict[str, Any], context: Any) -> Any:
    if event.get('action') == 'sweep':
        record(kind='sweep')
        return {'swept': True}
    job, action = event['job_id'], event['action']
    creates_before = sum(1 for r in read(os.environ['STUB_LOG']) if r.get('job') == job and r['action'] == 'create_task')
    record(kind='action', job=job, action=action, token=event.get('task_token'), failure=event.get('failure'))
    if action == 'create_task':
        if job.startswith('policy'):
            raise ProviderContentPolicyError('refused')
        if job.startswith('throttled') and creates_before == 0:
            raise ProviderThrottledError('slow down')
        return {}
    if action == 'poll':
        return {'state': 'succeeded', 'attempt': event['attempt'] + 1, 'wait_seconds': 0}
    return {}


def http(event: dict[str, Any], context: Any) -> Any:
    return {'statusCode': 200, 'body': json.dumps({'route': event['routeKey'], 'function': context.function_name})}


STUBS = {'PollerFunction': f'{__name__}:poller', **{lid: f'{__name__}:http' for lid in
                                                    ('StatusFunction', 'SubmitFunction', 'CallbackFunction', 'AdminFunction')}}
