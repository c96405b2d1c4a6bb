"""Init hooks and a handler for tests/integration/test_local_limits.py: each execution environment of the
function they are given to imports this module in its own process (LocalCloud.update_function_configuration)."""

from __future__ import annotations

import os
import time
from typing import Any


def stall_creates() -> None:
    """PollerFunction: creating the provider task of a 'stall-past-timeout' job takes STALL_SECONDS."""
    from vidgen.jobs import tasks

    original = tasks._create_at_provider

    def create_at_provider(job: Any) -> Any:
        if 'stall-past-timeout' in job.prompt:
            time.sleep(float(os.environ['STALL_SECONDS']))
        return original(job)

    tasks._create_at_provider = create_at_provider


def bloat_polls() -> None:
    """PollerFunction: a poll of a 'bloat-state' job answers with 300 KB more than the state machine allows."""
    from vidgen.jobs import tasks
    from vidgen.store import jobs as job_store

    original = tasks.poll_job

    def poll_job(job_id: str, attempt: int) -> dict[str, Any]:
        result = original(job_id, attempt)
        job = job_store.find_job(job_id)
        if job is not None and 'bloat-state' in job.prompt:
            return {**result, 'padding': 'x' * 300_000}
        return result

    tasks.poll_job = poll_job


def slow_http(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A handler that outlasts any short Timeout it is given."""
    time.sleep(float(os.environ.get('SLOW_SECONDS', '30')))
    return {'statusCode': 200, 'body': '{}'}
