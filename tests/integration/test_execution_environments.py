"""Lambda's execution environments in the local cloud, end to end: an event past its function's Timeout is
stopped and answered as Lambda and API Gateway answer it, the job still ends refunded, and HTTP events run in
environments of their own (no request waits for another function's)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from support import ledger_sum


@pytest.fixture
def short_timeout(cloud, monkeypatch) -> Iterator[Any]:
    """patch(function, seconds, module, name, slow): the function gets `seconds` of Timeout and `module.name`
    sleeps past it; both put back after the test (new environments again)."""
    changed: list[tuple[str, int]] = []

    def patch(function: str, seconds: int, module: Any, name: str) -> None:
        def slow(*args: Any, **kwargs: Any) -> Any:
            time.sleep(seconds + 30)

        monkeypatch.setattr(module, name, slow)
        changed.append((function, cloud.function(function).timeout))
        cloud.update_function_timeout(function, seconds)
    yield patch
    monkeypatch.undo()
    for function, seconds in changed:
        cloud.update_function_timeout(function, seconds)


def test_a_job_step_past_the_pollers_timeout_is_stopped_and_the_job_refunded(cloud, new_user, short_timeout):
    from vidgen.jobs import tasks

    before = cloud.environment_stats()['PollerFunction'].timeouts
    short_timeout('PollerFunction', 2, tasks, '_create_at_provider')
    user = new_user(100)

    job = user.submit({'model': 'kling-v2-6', 'prompt': 'a task that never comes back'}).json()
    done = user.wait(job['id'], timeout=60)

    assert done['status'] == 'failed' and done['error']['code'] == 'SYSTEM_ERROR', done
    credits = user.credits()
    assert credits['balance'] == 100 == ledger_sum(credits)  # debited, then refunded once
    assert cloud.environment_stats()['PollerFunction'].timeouts > before


def test_an_http_event_past_its_timeout_is_answered_503(cloud, short_timeout):
    from vidgen.jobs import queries

    short_timeout('StatusFunction', 1, queries, 'list_models')

    slow = requests.get(f'{cloud.api_url}/v1/models', timeout=30)
    healthy = requests.get(f'{cloud.api_url}/v1/health', timeout=30)  # a new environment takes the next event

    assert slow.status_code == 503 and slow.json() == {'message': 'Service Unavailable'}
    assert healthy.status_code == 200


def test_a_slow_request_does_not_hold_up_other_functions_or_other_requests(cloud, monkeypatch, new_user):
    """Each environment serves one event, and a function gets more environments as events overlap: a
    request that takes seconds holds no lock over the others (Powertools' per-process state is per
    environment)."""
    from vidgen.jobs import queries

    original = queries.list_models

    def slow_models() -> Any:
        time.sleep(3)
        return original()

    monkeypatch.setattr(queries, 'list_models', slow_models)
    cloud.recycle_environments()
    user = new_user(10)
    answers: list[int] = []
    try:
        thread = threading.Thread(target=lambda: answers.append(
            requests.get(f'{cloud.api_url}/v1/models', timeout=30).status_code))
        thread.start()
        time.sleep(0.5)  # the slow request is in its environment now
        credits = user.get('/v1/credits')  # the same function (Status), another environment
        health = requests.get(f'{cloud.api_url}/v1/health', timeout=30)
        still_slow = thread.is_alive()
        thread.join(30)
    finally:
        monkeypatch.undo()
        cloud.recycle_environments()
    assert credits.status_code == 200 and health.status_code == 200
    assert still_slow  # both were answered while the slow one was still running
    assert answers == [200]
