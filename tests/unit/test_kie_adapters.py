"""Kie.ai adapters without a network: envelope and error mapping, request shapes, status and callback parsing,
callback signatures, the upload choice, and the catalog entries of the Kie models."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from vidgen import catalog
from vidgen.errors import (
    CallbackRejectedError,
    GenerationFailedError,
    InvalidParametersError,
    ProviderAuthError,
    ProviderContentPolicyError,
    ProviderNotFoundError,
    ProviderQuotaError,
    ProviderRejectedError,
    ProviderThrottledError,
    ProviderUnavailableError,
)
from vidgen.models import JobRequest
from vidgen.providers.base import GenerationRequest, ImageInput
from vidgen.providers.http import HttpReply
from vidgen.providers.kie_common import (
    content_type_for,
    parse_url_list,
    unwrap,
    verify_webhook_signature,
    webhook_signature,
)
from vidgen.providers.kie_market import KieMarketProvider, market_input
from vidgen.providers.kie_veo import KieVeoProvider, generate_body
from vidgen_local.images import png_data_uri

API = 'https://kie.test'
UPLOADS = 'https://uploads.kie.test'
FAKE_KEY = 'unit-test-fake-key'
HMAC_KEY = 'unit-test-fake-hmac'
PNG_URI = png_data_uri(32, 32)  # a real PNG header: the catalog reads it before anything is uploaded


class FakeResponse:
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        self._body = body
        self.headers = headers or {}

    def json(self) -> Any:
        if isinstance(self._body, (bytes, str)):
            raise ValueError('not JSON')
        return self._body


class FakeSession:
    """Answers by path from a queue per path; records every call (the tests look at what was sent)."""

    def __init__(self) -> None:
        self.routes: dict[str, list[FakeResponse]] = {}
        self.calls: list[dict[str, Any]] = []

    def answer(self, path: str, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.routes.setdefault(path, []).append(FakeResponse(status, body, headers))

    def request(self, method: str, url: str, **kwargs: Any) -> FakeResponse:
        path = url.split('.test', 1)[1]
        self.calls.append({'method': method, 'url': url, 'path': path, **kwargs})
        queue = self.routes.get(path)
        if not queue:
            raise AssertionError(f'unexpected call to {path}')
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def sent(self, path: str) -> dict[str, Any]:
        return next(call for call in reversed(self.calls) if call['path'] == path)


@pytest.fixture
def session() -> FakeSession:
    return FakeSession()


def ok(data: Any) -> dict[str, Any]:
    return {'code': 200, 'msg': 'success', 'data': data}


def request_for(model: str, prompt: str = 'a lighthouse at dusk', **fields: Any) -> GenerationRequest:
    """Resolve through the real catalog, as the job pipeline does, and build the adapter's request."""
    job = JobRequest(model=model, prompt=prompt, **fields)
    resolved = catalog.resolve(job)
    return GenerationRequest(
        job_id='job-1', model=model, provider_model=resolved.model.provider_model_for(resolved.mode),
        kind=resolved.mode, prompt=prompt,
        image=ImageInput(job.image) if job.image else None,
        end_image=ImageInput(job.end_image) if job.end_image else None,
        reference_images=tuple(ImageInput(value) for value in job.reference_images or ()),
        params=resolved.params, provider_params=resolved.model.provider_params,
    )


# --- Envelope and error mapping ----------------------------------------------------------------------------------

ERROR_CASES = [
    (401, 'create', 'You do not have access permissions', ProviderAuthError),
    (402, 'create', 'insufficient credits', ProviderQuotaError),
    (404, 'create', 'Not Found', ProviderNotFoundError),
    (408, 'status', 'no result after 10 minutes', ProviderUnavailableError),
    (422, 'create', 'Your request was rejected by Flow', ProviderRejectedError),
    (422, 'status', 'record is null', ProviderNotFoundError),
    (422, 'status', 'Temporarily supports records within 14 days', ProviderNotFoundError),
    (429, 'create', 'rate limited', ProviderThrottledError),
    (433, 'create', 'sub key limit', ProviderQuotaError),
    (451, 'create', 'image fetch failed', ProviderRejectedError),
    (455, 'create', 'maintenance', ProviderUnavailableError),
    (500, 'create', 'Internal Error', ProviderUnavailableError),
    (501, 'create', 'generation failed', GenerationFailedError),
    (505, 'create', 'feature disabled', ProviderRejectedError),
    (400, 'create', 'Your prompt was flagged by Website as violating content policies.', ProviderContentPolicyError),
    (400, 'create', 'Only English prompts are supported', ProviderRejectedError),
    (599, 'create', 'something new', ProviderUnavailableError),
]


