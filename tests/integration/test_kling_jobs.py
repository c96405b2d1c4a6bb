"""Kling jobs end to end on the local cloud: the real ASL in moto's interpreter, the real handlers, the Kling
simulator over loopback HTTP. Every test checks the money as well as the job."""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import requests
from support import (
    PNG_DATA_URI,
    PNG_IMAGE,
    execution_events,
    execution_states,
    ledger_sum,
    listed_once_caught_up,
    wait_for_execution_end,
)
from vidgen import callback_tokens
from vidgen_local.images import png, png_data_uri


def sim_task(cloud, job_id: str) -> dict:
    tasks = [t for t in cloud.kling_sim.tasks() if t['request'].get('external_task_id') == job_id]
    assert len(tasks) == 1, f'expected one Kling task for {job_id}, found {len(tasks)}'
    return tasks[0]


def test_text_to_video_succeeds_with_results_in_our_bucket(cloud, new_user):
    user = new_user(100)
    response = user.submit({'model': 'kling-v2-6', 'prompt': 'a lighthouse at dawn', 'aspect_ratio': '16:9'})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job['status'] == 'queued' and job['credits'] == 20 and job['kind'] == 't2v'

    done = user.wait(job['id'], timeout=30)

    assert done['status'] == 'succeeded', done
    assert done['error'] is None and done['refunded'] is False
    [output] = done['outputs']
    assert output['content_type'] == 'video/mp4' and output['bytes'] == 300_000
    assert output['url'].startswith(cloud.moto_url) and f'/results/{user.user_id}/{job["id"]}/0.mp4' in output['url']
    body = requests.get(output['url'], timeout=10).content
    assert len(body) == 300_000
    task = sim_task(cloud, job['id'])
    assert task['request']['aspect_ratio'] == '16:9' and task['request']['duration'] == '5'
    assert done['provider'] == {'name': 'kling', 'task_id': task['task_id']}
    states = execution_states(cloud, job['id'])
    assert 'PollProvider' not in states and states.count('Finalize') == 1  # the callback path, no polling
    credits = user.credits()
    assert credits['balance'] == 80 == ledger_sum(credits)


def test_image_to_video_with_start_and_end_frames(cloud, new_user):
    user = new_user(100)
    response = user.submit({'model': 'kling-v2-6', 'prompt': 'the flower opens', 'image': PNG_DATA_URI,
                            'end_image': PNG_DATA_URI, 'duration': 10})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job['kind'] == 'flf2v' and job['params']['mode'] == 'pro' and job['credits'] == 70

    done = user.wait(job['id'], timeout=30)

    assert done['status'] == 'succeeded', done
    request = sim_task(cloud, job['id'])['request']
    assert request['image'] == request['image_tail'] == PNG_DATA_URI.split(',', 1)[1]  # raw base64, no prefix
    assert 'aspect_ratio' not in request and request['mode'] == 'pro' and request['duration'] == '10'
    assert user.credits()['balance'] == 30


def test_content_policy_failure_is_refunded_once(cloud, new_user):
    user = new_user(100)
    job = user.submit({'model': 'kling-v2-6', 'prompt': 'something [sim:content-policy]'}).json()

    done = user.wait(job['id'], timeout=30)

    assert done['status'] == 'failed' and done['refunded'] is True
    assert done['error']['code'] == 'CONTENT_POLICY'
    assert 'content policy' in done['error']['message'].lower()
    credits = user.credits()
    assert credits['balance'] == 100 == ledger_sum(credits)
    assert [e['type'] for e in credits['ledger']] == ['refund', 'debit', 'grant']


