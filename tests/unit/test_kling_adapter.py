"""The Kling adapter on its own: tokens, request bodies, error mapping, status mapping, callbacks.

HTTP is stubbed with `responses`; nothing leaves the process.
"""

from __future__ import annotations

import json
import time

import jwt
import pytest
import requests
import responses
from vidgen.errors import (
    CallbackRejectedError,
    ProviderAuthError,
    ProviderContentPolicyError,
    ProviderError,
    ProviderNotFoundError,
    ProviderQuotaError,
    ProviderRejectedError,
    ProviderThrottledError,
    ProviderUnavailableError,
)
from vidgen.providers.base import GenerationRequest, ImageInput
from vidgen.providers.kling import (
    KlingProvider,
    build_create_body,
    make_token,
)

# Kling's real secret keys are 32 characters; the short fake ones here only make pyjwt warn.
pytestmark = pytest.mark.filterwarnings('ignore::jwt.warnings.InsecureKeyLengthWarning')

BASE = 'https://kling.test'
ACCESS_KEY = 'ak-unit-ACCESS-0123456789'
SECRET_KEY = 'sk-unit-SECRET-0123456789abcdef0123'
T2V_URL = f'{BASE}/v1/videos/text2video'
I2V_URL = f'{BASE}/v1/videos/image2video'
# Kling's own reason, with what a reason must never pass on: a signed URL's token and a key-like string.
PROVIDER_REASON = 'duration 7 is not supported'
RAW_PROVIDER_TEXT = f'{PROVIDER_REASON}, see https://cdn.example.com/x?sig=TOKEN0123 key=sk-live-0123456789'
PNG_DATA_URI = 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUg=='


def make_request(kind: str = 't2v', **overrides) -> GenerationRequest:
    fields = {
        'job_id': 'job-123', 'model': 'kling-v2-6', 'provider_model': 'kling-v2-6', 'kind': kind,
        'prompt': 'a red fox running through snow',
        'params': {'duration': 5, 'mode': 'std', 'aspect_ratio': '16:9'} if kind == 't2v' else
        {'duration': 10, 'mode': 'pro'},
    }
    fields.update(overrides)
    return GenerationRequest(**fields)


def envelope(data: object, code: int = 0, message: str = 'SUCCEED') -> dict:
    return {'code': code, 'message': message, 'request_id': 'b1e2c3d4-0000-4000-8000-000000000000', 'data': data}


def error_body(code: int) -> dict:
    return {'code': code, 'message': RAW_PROVIDER_TEXT, 'request_id': 'b1e2c3d4-0000-4000-8000-000000000000'}


@pytest.fixture
def provider() -> KlingProvider:
    return KlingProvider(BASE, ACCESS_KEY, SECRET_KEY, timeout=(1.0, 2.0))


@pytest.fixture
def stub():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def sent_body(stub: responses.RequestsMock, index: int = 0) -> dict:
    return json.loads(stub.calls[index].request.body)


def assert_no_secrets(error: Exception, token: str | None = None) -> None:
    text = f'{error} {error!r} {getattr(error, "details", "")}'
    for secret in (ACCESS_KEY, SECRET_KEY, 'TOKEN0123', 'sk-live-0123456789') + ((token,) if token else ()):
        assert secret not in text


# --- token -----------------------------------------------------------------------------------------------


def test_token_carries_exactly_the_documented_claims() -> None:
    token = make_token(ACCESS_KEY, SECRET_KEY, now=1_700_000_000)

    assert jwt.get_unverified_header(token) == {'alg': 'HS256', 'typ': 'JWT'}
    claims = jwt.decode(token, SECRET_KEY, algorithms=['HS256'], options={'verify_exp': False, 'verify_nbf': False})
    assert claims == {'iss': ACCESS_KEY, 'exp': 1_700_001_800, 'nbf': 1_699_999_995}