@pytest.mark.parametrize('in_http_200', [True, False], ids=['code-in-200', 'code-as-status'])
@pytest.mark.parametrize(('code', 'operation', 'text', 'expected'), ERROR_CASES)
def test_every_kie_code_maps_to_its_typed_error(code, operation, text, expected, in_http_200):
    # Given an error envelope, inside an HTTP 200 or with the code as the HTTP status too
    raw = f'{text} https://tempfile.example.com/in.png?token=SIGNED0123'
    reply = HttpReply(status=200 if in_http_200 else code, body={'code': code, 'msg': raw, 'data': None},
                      headers={'Retry-After': '7'})

    # When / Then
    with pytest.raises(expected) as caught:
        unwrap(reply, operation=operation)
    assert caught.value.provider_code == code
    stock_text = text.lower() in ('you do not have access permissions', 'generation failed')  # adds nothing: left out
    if expected is not ProviderNotFoundError and not stock_text:  # a missing record gets our sentence only
        assert text.rstrip('.') in caught.value.message  # Kie's own reason reaches the job...
    assert 'SIGNED0123' not in caught.value.message  # ...cleaned of tokenised URLs
    assert caught.value.retry_after == (7.0 if code == 429 else None)


def test_a_newer_message_field_is_read_like_msg():
    reply = HttpReply(200, {'code': 400, 'message': 'content policy violation', 'data': None}, {})
    with pytest.raises(ProviderContentPolicyError):
        unwrap(reply)


def test_an_error_status_with_a_200_body_code_is_still_an_error():
    with pytest.raises(ProviderUnavailableError) as caught:
        unwrap(HttpReply(502, {'code': 200, 'msg': 'success', 'data': {}}, {}))
    assert caught.value.provider_code == 502


@pytest.mark.parametrize('body', [['a', 'list'], {'msg': 'no code'}, None])
def test_a_body_without_an_envelope_is_retried_as_unavailable(body):
    with pytest.raises(ProviderUnavailableError):
        unwrap(HttpReply(200, body, {}))


def test_a_non_json_answer_is_unavailable(session):
    session.answer('/api/v1/veo/record-info', b'<html>502</html>', status=502)
    provider = KieVeoProvider(API, UPLOADS, FAKE_KEY, session=session)
    with pytest.raises(ProviderUnavailableError):
        provider.get_task('veo_task_1', request_for('veo-3-1'))


def test_the_key_is_sent_as_bearer_and_never_shown(session):
    # Given a provider whose every call is refused
    session.answer('/api/v1/veo/generate', {'code': 401, 'msg': f'bad key {FAKE_KEY}', 'data': None})
    provider = KieVeoProvider(API, UPLOADS, FAKE_KEY, webhook_hmac_key=HMAC_KEY, session=session)

    # When
    with pytest.raises(ProviderAuthError) as caught:
        provider.create_task(request_for('veo-3-1'), None)

    # Then the key went out in the header only, and shows up in no message or repr
    assert session.sent('/api/v1/veo/generate')['headers']['Authorization'] == f'Bearer {FAKE_KEY}'
    for text in (str(caught.value), repr(caught.value), repr(provider), repr(provider._kie)):
        assert FAKE_KEY not in text and HMAC_KEY not in text


# --- Veo: the generate body --------------------------------------------------------------------------------------


@pytest.mark.parametrize(('fields', 'generation_type', 'image_count'), [
    ({}, 'TEXT_2_VIDEO', 0),
    ({'image': 'https://img.test/a.png'}, 'FIRST_AND_LAST_FRAMES_2_VIDEO', 1),
    ({'image': 'https://img.test/a.png', 'end_image': 'https://img.test/b.png'}, 'FIRST_AND_LAST_FRAMES_2_VIDEO', 2),
    ({'reference_images': ['https://img.test/a.png', 'https://img.test/b.png']}, 'REFERENCE_2_VIDEO', 2),
])
def test_generation_type_follows_the_mode(session, fields, generation_type, image_count):
    session.answer('/api/v1/veo/generate', ok({'taskId': 'veo_task_1'}))
    provider = KieVeoProvider(API, UPLOADS, FAKE_KEY, session=session)

    task_id = provider.create_task(request_for('veo-3-1-fast', **fields), 'https://cb.test/hook')

    body = session.sent('/api/v1/veo/generate')['json']
    assert task_id == 'veo_task_1'
    assert body['generationType'] == generation_type
    assert len(body.get('imageUrls', [])) == image_count
    assert body['callBackUrl'] == 'https://cb.test/hook'
    assert body['model'] == 'veo3_fast'