def test_a_kling_refusal_reaches_the_user_with_its_reason_and_code(cloud, new_user):
    # Given Kling refuses the next create, naming the parameter (and echoing a signed URL)
    user = new_user(100)
    cloud.kling_sim.queue_error(1201, message='duration 15 is not supported for this account; see '
                                              'https://kling.example.com/docs?token=SIGNED-TOKEN-123')
    job = user.submit({'model': 'kling-v2-6', 'prompt': 'a lighthouse at dawn'}).json()

    done = user.wait(job['id'], timeout=30)

    # Then the job says what Kling said, without the token, keeps Kling's code, and is refunded
    assert done['status'] == 'failed' and done['refunded'] is True
    assert done['error'] == {
        'code': 'GENERATION_FAILED', 'provider_code': '1201',
        'message': 'Kling refused a request parameter: duration 15 is not supported for this account; see '
                   '<a URL on kling.example.com>. Change that input and submit again.'}
    assert user.credits()['balance'] == 100


def test_a_failed_kling_task_keeps_klings_reason(cloud, new_user):
    from vidgen_local.simulators.kling import CONTENT_POLICY_MESSAGE

    user = new_user(100)
    job = user.submit({'model': 'kling-v2-6', 'prompt': 'something [sim:content-policy]'}).json()
    done = user.wait(job['id'], timeout=30)
    assert done['error']['code'] == 'CONTENT_POLICY' and done['error']['provider_code'] is None
    assert CONTENT_POLICY_MESSAGE in done['error']['message']


def test_lost_callbacks_are_covered_by_the_poll_loop(cloud, new_user):
    user = new_user(100)
    job = user.submit({'model': 'kling-v2-6', 'prompt': 'quiet harbour [sim:drop-callbacks]'}).json()

    done = user.wait(job['id'], timeout=45)

    assert done['status'] == 'succeeded', done
    assert cloud.kling_sim.stats.get('callbacks_dropped') >= 1
    states = execution_states(cloud, job['id'])
    assert 'PollProvider' in states and states.count('Finalize') == 1
    assert user.credits()['balance'] == 80


def test_duplicate_callbacks_finalize_once(cloud, new_user):
    user = new_user(100)
    job = user.submit({'model': 'kling-v2-6', 'prompt': 'a slow reveal [sim:slow=3] [sim:drop-callbacks]'}).json()
    user.wait(job['id'], timeout=10, statuses=('running',))
    task, deadline = None, time.monotonic() + 20
    while task is None or task['task_status'] != 'succeed':
        assert time.monotonic() < deadline, task
        time.sleep(0.2)
        task = sim_task(cloud, job['id'])
    url = f'/v1/callbacks/kling/{job["id"]}?token={callback_tokens.callback_token("kling", job["id"])}'
    body = {k: task[k] for k in ('task_id', 'task_status', 'task_status_msg', 'task_info', 'task_result',
                                 'created_at', 'updated_at')}

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: user.post(url, json=body, key=''), range(8)))

    assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
    outcomes = sorted(r.json()['status'] for r in replies)
    assert outcomes.count('delivered') == 1, outcomes
    done = user.wait(job['id'], timeout=20)
    assert done['status'] == 'succeeded'
    assert execution_states(cloud, job['id']).count('Finalize') == 1
    assert user.credits()['balance'] == 80


def test_forged_callback_changes_nothing(cloud, new_user):
    user = new_user(100)
    job = user.submit({'model': 'kling-v2-6', 'prompt': 'wait for me [sim:slow=3] [sim:drop-callbacks]'}).json()
    before = user.wait(job['id'], timeout=10, statuses=('running',))
    forged_body = {'task_id': before['provider']['task_id'], 'task_status': 'failed', 'task_status_msg': 'forged'}
    other = user.submit({'model': 'kling-v2-6', 'prompt': 'another [sim:slow=3]'}).json()

    attempts = [
        f'/v1/callbacks/kling/{job["id"]}?token=forged-token',
        f'/v1/callbacks/kling/{job["id"]}',
        f'/v1/callbacks/kling/{job["id"]}?token={callback_tokens.callback_token("kling", other["id"])}',
        f'/v1/callbacks/kie-veo/{job["id"]}?token={callback_tokens.callback_token("kie-veo", job["id"])}',
    ]
    for path in attempts:
        reply = user.post(path, json=forged_body, key='')
        assert reply.status_code == 401, (path, reply.text)
        assert reply.json()['error']['code'] == 'AUTH_FAILED'

    after = user.job(job['id'])
    assert after['status'] == 'running' and after['updated_at'] == before['updated_at']
    assert user.wait(job['id'], timeout=30)['status'] == 'succeeded'


