"""The real Kie adapters (Veo 3.1 and Market) against the local Kie simulator over loopback HTTP.

Requests are built through the real catalog, as the job pipeline builds them. Every wait is bounded and
generation takes a fraction of a second, so the file stays fast.
"""

from __future__ import annotations

import base64
import io
import json
import time
from typing import Any, Callable, Iterator

import pytest
import requests
from support import Receiver
from vidgen import catalog
from vidgen.errors import (
    CallbackRejectedError,
    GenerationFailedError,
    ProviderAuthError,
    ProviderContentPolicyError,
    ProviderNotFoundError,
    ProviderQuotaError,
    ProviderRejectedError,
    ProviderThrottledError,
    ProviderUnavailableError,
    UnplayableResultError,
)
from vidgen.media.inspect import inspect
from vidgen.models import JobRequest
from vidgen.providers.base import GenerationRequest, ImageInput, ProviderTask
from vidgen.providers.kie_market import KieMarketProvider
from vidgen.providers.kie_veo import KieVeoProvider
from vidgen_local.images import png_data_uri
from vidgen_local.simulators.faults import FaultPlan
from vidgen_local.simulators.kie import KieSimConfig, KieSimulator, _png

GENERATION_SECONDS = 0.3
WAIT_SECONDS = 5.0
FAST_TIMEOUT = (1.0, 2.0)
HMAC_KEY = 'sim-test-fake-hmac'
PNG = _png(7)
PNG_URI = 'data:image/png;base64,' + base64.b64encode(PNG).decode()
# Big enough for the image rules of the Kling-based Market models (at least 300 px a side).
PHOTO_URI = png_data_uri(320, 320)


# --- fixtures and helpers ----------------------------------------------------------------------------------------


@pytest.fixture
def start_sim() -> Iterator[Callable[..., KieSimulator]]:
    started: list[KieSimulator] = []

    def start(**config: Any) -> KieSimulator:
        config.setdefault('generation_seconds', GENERATION_SECONDS)
        config.setdefault('result_bytes', 64 * 1024)
        config.setdefault('hd_ready_after_seconds', 0.3)
        config.setdefault('callback_retry_seconds', (0.1,))
        sim = KieSimulator(KieSimConfig(**config))
        sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def sim(start_sim) -> KieSimulator:
    return start_sim()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(path='/v1/callbacks/kie/job-1')
    yield server
    server.close()


def veo(sim: KieSimulator, **kwargs: Any) -> KieVeoProvider:
    kwargs.setdefault('timeout', FAST_TIMEOUT)
    return KieVeoProvider(sim.base_url, sim.base_url, kwargs.pop('api_key', sim.config.api_key), **kwargs)


def market(sim: KieSimulator, **kwargs: Any) -> KieMarketProvider:
    kwargs.setdefault('timeout', FAST_TIMEOUT)
    return KieMarketProvider(sim.base_url, sim.base_url, kwargs.pop('api_key', sim.config.api_key), **kwargs)


def request_for(model: str, prompt: str = 'a lighthouse at dusk', **fields: Any) -> GenerationRequest:
    job = JobRequest(model=model, prompt=prompt, **fields)
    resolved = catalog.resolve(job)
    return GenerationRequest(
        job_id=f'job-{time.monotonic_ns()}', model=model, provider_model=resolved.model.provider_model_for(resolved.mode),
        kind=resolved.mode, prompt=prompt, image=ImageInput(job.image) if job.image else None,
        end_image=ImageInput(job.end_image) if job.end_image else None,
        reference_images=tuple(ImageInput(value) for value in job.reference_images or ()), params=resolved.params,
        provider_params=resolved.model.provider_params,
    )