def test_aspect_ratio_goes_out_under_both_spellings_with_the_options():
    request = request_for('veo-3-1', aspect_ratio='9:16',
                          options={'seeds': 12345, 'watermark': 'vidgen', 'enable_translation': False})
    body = generate_body(request, [], None)
    assert body['aspect_ratio'] == body['aspectRatio'] == '9:16'
    assert body['seeds'] == 12345 and body['watermark'] == 'vidgen'
    assert body['enableTranslation'] is False
    assert body['model'] == 'veo3' and 'callBackUrl' not in body


def test_reference_video_on_veo_3_1_runs_veo3_fast_as_the_catalog_says():
    request = request_for('veo-3-1', reference_images=['https://img.test/a.png'])
    assert request.provider_model == 'veo3_fast'  # the catalog resolves the per-mode model at submit
    assert generate_body(request, ['https://img.test/a.png'], None)['model'] == 'veo3_fast'


def test_a_mode_veo_does_not_have_is_refused_before_any_call(session):
    request = GenerationRequest(job_id='j', model='veo-3-1', provider_model='veo3', kind='t2i', prompt='x')
    with pytest.raises(ProviderRejectedError):
        KieVeoProvider(API, UPLOADS, FAKE_KEY, session=session).create_task(request, None)
    assert session.calls == []


def test_a_missing_end_frame_is_refused_before_any_upload(session):
    request = GenerationRequest(job_id='j', model='veo-3-1', provider_model='veo3', kind='flf2v', prompt='x',
                                image=ImageInput(PNG_URI))
    with pytest.raises(ProviderRejectedError):
        KieVeoProvider(API, UPLOADS, FAKE_KEY, session=session).create_task(request, None)
    assert session.calls == []


# --- Veo: status ------------------------------------------------------------------------------------------------


def veo_record(flag: Any, **extra: Any) -> dict[str, Any]:
    return ok({'taskId': 'veo_task_1', 'successFlag': flag, 'errorCode': None, 'errorMessage': '', **extra})


@pytest.mark.parametrize('result_urls', [
    ['https://cdn.test/v.mp4'], '["https://cdn.test/v.mp4"]', '[https://cdn.test/v.mp4]', 'https://cdn.test/v.mp4',
], ids=['list', 'json-string', 'bracketed-string', 'bare-string'])
def test_a_finished_veo_task_yields_its_video(session, result_urls):
    session.answer('/api/v1/veo/record-info', veo_record(1, response={'resultUrls': result_urls}))
    task = KieVeoProvider(API, UPLOADS, FAKE_KEY, session=session).get_task('veo_task_1', request_for('veo-3-1'))
    assert task.state == 'succeeded'
    assert [(o.url, o.content_type) for o in task.outputs] == [('https://cdn.test/v.mp4', 'video/mp4')]


@pytest.mark.parametrize(('flag', 'state'), [(0, 'running'), ('0', 'running'), (None, 'running'), (7, 'running')])
def test_unfinished_or_unknown_flags_mean_running(session, flag, state):
    session.answer('/api/v1/veo/record-info', veo_record(flag))
    task = KieVeoProvider(API, UPLOADS, FAKE_KEY, session=session).get_task('veo_task_1', request_for('veo-3-1'))
    assert task.state == state and task.outputs == ()


@pytest.mark.parametrize(('flag', 'error_code', 'message', 'job_code'), [
    (2, 400, 'Your prompt was flagged by Website as violating content policies.', 'CONTENT_POLICY'),
    (2, 400, 'Only English prompts are supported', 'CONTENT_POLICY'),
    (3, 500, 'Internal Error - Timeout', 'PROVIDER_UNAVAILABLE'),
    (3, 501, 'Generation failed', 'GENERATION_FAILED'),
    (3, None, '', 'GENERATION_FAILED'),
])
def test_failed_veo_tasks_carry_a_job_error(session, flag, error_code, message, job_code):
    session.answer('/api/v1/veo/record-info', veo_record(flag, errorCode=error_code, errorMessage=message))
    task = KieVeoProvider(API, UPLOADS, FAKE_KEY, session=session).get_task('veo_task_1', request_for('veo-3-1'))
    assert task.state == 'failed'
    assert task.failure.code == job_code
    assert task.failure.provider_code == (str(error_code) if error_code else None)
    assert not message or message.lower() in ('generation failed',) or message.rstrip('.') in task.failure.message