def test_every_request_sends_a_fresh_valid_bearer_token(provider: KlingProvider, stub, monkeypatch) -> None:
    # Given two creates one minute apart
    stub.post(T2V_URL, json=envelope({'task_id': '1', 'task_status': 'submitted'}))
    clock = iter([1_700_000_000.0, 1_700_000_060.0])
    monkeypatch.setattr('vidgen.providers.kling._clock', lambda: next(clock))

    provider.create_task(make_request(), None)
    provider.create_task(make_request(), None)

    # Then each carries its own token, signed with the secret key, with iss = access key
    tokens = []
    for call in stub.calls:
        scheme, token = call.request.headers['Authorization'].split(' ')
        assert scheme == 'Bearer'
        assert call.request.headers['Content-Type'] == 'application/json'
        claims = jwt.decode(token, SECRET_KEY, algorithms=['HS256'], options={'verify_exp': False, 'verify_nbf': False})
        tokens.append(claims)
    assert [t['nbf'] for t in tokens] == [1_699_999_995, 1_700_000_055]
    assert [t['exp'] for t in tokens] == [1_700_001_800, 1_700_001_860]
    assert {t['iss'] for t in tokens} == {ACCESS_KEY}


def test_real_clock_token_is_valid_now(provider: KlingProvider, stub) -> None:
    stub.post(T2V_URL, json=envelope({'task_id': '1'}))
    provider.create_task(make_request(), None)
    token = stub.calls[0].request.headers['Authorization'].removeprefix('Bearer ')
    claims = jwt.decode(token, SECRET_KEY, algorithms=['HS256'])  # verifies exp and nbf against now
    assert abs(claims['exp'] - time.time() - 1800) < 5


def test_repr_hides_the_keys(provider: KlingProvider) -> None:
    assert ACCESS_KEY not in repr(provider) and SECRET_KEY not in repr(provider)


# --- request bodies --------------------------------------------------------------------------------------


def test_text_to_video_body() -> None:
    request = make_request(negative_prompt='blurry', params={'duration': 10, 'mode': 'pro', 'aspect_ratio': '9:16',
                                                             'sound': True})

    body = build_create_body(request, 'https://api.example.com/v1/callbacks/kling/job-123?token=t')

    assert body == {
        'model_name': 'kling-v2-6', 'external_task_id': 'job-123', 'prompt': 'a red fox running through snow',
        'negative_prompt': 'blurry', 'mode': 'pro', 'duration': '10', 'sound': 'on', 'aspect_ratio': '9:16',
        'callback_url': 'https://api.example.com/v1/callbacks/kling/job-123?token=t',
    }


def test_optional_fields_are_left_out_when_not_given() -> None:
    body = build_create_body(make_request(params={'duration': 5.0, 'mode': 'std', 'sound': False}), None)

    assert body['duration'] == '5'
    assert body['sound'] == 'off'
    for absent in ('negative_prompt', 'cfg_scale', 'aspect_ratio', 'callback_url', 'image', 'image_tail'):
        assert absent not in body


def test_cfg_scale_is_sent_only_when_the_model_has_it() -> None:
    request = make_request(provider_model='kling-v1-6', params={'duration': 5, 'mode': 'std', 'cfg_scale': 0.7})
    assert build_create_body(request, None)['cfg_scale'] == 0.7


def test_image_to_video_strips_the_data_uri_prefix_and_has_no_aspect_ratio() -> None:
    request = make_request('i2v', image=ImageInput(PNG_DATA_URI), params={'duration': 5, 'mode': 'std',
                                                                          'aspect_ratio': '16:9'})

    body = build_create_body(request, None)

    assert body['image'] == 'iVBORw0KGgoAAAANSUhEUg=='
    assert 'image_tail' not in body
    assert 'aspect_ratio' not in body
    assert body['duration'] == '5'


def test_first_last_frame_sends_image_and_image_tail() -> None:
    request = make_request('flf2v', prompt='', image=ImageInput('https://img.example.com/start.jpg'),
                           end_image=ImageInput(PNG_DATA_URI))

    body = build_create_body(request, None)

    assert body['image'] == 'https://img.example.com/start.jpg'
    assert body['image_tail'] == 'iVBORw0KGgoAAAANSUhEUg=='
    assert 'prompt' not in body
    assert body['duration'] == '10' and body['mode'] == 'pro'


