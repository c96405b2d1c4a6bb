"""The HTTP edge without a cloud: the checks made before Powertools reads a body, the published error
schemas."""

from __future__ import annotations

import base64
import json

import pytest
from vidgen.api.http import refuse_before_parsing


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
    # The limit is on the bytes sent: base64 takes 4 characters for 3 bytes, UTF-8 up to 4 bytes a character.
    exactly_5_mb = base64.b64encode(b'x' * (5 * 1024 * 1024)).decode()
    assert refuse_before_parsing(event(exactly_5_mb, content_type='image/png', base64_encoded=True)) is None
    one_more = base64.b64encode(b'x' * (5 * 1024 * 1024 + 1)).decode()
    assert refusal(refuse_before_parsing(event(one_more, content_type='image/png', base64_encoded=True)))[0] == 413
    assert refusal(refuse_before_parsing(event('é' * (5 * 1024 * 1024 // 2 + 1))))[0] == 413


def test_the_body_limit_stays_below_lambdas_6_mb_event_limit():
    from pydantic import ValidationError
    from vidgen.config import Settings
    from vidgen_local.runtime import REQUEST_LIMIT_BYTES

    assert Settings().max_body_bytes < REQUEST_LIMIT_BYTES
    with pytest.raises(ValidationError):
        Settings(MAX_BODY_BYTES=REQUEST_LIMIT_BYTES)


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
                if code.startswith(('4', '5')) and path not in ('/v1/health', '/v1/models', '/v1/openapi.json'):
                    assert schema == error_ref or error_ref in schema.get('anyOf', []), (method, path, code)
    assert set(document['components']['schemas']['ErrorDetail']['required']) == {'code', 'message', 'request_id'}