def test_1080p_is_running_until_the_hd_render_is_ready(session):
    # Given a finished 720p task whose 1080p render is first not ready, then ready
    session.answer('/api/v1/veo/record-info', veo_record(1, response={'resultUrls': ['https://cdn.test/720.mp4'],
                                                                        'resolution': '720p'}))
    session.answer('/api/v1/veo/get-1080p-video', {'code': 400, 'msg': '1080P is processing.', 'data': None})
    session.answer('/api/v1/veo/get-1080p-video', ok({'resultUrl': 'https://cdn.test/1080.mp4'}))
    provider = KieVeoProvider(API, UPLOADS, FAKE_KEY, session=session)
    request = request_for('veo-3-1', options={'resolution': '1080p'})

    # When / Then
    first = provider.get_task('veo_task_1', request)
    assert (first.state, first.raw_status) == ('running', '1080p-pending')
    second = provider.get_task('veo_task_1', request)
    assert second.state == 'succeeded'
    assert [o.url for o in second.outputs] == ['https://cdn.test/1080.mp4']
    assert session.sent('/api/v1/veo/get-1080p-video')['params'] == {'taskId': 'veo_task_1', 'index': 0}


def test_1080p_is_not_fetched_when_the_result_already_is_1080p(session):
    session.answer('/api/v1/veo/record-info', veo_record(1, response={'resultUrls': ['https://cdn.test/hd.mp4'],
                                                                        'resolution': '1080p'}))
    request = request_for('veo-3-1', options={'resolution': '1080p'})
    task = KieVeoProvider(API, UPLOADS, FAKE_KEY, session=session).get_task('veo_task_1', request)
    assert task.state == 'succeeded' and task.outputs[0].url == 'https://cdn.test/hd.mp4'
    assert all(call['path'] != '/api/v1/veo/get-1080p-video' for call in session.calls)


def test_an_unknown_veo_task_is_not_found(session):
    session.answer('/api/v1/veo/record-info', {'code': 422, 'msg': 'record is null', 'data': None})
    with pytest.raises(ProviderNotFoundError):
        KieVeoProvider(API, UPLOADS, FAKE_KEY, session=session).get_task('veo_task_x', request_for('veo-3-1'))


# --- Veo: callbacks ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(('body', 'claimed'), [
    ({'code': 200, 'msg': 'ok', 'data': {'taskId': 't1', 'info': {'resultUrls': ['https://cdn.test/v.mp4']}}},
     'succeeded'),
    ({'code': 200, 'msg': 'ok', 'data': {'taskId': 't1', 'info': {'resultUrls': '[https://cdn.test/v.mp4]'}}},
     'succeeded'),
    ({'code': 400, 'msg': 'flagged', 'data': {'taskId': 't1', 'fallbackFlag': False}}, 'failed'),
    ({'code': 422, 'msg': 'rejected', 'data': {'taskId': 't1'}}, 'failed'),
    ({'code': 500, 'msg': 'Internal Error', 'data': {'taskId': 't1'}}, 'failed'),
    ({'code': 501, 'msg': 'failed', 'data': {'taskId': 't1'}}, 'failed'),
    ({'code': 202, 'msg': 'something else', 'data': {'taskId': 't1'}}, None),
])
def test_veo_callbacks_become_hints(body, claimed):
    hint = KieVeoProvider(API, UPLOADS, FAKE_KEY).parse_callback(body, {})
    assert (hint.task_id, hint.claimed_state) == ('t1', claimed)


@pytest.mark.parametrize('body', [None, [], {'code': 200}, {'code': 200, 'data': {'info': {}}}])
def test_a_body_that_is_no_kie_callback_is_rejected(body):
    with pytest.raises(CallbackRejectedError):
        KieVeoProvider(API, UPLOADS, FAKE_KEY).parse_callback(body, {})


