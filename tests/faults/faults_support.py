"""Helpers of the fault and crash suites: the money read straight from the table, executions, bounded waits,
and the figures each suite records (printed at the end of the run by conftest.py, and written as JSON to
`.faults-report.json`; VIDGEN_FAULTS_REPORT overrides the path)."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
from boto3.dynamodb.conditions import Key
from vidgen.store.table import job_key, ledger_key, user_key

ROOT = Path(__file__).resolve().parents[2]
REPORT_PATH = Path(os.environ.get('VIDGEN_FAULTS_REPORT', ROOT / '.faults-report.json'))

# section -> lines for the terminal summary
PRINTED: dict[str, list[str]] = {}


def record_figures(section: str, figures: dict[str, Any], lines: list[str]) -> None:
    """Keep one suite's figures: JSON into the report file (other sections kept), lines for the terminal."""
    PRINTED[section] = lines
    try:
        report = json.loads(REPORT_PATH.read_text()) if REPORT_PATH.is_file() else {}
    except ValueError:
        report = {}
    report[section] = figures | {'recorded_at': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}
    REPORT_PATH.write_text(json.dumps(report, indent=2, sort_keys=True) + '\n')


# --- the money, read from the table itself -------------------------------------------------------------------


def table(cloud: Any) -> Any:
    return boto3.resource('dynamodb').Table(cloud.handler_env['TABLE_NAME'])


def account(cloud: Any, user_id: str) -> dict[str, Any]:
    """A user's profile and every ledger entry: {balance, active_jobs, entries: [{type, amount, job_id?}]}."""
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {'KeyConditionExpression': Key('PK').eq(user_key(user_id)['PK']), 'ConsistentRead': True}
    while True:
        response = table(cloud).query(**kwargs)
        items.extend(response['Items'])
        if 'LastEvaluatedKey' not in response:
            break
        kwargs['ExclusiveStartKey'] = response['LastEvaluatedKey']
    profile = next(i for i in items if i['SK'] == user_key(user_id)['SK'])
    entries = [{'type': i['type'], 'amount': int(i['amount']), 'job_id': i.get('job_id')}
               for i in items if i['SK'].startswith(ledger_key(user_id, '')['SK'])]
    return {'balance': int(profile['balance']), 'active_jobs': int(profile.get('active_jobs', 0)), 'entries': entries}


def conservation(acct: dict[str, Any]) -> dict[str, int]:
    """grants, debits, refunds (as positive sums), the ledger's sum and the balance of one account."""
    sums: Counter[str] = Counter()
    for entry in acct['entries']:
        sums[entry['type']] += abs(entry['amount'])
    return {'grants': sums['grant'], 'debits': sums['debit'], 'refunds': sums['refund'],
            'ledger_sum': sum(e['amount'] for e in acct['entries']), 'balance': acct['balance']}


def entries_by_job(acct: dict[str, Any]) -> dict[str, Counter[str]]:
    """job id -> Counter of its ledger entry types (debit, refund)."""
    by_job: dict[str, Counter[str]] = {}
    for entry in acct['entries']:
        if entry['job_id']:
            by_job.setdefault(entry['job_id'], Counter())[entry['type']] += 1
    return by_job


def job_item(cloud: Any, job_id: str) -> dict[str, Any]:
    return table(cloud).get_item(Key=job_key(job_id), ConsistentRead=True)['Item']


def execution_arn(cloud: Any, job_id: str) -> str:
    return cloud.handler_env['STATE_MACHINE_ARN'].replace(':stateMachine:', ':execution:') + f':{job_id}'


def execution_status(cloud: Any, job_id: str) -> str | None:
    sfn = boto3.client('stepfunctions')
    try:
        return sfn.describe_execution(executionArn=execution_arn(cloud, job_id))['status']
    except sfn.exceptions.ExecutionDoesNotExist:
        return None


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds saying `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out after {timeout}s waiting for {what}')
        time.sleep(interval)
