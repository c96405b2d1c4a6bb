"""Kie.ai jobs end to end on the local cloud, for both Kie APIs: Veo 3.1 (`kie-veo`) and the Market
(`kie-market`). The real template, the real handlers, the real ASL in moto's Step Functions interpreter, and
the Kie simulator over loopback HTTP. Every test checks the money as well as the job.

The jobs that must outwait the 15 s callback window (lost callbacks, the 1080p render) are submitted once,
when this module starts, and checked by the last tests: their wait overlaps with everything else.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import time
import uuid
from typing import Any, Iterator

import boto3
import pytest
import requests
from support import PNG_DATA_URI, PNG_IMAGE, Api, execution_events, execution_states, ledger_sum
from vidgen import callback_tokens
from vidgen.config import get_settings
from vidgen.providers.kie_common import webhook_signature

VEO, MARKET = 'kie-veo', 'kie-market'
RESULT_BYTES = 200_000  # the session cloud's KieSimConfig.result_bytes


# --- helpers ------------------------------------------------------------------------------------------------------


def make_user(admin: Api, credits: int) -> Api:
    """A fresh user for a module-scoped fixture (the `new_user` fixture is per test)."""
    return admin.create_user(f'kie-{os.getpid()}-{uuid.uuid4().hex[:8]}', credits)


def submit(user: Api, body: dict[str, Any]) -> dict[str, Any]:
    response = user.submit(body)
    assert response.status_code == 202, response.text
    return response.json()


def sim_tasks(cloud, job_id: str) -> list[dict[str, Any]]:
    """The simulator's tasks created for this job (its callback URL names the job)."""
    return [t for t in cloud.kie_sim.tasks() if f'/{job_id}?token=' in (t['body'].get('callBackUrl') or '')]


def sim_task(cloud, job_id: str) -> dict[str, Any]:
    tasks = sim_tasks(cloud, job_id)
    assert len(tasks) == 1, f'expected one Kie task for {job_id}, found {len(tasks)}'
    return tasks[0]