# --- Signatures --------------------------------------------------------------------------------------------------


def signed_headers(task_id: str, stamp: int, key: str = HMAC_KEY, *, lower: bool = False) -> dict[str, str]:
    headers = {'X-Webhook-Timestamp': str(stamp), 'X-Webhook-Signature': webhook_signature(task_id, stamp, key)}
    return {k.lower(): v for k, v in headers.items()} if lower else headers


def test_the_signature_is_base64_hmac_sha256_of_task_id_dot_timestamp():
    import hashlib
    import hmac

    expected = base64.b64encode(hmac.new(b'k', b'task-1.1700000000', hashlib.sha256).digest()).decode()
    assert webhook_signature('task-1', 1700000000, 'k') == expected
    verify_webhook_signature('task-1', '1700000000', expected, 'k', now=1700000100)


@pytest.mark.parametrize(('task_id', 'stamp', 'signature_key', 'now'), [
    ('task-1', 1_700_000_000, 'wrong-key', 1_700_000_000),
    ('task-2', 1_700_000_000, HMAC_KEY, 1_700_000_000),  # signed for another task
    ('task-1', 1_700_000_000, HMAC_KEY, 1_700_000_301),  # stale
    ('task-1', 1_700_000_400, HMAC_KEY, 1_700_000_000),  # from the future
])
def test_bad_or_stale_signatures_are_rejected(task_id, stamp, signature_key, now):
    signature = webhook_signature(task_id, stamp, signature_key)
    with pytest.raises(CallbackRejectedError) as caught:
        verify_webhook_signature('task-1', stamp, signature, HMAC_KEY, now=now)
    assert HMAC_KEY not in str(caught.value)


@pytest.mark.parametrize(('stamp', 'signature'), [(None, 'x'), ('', 'x'), ('soon', 'x'), ('1700000000', None)])
def test_missing_signature_parts_are_rejected(stamp, signature):
    with pytest.raises(CallbackRejectedError):
        verify_webhook_signature('task-1', stamp, signature, HMAC_KEY, now=1_700_000_000)


@pytest.mark.parametrize('provider_class', [KieVeoProvider, KieMarketProvider])
def test_callbacks_are_verified_when_a_webhook_key_is_set(provider_class):
    import time

    provider = provider_class(API, UPLOADS, FAKE_KEY, webhook_hmac_key=HMAC_KEY)
    body = {'code': 200, 'msg': 'ok', 'data': {'taskId': 't1', 'state': 'success'}}
    now = int(time.time())

    assert provider.parse_callback(body, signed_headers('t1', now, lower=True)).task_id == 't1'
    for headers in ({}, signed_headers('t1', now, key='other-key'), signed_headers('t1', now - 3600)):
        with pytest.raises(CallbackRejectedError):
            provider.parse_callback(body, headers)


# --- Uploads -----------------------------------------------------------------------------------------------------


def upload_answer(url_field: str = 'downloadUrl') -> dict[str, Any]:
    return {'success': True, 'code': 200, 'msg': 'File uploaded successfully',
            'data': {'fileName': 'x.png', url_field: 'https://files.test/x.png'}}


@pytest.mark.parametrize(('threshold', 'route'), [(1_000_000, '/api/file-base64-upload'),
                                                 (8, '/api/file-stream-upload')])
def test_data_uris_are_uploaded_by_size(session, threshold, route):
    # Given a small data: image and a threshold either above or below its decoded size
    session.answer('/api/file-base64-upload', upload_answer())
    session.answer('/api/file-stream-upload', upload_answer('fileUrl'))
    session.answer('/api/v1/veo/generate', ok({'taskId': 'veo_task_1'}))
    provider = KieVeoProvider(API, UPLOADS, FAKE_KEY, session=session, stream_threshold_bytes=threshold)

    # When
    provider.create_task(request_for('veo-3-1', image=PNG_URI), None)

    # Then only the expected route was used, on the upload host, and its URL went into the task
    upload_calls = [call for call in session.calls if call['path'].startswith('/api/file-')]
    assert [call['path'] for call in upload_calls] == [route]
    assert upload_calls[0]['url'].startswith(UPLOADS)
    assert session.sent('/api/v1/veo/generate')['json']['imageUrls'] == ['https://files.test/x.png']
    if route.endswith('stream-upload'):
        name, raw, mime = upload_calls[0]['files']['file']
        assert raw == base64.b64decode(PNG_URI.split(',', 1)[1]) and mime == 'image/png' and name == 'job-1-start.png'
        assert 'Content-Type' not in upload_calls[0]['headers']
    else:
        assert upload_calls[0]['json']['base64Data'] == PNG_URI
        assert upload_calls[0]['json']['fileName'] == 'job-1-start.png'