def test_insufficient_credits_is_402_and_writes_nothing(cloud, new_user):
    user = new_user(30)
    s3 = boto3.client('s3')
    bucket = cloud.handler_env['BUCKET_NAME']

    response = user.submit({'model': 'kling-v2-6', 'prompt': 'too expensive', 'mode': 'pro', 'image': PNG_DATA_URI})

    assert response.status_code == 402
    assert response.json()['error']['code'] == 'INSUFFICIENT_CREDITS'
    assert '35 credits' in response.json()['error']['message']
    assert user.get('/v1/jobs').json()['jobs'] == []
    credits = user.credits()
    assert credits['balance'] == 30 and len(credits['ledger']) == 1
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f'inputs/{user.user_id}/')
    assert listed.get('KeyCount', 0) == 0


def test_invalid_request_is_422_and_debits_nothing(cloud, new_user):
    user = new_user(100)
    response = user.submit({'model': 'kling-v2-1', 'prompt': 'text only'})
    assert response.status_code == 422
    error = response.json()['error']
    assert error['code'] == 'INVALID_PARAMETERS' and error['field'] == 'image' and error['request_id']
    assert user.credits()['balance'] == 100


def test_fifty_concurrent_submits_against_credits_for_twenty(cloud, new_user):
    user = new_user(400)  # 20 jobs at 20 credits

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(
            lambda i: user.submit({'model': 'kling-v2-6', 'prompt': f'race {i} [sim:drop-callbacks]'}), range(50)))

    codes = [r.status_code for r in replies]
    assert codes.count(202) == 20 and codes.count(402) == 30, codes
    credits = user.credits()
    assert credits['balance'] == 0 == ledger_sum(credits)
    assert len([e for e in credits['ledger'] if e['type'] == 'debit']) == 20
    accepted = sorted(r.json()['id'] for r in replies if r.status_code == 202)
    assert listed_once_caught_up(lambda: sorted(j['id'] for j in user.get('/v1/jobs', params={'limit': 100}).json()['jobs']),
                                 accepted) == accepted
    for reply in replies:
        if reply.status_code == 202:
            user.post(f'/v1/jobs/{reply.json()["id"]}/cancel')  # free the simulator for the other tests


def test_history_is_newest_first_with_cursor_pagination_and_status_filter(cloud, new_user):
    user = new_user(200)
    ids = [user.submit({'model': 'kling-v2-6', 'prompt': f'page {i} [sim:slow=30]'}).json()['id'] for i in range(5)]
    assert user.post(f'/v1/jobs/{ids[0]}/cancel').json()['status'] == 'canceled'
    # The listing reads an index, which shows the last write (the cancel) after a lag: wait for it as a client would
    listed_once_caught_up(lambda: [j['id'] for j in user.get('/v1/jobs', params={'status': 'canceled'}).json()['jobs']], [ids[0]])

    first = user.get('/v1/jobs', params={'limit': 2}).json()
    second = user.get('/v1/jobs', params={'limit': 2, 'cursor': first['next_cursor']}).json()
    third = user.get('/v1/jobs', params={'limit': 2, 'cursor': second['next_cursor']}).json()
    listed = [j['id'] for page in (first, second, third) for j in page['jobs']]
    assert listed == list(reversed(ids))
    canceled = user.get('/v1/jobs', params={'status': 'canceled'}).json()['jobs']
    assert [j['id'] for j in canceled] == [ids[0]] and canceled[0]['refunded'] is True
    for job_id in ids[1:]:
        user.post(f'/v1/jobs/{job_id}/cancel')
    assert user.credits()['balance'] == 200