def wait_for_sim_state(cloud, task_id: str, state: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        [task] = [t for t in cloud.kie_sim.tasks() if t['task_id'] == task_id]
        if task['state'] == state:
            return
        assert time.monotonic() < deadline, f'simulator task {task_id} still {task["state"]} after {timeout}s'
        time.sleep(0.1)


def create_task_failures(cloud, job_id: str) -> list[str]:
    """The error of every failed CreateTask attempt, in order (a retry shows as one more failure)."""
    failures, state = [], None
    for event in execution_events(cloud, job_id):
        if 'stateEnteredEventDetails' in event:
            state = event['stateEnteredEventDetails']['name']
        elif event['type'] == 'TaskFailed' and state == 'CreateTask':
            failures.append(event['taskFailedEventDetails']['error'])
    return failures


def assert_charged(user: Api, job: dict[str, Any], opening: int) -> None:
    """Debited once, never refunded, and the balance agrees with the ledger."""
    credits = user.credits()
    entries = [e for e in credits['ledger'] if e.get('job_id') == job['id']]
    assert [(e['type'], e['amount']) for e in entries] == [('debit', -job['credits'])], credits['ledger']
    assert credits['balance'] == opening - job['credits'] == ledger_sum(credits)


def assert_refunded_once(user: Api, job: dict[str, Any], opening: int) -> None:
    """One debit and exactly one refund of the same amount; the balance is back where it started."""
    credits = user.credits()
    entries = [e for e in credits['ledger'] if e.get('job_id') == job['id']]
    assert [(e['type'], e['amount']) for e in entries] == [('refund', job['credits']), ('debit', -job['credits'])]
    assert credits['balance'] == opening == ledger_sum(credits)


def fetch(url: str) -> requests.Response:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, (url, response.status_code)
    return response


def assert_stored_copy(cloud, user: Api, job: dict[str, Any], content_type: str, source_url: str) -> bytes:
    """The job's single output is our bucket's copy of `source_url`, served by a presigned URL."""
    [output] = job['outputs']
    extension = {'video/mp4': 'mp4', 'image/png': 'png'}[content_type]
    assert output['content_type'] == content_type
    assert output['url'].startswith(cloud.moto_url), output['url']
    assert f'/results/{user.user_id}/{job["id"]}/0.{extension}' in output['url']
    assert 'Signature=' in output['url']  # presigned, whichever signature version
    served = fetch(output['url'])
    original = fetch(source_url).content
    assert served.headers['Content-Type'] == content_type
    assert output['bytes'] == len(served.content) == len(original)
    assert served.content == original
    return served.content


def callback_path(provider: str, job_id: str) -> str:
    return f'/v1/callbacks/{provider}/{job_id}?token={callback_tokens.callback_token(provider, job_id)}'


# --- the jobs that finish through the poll loop: submitted first, checked last ----------------------------------


@pytest.fixture(scope='module', autouse=True)
def poll_loop_jobs(cloud, admin) -> dict[str, tuple[Api, dict[str, Any]]]:
    user = make_user(admin, 1000)
    jobs = {
        'veo-lost': submit(user, {'model': 'veo-3-1-fast', 'prompt': 'a quiet harbour [sim:drop-callbacks]'}),
        'market-lost': submit(user, {'model': 'kie-kling-2-6', 'prompt': 'a paper boat [sim:drop-callbacks]'}),
        'veo-1080p': submit(user, {'model': 'veo-3-1', 'prompt': 'a city at night', 'options': {'resolution': '1080p'}}),
    }
    for job in jobs.values():
        # Their provider tasks exist before any test queues a create error for its own job.
        user.wait(job['id'], timeout=10, statuses=('running', 'succeeded', 'failed'))
    return {name: (user, job) for name, job in jobs.items()}


# --- success ------------------------------------------------------------------------------------------------------


def test_veo_text_to_video_succeeds_through_the_callback(cloud, new_user):
    user = new_user(100)
    job = submit(user, {'model': 'veo-3-1-fast', 'prompt': 'a lighthouse at dawn', 'aspect_ratio': '9:16',
                        'options': {'seeds': 12345}})
    assert job['status'] == 'queued' and job['kind'] == 't2v' and job['credits'] == 30

    done = user.wait(job['id'], timeout=30)

    assert done['status'] == 'succeeded', done
    assert done['error'] is None and done['refunded'] is False
    task = sim_task(cloud, job['id'])
    assert done['provider'] == {'name': VEO, 'task_id': task['task_id']}
    body = task['body']
    assert body['model'] == 'veo3_fast' and body['generationType'] == 'TEXT_2_VIDEO' and 'imageUrls' not in body
    assert body['aspect_ratio'] == body['aspectRatio'] == '9:16' and body['seeds'] == 12345
    assert body['callBackUrl'].startswith(cloud.api_url + f'/v1/callbacks/{VEO}/{job["id"]}?token=')
    video = assert_stored_copy(cloud, user, done, 'video/mp4', f'{cloud.kie_sim.base_url}/results/{task["task_id"]}/0.mp4')
    assert len(video) == RESULT_BYTES
    states = execution_states(cloud, job['id'])
    assert 'PollProvider' not in states and states.count('Finalize') == 1  # the callback path, no polling
    assert_charged(user, job, 100)


def test_veo_image_to_video_uploads_the_data_uri_before_creating_the_task(cloud, new_user):
    user = new_user(150)
    uploads_before = cloud.kie_sim.stats['uploads.base64']
    job = submit(user, {'model': 'veo-3-1', 'prompt': 'the photo comes alive', 'image': PNG_DATA_URI})
    assert job['kind'] == 'i2v' and job['credits'] == 100

    done = user.wait(job['id'], timeout=30)

    assert done['status'] == 'succeeded', done
    assert cloud.kie_sim.stats['uploads.base64'] - uploads_before == 1
    body = sim_task(cloud, job['id'])['body']
    assert body['model'] == 'veo3' and body['generationType'] == 'FIRST_AND_LAST_FRAMES_2_VIDEO'
    [image_url] = body['imageUrls']
    assert image_url.startswith(cloud.kie_sim.base_url + '/files/') and job['id'] in image_url
    assert 'data:' not in json.dumps(body)
    assert fetch(image_url).content == PNG_IMAGE  # Kie fetches exactly the image the client sent
    [output] = done['outputs']
    assert output['content_type'] == 'video/mp4' and output['bytes'] == RESULT_BYTES
    assert_charged(user, job, 150)


def test_market_image_to_video_uploads_data_uris_into_the_models_own_field(cloud, new_user):
    user = new_user(100)
    uploads_before = cloud.kie_sim.stats['uploads.base64']
    kling = submit(user, {'model': 'kie-kling-2-6', 'prompt': 'the cat blinks', 'image': PNG_DATA_URI})
    bytedance = submit(user, {'model': 'bytedance-v1-pro', 'prompt': 'slow zoom', 'image': PNG_DATA_URI,
                              'options': {'resolution': '480p'}})
    assert (kling['kind'], kling['credits']) == ('i2v', 25) and (bytedance['kind'], bytedance['credits']) == ('i2v', 15)

    done = {job['id']: user.wait(job['id'], timeout=30) for job in (kling, bytedance)}

    assert all(job['status'] == 'succeeded' for job in done.values()), done
    assert cloud.kie_sim.stats['uploads.base64'] - uploads_before == 2
    kling_task, bytedance_task = sim_task(cloud, kling['id']), sim_task(cloud, bytedance['id'])
    assert kling_task['model'] == 'kling-2.6/image-to-video'
    kling_input = kling_task['body']['input']
    [kling_image] = kling_input['image_urls']
    assert kling_input['duration'] == '5' and kling_input['sound'] is False and 'aspect_ratio' not in kling_input
    assert bytedance_task['model'] == 'bytedance/v1-pro-image-to-video'
    bytedance_input = bytedance_task['body']['input']
    bytedance_image = bytedance_input['image_url']
    assert bytedance_input['resolution'] == '480p' and bytedance_input['duration'] == '5'
    for url, job in ((kling_image, kling), (bytedance_image, bytedance)):
        assert url.startswith(cloud.kie_sim.base_url + '/files/') and job['id'] in url
        assert fetch(url).content == PNG_IMAGE
    for job_id, task in ((kling['id'], kling_task), (bytedance['id'], bytedance_task)):
        assert 'data:' not in json.dumps(task['body'])
        assert done[job_id]['provider'] == {'name': MARKET, 'task_id': task['task_id']}
        [output] = done[job_id]['outputs']
        assert output['content_type'] == 'video/mp4' and output['bytes'] == RESULT_BYTES
    credits = user.credits()
    assert credits['balance'] == 100 - 25 - 15 == ledger_sum(credits)


def test_market_text_to_video_sends_the_catalogs_parameters(cloud, new_user):
    user = new_user(100)
    job = submit(user, {'model': 'kie-kling-2-6', 'prompt': 'waves at sunset', 'duration': 10,
                        'aspect_ratio': '1:1', 'options': {'sound': True}})
    assert job['kind'] == 't2v' and job['credits'] == 100

    done = user.wait(job['id'], timeout=30)

    assert done['status'] == 'succeeded', done
    task = sim_task(cloud, job['id'])
    assert task['model'] == 'kling-2.6/text-to-video'
    assert task['body']['input'] == {'prompt': 'waves at sunset', 'duration': '10', 'aspect_ratio': '1:1',
                                     'sound': True}
    assert_stored_copy(cloud, user, done, 'video/mp4', f'{cloud.kie_sim.base_url}/results/{task["task_id"]}/0.mp4')
    states = execution_states(cloud, job['id'])
    assert 'PollProvider' not in states and states.count('Finalize') == 1
    assert_charged(user, job, 100)


def test_market_text_to_image_is_stored_and_served_like_a_video(cloud, new_user):
    user = new_user(100)
    seedream = submit(user, {'model': 'seedream-4-5', 'prompt': 'a red fox, studio light',
                             'options': {'quality': 'high'}})
    flux = submit(user, {'model': 'flux-2-pro', 'prompt': 'a glass teapot', 'aspect_ratio': '3:2',
                         'options': {'resolution': '2K'}})
    # FLUX.2 Pro at 2K costs what seed 004 says it does (12)
    assert (seedream['kind'], seedream['credits']) == ('t2i', 12) and (flux['kind'], flux['credits']) == ('t2i', 12)

    done = {job['id']: user.wait(job['id'], timeout=30) for job in (seedream, flux)}

    expected_inputs = {
        seedream['id']: ('seedream/4.5-text-to-image',
                         {'prompt': 'a red fox, studio light', 'aspect_ratio': '1:1', 'quality': 'high'}),
        flux['id']: ('flux-2/pro-text-to-image', {'prompt': 'a glass teapot', 'aspect_ratio': '3:2', 'resolution': '2K'}),
    }
    for job_id, (market_model, market_input) in expected_inputs.items():
        job = done[job_id]
        assert job['status'] == 'succeeded', job
        task = sim_task(cloud, job_id)
        assert task['model'] == market_model and task['body']['input'] == market_input
        image = assert_stored_copy(cloud, user, job, 'image/png',
                                   f'{cloud.kie_sim.base_url}/results/{task["task_id"]}/0.png')
        assert image.startswith(b'\x89PNG\r\n\x1a\n')
    credits = user.credits()
    assert credits['balance'] == 100 - 12 - 12 == ledger_sum(credits)
    assert sorted(e['amount'] for e in credits['ledger'] if e['type'] == 'debit') == [-12, -12]


# --- failures: refunded exactly once -----------------------------------------------------------------------------

FAILURES = [
    ('veo-3-1-fast', '[sim:content-policy]', 'CONTENT_POLICY'),
    ('veo-3-1-fast', '[sim:fail]', 'GENERATION_FAILED'),
    # Kie's own final "internal error" verdict: refunded at once, not retried as if the call had failed.
    ('veo-3-1-fast', '[sim:fail=500]', 'PROVIDER_UNAVAILABLE'),
    ('seedream-4-5', '[sim:content-policy]', 'CONTENT_POLICY'),
    ('kie-kling-2-6', '[sim:fail]', 'GENERATION_FAILED'),
]


def test_failed_generations_are_refunded_exactly_once(cloud, new_user):
    users = [new_user(100) for _ in FAILURES]
    jobs = [submit(user, {'model': model, 'prompt': f'something {tag}'})
            for user, (model, tag, _) in zip(users, FAILURES, strict=True)]

    done = [user.wait(job['id'], timeout=30) for user, job in zip(users, jobs, strict=True)]

    for user, job, final, (model, tag, code) in zip(users, jobs, done, FAILURES, strict=True):
        case = f'{model} {tag}'
        assert final['status'] == 'failed' and final['refunded'] is True, (case, final)
        assert final['error']['code'] == code, (case, final['error'])
        message = final['error']['message']
        # our sentence around Kie's own reason (its stock "Video generation failed." adds nothing and is left out)
        if code == 'CONTENT_POLICY':
            assert message == ('Kie.ai refused the prompt or an input image under its content policy: Your prompt was '
                               'flagged by Website as violating content policies. Change them and submit again.'), case
            assert final['error']['provider_code'] == '400', case
        elif code == 'PROVIDER_UNAVAILABLE':
            assert message == 'Kie.ai had an internal error while generating. Submit it again later.', case
            assert final['error']['provider_code'] == '500', case
        else:
            assert message == 'Kie.ai failed to generate the result. Submit it again, or change the prompt.', case
            assert final['error']['provider_code'] == '501', case
        assert final['outputs'] == []
        states = execution_states(cloud, job['id'])
        # The callback carried the failure home (confirmed by record-info): no polling, no finalizing.
        assert states.count('FailJob') == 1 and 'Finalize' not in states and 'PollProvider' not in states, (case, states)
        assert_refunded_once(user, job, 100)

    # A late duplicate of the provider's callback, and a sweep, change nothing: the refund happened once.
    for job in jobs:
        task = cloud.kie_sim.task(sim_task(cloud, job['id'])['task_id'])
        provider = VEO if task.api == 'veo' else MARKET
        reply = users[0].post(callback_path(provider, job['id']), json=cloud.kie_sim.callback_body(task), key='')
        assert reply.status_code == 200 and reply.json()['status'] == 'ignored', reply.text
    cloud.sweep_now()
    for user, job in zip(users, jobs, strict=True):
        assert_refunded_once(user, job, 100)


# --- duplicate callbacks -------------------------------------------------------------------------------------------


def test_a_flat_market_callback_body_is_accepted_as_a_hint(cloud, new_user):
    # Given a Market job whose own callback is lost
    user = new_user(100)
    job = submit(user, {'model': 'seedream-4-5', 'prompt': 'a red bicycle [sim:slow=1] [sim:drop-callbacks]'})
    task_id = user.wait(job['id'], timeout=10, statuses=('running',))['provider']['task_id']
    wait_for_sim_state(cloud, task_id, 'success')
    record = cloud.kie_sim.callback_body(cloud.kie_sim.task(task_id))['data']
    # When the callback arrives as the flat record ({"taskId", "state", "resultJson", ...}, no envelope)
    flat = {key: record[key] for key in ('taskId', 'state', 'resultJson', 'failMsg') if key in record}
    reply = user.post(callback_path(MARKET, job['id']), json=flat, key='')

    # Then it wakes the job like the enveloped form (confirmed with recordInfo first), with no polling
    assert reply.status_code == 200 and reply.json()['status'] == 'delivered', reply.text
    done = user.wait(job['id'], timeout=20)
    assert done['status'] == 'succeeded', done
    assert 'PollProvider' not in execution_states(cloud, job['id'])


@pytest.mark.parametrize(('model', 'provider'), [('veo-3-1-fast', VEO), ('kie-kling-2-6', MARKET)])
def test_duplicate_callbacks_finalize_once(cloud, new_user, model, provider):
    user = new_user(100)
    job = submit(user, {'model': model, 'prompt': 'a slow reveal [sim:slow=2] [sim:drop-callbacks]'})
    running = user.wait(job['id'], timeout=10, statuses=('running',))
    task_id = running['provider']['task_id']
    wait_for_sim_state(cloud, task_id, 'success')
    body = cloud.kie_sim.callback_body(cloud.kie_sim.task(task_id))  # exactly what Kie would have POSTed
    path = callback_path(provider, job['id'])

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: user.post(path, json=body, key=''), range(8)))

    assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
    outcomes = sorted(r.json()['status'] for r in replies)
    assert outcomes == ['delivered'] + ['ignored'] * 7, outcomes
    done = user.wait(job['id'], timeout=20)
    assert done['status'] == 'succeeded', done
    states = execution_states(cloud, job['id'])
    assert states.count('Finalize') == 1 and 'PollProvider' not in states, states
    assert len(done['outputs']) == 1
    assert_charged(user, job, 100)


