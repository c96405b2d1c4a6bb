"""Crashes injected into the functions' execution environments (tests/faults/test_crash_recovery.py).

Each environment is its own process, so a test cannot patch the layer from its own. Instead it names one of
these hooks as an init hook of a function (LocalCloud.update_function_configuration): every new environment
of that function calls it before importing the handler, and the hook replaces one layer function with a
crashing one. What happened is written to a journal folder (CRASH_JOURNAL), where the test reads it; a test
turns a crash off by creating the file `<journal>/fixed`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


class SimulatedCrash(Exception):
    """The process running a step died here (the injected crash)."""


def _journal() -> Path:
    return Path(os.environ['CRASH_JOURNAL'])


def note(kind: str, **fields: Any) -> None:
    with open(_journal() / f'{kind}.jsonl', 'a', encoding='utf-8') as log:  # one short append: never interleaved
        log.write(json.dumps(fields, default=str) + '\n')


def notes(journal: Path, kind: str) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in (journal / f'{kind}.jsonl').read_text().splitlines() if line]
    except FileNotFoundError:
        return []


def _first(kind: str) -> bool:
    """True for exactly one caller across every environment (an exclusive create)."""
    try:
        os.close(os.open(_journal() / f'{kind}.claimed', os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


def _fixed() -> bool:
    return (_journal() / 'fixed').exists()


def crash_before_start_execution() -> None:
    """SubmitFunction: the first StartExecution is refused (CRASH_MODE=start-refused) or the process dies
    right after the credit transaction (CRASH_MODE=process-died)."""
    from botocore.exceptions import ClientError
    from vidgen import executions

    original = executions.start

    def start(job_id: str) -> bool:
        if _first('start'):
            note('crashed', job_id=job_id)
            if os.environ['CRASH_MODE'] == 'start-refused':
                raise ClientError({'Error': {'Code': 'ServiceUnavailable', 'Message': 'injected'}}, 'StartExecution')
            raise SimulatedCrash('the submit process died after the credit transaction')
        return original(job_id)

    executions.start = start


def crash_in_finalize_after_the_copy() -> None:
    """PollerFunction: the first finalize of a 'crash-after-copy' job dies after the copy, its execution stopped."""
    import boto3
    from vidgen.store import ledger

    original = ledger.settle

    def settle(job: Any, *, status: str, now: Any, refund: Any, extra: Any) -> Any:
        if 'crash-after-copy' in job.prompt and status == 'succeeded':
            note('settles', status=status)
            if _first('finalize'):
                # The results are in our bucket; the job is not marked yet. The Lambda dies here, and with it the
                # execution (stopped, so no Retry can run the step again).
                note('crashed', outputs=extra['outputs'])
                arn = os.environ['STATE_MACHINE_ARN'].replace(':stateMachine:', ':execution:') + f':{job.id}'
                boto3.client('stepfunctions').stop_execution(executionArn=arn, error='Crash',
                                                             cause='injected after the S3 copy')
                raise SimulatedCrash('the finalize step died after copying the results')
        return original(job, status=status, now=now, refund=refund, extra=extra)

    ledger.settle = settle


def crash_in_every_fail_attempt() -> None:
    """PollerFunction: every fail step of a 'crash-in-fail' job dies before its transaction, until `fixed`."""
    from vidgen.store import ledger

    original = ledger.settle

    def settle(job: Any, *, status: str, now: Any, refund: Any, extra: Any) -> Any:
        if 'crash-in-fail' in job.prompt and status == 'failed' and not _fixed():
            note('attempts', at=time.time())
            raise SimulatedCrash('the fail step died before its transaction')
        return original(job, status=status, now=now, refund=refund, extra=extra)

    ledger.settle = settle


def stall_the_first_create() -> None:
    """PollerFunction: the first create of a 'slow-create' job answers after CRASH_STALL_SECONDS, unavailable."""
    from vidgen.errors import ProviderUnavailableError
    from vidgen.jobs import tasks

    original = tasks._create_at_provider

    def create_at_provider(job: Any) -> Any:
        if 'slow-create' in job.prompt and _first('stall'):
            note('stalled', job_id=job.id)
            time.sleep(float(os.environ['CRASH_STALL_SECONDS']))
            raise ProviderUnavailableError('Kling did not answer in time; the call will be retried.')
        return original(job)

    tasks._create_at_provider = create_at_provider
