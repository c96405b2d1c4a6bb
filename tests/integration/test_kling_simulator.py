"""The real Kling adapter against the local Kling simulator over loopback HTTP.

Every wait is bounded; generation takes a fraction of a second so the whole file stays fast.
"""

from __future__ import annotations

import base64
import io
import struct
import threading
import time
import zlib
from typing import Any, Callable, Iterator

import jwt
import pytest
import requests
from support import Receiver
from vidgen.errors import (
    ProviderAuthError,
    ProviderContentPolicyError,
    ProviderQuotaError,
    ProviderRejectedError,
    ProviderThrottledError,
    ProviderUnavailableError,
    UnplayableResultError,
)
from vidgen.media.inspect import inspect
from vidgen.providers.base import GenerationRequest, ImageInput, ProviderTask
from vidgen.providers.http import HttpReply
from vidgen.providers.kling import KlingProvider, error_for_reply, make_token
from vidgen_local.simulators.faults import FaultPlan
from vidgen_local.simulators.kling import KlingSimConfig, KlingSimulator

# The simulator's fake keys are shorter than Kling's real 32-character ones; pyjwt warns about that.
pytestmark = pytest.mark.filterwarnings('ignore::jwt.warnings.InsecureKeyLengthWarning')

GENERATION_SECONDS = 0.3
WAIT_SECONDS = 5.0
FAST_TIMEOUT = (1.0, 2.0)


# --- fixtures and helpers -----------------------------------------------------------------------------


@pytest.fixture
def start_sim() -> Iterator[Callable[..., KlingSimulator]]:
    started: list[KlingSimulator] = []

    def start(**config: Any) -> KlingSimulator:
        config.setdefault('generation_seconds', GENERATION_SECONDS)
        config.setdefault('result_bytes', 64 * 1024)
        sim = KlingSimulator(KlingSimConfig(**config))
        sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def sim(start_sim) -> KlingSimulator:
    return start_sim()


def provider_for(sim: KlingSimulator, *, secret_key: str | None = None, access_key: str | None = None,
                 timeout: tuple[float, float] = FAST_TIMEOUT) -> KlingProvider:
    return KlingProvider(sim.base_url, access_key or sim.config.access_key, secret_key or sim.config.secret_key,
                         timeout=timeout)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(path='/v1/callbacks/kling/job?token=t')
    yield server
    server.close()


def accepted_bodies(receiver: Receiver, count: int) -> list[Any]:
    """The first `count` callbacks our endpoint accepted, as decoded JSON."""
    return [call.body for call in receiver.wait_for(count, WAIT_SECONDS, accepted_only=True)]


def make_request(kind: str = 't2v', *, job_id: str = 'job-1', prompt: str = 'a lighthouse at dusk',
                 model: str = 'kling-v2-6', **fields: Any) -> GenerationRequest:
    params = fields.pop('params', None) or {'duration': 5, 'mode': 'std', **({'aspect_ratio': '16:9'}
                                                                             if kind == 't2v' else {})}
    return GenerationRequest(job_id=job_id, model=model, provider_model=model, kind=kind, prompt=prompt,
                             params=params, **fields)