# --- provider error classes at create time ------------------------------------------------------------------------

# (scenario tag, the job's error code, the typed error the create step raised once)
CREATE_FAILURES = {
    401: ('[sim:code=401]', 'PROVIDER_AUTH', 'ProviderAuthError'),
    402: ('[sim:quota]', 'PROVIDER_QUOTA', 'ProviderQuotaError'),
    422: ('[sim:code=422]', 'GENERATION_FAILED', 'ProviderRejectedError'),
    451: ('[sim:code=451]', 'GENERATION_FAILED', 'ProviderRejectedError'),
    501: ('[sim:code=501]', 'GENERATION_FAILED', 'GenerationFailedError'),
    505: ('[sim:code=505]', 'GENERATION_FAILED', 'ProviderRejectedError'),
}


def test_create_errors_that_cannot_heal_fail_the_job_and_refund_it(cloud, new_user):
    cases = [(code, model) for code in CREATE_FAILURES for model in ('veo-3-1-fast', 'seedream-4-5')]
    users = [new_user(50) for _ in cases]
    errors_before = {code: cloud.kie_sim.stats[f'errors.{code}'] for code in CREATE_FAILURES}
    with concurrent.futures.ThreadPoolExecutor(len(cases)) as pool:
        jobs = list(pool.map(lambda case, user: submit(user, {'model': case[1],
                                                              'prompt': f'art {CREATE_FAILURES[case[0]][0]}'}),
                             cases, users))

    with concurrent.futures.ThreadPoolExecutor(len(cases)) as pool:
        done = list(pool.map(lambda user, job: user.wait(job['id'], timeout=30), users, jobs))

    for (code, model), user, job, final in zip(cases, users, jobs, done, strict=True):
        _, job_code, error_type = CREATE_FAILURES[code]
        case = f'{model} Kie {code}'
        assert final['status'] == 'failed' and final['refunded'] is True, (case, final)
        assert final['error']['code'] == job_code, (case, final['error'])
        assert 'kie-sim-local-key' not in final['error']['message']
        assert final['error']['provider_code'] == str(code), case
        assert final['provider']['task_id'] is None and sim_tasks(cloud, job['id']) == [], case
        assert create_task_failures(cloud, job['id']) == [error_type], case  # tried once: not retried
        states = execution_states(cloud, job['id'])
        assert states == ['CreateTask', 'FailJob', 'Notify', 'Settled'], (case, states)
        assert_refunded_once(user, job, 50)
    for code in CREATE_FAILURES:
        assert cloud.kie_sim.stats[f'errors.{code}'] - errors_before[code] == 2, code  # one create per job