def test_https_images_pass_through_untouched(session):
    session.answer('/api/v1/veo/generate', ok({'taskId': 'veo_task_1'}))
    KieVeoProvider(API, UPLOADS, FAKE_KEY, session=session).create_task(
        request_for('veo-3-1', image='https://img.test/a.png'), None)
    assert [call['path'] for call in session.calls] == ['/api/v1/veo/generate']
    assert session.sent('/api/v1/veo/generate')['json']['imageUrls'] == ['https://img.test/a.png']


def test_an_upload_without_a_url_is_unavailable(session):
    session.answer('/api/file-base64-upload', {'success': True, 'code': 200, 'msg': 'ok', 'data': {}})
    with pytest.raises(ProviderUnavailableError):
        KieVeoProvider(API, UPLOADS, FAKE_KEY, session=session).create_task(request_for('veo-3-1', image=PNG_URI),
                                                                            None)


def test_an_undecodable_data_uri_is_rejected(session):
    request = GenerationRequest(job_id='j', model='veo-3-1', provider_model='veo3', kind='i2v', prompt='x',
                                image=ImageInput('data:image/png;base64,@@not-base64@@'))
    with pytest.raises(ProviderRejectedError):
        KieVeoProvider(API, UPLOADS, FAKE_KEY, session=session).create_task(request, None)


# --- Market ------------------------------------------------------------------------------------------------------


def test_kling_text_to_video_input_follows_the_catalog(session):
    session.answer('/api/v1/jobs/createTask', ok({'taskId': 'task_kling_1'}))
    request = request_for('kie-kling-2-6', duration=10, aspect_ratio='9:16', options={'sound': True})

    KieMarketProvider(API, UPLOADS, FAKE_KEY, session=session).create_task(request, 'https://cb.test/hook')

    assert session.sent('/api/v1/jobs/createTask')['json'] == {
        'model': 'kling-2.6/text-to-video', 'callBackUrl': 'https://cb.test/hook',
        'input': {'prompt': 'a lighthouse at dusk', 'duration': '10', 'aspect_ratio': '9:16', 'sound': True},
    }


def test_kling_image_to_video_switches_model_and_sends_an_image_list():
    request = request_for('kie-kling-2-6', image='https://img.test/a.png')
    renames = catalog.get_model('kie-kling-2-6').raw['provider_params']
    assert market_input(request, renames, {'image': ['https://img.test/a.png']}) == {
        'prompt': 'a lighthouse at dusk', 'duration': '5', 'sound': False, 'image_urls': ['https://img.test/a.png'],
    }


def test_bytedance_sends_a_single_image_url(session):
    session.answer('/api/v1/jobs/createTask', ok({'taskId': 'task_bytedance_1'}))
    request = request_for('bytedance-v1-pro', image='https://img.test/a.png', options={'seed': 42})
    KieMarketProvider(API, UPLOADS, FAKE_KEY, session=session).create_task(request, None)
    body = session.sent('/api/v1/jobs/createTask')['json']
    assert body['model'] == 'bytedance/v1-pro-image-to-video' and 'callBackUrl' not in body
    assert body['input'] == {'prompt': 'a lighthouse at dusk', 'image_url': 'https://img.test/a.png',
                             'duration': '5', 'resolution': '720p', 'camera_fixed': False, 'seed': 42}


def market_record(state: str, **extra: Any) -> dict[str, Any]:
    base = {'taskId': 'task_1', 'model': 'seedream/4.5-text-to-image', 'state': state, 'param': '{"model": "x"}',
            'resultJson': None, 'failCode': None, 'failMsg': None}
    return ok({**base, **extra})


@pytest.mark.parametrize(('state', 'expected'), [('waiting', 'pending'), ('queuing', 'pending'),
                                                 ('generating', 'running'), ('paused-forever', 'running')])
def test_market_states_map_onto_task_states(session, state, expected):
    session.answer('/api/v1/jobs/recordInfo', market_record(state))
    task = KieMarketProvider(API, UPLOADS, FAKE_KEY, session=session).get_task('task_1', request_for('seedream-4-5'))
    assert (task.state, task.raw_status) == (expected, state)