def test_another_users_job_is_not_found(cloud, new_user):
    owner, stranger = new_user(100), new_user(100)
    job = owner.submit({'model': 'kling-v2-6', 'prompt': 'mine [sim:slow=30]'}).json()

    assert stranger.get(f'/v1/jobs/{job["id"]}').status_code == 404
    assert stranger.post(f'/v1/jobs/{job["id"]}/cancel').status_code == 404
    assert stranger.get('/v1/jobs').json()['jobs'] == []
    assert owner.post(f'/v1/jobs/{job["id"]}/cancel').status_code == 200


def test_input_images_are_stored_in_our_bucket_not_in_the_table(cloud, new_user):
    user = new_user(100)
    job = user.submit({'model': 'kling-v2-1', 'image': PNG_DATA_URI, 'prompt': 'move [sim:slow=30]'}).json()
    s3 = boto3.client('s3')
    obj = s3.get_object(Bucket=cloud.handler_env['BUCKET_NAME'], Key=f'inputs/{user.user_id}/{job["id"]}/image.png')
    assert obj['Body'].read() == PNG_IMAGE
    user.post(f'/v1/jobs/{job["id"]}/cancel')


@contextlib.contextmanager
def image_host(files: dict[str, bytes]):
    """An image host on 127.0.0.1 (local mode lets the service fetch from it) that ignores Range like many do."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header('Content-Type', 'image/png')
            self.send_header('Content-Length', str(len(body or b'')))
            self.end_headers()
            self.wfile.write(body or b'')

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}'
    finally:
        server.shutdown()
        server.server_close()


def test_a_bad_inline_image_is_refused_at_submit_and_charges_nothing(cloud, new_user):
    user = new_user(100)
    for image, message in ((png_data_uri(64, 64), 'image is 64×64 px; kling-v2-6 needs a width of at least 300 px.'),
                           (png_data_uri(1000, 300), 'image is 1000×300 px (width/height 3.33); kling-v2-6 takes '
                                                     'width/height from 0.4 to 2.5 (1:2.5 to 2.5:1).')):
        response = user.submit({'model': 'kling-v2-6', 'prompt': 'the flower opens', 'image': image})
        assert response.status_code == 422, response.text
        assert response.json()['error']['field'] == 'image' and response.json()['error']['message'] == message
    credits = user.credits()
    assert credits['balance'] == 100 and [e['type'] for e in credits['ledger']] == ['grant']


def test_linked_images_are_checked_where_they_are_first_fetched(cloud, new_user):
    user = new_user(100)
    with image_host({'/small.png': png(64, 64), '/good.png': png(320, 320)}) as host:
        small = user.submit({'model': 'kling-v2-6', 'prompt': 'p', 'image': f'{host}/small.png'}).json()
        gone = user.submit({'model': 'kling-v2-6', 'prompt': 'p', 'image': f'{host}/gone.png'}).json()
        good = user.submit({'model': 'kling-v2-6', 'prompt': 'p', 'image': f'{host}/good.png'}).json()
        small, gone, good = (user.wait(job['id'], timeout=30) for job in (small, gone, good))

    # The small image fails its job with the sentence submit gives an inline one, refunded, Kling never asked
    assert small['status'] == 'failed' and small['refunded'] is True
    assert small['error'] == {'code': 'GENERATION_FAILED', 'provider_code': None,
                              'message': 'image is 64×64 px; kling-v2-6 needs a width of at least 300 px.'}
    assert gone['status'] == 'failed' and gone['refunded'] is True
    assert gone['error']['message'].startswith('image could not be fetched from its URL (answered HTTP 404)')
    for job in (small, gone):
        assert [t for t in cloud.kling_sim.tasks() if t['request'].get('external_task_id') == job['id']] == []
    assert good['status'] == 'succeeded', good
    assert sim_task(cloud, good['id'])['request']['image'] == f'{host}/good.png'
    assert user.credits()['balance'] == 100 - good['credits']


# --- Step Functions' 256 KiB of state data ---------------------------------------------------------------


def execution_data_sizes(cloud, job_id: str) -> list[int]:
    """The size of every state input and output the job's execution carried, in bytes."""
    sizes = []
    for event in execution_events(cloud, job_id):
        for details, field in (('stateEnteredEventDetails', 'input'), ('stateExitedEventDetails', 'output'),
                               ('executionStartedEventDetails', 'input'), ('executionSucceededEventDetails', 'output')):
            if field in event.get(details, {}):
                sizes.append(len(event[details][field].encode()))
    return sizes