@pytest.mark.parametrize('model', ['veo-3-1-fast', 'seedream-4-5'])
@pytest.mark.parametrize(('code', 'error_type'), [(429, 'ProviderThrottledError'), (455, 'ProviderUnavailableError'),
                                                  (500, 'ProviderUnavailableError')])
def test_transient_create_errors_are_retried_and_the_job_succeeds(cloud, new_user, model, code, error_type):
    user = new_user(50)
    injected_before = cloud.kie_sim.stats[f'injected.{code}']
    cloud.kie_sim.queue_error(code, times=2)  # the next two creates fail, the third goes through
    job = submit(user, {'model': model, 'prompt': f'persistence pays {code}'})

    done = user.wait(job['id'], timeout=30)

    assert done['status'] == 'succeeded' and done['error'] is None, done
    assert cloud.kie_sim.stats[f'injected.{code}'] - injected_before == 2
    assert create_task_failures(cloud, job['id']) == [error_type, error_type]
    task = sim_task(cloud, job['id'])  # three attempts, one provider task
    assert done['provider']['task_id'] == task['task_id']
    assert execution_states(cloud, job['id']).count('Finalize') == 1
    assert_charged(user, job, 50)


# --- optional HMAC on callbacks ----------------------------------------------------------------------------------


@contextlib.contextmanager
def kie_webhook_key(cloud, key: str) -> Iterator[None]:
    """Configure a Kie webhook key on the running cloud (secret + simulator), and take it away afterwards.

    The functions cache secret values in their warm environments (Powertools' parameters, as deployed):
    retiring the environments makes the new value live at once, as the cache's expiry would in time.
    """
    secrets = boto3.client('secretsmanager')
    name = get_settings().kie_secret_name
    original = secrets.get_secret_value(SecretId=name)['SecretString']
    secrets.put_secret_value(SecretId=name, SecretString=json.dumps({**json.loads(original), 'webhook_hmac_key': key}))
    cloud.recycle_environments()
    cloud.kie_sim.config.webhook_hmac_key = key
    try:
        yield
    finally:
        cloud.kie_sim.config.webhook_hmac_key = None
        secrets.put_secret_value(SecretId=name, SecretString=original)
        cloud.recycle_environments()