def wait_terminal(provider: Any, task_id: str, request: GenerationRequest,
                  timeout: float = WAIT_SECONDS) -> tuple[ProviderTask, list[str]]:
    """Poll until the task ends; returns it and every raw status seen on the way."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = provider.get_task(task_id, request)
        if not seen or seen[-1] != task.raw_status:
            seen.append(task.raw_status)
        if task.is_terminal:
            return task, seen
        time.sleep(0.05)
    raise AssertionError(f'task {task_id} did not finish within {timeout} s; saw {seen}')


# --- Veo ---------------------------------------------------------------------------------------------------------


def test_veo_text_to_video_succeeds_and_calls_back_once(sim, receiver):
    # Given
    provider = veo(sim)
    request = request_for('veo-3-1', aspect_ratio='9:16')

    # When
    task_id = provider.create_task(request, receiver.url)
    task, seen = wait_terminal(provider, task_id, request)

    # Then the task went 0 -> 1, its one video downloads, and one callback told us about it
    assert task_id.startswith('veo_task_')
    assert seen[0] == 'successFlag=0' and seen[-1] == 'successFlag=1'
    assert task.state == 'succeeded' and len(task.outputs) == 1 and task.outputs[0].content_type == 'video/mp4'
    video = requests.get(task.outputs[0].url, timeout=FAST_TIMEOUT)
    assert video.status_code == 200 and len(video.content) >= 64 * 1024 and video.content[4:8] == b'ftyp'
    assert inspect(io.BytesIO(video.content), 'video').media['duration_seconds'] == 8.0  # Veo's clip length
    calls = receiver.wait_for(1, WAIT_SECONDS)
    time.sleep(0.2)  # a second callback would have arrived by now
    assert len(receiver.calls) == 1
    headers, body, _ = calls[0]
    assert body['code'] == 200 and body['data']['info']['resultUrls'] == [task.outputs[0].url]
    assert body['data']['info']['originUrls'] and body['data']['fallbackFlag'] is False
    hint = provider.parse_callback(body, headers)
    assert (hint.task_id, hint.claimed_state) == (task_id, 'succeeded')
    assert sim.tasks()[0]['body']['aspect_ratio'] == sim.tasks()[0]['body']['aspectRatio'] == '9:16'


def test_veo_1080p_waits_for_the_hd_render(sim):
    provider = veo(sim)
    request = request_for('veo-3-1-fast', options={'resolution': '1080p'})

    task, seen = wait_terminal(provider, provider.create_task(request, None), request)

    assert '1080p-pending' in seen  # the 720p video was done before the 1080p one was
    assert task.outputs[0].url.endswith('/1080p.mp4')
    assert requests.get(task.outputs[0].url, timeout=FAST_TIMEOUT).status_code == 200
    assert sim.stats['hd_queries'] >= 2


def test_veo_reference_video_runs_on_veo3_fast_and_image_to_video_sends_one_frame(sim):
    provider = veo(sim)
    reference = request_for('veo-3-1', reference_images=['https://img.test/a.png', 'https://img.test/b.png'])
    start_frame = request_for('veo-3-1', image='https://img.test/a.png')

    provider.create_task(reference, None)
    provider.create_task(start_frame, None)

    bodies = [task['body'] for task in sim.tasks()]
    assert [(b['model'], b['generationType'], len(b['imageUrls'])) for b in bodies] == [
        ('veo3_fast', 'REFERENCE_2_VIDEO', 2), ('veo3', 'FIRST_AND_LAST_FRAMES_2_VIDEO', 1)]


@pytest.mark.parametrize(('tag', 'flag', 'job_code', 'callback_code'), [
    ('[sim:content-policy]', 2, 'CONTENT_POLICY', 400),
    ('[sim:fail]', 3, 'GENERATION_FAILED', 501),
    ('[sim:fail=500]', 3, 'PROVIDER_UNAVAILABLE', 500),
])
def test_failed_veo_tasks_end_with_a_job_error_and_a_failure_callback(sim, receiver, tag, flag, job_code,
                                                                      callback_code):
    provider = veo(sim)
    request = request_for('veo-3-1', prompt=f'a storm {tag}')

    task, seen = wait_terminal(provider, provider.create_task(request, receiver.url), request)

    assert seen[-1] == f'successFlag={flag}'
    assert task.state == 'failed' and task.failure.code == job_code
    assert task.failure.provider_code == str(callback_code)
    _, body, _ = receiver.wait_for(1, WAIT_SECONDS)[0]
    assert body['code'] == callback_code and body['data'] == {'taskId': task.task_id, 'fallbackFlag': False}
    assert provider.parse_callback(body, {}).claimed_state == 'failed'


# --- Market ------------------------------------------------------------------------------------------------------


def test_market_text_to_image_succeeds_with_a_real_png(sim, receiver):
    provider = market(sim)
    request = request_for('seedream-4-5', aspect_ratio='16:9', options={'quality': 'high'})

    task_id = provider.create_task(request, receiver.url)
    task, seen = wait_terminal(provider, task_id, request)

    assert seen[0] == 'waiting' and seen[-1] == 'success' and 'generating' in seen
    assert task.outputs[0].content_type == 'image/png'
    image = requests.get(task.outputs[0].url, timeout=FAST_TIMEOUT)
    assert image.headers['Content-Type'] == 'image/png' and image.content.startswith(b'\x89PNG\r\n\x1a\n')
    _, body, _ = receiver.wait_for(1, WAIT_SECONDS)[0]
    assert (body['code'], body['msg']) == (200, 'Playground task completed successfully.')
    assert body['data']['state'] == 'success' and json.loads(body['data']['param'])['model'] == request.provider_model
    assert json.loads(body['data']['resultJson']) == {'resultUrls': [task.outputs[0].url]}
    assert provider.parse_callback(body, {}).claimed_state == 'succeeded'


def test_market_records_are_null_until_they_complete(sim):
    provider = market(sim)
    request = request_for('flux-2-pro', aspect_ratio='1:1', options={'resolution': '1K'})
    task_id = provider.create_task(request, None)

    early = requests.get(f'{sim.base_url}/api/v1/jobs/recordInfo', params={'taskId': task_id}, timeout=FAST_TIMEOUT,
                         headers={'Authorization': f'Bearer {sim.config.api_key}'}).json()['data']
    wait_terminal(provider, task_id, request)
    late = requests.get(f'{sim.base_url}/api/v1/jobs/recordInfo', params={'taskId': task_id}, timeout=FAST_TIMEOUT,
                        headers={'Authorization': f'Bearer {sim.config.api_key}'}).json()['data']

    assert {early[k] for k in ('resultJson', 'failCode', 'failMsg', 'costTime', 'completeTime')} == {None}
    assert isinstance(early['param'], str) and isinstance(late['resultJson'], str)
    assert late['completeTime'] >= late['createTime'] and late['updateTime'] >= early['updateTime']


def test_market_fail_carries_fail_code_and_a_501_callback(sim, receiver):
    provider = market(sim)
    request = request_for('kie-kling-2-6', prompt='a comet [sim:fail]', duration=10)

    task, seen = wait_terminal(provider, provider.create_task(request, receiver.url), request)

    assert seen[-1] == 'fail'
    assert (task.failure.code, task.failure.provider_code) == ('GENERATION_FAILED', '501')
    _, body, _ = receiver.wait_for(1, WAIT_SECONDS)[0]
    assert (body['code'], body['msg']) == (501, 'Playground task failed.')
    assert body['data']['failCode'] == '501' and body['data']['resultJson'] is None
    assert provider.parse_callback(body, {}).claimed_state == 'failed'


@pytest.mark.parametrize(('model', 'fields'), [
    ('kie-kling-2-6', {'aspect_ratio': '1:1', 'options': {'sound': True}}),
    ('kie-kling-2-6', {'image': PHOTO_URI}),
    ('bytedance-v1-pro', {'image': PHOTO_URI, 'options': {'resolution': '1080p', 'camera_fixed': True, 'seed': 7}}),
    ('seedream-4-5', {}),
    ('flux-2-pro', {'aspect_ratio': '3:2', 'options': {'resolution': '2K'}}),
])
def test_every_market_catalog_entry_is_accepted_by_the_market(sim, model, fields):
    # Given a request built from the catalog's data only (model id per mode, renamed and retyped inputs)
    provider = market(sim)
    request = request_for(model, **fields)

    # When / Then the simulator's per-model input checks accept it and the task finishes
    task, _ = wait_terminal(provider, provider.create_task(request, None), request)
    assert task.state == 'succeeded'
    expected = 'image/png' if request.kind == 't2i' else 'video/mp4'
    assert task.outputs[0].content_type == expected


# --- Uploads -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(('threshold', 'route'), [(1_000_000, 'base64'), (16, 'stream')])
def test_a_data_image_is_uploaded_then_used_by_the_task(sim, threshold, route):
    provider = veo(sim, stream_threshold_bytes=threshold)
    request = request_for('veo-3-1', image=PNG_URI)

    task, _ = wait_terminal(provider, provider.create_task(request, None), request)

    assert task.state == 'succeeded'
    assert sim.stats[f'uploads.{route}'] == 1 and sim.stats['uploads.base64'] + sim.stats['uploads.stream'] == 1
    image_url = sim.tasks()[0]['body']['imageUrls'][0]
    assert image_url.startswith(f'{sim.base_url}/files/') and image_url.endswith(f'{request.job_id}-start.png')
    assert requests.get(image_url, timeout=FAST_TIMEOUT).content == PNG


def test_download_url_and_credit_endpoints(sim):
    provider = market(sim)
    auth = {'Authorization': f'Bearer {sim.config.api_key}'}
    request = request_for('seedream-4-5')
    before = requests.get(f'{sim.base_url}/api/v1/chat/credit', headers=auth, timeout=FAST_TIMEOUT).json()['data']

    task, _ = wait_terminal(provider, provider.create_task(request, None), request)
    after = requests.get(f'{sim.base_url}/api/v1/chat/credit', headers=auth, timeout=FAST_TIMEOUT).json()['data']
    link = requests.post(f'{sim.base_url}/api/v1/common/download-url', json={'url': task.outputs[0].url},
                         headers=auth, timeout=FAST_TIMEOUT).json()
    foreign = requests.post(f'{sim.base_url}/api/v1/common/download-url', json={'url': 'https://elsewhere.test/x'},
                            headers=auth, timeout=FAST_TIMEOUT).json()

    assert before - after == sim.config.credits_per_task
    expires = int(link['data'].rsplit('expires=', 1)[1])
    assert link['code'] == 200 and 19 * 60 < expires - time.time() <= 20 * 60
    assert requests.get(link['data'], timeout=FAST_TIMEOUT).status_code == 200
    assert foreign['code'] == 422


def test_results_expire_after_their_ttl(start_sim):
    sim = start_sim(result_ttl_seconds=0.3)
    provider = market(sim)
    request = request_for('seedream-4-5')
    task, _ = wait_terminal(provider, provider.create_task(request, None), request)

    assert requests.get(task.outputs[0].url, timeout=FAST_TIMEOUT).status_code == 200
    time.sleep(0.4)
    assert requests.get(task.outputs[0].url, timeout=FAST_TIMEOUT).status_code == 404


# --- Provider errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize('in_http_200', [True, False], ids=['code-in-200', 'code-as-status'])
@pytest.mark.parametrize(('setup', 'prompt', 'expected'), [
    ({'api_key': 'not-the-sim-key'}, 'a fox', ProviderAuthError),
    ({}, 'a fox [sim:quota]', ProviderQuotaError),
    ({'credits': 5}, 'a fox', ProviderQuotaError),
    ({}, 'a fox [sim:code=422]', ProviderRejectedError),
    ({'rate_limit_per_10s': 0}, 'a fox', ProviderThrottledError),
    ({}, 'a fox [sim:code=451]', ProviderRejectedError),
    ({}, 'a fox [sim:code=455]', ProviderUnavailableError),
    ({}, 'a fox [sim:code=500]', ProviderUnavailableError),
    ({}, 'a fox [sim:code=501]', GenerationFailedError),
    ({}, 'a fox [sim:code=505]', ProviderRejectedError),
    ({}, 'a fox [sim:reject-create]', ProviderContentPolicyError),
], ids=['401', '402-tag', '402-credits', '422', '429', '451', '455', '500', '501', '505', '400-policy'])
def test_each_kie_error_reaches_the_adapter_as_its_typed_error(start_sim, in_http_200, setup, prompt, expected):
    # Given a simulator answering errors inside an HTTP 200 or as the HTTP status
    setup = dict(setup)  # the parameter is shared by both envelope styles
    api_key = setup.pop('api_key', None)
    sim = start_sim(errors_in_http_200=in_http_200, **setup)
    provider = veo(sim, **({'api_key': api_key} if api_key else {}))

    # When / Then
    with pytest.raises(expected) as caught:
        provider.create_task(request_for('veo-3-1', prompt=prompt), None)
    message = str(caught.value)
    assert 'Kie.ai' in message and sim.config.api_key not in message and 'not-the-sim-key' not in message
    assert sim.tasks() == []


def test_an_unreachable_uploaded_image_is_451(sim):
    request = request_for('veo-3-1', image=f'{sim.base_url}/files/vidgen/inputs/never-uploaded.png')
    with pytest.raises(ProviderRejectedError) as caught:
        veo(sim).create_task(request, None)
    assert caught.value.provider_code == 451


def test_a_second_create_past_the_rate_limit_is_throttled(start_sim):
    sim = start_sim(rate_limit_per_10s=1)
    provider = market(sim)
    provider.create_task(request_for('seedream-4-5'), None)
    with pytest.raises(ProviderThrottledError):
        provider.create_task(request_for('seedream-4-5'), None)


def test_status_errors_unknown_tasks_and_queued_codes(sim):
    provider = veo(sim)
    request = request_for('veo-3-1')
    with pytest.raises(ProviderNotFoundError):
        provider.get_task('veo_task_unknown', request)
    with pytest.raises(ProviderNotFoundError):
        market(sim).get_task('task_unknown', request_for('seedream-4-5'))
    task_id = provider.create_task(request, None)
    sim.queue_error(455, stage='status')
    with pytest.raises(ProviderUnavailableError):
        provider.get_task(task_id, request)
    assert provider.get_task(task_id, request).state in ('running', 'succeeded')


@pytest.mark.parametrize(('fault', 'expected'), [
    ('create_throttle', ProviderThrottledError),
    ('create_server_error', ProviderUnavailableError),
    ('create_reset', ProviderUnavailableError),
    ('create_malformed', ProviderUnavailableError),
])
def test_transport_faults_on_create_become_retryable_errors(start_sim, fault, expected):
    sim = start_sim(faults=FaultPlan(**{fault: 1.0}))
    with pytest.raises(expected) as caught:
        market(sim).create_task(request_for('seedream-4-5'), None)
    assert caught.value.retryable
    assert sim.config.faults.injected[fault] == 1


def test_a_create_answered_too_late_is_unavailable_but_was_carried_out(start_sim):
    sim = start_sim(faults=FaultPlan(create_timeout=1.0, timeout_sleep_seconds=1.0))
    with pytest.raises(ProviderUnavailableError):
        market(sim, timeout=(1.0, 0.3)).create_task(request_for('seedream-4-5'), None)
    assert len(sim.tasks()) == 1  # the ambiguous create: why the pipeline re-checks before creating again


def test_status_faults_are_retryable(start_sim):
    sim = start_sim(faults=FaultPlan(status_server_error=1.0))
    provider = veo(sim)
    request = request_for('veo-3-1')
    task_id = provider.create_task(request, None)
    with pytest.raises(ProviderUnavailableError):
        provider.get_task(task_id, request)


def test_a_download_can_break_half_way(start_sim):
    sim = start_sim(faults=FaultPlan(download_fail_midway=1.0))
    provider = veo(sim)
    request = request_for('veo-3-1')
    task, _ = wait_terminal(provider, provider.create_task(request, None), request)
    with pytest.raises(requests.RequestException):
        requests.get(task.outputs[0].url, timeout=FAST_TIMEOUT).raise_for_status()
    assert sim.stats['faults.download_fail_midway'] == 1


@pytest.mark.parametrize(('model', 'kind'), [('veo-3-1', 'video'), ('seedream-4-5', 'image')])
def test_the_undecodable_fault_serves_bytes_that_do_not_decode(start_sim, model, kind):
    sim = start_sim(faults=FaultPlan(download_undecodable=1.0))
    provider = veo(sim) if model == 'veo-3-1' else market(sim)
    request = request_for(model)
    task, _ = wait_terminal(provider, provider.create_task(request, None), request)
    body = requests.get(task.outputs[0].url, timeout=FAST_TIMEOUT).content
    with pytest.raises(UnplayableResultError):
        inspect(io.BytesIO(body), kind)
    assert sim.stats['faults.download_undecodable'] == 1
    sim.config.faults.download_undecodable = 0.0
    assert inspect(io.BytesIO(requests.get(task.outputs[0].url, timeout=FAST_TIMEOUT).content), kind).thumbnail


# --- Callbacks ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize('provider_factory', [veo, market], ids=['veo', 'market'])
def test_signed_callbacks_verify_with_the_key_and_fail_without_it(start_sim, receiver, provider_factory):
    sim = start_sim(webhook_hmac_key=HMAC_KEY)
    provider = provider_factory(sim, webhook_hmac_key=HMAC_KEY)
    model = 'veo-3-1' if provider_factory is veo else 'seedream-4-5'
    task_id = provider.create_task(request_for(model), receiver.url)

    headers, body, _ = receiver.wait_for(1, WAIT_SECONDS)[0]

    assert headers['X-Webhook-Timestamp'].isdigit() and headers['X-Webhook-Signature']
    assert provider.parse_callback(body, headers).task_id == task_id
    with pytest.raises(CallbackRejectedError):
        provider_factory(sim, webhook_hmac_key='a-different-key').parse_callback(body, headers)
    with pytest.raises(CallbackRejectedError):
        provider.parse_callback({**body, 'data': {**body['data'], 'taskId': 'someone-else'}}, headers)


def test_dropped_callbacks_leave_polling_as_the_safety_net(sim, receiver):
    provider = veo(sim)
    request = request_for('veo-3-1', prompt='a quiet night [sim:drop-callbacks]')

    task, _ = wait_terminal(provider, provider.create_task(request, receiver.url), request)
    time.sleep(0.2)

    assert task.state == 'succeeded' and receiver.calls == []
    assert sim.stats['callbacks_dropped'] == 1


def test_duplicate_callbacks_arrive_twice_with_the_same_body(start_sim, receiver):
    sim = start_sim(faults=FaultPlan(callback_duplicate=1.0))
    market(sim).create_task(request_for('seedream-4-5'), receiver.url)

    calls = receiver.wait_for(2)

    assert len(calls) == 2 and calls[0][1] == calls[1][1]
    assert sim.stats['callbacks_duplicated'] == 1


def test_callbacks_to_other_hosts_are_never_sent(sim):
    veo(sim).create_task(request_for('veo-3-1'), 'https://example.com/hook')
    deadline = time.monotonic() + WAIT_SECONDS
    while sim.stats['callbacks_blocked'] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sim.stats['callbacks_blocked'] == 1 and sim.stats['callbacks_sent'] == 0
