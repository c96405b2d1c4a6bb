"""Test tiers: unit tests need nothing; integration and e2e tests share one local cloud per session (the
real template, handlers and state machine on moto, with the provider simulators on 127.0.0.1)."""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

# What Lambda's environment would hold (template.yaml Globals) before any layer module is imported:
# Powertools reads these when `vidgen.observability` is first imported, during collection.
os.environ.setdefault('POWERTOOLS_SERVICE_NAME', 'vidgen')
os.environ.setdefault('POWERTOOLS_METRICS_NAMESPACE', 'Vidgen')
# The deployment settings the template gives every function (a local cloud sets its own while it runs).
os.environ.setdefault('TABLE_NAME', 'vidgen-unit')
os.environ.setdefault('BUCKET_NAME', 'vidgen-unit-results')
os.environ.setdefault('STATE_MACHINE_ARN', 'arn:aws:states:us-east-1:123456789012:stateMachine:vidgen-unit-job')
os.environ.setdefault('STORYBOARD_STATE_MACHINE_ARN',
                      'arn:aws:states:us-east-1:123456789012:stateMachine:vidgen-unit-storyboard')
# Global secondary indexes lag behind the table on AWS; every local cloud of the suite (the session's and
# tests/faults' own) shows index reads 0.2 s behind the writes, so code that lists or sweeps through an index
# right after writing fails here (vidgen_local/patches.py, (m)).
os.environ.setdefault('VIDGEN_LOCAL_INDEX_LAG', '0.2')

from support import Api  # noqa: E402

# Settings for the test cloud: short real-time windows so recovery paths finish in seconds.
TEST_ENV = {
    'QUEUED_GRACE_SECONDS': '3',
    'SWEEP_LIVENESS_SECONDS': '3',
    'POLL_INTERVALS': '10,20,40',
    'POWERTOOLS_LOG_LEVEL': 'WARNING',
}
TIME_SCALE = 20.0  # Wait states and retry sleeps run 20x faster; the callback wait is 300 s / 20 = 15 s.

_user_numbers = itertools.count(1)
FAULTS_DIR = Path(__file__).resolve().parent / 'faults'


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """tests/faults starts its own local clouds, and only one can run per process: it runs under `-m faults`
    (make test-faults) or when named on the command line, never beside the session cloud of a plain run."""
    if collection_path.resolve() != FAULTS_DIR:
        return None
    if 'faults' in (config.getoption('markexpr') or ''):
        return None
    named = (Path(arg.split('::', 1)[0]).resolve() for arg in config.args)
    return None if any(path == FAULTS_DIR or FAULTS_DIR in path.parents for path in named) else True


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give each schemathesis test (tests/integration/test_fuzz_openapi.py, one per API operation) an id of its
    own. pytest 9.2 builds an item's id from `originalname` and a parametrize callspec; schemathesis names its
    items `test[METHOD /path]` but passes no callspec, so all 22 shared one id, and pytest-xdist, which sends
    tests to its workers by id, ran one of them."""
    from _pytest.nodeid import NodeId
    from schemathesis.pytest.plugin import SchemathesisFunction

    for item in items:
        if isinstance(item, SchemathesisFunction) and item.nodeid != f'{item.parent.nodeid}::{item.name}':
            item._id = NodeId.parse(f'{item.parent.nodeid}::{item.name}')  # type: ignore[attr-defined]


@pytest.fixture(scope='session')
def cloud():
    from vidgen_local.cloud import LocalCloud
    from vidgen_local.simulators.kie import KieSimConfig
    from vidgen_local.simulators.kling import KlingSimConfig

    os.environ.pop('KLING_BASE_URL', None)
    os.environ.pop('KIE_BASE_URL', None)
    os.environ.pop('LLM_BASE_URL', None)
    local = LocalCloud(port=0, time_scale=TIME_SCALE, env=TEST_ENV, admin_key='test-admin-key',
                       kling_sim_config=KlingSimConfig(generation_seconds=1.0, result_bytes=300_000),
                       kie_sim_config=KieSimConfig(generation_seconds=1.0, result_bytes=200_000))
    local.start()
    yield local
    local.stop()


@pytest.fixture(scope='session')
def admin(cloud) -> Api:
    return Api(cloud.api_url, cloud.admin_key)


@pytest.fixture
def settings_env(request, monkeypatch):
    """Change handler settings for one test; put back after it. With the local cloud (a test that uses
    `cloud`), as a function configuration update does: the functions' warm environments are retired, so the
    next events read the new values. Without it (unit tests), this process's environment only."""
    from vidgen.config import get_settings

    cloud = request.getfixturevalue('cloud') if 'cloud' in request.fixturenames else None
    saved: dict[str, str | None] = {}

    def set_(**values: str) -> None:
        if cloud is None:
            for name, value in values.items():
                monkeypatch.setenv(name, value)
            get_settings.cache_clear()
            return
        for name in values:
            saved.setdefault(name, cloud.handler_env.get(name))
        cloud.update_function_environment(values)
    yield set_
    if saved:
        cloud.update_function_environment(saved)
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def handler_patch(cloud, monkeypatch):
    """monkeypatch for layer code the handlers run (`support.HandlerPatch`): each change and the undo at the
    end are followed by `cloud.recycle_environments()`, so handlers see the patch, and later tests do not."""
    from support import HandlerPatch

    patch = HandlerPatch(monkeypatch, cloud)
    yield patch
    patch.undo()


@pytest.fixture
def shared_state(tmp_path):
    """`support.SharedState` in this test's tmp dir: flags, lists and values that handler code (running in
    its own processes) and the test both see."""
    from support import SharedState

    return SharedState(tmp_path / 'shared')


@pytest.fixture
def receiver():
    """Make `support.Receiver`s (webhook or callback endpoints on 127.0.0.1); all closed after the test."""
    from support import Receiver

    made: list[Receiver] = []

    def make(statuses: tuple[int, ...] = (), **kwargs) -> Receiver:
        made.append(Receiver(statuses, **kwargs))
        return made[-1]
    yield make
    for each in made:
        each.close()


@pytest.fixture
def new_user(admin):
    """Make a user with `credits`; returns an Api acting as that user (its `.user_id` set)."""
    def make(credits: int = 1000) -> Api:
        return admin.create_user(f'user-{os.getpid()}-{next(_user_numbers)}', credits)
    return make