def test_with_a_webhook_key_a_badly_signed_callback_is_rejected_and_changes_nothing(cloud, new_user):
    key = 'test-kie-webhook-key'  # fake
    user = new_user(100)
    with kie_webhook_key(cloud, key):
        held = [submit(user, {'model': 'veo-3-1-fast', 'prompt': 'signed [sim:slow=2] [sim:drop-callbacks]'}),
                submit(user, {'model': 'seedream-4-5', 'prompt': 'signed [sim:slow=2] [sim:drop-callbacks]'})]
        signed_by_sim = submit(user, {'model': 'seedream-4-5', 'prompt': 'the simulator signs this one'})
        for job, provider in zip(held, (VEO, MARKET), strict=True):
            before = user.wait(job['id'], timeout=10, statuses=('running',))
            task_id = before['provider']['task_id']
            wait_for_sim_state(cloud, task_id, 'success')
            body = cloud.kie_sim.callback_body(cloud.kie_sim.task(task_id))
            stamp = str(int(time.time()))
            bad_headers = [
                {'X-Webhook-Timestamp': stamp, 'X-Webhook-Signature': webhook_signature(task_id, stamp, 'wrong-key')},
                {'X-Webhook-Timestamp': str(int(time.time()) - 3600),
                 'X-Webhook-Signature': webhook_signature(task_id, str(int(time.time()) - 3600), key)},  # stale
                {},  # unsigned
            ]
            for headers in bad_headers:
                reply = user.post(callback_path(provider, job['id']), json=body, headers=headers, key='')
                assert reply.status_code == 401, (provider, headers, reply.text)
                assert reply.json()['error']['code'] == 'AUTH_FAILED'
            after = user.job(job['id'])
            assert after['status'] == 'running' and after['updated_at'] == before['updated_at'], after

            good = {'X-Webhook-Timestamp': stamp, 'X-Webhook-Signature': webhook_signature(task_id, stamp, key)}
            reply = user.post(callback_path(provider, job['id']), json=body, headers=good, key='')
            assert reply.status_code == 200 and reply.json()['status'] == 'delivered', reply.text

        done = [user.wait(job['id'], timeout=20) for job in (*held, signed_by_sim)]

    assert all(job['status'] == 'succeeded' for job in done), done
    for job in (*held, signed_by_sim):
        states = execution_states(cloud, job['id'])
        assert 'PollProvider' not in states and states.count('Finalize') == 1, states  # the signed callback woke it
    credits = user.credits()
    assert credits['balance'] == 100 - 30 - 8 - 8 == ledger_sum(credits)