@pytest.mark.parametrize(('kind', 'url'), [('t2v', T2V_URL), ('i2v', I2V_URL), ('flf2v', I2V_URL)])
def test_create_posts_to_the_endpoint_of_the_mode(provider: KlingProvider, stub, kind: str, url: str) -> None:
    stub.post(url, json=envelope({'task_id': '867283741759111202', 'task_status': 'submitted'}))
    request = make_request(kind, image=None if kind == 't2v' else ImageInput('https://img.example.com/a.png'))

    assert provider.create_task(request, None) == '867283741759111202'
    assert sent_body(stub)['external_task_id'] == 'job-123'


def test_unsupported_mode_is_refused_before_any_call(provider: KlingProvider, stub) -> None:
    with pytest.raises(ProviderRejectedError):
        provider.create_task(make_request('ref2v'), None)
    assert len(stub.calls) == 0


# --- errors ----------------------------------------------------------------------------------------------

ERROR_TABLE = [
    (401, 1000, ProviderAuthError), (401, 1001, ProviderAuthError), (401, 1002, ProviderAuthError),
    (401, 1003, ProviderAuthError), (401, 1004, ProviderAuthError),
    (429, 1100, ProviderAuthError), (429, 1101, ProviderQuotaError), (429, 1102, ProviderQuotaError),
    (403, 1103, ProviderAuthError),
    (400, 1200, ProviderRejectedError), (400, 1201, ProviderRejectedError), (404, 1202, ProviderRejectedError),
    (400, 1300, ProviderContentPolicyError), (400, 1301, ProviderContentPolicyError),
    (429, 1302, ProviderThrottledError), (429, 1303, ProviderThrottledError), (429, 1304, ProviderAuthError),
    (500, 5000, ProviderUnavailableError), (503, 5001, ProviderUnavailableError), (504, 5002, ProviderUnavailableError),
    (400, 4242, ProviderUnavailableError), (200, 7777, ProviderUnavailableError),
]


@pytest.mark.parametrize(('status', 'code', 'error_class'), ERROR_TABLE)
def test_create_errors_map_by_code(provider: KlingProvider, stub, status: int, code: int,
                                   error_class: type[ProviderError]) -> None:
    stub.post(T2V_URL, status=status, json=error_body(code))

    with pytest.raises(ProviderError) as caught:
        provider.create_task(make_request(), None)

    assert type(caught.value) is error_class
    assert caught.value.provider_code == code
    assert PROVIDER_REASON in caught.value.message  # Kling's reason reaches the job, cleaned
    assert_no_secrets(caught.value, stub.calls[0].request.headers['Authorization'].removeprefix('Bearer '))


@pytest.mark.parametrize(('status', 'code', 'error_class'), ERROR_TABLE)
def test_status_errors_map_by_code(provider: KlingProvider, stub, status: int, code: int,
                                   error_class: type[ProviderError]) -> None:
    stub.get(f'{T2V_URL}/42', status=status, json=error_body(code))

    with pytest.raises(ProviderError) as caught:
        provider.get_task('42', make_request())

    assert type(caught.value) is error_class
    assert_no_secrets(caught.value, stub.calls[0].request.headers['Authorization'].removeprefix('Bearer '))


def test_unknown_resource_is_not_found_on_a_query_and_rejected_on_a_create(provider: KlingProvider, stub) -> None:
    stub.get(f'{T2V_URL}/42', status=404, json=error_body(1203))
    stub.post(T2V_URL, status=404, json=error_body(1203))

    with pytest.raises(ProviderNotFoundError):
        provider.get_task('42', make_request())
    with pytest.raises(ProviderRejectedError) as caught:
        provider.create_task(make_request(), None)
    assert not isinstance(caught.value, ProviderNotFoundError)


@pytest.mark.parametrize('code', [1302, 1303])
def test_throttling_passes_retry_after(provider: KlingProvider, stub, code: int) -> None:
    stub.post(T2V_URL, status=429, json=error_body(code), headers={'Retry-After': '7'})

    with pytest.raises(ProviderThrottledError) as caught:
        provider.create_task(make_request(), None)

    assert caught.value.retry_after == 7.0
    assert caught.value.retryable