@pytest.mark.parametrize(('url', 'content_type'), [
    ('https://cdn.test/a.png', 'image/png'), ('https://cdn.test/a.JPEG?x=1', 'image/jpeg'),
    ('https://cdn.test/a.jpg', 'image/jpeg'), ('https://cdn.test/a.webp', 'image/webp'),
])
def test_market_success_reads_result_json_with_content_types(session, url, content_type):
    session.answer('/api/v1/jobs/recordInfo', market_record('success', resultJson=json.dumps({'resultUrls': [url]})))
    task = KieMarketProvider(API, UPLOADS, FAKE_KEY, session=session).get_task('task_1', request_for('seedream-4-5'))
    assert task.state == 'succeeded'
    assert [(o.url, o.content_type) for o in task.outputs] == [(url, content_type)]


def test_video_results_without_an_extension_default_to_mp4():
    assert content_type_for('https://cdn.test/video?id=1', 'video/mp4') == 'video/mp4'
    assert content_type_for('https://cdn.test/a.mp4') == 'video/mp4'
    assert content_type_for('https://cdn.test/blob') is None


@pytest.mark.parametrize(('fail_code', 'fail_msg', 'job_code'), [
    ('500', 'Internal server error', 'PROVIDER_UNAVAILABLE'),
    ('501', 'Generation failed', 'GENERATION_FAILED'),
    ('422', 'The image violates content policies', 'CONTENT_POLICY'),
    (None, None, 'GENERATION_FAILED'),
])
def test_market_failures_carry_a_job_error(session, fail_code, fail_msg, job_code):
    session.answer('/api/v1/jobs/recordInfo', market_record('fail', failCode=fail_code, failMsg=fail_msg))
    task = KieMarketProvider(API, UPLOADS, FAKE_KEY, session=session).get_task('task_1', request_for('seedream-4-5'))
    assert task.state == 'failed' and task.failure.code == job_code
    assert task.failure.provider_code == fail_code
    assert not fail_msg or fail_msg.lower() == 'generation failed' or fail_msg in task.failure.message


def test_a_success_without_results_is_retried(session):
    session.answer('/api/v1/jobs/recordInfo', market_record('success', resultJson='{"resultObject": {}}'))
    with pytest.raises(ProviderUnavailableError):
        KieMarketProvider(API, UPLOADS, FAKE_KEY, session=session).get_task('task_1', request_for('seedream-4-5'))


@pytest.mark.parametrize(('body', 'claimed'), [
    ({'code': 200, 'msg': 'Playground task completed successfully.', 'data': {'taskId': 't1', 'state': 'success'}},
     'succeeded'),
    ({'code': 501, 'msg': 'Playground task failed.', 'data': {'taskId': 't1', 'state': 'fail', 'failCode': '500'}},
     'failed'),
    ({'code': 501, 'msg': 'Playground task failed.', 'data': {'taskId': 't1'}}, 'failed'),
    ({'code': 200, 'msg': 'ok', 'data': {'taskId': 't1'}}, 'succeeded'),
    # The flat record without the envelope, as integrations have received it
    ({'taskId': 't1', 'state': 'success', 'resultJson': '{"resultUrls": ["https://cdn.test/a.png"]}'}, 'succeeded'),
    ({'taskId': 't1', 'state': 'fail', 'failMsg': 'Generation failed'}, 'failed'),
    ({'taskId': 't1', 'state': 'generating'}, 'running'),
])
def test_market_callbacks_become_hints(body, claimed):
    hint = KieMarketProvider(API, UPLOADS, FAKE_KEY).parse_callback(body, {})
    assert (hint.task_id, hint.claimed_state) == ('t1', claimed)


def test_parse_url_list_tolerates_every_shape():
    assert parse_url_list(None) == [] and parse_url_list('') == [] and parse_url_list([None, 'u']) == ['u']
    assert parse_url_list('["a", "b"]') == ['a', 'b']
    assert parse_url_list("[a, 'b']") == ['a', 'b']


# --- Catalog entries of the Kie models --------------------------------------------------------------------------