# --- the poll-loop jobs submitted when the module started --------------------------------------------------------


@pytest.mark.parametrize('name', ['veo-lost', 'market-lost'])
def test_lost_callbacks_are_covered_by_the_poll_loop(cloud, poll_loop_jobs, name):
    user, job = poll_loop_jobs[name]

    done = user.wait(job['id'], timeout=40)

    assert done['status'] == 'succeeded', done
    task = sim_task(cloud, job['id'])
    assert task['callback_done'] and cloud.kie_sim.stats['callbacks_dropped'] >= 2
    states = execution_states(cloud, job['id'])
    assert 'PollProvider' in states and states.count('Finalize') == 1, states
    [output] = done['outputs']
    assert output['content_type'] == 'video/mp4' and output['bytes'] == RESULT_BYTES
    debits = [e for e in user.credits()['ledger'] if e.get('job_id') == job['id']]
    assert [(e['type'], e['amount']) for e in debits] == [('debit', -job['credits'])]


def test_veo_1080p_copies_the_1080p_render(cloud, poll_loop_jobs):
    user, job = poll_loop_jobs['veo-1080p']
    assert job['params']['resolution'] == '1080p' and job['credits'] == 100

    done = user.wait(job['id'], timeout=40)

    assert done['status'] == 'succeeded', done
    task_id = sim_task(cloud, job['id'])['task_id']
    results = f'{cloud.kie_sim.base_url}/results/{task_id}'
    copy = assert_stored_copy(cloud, user, done, 'video/mp4', f'{results}/1080p.mp4')
    assert copy != fetch(f'{results}/0.mp4').content  # the 1080p render, not the 720p one
    assert cloud.kie_sim.stats['hd_queries'] >= 1
    states = execution_states(cloud, job['id'])
    assert states.count('Finalize') == 1, states
    # Every job of the module's poll-loop user is charged once and none refunded.
    credits = user.credits()
    assert [e['type'] for e in credits['ledger']].count('refund') == 0
    assert credits['balance'] == 1000 - sum(j['credits'] for _, j in poll_loop_jobs.values()) == ledger_sum(credits)