def png_data_uri(width: int = 320, height: int = 320) -> str:
    """A real (grey, blank) PNG that passes Kling's size checks."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))

    raw = b''.join(b'\x00' + b'\x80' * width for _ in range(height))
    png = (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0))
           + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))
    return 'data:image/png;base64,' + base64.b64encode(png).decode()


def wait_until_terminal(provider: KlingProvider, task_id: str, request: GenerationRequest,
                        seen: list[str] | None = None) -> ProviderTask:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        task = provider.get_task(task_id, request)
        if seen is not None and (not seen or seen[-1] != task.state):
            seen.append(task.state)
        if task.is_terminal:
            return task
        time.sleep(0.03)
    raise AssertionError(f'task {task_id} did not finish within {WAIT_SECONDS}s')


def wait_for_stat(sim: KlingSimulator, name: str, value: int) -> int:
    # The receiver records a callback before the simulator has read the answer and counted it.
    deadline = time.monotonic() + WAIT_SECONDS
    while sim.stats[name] < value and time.monotonic() < deadline:
        time.sleep(0.01)
    return sim.stats[name]


def raw_call(sim: KlingSimulator, method: str, path: str, *, token: str | None = None, body: Any = None,
             headers: dict[str, str] | None = None) -> requests.Response:
    token = token if token is not None else make_token(sim.config.access_key, sim.config.secret_key)
    all_headers = {'Authorization': f'Bearer {token}', **(headers or {})}
    return requests.request(method, f'{sim.base_url}{path}', json=body, headers=all_headers, timeout=FAST_TIMEOUT)


# --- the happy paths ----------------------------------------------------------------------------------


def test_text_to_video_runs_to_a_downloadable_result(sim: KlingSimulator) -> None:
    provider = provider_for(sim)
    request = make_request()

    task_id = provider.create_task(request, None)
    seen: list[str] = []
    task = wait_until_terminal(provider, task_id, request, seen)

    assert task_id.isdigit()
    assert seen == ['pending', 'running', 'succeeded']
    assert len(task.outputs) == 1 and task.outputs[0].content_type == 'video/mp4'
    download = requests.get(task.outputs[0].url, timeout=FAST_TIMEOUT)
    assert download.status_code == 200
    assert download.headers['Content-Type'] == 'video/mp4'
    assert int(download.headers['Content-Length']) == len(download.content) == 64 * 1024
    # a real MP4 of the request's shape and length, padded to the configured size
    facts = inspect(io.BytesIO(download.content), 'video').media
    assert (facts['width'], facts['height'], facts['duration_seconds']) == (480, 270, 5.0)
    sent = sim.tasks()[0]['request']
    assert sent['duration'] == '5' and sent['aspect_ratio'] == '16:9' and sent['external_task_id'] == 'job-1'


def test_task_object_follows_the_wire_format(sim: KlingSimulator) -> None:
    provider = provider_for(sim)
    task_id = provider.create_task(make_request(), None)
    wait_until_terminal(provider, task_id, make_request())

    reply = raw_call(sim, 'GET', f'/v1/videos/text2video/{task_id}').json()

    assert reply['code'] == 0 and reply['message'] == 'SUCCEED' and len(reply['request_id']) == 36
    data = reply['data']
    assert data['task_status'] == 'succeed' and data['task_status_msg'] == ''
    assert data['task_info'] == {'external_task_id': 'job-1'}
    assert data['updated_at'] > data['created_at'] > 1_600_000_000_000  # milliseconds
    video = data['task_result']['videos'][0]
    assert set(video) == {'id', 'url', 'watermark_url', 'duration'} and video['duration'] == '5.0'
    # the same task by our external id
    assert raw_call(sim, 'GET', '/v1/videos/text2video/job-1').json()['data']['task_id'] == task_id


def test_image_to_video_with_start_and_end_frames(sim: KlingSimulator) -> None:
    provider = provider_for(sim)
    request = make_request('flf2v', model='kling-v2-1', prompt='', params={'duration': 5, 'mode': 'pro'},
                           image=ImageInput(png_data_uri()), end_image=ImageInput('https://img.example.com/end.png'))

    task = wait_until_terminal(provider, provider.create_task(request, None), request)

    assert task.state == 'succeeded'
    snapshot = sim.tasks()[0]
    assert snapshot['endpoint'] == 'image2video'
    assert snapshot['request']['image'] == png_data_uri().split(',', 1)[1]
    assert snapshot['request']['image_tail'] == 'https://img.example.com/end.png'
    assert 'aspect_ratio' not in snapshot['request']


def test_kling_v3_multi_shot_with_sound_runs_to_a_result(sim: KlingSimulator) -> None:
    provider = provider_for(sim)
    shots = [{'prompt': 'a fox wakes up', 'duration': 4}, {'prompt': 'it runs through snow', 'duration': 8}]
    request = make_request(model='kling-v3', prompt='', params={'duration': 12, 'mode': 'pro', 'aspect_ratio': '9:16',
                                                                'sound': True, 'multi_shot': shots})

    task = wait_until_terminal(provider, provider.create_task(request, None), request)

    assert task.state == 'succeeded' and task.outputs
    sent = sim.tasks()[0]['request']
    assert sent['model_name'] == 'kling-v3' and sent['duration'] == '12' and sent['sound'] == 'on'
    assert (sent['multi_shot'], sent['shot_type']) == (True, 'customize') and 'prompt' not in sent
    assert sent['multi_prompt'] == [{'index': 1, 'prompt': 'a fox wakes up', 'duration': '4'},
                                    {'index': 2, 'prompt': 'it runs through snow', 'duration': '8'}]


@pytest.mark.parametrize(('model', 'kind', 'params'), [
    ('kling-v3', 't2v', {'duration': 3, 'mode': 'std', 'aspect_ratio': '1:1', 'sound': False}),
    ('kling-v3', 'flf2v', {'duration': 15, 'mode': 'std', 'sound': False}),
    ('kling-v2-5-turbo', 't2v', {'duration': 10, 'mode': 'std', 'aspect_ratio': '16:9'}),
    ('kling-v2-5-turbo', 'flf2v', {'duration': 5, 'mode': 'pro'}),
])
def test_the_newest_models_run_their_modes(sim: KlingSimulator, model: str, kind: str, params: dict) -> None:
    images = {'image': ImageInput(png_data_uri()), 'end_image': ImageInput(png_data_uri())} if kind == 'flf2v' else {}
    request = make_request(kind, model=model, params=params, **images)
    provider = provider_for(sim)
    task = wait_until_terminal(provider, provider.create_task(request, None), request)
    assert task.state == 'succeeded'
    assert sim.tasks()[0]['request']['duration'] == str(params['duration'])


def test_end_frame_in_std_mode_is_refused_where_kling_allows_only_pro(sim: KlingSimulator) -> None:
    request = make_request('flf2v', model='kling-v2-1', params={'duration': 5, 'mode': 'std'},
                           image=ImageInput(png_data_uri()), end_image=ImageInput(png_data_uri()))
    with pytest.raises(ProviderRejectedError):
        provider_for(sim).create_task(request, None)


def test_listing_pages_through_tasks(sim: KlingSimulator) -> None:
    provider = provider_for(sim)
    ids = [provider.create_task(make_request(job_id=f'job-{n}'), None) for n in range(3)]

    first = raw_call(sim, 'GET', '/v1/videos/text2video?pageNum=1&pageSize=2').json()['data']
    second = raw_call(sim, 'GET', '/v1/videos/text2video?pageNum=2&pageSize=2').json()['data']
    bad = raw_call(sim, 'GET', '/v1/videos/text2video?pageSize=0')

    assert [t['task_id'] for t in first + second] == ids[::-1]
    assert raw_call(sim, 'GET', '/v1/videos/image2video').json()['data'] == []
    assert (bad.status_code, bad.json()['code']) == (400, 1201)


# --- failures -----------------------------------------------------------------------------------------


def test_content_policy_tag_fails_the_task_with_content_policy(sim: KlingSimulator) -> None:
    provider = provider_for(sim)
    request = make_request(prompt='a lighthouse [sim:content-policy]')

    task = wait_until_terminal(provider, provider.create_task(request, None), request)

    assert task.state == 'failed' and task.failure.code == 'CONTENT_POLICY'
    assert 'risk control' in task.failure.message  # our sentence keeps Kling's own reason
    assert task.outputs == ()


def test_fail_tag_fails_the_task_generically(sim: KlingSimulator) -> None:
    provider = provider_for(sim)
    request = make_request(prompt='a lighthouse [sim:fail]')

    task = wait_until_terminal(provider, provider.create_task(request, None), request)

    assert (task.state, task.failure.code) == ('failed', 'GENERATION_FAILED')


def test_reject_create_tag_is_a_content_policy_error(sim: KlingSimulator) -> None:
    with pytest.raises(ProviderContentPolicyError) as caught:
        provider_for(sim).create_task(make_request(prompt='[sim:reject-create] a lighthouse'), None)
    assert caught.value.provider_code == 1301
    assert sim.tasks() == []


def test_unknown_model_is_rejected(sim: KlingSimulator) -> None:
    with pytest.raises(ProviderRejectedError) as caught:
        provider_for(sim).create_task(make_request(model='kling-v9'), None)
    assert caught.value.provider_code == 1203


@pytest.mark.parametrize(('keys', 'code'), [
    ({'secret_key': 'sk-wrong-secret'}, 1002),
    ({'access_key': 'ak-unknown'}, 1002),
])
def test_bad_keys_are_an_auth_error(sim: KlingSimulator, keys: dict[str, str], code: int) -> None:
    with pytest.raises(ProviderAuthError) as caught:
        provider_for(sim, **keys).create_task(make_request(), None)
    assert caught.value.provider_code == code
    assert sim.config.secret_key not in str(caught.value)


@pytest.mark.parametrize(('claims', 'code'), [
    ({'exp': -60, 'nbf': -1900}, 1004),
    ({'exp': 1800, 'nbf': 600}, 1003),
])
def test_expired_and_premature_tokens(sim: KlingSimulator, claims: dict[str, int], code: int) -> None:
    now = int(time.time())
    token = jwt.encode({'iss': sim.config.access_key, **{k: now + v for k, v in claims.items()}},
                       sim.config.secret_key, algorithm='HS256', headers={'typ': 'JWT'})

    reply = raw_call(sim, 'POST', '/v1/videos/text2video', token=token, body={'prompt': 'x'})

    assert reply.status_code == 401
    assert set(reply.json()) == {'code', 'message', 'request_id'} and reply.json()['code'] == code
    error = error_for_reply(HttpReply(reply.status_code, reply.json(), reply.headers), creating=True)
    assert isinstance(error, ProviderAuthError) and token not in str(error)


def test_missing_or_mangled_authorization(sim: KlingSimulator) -> None:
    missing = requests.post(f'{sim.base_url}/v1/videos/text2video', json={'prompt': 'x'}, timeout=FAST_TIMEOUT)
    mangled = raw_call(sim, 'POST', '/v1/videos/text2video', token='not.a.jwt', body={'prompt': 'x'})
    assert (missing.status_code, missing.json()['code']) == (401, 1001)
    assert (mangled.status_code, mangled.json()['code']) == (401, 1002)


@pytest.mark.parametrize(('body', 'endpoint', 'status', 'code'), [
    ({'model_name': 'kling-v2-6', 'prompt': 'x', 'duration': 5}, 'text2video', 400, 1201),
    ({'model_name': 'kling-v2-6', 'prompt': 'x', 'duration': '7'}, 'text2video', 400, 1201),
    ({'model_name': 'kling-v2-6', 'prompt': 'x', 'mode': 'standard'}, 'text2video', 400, 1201),
    ({'model_name': 'kling-v2-6', 'prompt': 'x', 'aspect_ratio': '4:3'}, 'text2video', 400, 1201),
    ({'model_name': 'kling-v2-6', 'prompt': 'x', 'cfg_scale': 0.5}, 'text2video', 400, 1201),
    ({'model_name': 'kling-v2-1', 'prompt': 'x'}, 'text2video', 400, 1201),
    ({'model_name': 'kling-v2-6'}, 'text2video', 400, 1201),
    ({'model_name': 'kling-v2-6', 'prompt': 'x'}, 'image2video', 400, 1201),
    ({'model_name': 'kling-v2-6', 'image': 'https://a.example/x.png', 'aspect_ratio': '16:9'}, 'image2video', 400,
     1201),
    ({'model_name': 'kling-v2-6', 'image': 'data:image/png;base64,iVBORw0KGgo='}, 'image2video', 400, 1201),
    ({'model_name': 'kling-v2-6', 'image': 'https://a.example/x.png', 'image_tail': 'https://a.example/y.png',
      'mode': 'pro', 'camera_control': {'type': 'forward_up'}}, 'image2video', 400, 1201),
    ({'model_name': 'kling-v2-6', 'image': png_data_uri(200, 200).split(',')[1]}, 'image2video', 400, 1201),
    ({'model_name': 'kling-nope', 'prompt': 'x'}, 'text2video', 404, 1203),
    # The newest models: kling-v3's 3-15 s and multi-shot, kling-v2-5-turbo without sound
    ({'model_name': 'kling-v3', 'prompt': 'x', 'duration': '16'}, 'text2video', 400, 1201),
    ({'model_name': 'kling-v2-5-turbo', 'prompt': 'x', 'sound': 'on'}, 'text2video', 400, 1201),
    ({'model_name': 'kling-v2-5-turbo', 'prompt': 'x', 'duration': '3'}, 'text2video', 400, 1201),
    ({'model_name': 'kling-v2-6', 'prompt': 'x', 'multi_shot': True, 'shot_type': 'intelligence'}, 'text2video', 400,
     1201),
    ({'model_name': 'kling-v3', 'duration': '6', 'multi_shot': True, 'shot_type': 'customize',
      'multi_prompt': [{'index': 1, 'prompt': 'a', 'duration': '3'}, {'index': 2, 'prompt': 'b', 'duration': '4'}]},
     'text2video', 400, 1201),  # the shots last 7 s, not 6
    ({'model_name': 'kling-v3', 'duration': '6', 'multi_shot': True, 'shot_type': 'customize',
      'multi_prompt': [{'index': 2, 'prompt': 'a', 'duration': '6'}]}, 'text2video', 400, 1201),
    ({'model_name': 'kling-v3', 'duration': '6', 'multi_shot': True, 'shot_type': 'customize',
      'multi_prompt': [{'index': n, 'prompt': 'a', 'duration': '1'} for n in range(1, 8)]}, 'text2video', 400, 1201),
])
def test_validation_answers(sim: KlingSimulator, body: dict, endpoint: str, status: int, code: int) -> None:
    reply = raw_call(sim, 'POST', f'/v1/videos/{endpoint}', body=body)
    assert (reply.status_code, reply.json()['code']) == (status, code)
    assert 'data' not in reply.json() and reply.json()['message']


def test_unknown_task_is_not_found(sim: KlingSimulator) -> None:
    reply = raw_call(sim, 'GET', '/v1/videos/text2video/123456789')
    assert (reply.status_code, reply.json()['code']) == (404, 1203)


# --- limits and injected errors -----------------------------------------------------------------------


def test_concurrency_limit_throttles_until_a_task_ends(start_sim) -> None:
    sim = start_sim(max_concurrency=1)
    provider = provider_for(sim)
    first = make_request(job_id='job-a')
    task_id = provider.create_task(first, None)

    with pytest.raises(ProviderThrottledError) as caught:
        provider.create_task(make_request(job_id='job-b'), None)
    assert caught.value.provider_code == 1303

    wait_until_terminal(provider, task_id, first)
    assert provider.create_task(make_request(job_id='job-b'), None)


@pytest.mark.parametrize(('code', 'error_class'), [
    (1102, ProviderQuotaError), (1302, ProviderThrottledError), (1303, ProviderThrottledError),
    (1301, ProviderContentPolicyError), (5000, ProviderUnavailableError), (5001, ProviderUnavailableError),
    (5002, ProviderUnavailableError),
])
def test_queued_errors_reach_the_adapter_typed(sim: KlingSimulator, code: int, error_class: type) -> None:
    sim.queue_error(code)
    provider = provider_for(sim)

    with pytest.raises(error_class) as caught:
        provider.create_task(make_request(), None)

    assert caught.value.provider_code == code
    assert provider.create_task(make_request(), None)  # only the next create was affected


def test_duplicate_external_task_id_is_recovered(sim: KlingSimulator) -> None:
    provider = provider_for(sim)

    first = provider.create_task(make_request(job_id='job-dup'), None)
    again = provider.create_task(make_request(job_id='job-dup'), None)

    assert first == again
    assert len(sim.tasks()) == 1
    assert sim.stats['errors.1201'] == 1


# --- transport faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize('fault', ['create_server_error', 'create_reset', 'create_malformed', 'create_throttle'])
def test_create_faults_raise_retryable_errors(start_sim, fault: str) -> None:
    sim = start_sim(faults=FaultPlan(**{fault: 1.0}, seed=1))

    with pytest.raises((ProviderUnavailableError, ProviderThrottledError)) as caught:
        provider_for(sim).create_task(make_request(), None)

    assert caught.value.retryable
    expected = ProviderThrottledError if fault == 'create_throttle' else ProviderUnavailableError
    assert type(caught.value) is expected
    assert sim.stats[f'faults.{fault}'] == 1 == sim.config.faults.injected[fault]


def test_create_timeout_loses_the_answer_and_a_retry_recovers_the_task(start_sim) -> None:
    sim = start_sim(faults=FaultPlan(create_timeout=1.0, timeout_sleep_seconds=1.5))
    provider = provider_for(sim, timeout=(1.0, 0.4))

    started = time.monotonic()
    with pytest.raises(ProviderUnavailableError):
        provider.create_task(make_request(job_id='job-slow'), None)
    assert time.monotonic() - started < 1.4

    # The simulator made the task before stalling; the retried create finds it by external_task_id.
    sim.config.faults.create_timeout = 0.0
    assert provider.create_task(make_request(job_id='job-slow'), None) == sim.tasks()[0]['task_id']


def test_seeded_faults_are_reproducible(start_sim) -> None:
    outcomes = []
    for _ in range(2):
        sim = start_sim(faults=FaultPlan(create_reset=0.5, seed=7))
        provider = provider_for(sim)
        run = []
        for n in range(12):
            try:
                provider.create_task(make_request(job_id=f'job-{n}'), None)
                run.append('ok')
            except ProviderUnavailableError:
                run.append('reset')
        outcomes.append(run)
        assert run.count('reset') == sim.stats['faults.create_reset'] == sim.config.faults.injected['create_reset']

    assert outcomes[0] == outcomes[1]
    assert 0 < outcomes[0].count('reset') < 12


@pytest.mark.parametrize(('fault', 'error_class'), [('status_throttle', ProviderThrottledError),
                                                     ('status_server_error', ProviderUnavailableError),
                                                     ('status_reset', ProviderUnavailableError),
                                                     ('status_malformed', ProviderUnavailableError)])
def test_status_faults(start_sim, fault: str, error_class: type) -> None:
    sim = start_sim()
    provider = provider_for(sim)
    task_id = provider.create_task(make_request(), None)
    setattr(sim.config.faults, fault, 1.0)

    with pytest.raises(error_class):
        provider.get_task(task_id, make_request())
    assert sim.stats[f'faults.{fault}'] == 1


def test_result_download_can_break_midway_and_results_expire(start_sim) -> None:
    sim = start_sim(result_ttl_seconds=0.5, faults=FaultPlan(download_fail_midway=1.0))
    provider = provider_for(sim)
    task = wait_until_terminal(provider, provider.create_task(make_request(), None), make_request())
    url = task.outputs[0].url

    with pytest.raises(requests.RequestException):
        with requests.get(url, stream=True, timeout=FAST_TIMEOUT) as broken:
            b''.join(broken.iter_content(8192))

    sim.config.faults.download_fail_midway = 0.0
    assert requests.get(url, timeout=FAST_TIMEOUT).status_code == 200
    time.sleep(0.6)
    assert requests.get(url, timeout=FAST_TIMEOUT).status_code == 404
    assert sim.stats['downloads_expired'] == 1


def test_the_undecodable_fault_serves_noise_behind_an_mp4_header(start_sim) -> None:
    sim = start_sim(faults=FaultPlan(download_undecodable=1.0))
    provider = provider_for(sim)
    task = wait_until_terminal(provider, provider.create_task(make_request(), None), make_request())
    url = task.outputs[0].url

    noise = requests.get(url, timeout=FAST_TIMEOUT).content
    assert noise[4:8] == b'ftyp' and len(noise) == 64 * 1024  # looks like an MP4 to a header check
    with pytest.raises(UnplayableResultError):
        inspect(io.BytesIO(noise), 'video')
    assert sim.stats['faults.download_undecodable'] == 1

    sim.config.faults.download_undecodable = 0.0
    assert inspect(io.BytesIO(requests.get(url, timeout=FAST_TIMEOUT).content), 'video').poster is not None


# --- callbacks ----------------------------------------------------------------------------------------


def test_a_bare_callback_per_status_change(sim: KlingSimulator, receiver: Receiver) -> None:
    provider = provider_for(sim)
    task_id = provider.create_task(make_request(), receiver.url)

    bodies = accepted_bodies(receiver, 3)

    assert [b['task_status'] for b in bodies] == ['submitted', 'processing', 'succeed']
    assert all('code' not in b and b['task_id'] == task_id for b in bodies)
    assert [b['updated_at'] for b in bodies] == sorted({b['updated_at'] for b in bodies})
    hints = [provider.parse_callback(b, {}) for b in bodies]
    assert [h.claimed_state for h in hints] == ['pending', 'running', 'succeeded']
    assert {h.task_id for h in hints} == {task_id}
    assert wait_for_stat(sim, 'callbacks_delivered', 3) == sim.stats['callbacks_sent'] == 3


def test_enveloped_callbacks_when_configured(start_sim, receiver: Receiver) -> None:
    sim = start_sim(callback_envelope=True)
    provider = provider_for(sim)
    request = make_request(prompt='x [sim:content-policy]')
    task_id = provider.create_task(request, receiver.url)

    bodies = accepted_bodies(receiver, 3)

    assert [(b['code'], b['message']) for b in bodies] == [(0, 'SUCCEED')] * 3
    assert [b['data']['task_status'] for b in bodies] == ['submitted', 'processing', 'failed']
    assert provider.parse_callback(bodies[-1], {}).task_id == task_id
    assert provider.parse_callback(bodies[-1], {}).claimed_state == 'failed'


def test_callbacks_are_retried_when_the_receiver_fails(start_sim) -> None:
    flaky = Receiver((500, 503), path='/v1/callbacks/kling/job?token=t')
    try:
        sim = start_sim(callback_retries=2)
        provider_for(sim).create_task(make_request(), flaky.url)

        bodies = accepted_bodies(flaky, 3)

        # A retried callback may land after a later status, as a real retrying sender's would.
        assert sorted(b['task_status'] for b in bodies) == ['processing', 'submitted', 'succeed']
        assert wait_for_stat(sim, 'callbacks_delivered', 3) == 3 and sim.stats['callbacks_failed'] == 2
    finally:
        flaky.close()


def test_drop_callbacks_tag_sends_nothing(sim: KlingSimulator, receiver: Receiver) -> None:
    provider = provider_for(sim)
    request = make_request(prompt='quiet [sim:drop-callbacks] [sim:slow=0.2]')
    wait_until_terminal(provider, provider.create_task(request, receiver.url), request)
    time.sleep(0.2)

    assert receiver.accepted == []
    assert sim.stats['callbacks_dropped'] == 3 and sim.stats['callbacks_sent'] == 0


def test_duplicated_and_reordered_callbacks(start_sim, receiver: Receiver) -> None:
    sim = start_sim(faults=FaultPlan(callback_duplicate=1.0, callback_reorder=1.0))
    provider_for(sim).create_task(make_request(), receiver.url)

    bodies = accepted_bodies(receiver, 7)

    assert [b['task_status'] for b in bodies] == ['submitted', 'submitted', 'processing', 'processing',
                                                  'succeed', 'succeed', 'processing']
    assert sim.stats['callbacks_duplicated'] == 3 and sim.stats['callbacks_reordered'] == 1


def test_final_callback_delay(start_sim, receiver: Receiver) -> None:
    sim = start_sim(faults=FaultPlan(callback_delay_seconds=0.5))
    provider = provider_for(sim)
    request = make_request()
    task_id = provider.create_task(request, receiver.url)
    wait_until_terminal(provider, task_id, request)

    assert [b['task_status'] for b in accepted_bodies(receiver, 2)] == ['submitted', 'processing']
    assert [b['task_status'] for b in accepted_bodies(receiver, 3)][-1] == 'succeed'


# --- lifecycle ----------------------------------------------------------------------------------------


def test_binds_loopback_only_and_stops_cleanly() -> None:
    with pytest.raises(ValueError):
        KlingSimulator(host='0.0.0.0')

    before = set(threading.enumerate())  # other simulators (the session's local cloud) may be running
    sim = KlingSimulator(KlingSimConfig(generation_seconds=5))
    base_url = sim.start()
    assert base_url.startswith('http://127.0.0.1:')
    provider_for(sim).create_task(make_request(), None)  # leaves work on the scheduler
    started = time.monotonic()
    sim.stop()
    sim.stop()

    assert time.monotonic() - started < 3
    assert not [t for t in set(threading.enumerate()) - before if t.name.startswith('kling-sim') and t.is_alive()]
    with pytest.raises(requests.ConnectionError):
        requests.get(f'{base_url}/v1/videos/text2video', timeout=FAST_TIMEOUT)
