"""The deployed tier: the public HTTP API of a running stack, as a client sees it, and nothing else.

Driven by VIDGEN_API_URL and VIDGEN_ADMIN_KEY (a stack's ApiUrl output and its admin key, or `make serve`'s
export line). Optional: VIDGEN_WEBHOOK_SECRET (`whsec_...`, the WebhookSigningSecret's key) to verify the
notification; VIDGEN_WEBHOOK_PUBLIC_URL + VIDGEN_WEBHOOK_PORT when the stack cannot reach 127.0.0.1 (an https
tunnel to that local port); VIDGEN_DEPLOYED_MODEL to choose the job's model (default: the first t2i model).
Without the two required settings every test here is skipped with one line saying so.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import requests
from deployed_support import Api, User

REQUIRED = ('VIDGEN_API_URL', 'VIDGEN_ADMIN_KEY')


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    for item in items:
        if 'tests/deployed/' not in item.nodeid.replace(os.sep, '/'):
            continue
        item.add_marker(pytest.mark.deployed)
        if missing:
            item.add_marker(pytest.mark.skip(reason=f'deployed tier: set {" and ".join(missing)} to run it'))


@pytest.fixture(scope='session')
def api() -> Iterator[Api]:
    with requests.Session() as session:
        yield Api(os.environ['VIDGEN_API_URL'].rstrip('/'), session)


@pytest.fixture(scope='session')
def admin_key() -> str:
    return os.environ['VIDGEN_ADMIN_KEY']


@pytest.fixture
def new_user(api: Api, admin_key: str):
    """Create a user through the admin route (a fresh id each time), with `credits` granted at creation."""
    def create(credits: int) -> User:
        user_id = f'deployed-{uuid.uuid4().hex[:12]}'
        reply = api.call('POST', '/v1/admin/users', key=admin_key, json={'user_id': user_id, 'credits': credits})
        assert reply.status_code == 201, reply.text
        return User(user_id, reply.json()['api_key'])
    return create
