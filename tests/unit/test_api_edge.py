"""The HTTP edge without a cloud: the checks made before Powertools reads a body, the published error
schemas, and the local runtime handing API functions one event at a time."""

from __future__ import annotations

import base64
import json
import re
import threading

import pytest
from vidgen.api.http import refuse_before_parsing
from vidgen_local.runtime import FunctionRunner
from vidgen_local.template import FunctionSpec, HttpRoute


def event(body: str = '{}', *, content_type: str = 'application/json', base64_encoded: bool = False) -> dict:
    return {'headers': {'Content-Type': content_type}, 'body': body, 'isBase64Encoded': base64_encoded,
            'requestContext': {'requestId': 'req-1'}}


def refusal(result: dict | None) -> tuple[int, dict]:
    assert result is not None
    assert result['headers']['Content-Type'] == 'application/json'
    return result['statusCode'], json.loads(result['body'])['error']


def test_ordinary_json_goes_on():
    assert refuse_before_parsing(event('{"model": "kling-v2-6"}')) is None
    assert refuse_before_parsing(event('', content_type='')) is None
    assert refuse_before_parsing(event(base64.b64encode('{"a": "é"}'.encode()).decode(), base64_encoded=True)) is None


def test_a_body_over_the_limit_is_413_before_it_is_parsed():
    status, error = refusal(refuse_before_parsing(event('x' * (5 * 1024 * 1024 + 1))))
    assert status == 413
    assert error == {'code': 'INVALID_PARAMETERS', 'message': 'The request body is larger than 5 MB.', 'request_id': 'req-1'}
    assert refuse_before_parsing(event('x' * (5 * 1024 * 1024))) is None
    # The limit is on the bytes sent: base64 takes 4 characters for 3 bytes, UTF-8 up to 4 bytes a character.
    exactly_5_mb = base64.b64encode(b'x' * (5 * 1024 * 1024)).decode()
    assert refuse_before_parsing(event(exactly_5_mb, content_type='image/png', base64_encoded=True)) is None
    one_more = base64.b64encode(b'x' * (5 * 1024 * 1024 + 1)).decode()
    assert refusal(refuse_before_parsing(event(one_more, content_type='image/png', base64_encoded=True)))[0] == 413
    assert refusal(refuse_before_parsing(event('é' * (5 * 1024 * 1024 // 2 + 1))))[0] == 413


@pytest.mark.parametrize('content_type', ['multipart/form-data', 'multipart/form-data; charset=utf-8',
                                          'application/x-www-form-urlencoded', 'Multipart/Mixed'])
def test_form_bodies_are_400(content_type):
    status, error = refusal(refuse_before_parsing(event('{"model": "x"}', content_type=content_type)))
    assert status == 400 and error['message'] == 'Send the request body as application/json.'


@pytest.mark.parametrize('body', [base64.b64encode(b'\xff\xfe{').decode(), 'not base64!'])
def test_bytes_that_are_not_utf8_text_are_400(body):
    status, error = refusal(refuse_before_parsing(event(body, base64_encoded=True)))
    assert status == 400 and 'UTF-8' in error['message']


def test_every_documented_response_has_a_schema_and_errors_share_one():
    from vidgen.api.docs import openapi_document

    document = json.loads(openapi_document())
    error_ref = {'$ref': '#/components/schemas/ErrorResponse'}
    for path, methods in document['paths'].items():
        for method, operation in methods.items():
            responses = operation['responses']
            assert any(code.startswith('2') for code in responses), (method, path)
            for code, response in responses.items():
                schema = response['content']['application/json']['schema']
                if code.startswith(('4', '5')):
                    assert schema == error_ref or error_ref in schema.get('anyOf', []), (method, path, code)
    assert set(document['components']['schemas']['ErrorDetail']['required']) == {'code', 'message', 'request_id'}
    # FastAPI's {"detail": [...]} shapes that Powertools adds are gone, and no reference dangles.
    schemas = document['components']['schemas']
    assert not {'HTTPValidationError', 'ValidationError', 'ResponseValidationError'} & set(schemas)
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(document)))
    assert refs <= set(schemas), refs - set(schemas)


def test_health_openapi_models_and_callbacks_need_no_api_key_and_the_rest_need_one():
    from vidgen.api.docs import openapi_document

    document = json.loads(openapi_document())
    assert document['security'] == [{'bearerAuth': []}]
    public = {(method, path) for path, methods in document['paths'].items() for method, op in methods.items()
              if op.get('security') == [{}]}
    assert public == {('get', '/v1/health'), ('get', '/v1/openapi.json'), ('get', '/v1/models'),
                      ('post', '/v1/callbacks/{provider}/{job_id}')}
    assert all('security' not in op for path, methods in document['paths'].items() for method, op in methods.items()
               if (method, path) not in public)


def test_a_validation_error_is_sent_as_the_documented_error_response(settings_env):
    from vidgen.api import status
    from vidgen.api.http import create_app
    from vidgen.models import ErrorResponse

    app = create_app(status.router)
    reply = app.resolve({'version': '2.0', 'routeKey': 'GET /v1/jobs', 'rawPath': '/v1/jobs', 'rawQueryString': 'limit=0',
                         'queryStringParameters': {'limit': '0'}, 'headers': {},
                         'requestContext': {'requestId': 'req-9', 'http': {'method': 'GET', 'path': '/v1/jobs'},
                                            'stage': '$default'},
                         'isBase64Encoded': False}, None)

    assert reply['statusCode'] == 422
    sent = ErrorResponse.model_validate_json(reply['body'])  # the schema the document names for every 422
    assert sent.error.code == 'INVALID_PARAMETERS' and sent.error.field == 'query.limit'


def spec(logical_id: str, *, http: bool) -> FunctionSpec:
    routes = (HttpRoute(logical_id, 'Api', 'GET', '/x'),) if http else ()
    return FunctionSpec(logical_id=logical_id, name=logical_id, arn=f'arn:{logical_id}', code_uri='.', handler='app.h',
                        runtime='python3.11', timeout=30, memory_size=128, environment={}, routes=routes)


@pytest.mark.parametrize('http', [True, False])
def test_api_functions_and_the_others_run_their_events_side_by_side(http):
    """No turn-taking, HTTP functions included: each event has an execution environment of its own (Powertools'
    per-request state is per environment), so four events of one function are in their handlers at once.
    A barrier inside the handler proves it: under a lock the four would never all arrive."""
    import multiprocessing

    from vidgen_local.environments import FunctionPool, OutputPump
    from vidgen_local.runtime import LambdaContext

    function = spec('F', http=http)
    with multiprocessing.Manager() as manager:
        all_in = manager.Barrier(4, timeout=20)

        def handler(event, context):
            return all_in.wait()  # raises BrokenBarrierError unless four events are in handlers together

        pump = OutputPump()
        pool = FunctionPool(function, {}, lambda _spec: handler, LambdaContext, pump, limit=4)
        runner = FunctionRunner({'F': pool})
        results: list[object] = []

        def call() -> None:
            results.append(runner.call('F', {}))

        threads = [threading.Thread(target=call) for _ in range(4)]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
        finally:
            runner.close()
            pump.stop()
    assert sorted(results) == [0, 1, 2, 3]  # each arrival index once: all four waited together
    assert pool.stats.cold_starts == 4


def test_validation_messages_are_our_sentences_without_pydantics_prefix():
    from pydantic import ValidationError
    from vidgen.api.http import describe_validation_errors
    from vidgen.models import JobRequest

    with pytest.raises(ValidationError) as caught:
        JobRequest(model='kling-v2-6', prompt='x', image='ftp://example.com/a.png')
    message, field = describe_validation_errors(caught.value.errors())
    assert field == 'image'
    assert message == 'image: an image must be an https URL or a data:image/...;base64 URI.'
