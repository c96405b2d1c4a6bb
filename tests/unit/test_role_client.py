"""The Step Functions interpreter's clients for a role (vidgen_local/patches.py, `_role_client`): made once,
by one thread, however many executions reach a Task at the same moment."""

from __future__ import annotations

import concurrent.futures
import threading

import pytest
from vidgen_local import patches

CALLERS = 32
KEYS = ('role-access-key', 'role-secret-key', 'role-session-token')  # placeholders: no call is made


@pytest.fixture(autouse=True)
def no_cached_clients():
    patches._make_role_client.cache_clear()
    yield
    patches._make_role_client.cache_clear()


def test_tasks_that_start_together_make_one_client_between_them():
    start = threading.Barrier(CALLERS)

    def first_task(_: int) -> object:
        start.wait(timeout=30)
        return patches._role_client('us-east-1', 'lambda', KEYS, 5000)

    with concurrent.futures.ThreadPoolExecutor(CALLERS) as pool:
        clients = list(pool.map(first_task, range(CALLERS)))
    info = patches._make_role_client.cache_info()
    assert len({id(client) for client in clients}) == 1
    assert (info.misses, info.hits) == (1, CALLERS - 1)


def test_another_role_or_service_gets_its_own_client():
    lambda_client = patches._role_client('us-east-1', 'lambda', KEYS, 5000)
    assert patches._role_client('us-east-1', 'lambda', KEYS, 5000) is lambda_client
    assert patches._role_client('us-east-1', 'dynamodb', KEYS, 5000) is not lambda_client
    assert patches._role_client('us-east-1', 'lambda', (*KEYS[:2], 'another-token'), 5000) is not lambda_client
