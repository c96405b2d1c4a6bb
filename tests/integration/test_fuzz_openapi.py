"""schemathesis against the OpenAPI document the API publishes, on the local cloud over HTTP.

Every operation in GET /v1/openapi.json is fuzzed with valid and invalid inputs (bounded and seeded, so a
run is repeatable), as a user with credits, and as the admin on the admin routes. Must hold for every
response: no 5xx, a documented status code, the documented content type, and a body that matches the
documented schema. The number of cases is printed at the end of the module.
"""

from __future__ import annotations

import collections
import json

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

# Hypothesis warns about schemathesis' own use of `random` inside its strategies when derandomized.
pytestmark = pytest.mark.filterwarnings('ignore::hypothesis.errors.HypothesisDeprecationWarning')

MAX_EXAMPLES = 25  # per operation and generation mode (positive, negative); the coverage phase adds its own
SEED = 20261121

CASES: collections.Counter[str] = collections.Counter()
STATUSES: collections.Counter[int] = collections.Counter()
CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_schema_conformance]


@pytest.fixture(scope='module')
def fuzz_keys(cloud, admin):
    created = admin.post('/v1/admin/users', json={'credits': 1000})
    assert created.status_code == 201, created.text
    return {'user': created.json()['api_key'], 'admin': cloud.admin_key}


def _document() -> dict:
    """The document the status function serves at GET /v1/openapi.json, built the same way in-process so
    that pytest can make one test per operation at collection time (schemathesis' fixture-based loader does
    not work with pytest 9.2). `test_the_fuzzed_document_is_the_published_one` checks they are the same."""
    from vidgen.api.docs import openapi_document

    return json.loads(openapi_document())


schema = schemathesis.openapi.from_dict(_document(), config=schemathesis.Config.from_dict(
    {'seed': SEED, 'generation': {'mode': 'all', 'max-examples': MAX_EXAMPLES}}))


def test_the_fuzzed_document_is_the_published_one(cloud):
    published = requests.get(f'{cloud.api_url}/v1/openapi.json', timeout=10)
    assert published.status_code == 200 and published.headers['content-type'].startswith('application/json')
    assert published.json() == _document()


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case, cloud, fuzz_keys):
    key = fuzz_keys['admin'] if case.path.startswith('/v1/admin') else fuzz_keys['user']
    response = case.call(base_url=cloud.api_url, headers={'Authorization': f'Bearer {key}'}, timeout=30)
    CASES[f'{case.operation.method.upper()} {case.operation.path}'] += 1
    STATUSES[response.status_code] += 1
    case.validate_response(response, checks=CHECKS)


def test_fuzzing_ran_enough_cases(cloud, capsys):
    total = sum(CASES.values())
    with capsys.disabled():
        print(f'\nschemathesis: {total} cases over {len(CASES)} operations, by status {dict(sorted(STATUSES.items()))}')
        print('  ' + ', '.join(f'{operation} {count}' for operation, count in sorted(CASES.items())))
    operations = requests.get(f'{cloud.api_url}/v1/openapi.json', timeout=10).json()['paths']
    assert len(CASES) == sum(len(methods) for methods in operations.values())
    assert total >= 200