@pytest.mark.parametrize(('status', 'body', 'error_class'), [
    (429, {'error': 'slow down'}, ProviderThrottledError),
    (502, {'message': 'bad gateway'}, ProviderUnavailableError),
    (503, None, ProviderUnavailableError),  # not JSON at all
    (401, {'detail': 'no'}, ProviderAuthError),
    (404, {'detail': 'no such route'}, ProviderUnavailableError),
    (200, ['not', 'an', 'envelope'], ProviderUnavailableError),
    (200, envelope({'task_status': 'submitted'}), ProviderUnavailableError),  # no task_id
    (200, envelope(None), ProviderUnavailableError),
    (200, envelope({'task_id': ''}), ProviderUnavailableError),
    (500, envelope({'task_id': '1'}), ProviderUnavailableError),  # "success" with an error status
])
def test_replies_without_a_usable_envelope(provider: KlingProvider, stub, status: int, body: object,
                                           error_class: type[ProviderError]) -> None:
    if body is None:
        stub.post(T2V_URL, status=status, body='<html>upstream down</html>', content_type='text/html')
    else:
        stub.post(T2V_URL, status=status, json=body)

    with pytest.raises(error_class):
        provider.create_task(make_request(), None)


def test_connection_failure_is_unavailable(provider: KlingProvider, stub) -> None:
    stub.post(T2V_URL, body=requests.ConnectionError('refused'))
    with pytest.raises(ProviderUnavailableError):
        provider.create_task(make_request(), None)


# --- duplicate external_task_id ---------------------------------------------------------------------------


def test_duplicate_external_task_id_returns_the_existing_task(provider: KlingProvider, stub) -> None:
    # Given a create whose first attempt already made the task
    stub.post(T2V_URL, status=400, json={'code': 1201, 'message': "external_task_id 'job-123' already exists",
                                         'request_id': 'r'})
    stub.get(f'{T2V_URL}/job-123', json=envelope({'task_id': '555', 'task_status': 'processing',
                                                  'task_info': {'external_task_id': 'job-123'}}))

    # Then the retried create returns the task that exists
    assert provider.create_task(make_request(), None) == '555'
    assert [call.request.method for call in stub.calls] == ['POST', 'GET']


def test_other_invalid_parameters_do_not_look_up_anything(provider: KlingProvider, stub) -> None:
    stub.post(T2V_URL, status=400, json={'code': 1201, 'message': 'duration is invalid', 'request_id': 'r'})

    with pytest.raises(ProviderRejectedError):
        provider.create_task(make_request(), None)
    assert len(stub.calls) == 1


def test_external_task_id_complaint_that_is_not_a_duplicate_stays_rejected(provider: KlingProvider, stub) -> None:
    stub.post(T2V_URL, status=400, json={'code': 1201, 'message': 'external_task_id too long', 'request_id': 'r'})
    stub.get(f'{T2V_URL}/job-123', status=404, json=error_body(1203))

    with pytest.raises(ProviderRejectedError) as caught:
        provider.create_task(make_request(), None)
    assert not isinstance(caught.value, ProviderNotFoundError)


# --- status ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(('raw', 'state'), [
    ('submitted', 'pending'), ('processing', 'running'), ('queueing', 'running'), ('', 'running'), (None, 'running'),
    ('SUCCEED', 'running'),
])
def test_non_terminal_statuses(provider: KlingProvider, stub, raw: str | None, state: str) -> None:
    stub.get(f'{T2V_URL}/42', json=envelope({'task_id': '42', 'task_status': raw}))

    task = provider.get_task('42', make_request())

    assert task.state == state
    assert not task.is_terminal
    assert task.outputs == () and task.failure is None


def test_succeeded_task_lists_its_videos(provider: KlingProvider, stub) -> None:
    videos = [{'id': 'v1', 'url': 'https://cdn.example.com/a.mp4', 'duration': '5.1'},
              {'id': 'v2', 'url': 'https://cdn.example.com/b.mp4', 'duration': '5.1'}]
    stub.get(f'{I2V_URL}/42', json=envelope({'task_id': '42', 'task_status': 'succeed',
                                             'task_result': {'videos': videos}}))

    task = provider.get_task('42', make_request('i2v'))

    assert task.state == 'succeeded' and task.raw_status == 'succeed'
    assert [(o.url, o.content_type) for o in task.outputs] == [
        ('https://cdn.example.com/a.mp4', 'video/mp4'), ('https://cdn.example.com/b.mp4', 'video/mp4')]