@pytest.mark.parametrize(('fields', 'field', 'words'), [
    ({'model': 'flux-2-pro', 'prompt': 'x', 'aspect_ratio': '16:9'}, 'resolution', ['requires resolution', '1K, 2K']),
    ({'model': 'flux-2-pro', 'prompt': 'x', 'options': {'resolution': '2K'}}, 'aspect_ratio',
     ['requires aspect_ratio']),
    ({'model': 'flux-2-pro', 'prompt': 'x', 'aspect_ratio': '21:9', 'options': {'resolution': '1K'}}, 'aspect_ratio',
     ['21:9']),
    ({'model': 'veo-3-1', 'prompt': 'x', 'options': {'seeds': 5}}, 'seeds', ['10000', '99999']),
    ({'model': 'veo-3-1', 'prompt': 'x', 'aspect_ratio': '4:3'}, 'aspect_ratio', ['16:9, 9:16, Auto']),
    ({'model': 'veo-3-1', 'prompt': 'x', 'options': {'resolution': '4K'}}, 'resolution', ['720p, 1080p']),
    ({'model': 'veo-3-1', 'prompt': '', 'image': 'https://img.test/a.png'}, 'prompt', ['prompt is required']),
    ({'model': 'veo-3-1-fast', 'prompt': 'x', 'reference_images': ['https://img.test/a.png'] * 4},
     'reference_images', ['1 to 3']),
    ({'model': 'kie-kling-2-6', 'prompt': 'x', 'duration': 7}, 'duration', ['5, 10']),
    ({'model': 'kie-kling-2-6', 'prompt': 'x', 'image': 'https://img.test/a.png', 'aspect_ratio': '1:1'},
     'aspect_ratio', ['not accepted']),
    ({'model': 'kie-kling-2-6', 'prompt': 'x', 'options': {'sound': 'yes'}}, 'sound', ['true or false']),
    ({'model': 'bytedance-v1-pro', 'prompt': 'x'}, 'image', ['image-to-video']),
    ({'model': 'seedream-4-5', 'prompt': 'x', 'image': 'https://img.test/a.png'}, 'image', ['text-to-image']),
    ({'model': 'seedream-4-5', 'prompt': 'x', 'options': {'quality': 'ultra'}}, 'quality', ['basic, high']),
])
def test_the_catalog_refuses_bad_kie_requests_with_clear_422s(fields, field, words):
    with pytest.raises(InvalidParametersError) as caught:
        catalog.resolve(JobRequest(**fields))
    assert caught.value.http_status == 422
    assert caught.value.details['field'] == field
    assert all(word in caught.value.message for word in words), caught.value.message


@pytest.mark.parametrize(('fields', 'mode', 'credits'), [
    ({'model': 'veo-3-1'}, 't2v', 100),
    ({'model': 'veo-3-1', 'reference_images': ['https://img.test/a.png']}, 'ref2v', 30),
    ({'model': 'veo-3-1-fast', 'image': 'https://img.test/a.png', 'end_image': 'https://img.test/b.png'}, 'flf2v', 30),
    ({'model': 'kie-kling-2-6', 'duration': 10, 'options': {'sound': True}}, 't2v', 100),
    ({'model': 'kie-kling-2-6', 'image': 'https://img.test/a.png'}, 'i2v', 25),
    ({'model': 'seedream-4-5'}, 't2i', 8),
    ({'model': 'flux-2-pro', 'aspect_ratio': '1:1', 'options': {'resolution': '2K'}}, 't2i', 12),
    ({'model': 'bytedance-v1-pro', 'image': 'https://img.test/a.png', 'options': {'resolution': '1080p'}}, 'i2v', 60),
])
def test_kie_models_resolve_and_price_from_the_catalog(fields, mode, credits):
    resolved = catalog.resolve(JobRequest(prompt='a lighthouse', **fields))
    assert (resolved.mode, resolved.credits) == (mode, credits)


def test_every_kie_model_names_a_provider_model_for_each_of_its_modes():
    kie_models = [spec for spec in catalog.all_models() if spec.provider.startswith('kie-')]
    assert {spec.id for spec in kie_models} >= {'veo-3-1', 'veo-3-1-fast', 'kie-kling-2-6', 'seedream-4-5',
                                                'flux-2-pro', 'bytedance-v1-pro'}
    for spec in kie_models:
        modes = spec.raw.get('provider_modes', {})
        assert set(modes) <= set(spec.modes), spec.id
        assert spec.provider_model
        public = spec.public_view()
        assert 'provider_model' not in public and 'provider_modes' not in public