def test_a_near_maximum_request_carries_only_ids_through_the_state_machine(cloud, new_user):
    # Given the largest request the API takes: prompts at Kling's limits, full metadata and two images that
    # fill the 5 MB body with base64
    user = new_user(100)
    image = 'data:image/png;base64,' + base64.b64encode(png(320, 320) + b'\0' * (1_850 * 1024)).decode()
    body = {'model': 'kling-v2-6', 'prompt': 'a tide pool at dusk, ' + 'p' * 2_479, 'negative_prompt': 'n' * 2_500,
            'image': image, 'end_image': image, 'duration': 10,
            'metadata': {f'key-{n:02d}': 'v' * 512 for n in range(20)}}
    assert 4.8 * 1024 * 1024 < len(json.dumps(body)) < 5 * 1024 * 1024
    response = user.submit(body)
    assert response.status_code == 202, response.text[:300]

    # Then it succeeds, and no state of its execution carried more than a few kilobytes: ids and results, never
    # the prompt or the images (Step Functions fails an execution whose state data passes 256 KiB)
    done = user.wait(response.json()['id'], timeout=60)
    assert done['status'] == 'succeeded', done
    sizes = execution_data_sizes(cloud, done['id'])
    assert sizes and max(sizes) < 8 * 1024, max(sizes)
    credits = user.credits()
    assert credits['balance'] == 100 - done['credits'] == ledger_sum(credits)


def test_a_job_whose_execution_dies_of_the_data_limit_is_finished_by_the_sweep(cloud, new_user, monkeypatch):
    from vidgen.jobs import tasks
    from vidgen.store import jobs as job_store

    # Given a Finalize step whose result is over 256 KiB for this job (padding no later step reads)
    finalize = tasks.finalize_job

    def padded_finalize(job_id: str) -> dict:
        result = finalize(job_id)
        if '[pad-finalize]' in job_store.get_job(job_id).prompt:
            result['padding'] = 'x' * (300 * 1024)
        return result

    monkeypatch.setattr(tasks, 'finalize_job', padded_finalize)
    getattr(cloud, 'recycle_environments', lambda: None)()  # handlers in worker processes see the patch
    try:
        user = new_user(100)
        job = user.submit({'model': 'kling-v2-6', 'prompt': 'a paper boat [pad-finalize]'}).json()

        # When the execution fails with States.DataLimitExceeded (which its States.ALL catchers cannot catch)
        ended = wait_for_execution_end(cloud, job['id'], timeout=60)
        assert (ended['status'], ended.get('error')) == ('FAILED', 'States.DataLimitExceeded')

        # Then the sweep finishes the job from the provider's result: succeeded, charged once, results stored
        done = user.wait(job['id'], timeout=60)
        assert done['status'] == 'succeeded' and done['refunded'] is False, done
        [output] = done['outputs']
        assert len(requests.get(output['url'], timeout=10).content) == output['bytes'] == 300_000
        credits = user.credits()
        assert credits['balance'] == 100 - done['credits'] == ledger_sum(credits)
    finally:
        monkeypatch.undo()
        getattr(cloud, 'recycle_environments', lambda: None)()