def test_success_without_a_video_is_not_trusted(provider: KlingProvider, stub) -> None:
    stub.get(f'{T2V_URL}/42', json=envelope({'task_id': '42', 'task_status': 'succeed', 'task_result': {}}))
    with pytest.raises(ProviderUnavailableError):
        provider.get_task('42', make_request())


@pytest.mark.parametrize(('reason', 'code'), [
    ('Failure to pass the risk control system', 'CONTENT_POLICY'),
    ('The content you submitted may contain sensitive information', 'CONTENT_POLICY'),
    ('content security policy violation', 'CONTENT_POLICY'),
    ('触发风控', 'CONTENT_POLICY'),
    ('Video generation failed due to an internal error', 'GENERATION_FAILED'),
    ('', 'GENERATION_FAILED'),
    (None, 'GENERATION_FAILED'),
])
def test_failed_task_gets_our_sentence_with_klings_reason(provider: KlingProvider, stub, reason, code) -> None:
    stub.get(f'{T2V_URL}/42', json=envelope({'task_id': '42', 'task_status': 'failed', 'task_status_msg': reason}))

    task = provider.get_task('42', make_request())

    assert task.state == 'failed' and task.is_terminal
    assert task.failure.code == code
    assert task.failure.message.startswith('Kling ') and task.failure.message.endswith('.')
    if reason and code == 'CONTENT_POLICY':
        assert reason in task.failure.message  # Kling's reason is kept for the user


def test_query_path_follows_the_mode(provider: KlingProvider, stub) -> None:
    stub.get(f'{I2V_URL}/42', json=envelope({'task_id': '42', 'task_status': 'submitted'}))
    assert provider.get_task('42', make_request('flf2v')).state == 'pending'


# --- callbacks ---------------------------------------------------------------------------------------------

TASK = {'task_id': '867283741759111202', 'task_status': 'succeed', 'task_status_msg': '',
        'task_info': {'external_task_id': 'job-123'}, 'created_at': 1722769557708, 'updated_at': 1722769557708,
        'task_result': {'videos': [{'id': 'v', 'url': 'https://cdn.example.com/a.mp4', 'duration': '5.0'}]}}


@pytest.mark.parametrize('body', [TASK, envelope(TASK)], ids=['bare', 'enveloped'])
def test_callback_bare_and_enveloped(provider: KlingProvider, body: dict) -> None:
    hint = provider.parse_callback(body, {})
    assert (hint.task_id, hint.claimed_state) == ('867283741759111202', 'succeeded')


@pytest.mark.parametrize(('status', 'state'), [('submitted', 'pending'), ('processing', 'running'),
                                               ('failed', 'failed'), ('mystery', 'running'), (None, None)])
def test_callback_status_mapping(provider: KlingProvider, status, state) -> None:
    body = {'task_id': '1', 'task_info': {}} | ({'task_status': status} if status else {})
    assert provider.parse_callback(body, {}).claimed_state == state


def test_callback_with_only_our_external_id(provider: KlingProvider) -> None:
    hint = provider.parse_callback({'task_status': 'processing', 'task_info': {'external_task_id': 'job-123'}}, {})
    assert (hint.task_id, hint.claimed_state) == (None, 'running')


@pytest.mark.parametrize('body', [
    None, [], 'task', 42, {}, {'task_status': 'succeed'}, {'task_id': '', 'task_info': {'external_task_id': ''}},
    {'code': 0, 'message': 'SUCCEED', 'data': {'task_status': 'succeed'}}, {'task_info': 'job-123'},
])
def test_callback_that_is_not_a_kling_task_is_rejected(provider: KlingProvider, body: object) -> None:
    with pytest.raises(CallbackRejectedError):
        provider.parse_callback(body, {})
