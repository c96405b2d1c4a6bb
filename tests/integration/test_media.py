"""Every result checked before its job succeeds, on the local cloud: the simulators serve real media (and,
when a prompt asks, bad files), the media function reads them from S3 with ranged GETs, and the job shows
the facts, a poster and a thumbnail -- or fails, refunded, with nothing kept."""

from __future__ import annotations

import io
from typing import Any

import av
import boto3
import pytest
import requests
from support import Api, ledger_sum
from vidgen.config import get_settings


def submit(user: Api, body: dict[str, Any]) -> dict[str, Any]:
    response = user.submit(body)
    assert response.status_code == 202, response.text
    return response.json()


def picture_size(url: str) -> tuple[int, int]:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200 and response.headers['Content-Type'] == 'image/jpeg'
    with av.open(io.BytesIO(response.content)) as container:
        frame = next(container.decode(video=0))
        return frame.width, frame.height


def stored_keys(cloud, user: Api, job_id: str) -> list[str]:
    s3 = boto3.client('s3', endpoint_url=cloud.moto_url)
    listed = s3.list_objects_v2(Bucket=get_settings().bucket_name, Prefix=f'results/{user.user_id}/{job_id}/')
    return sorted(item['Key'] for item in listed.get('Contents', []))


@pytest.fixture(scope='module')
def user(admin) -> Api:
    import uuid
    return admin.create_user(f'media-{uuid.uuid4().hex[:8]}', 2000)


@pytest.mark.parametrize(('body', 'size', 'thumbnail', 'seconds', 'audio'), [
    ({'model': 'kling-v2-6', 'prompt': 'A wide harbour', 'aspect_ratio': '16:9', 'duration': 5,
      'options': {'sound': True}},
     (480, 270), (320, 180), 5.0, True),
    ({'model': 'kling-v2-6', 'prompt': 'A tall tower', 'aspect_ratio': '9:16', 'duration': 10},
     (270, 480), (180, 320), 10.0, False),
    ({'model': 'veo-3-1-fast', 'prompt': 'A phone-shaped clip', 'aspect_ratio': '9:16'}, (270, 480), (180, 320), 8.0, True),
], ids=['kling-16:9', 'kling-9:16', 'veo-9:16'])
def test_a_video_job_shows_its_facts_a_poster_of_its_aspect_and_a_thumbnail(cloud, user, body, size, thumbnail,
                                                                               seconds, audio):
    job = user.wait(submit(user, body)['id'])
    assert job['status'] == 'succeeded', job['error']
    (output,) = job['outputs']
    assert output['media'] == {'container': 'mp4', 'video_codec': 'h264', 'width': size[0], 'height': size[1],
                               'duration_seconds': seconds, 'fps': 8.0, 'has_audio': audio}
    assert picture_size(output['poster_url']) == size
    assert picture_size(output['thumbnail_url']) == thumbnail
    assert output['note'] is None
    stem = f'results/{user.user_id}/{job["id"]}/0'
    assert stored_keys(cloud, user, job['id']) == [f'{stem}.mp4', f'{stem}.poster.jpg', f'{stem}.thumb.jpg']


def test_an_image_job_shows_its_facts_and_a_thumbnail(cloud, user):
    job = user.wait(submit(user, {'model': 'seedream-4-5', 'prompt': 'A red bicycle',
                                  'options': {'aspect_ratio': '16:9'}})['id'])
    assert job['status'] == 'succeeded', job['error']
    (output,) = job['outputs']
    assert output['media'] == {'format': 'png', 'width': 512, 'height': 288}
    assert output['poster_url'] is None and picture_size(output['thumbnail_url']) == (320, 180)


@pytest.mark.parametrize(('body', 'reason'), [
    ({'model': 'kling-v2-6', 'prompt': 'Noise [sim:undecodable]'}, 'no media format'),
    ({'model': 'kling-v2-6', 'prompt': 'A picture [sim:still-image]'}, 'still image'),
    ({'model': 'veo-3-1-fast', 'prompt': 'Noise [sim:undecodable]'}, 'no media format'),
    ({'model': 'seedream-4-5', 'prompt': 'Noise [sim:undecodable]'}, 'readable image'),
], ids=['kling-noise', 'kling-image-for-video', 'veo-noise', 'seedream-noise'])
def test_a_result_that_does_not_play_fails_the_job_refunded_once_with_nothing_stored(cloud, new_user, body, reason):
    user = new_user(credits=500)
    job = user.wait(submit(user, body)['id'])
    assert job['status'] == 'failed' and job['refunded'] is True
    assert job['error']['code'] == 'GENERATION_FAILED'
    assert 'The provider returned a file that is not a' in job['error']['message'] and reason in job['error']['message']
    assert job['outputs'] == []
    assert stored_keys(cloud, user, job['id']) == []
    credits = user.credits()
    refunds = [e for e in credits['ledger'] if e['type'] == 'refund' and e['job_id'] == job['id']]
    assert len(refunds) == 1 and refunds[0]['amount'] == job['credits']
    assert credits['balance'] == 500 == ledger_sum(credits)


def test_a_video_whose_frames_do_not_decode_succeeds_without_a_poster(cloud, user):
    job = user.wait(submit(user, {'model': 'kling-v2-6', 'prompt': 'Broken [sim:broken-frame]',
                                  'aspect_ratio': '16:9'})['id'])
    assert job['status'] == 'succeeded' and job['refunded'] is False
    (output,) = job['outputs']
    assert output['media']['width'] == 480 and output['media']['duration_seconds'] == 5.0
    assert output['poster_url'] is None and output['thumbnail_url'] is None
    assert 'No poster' in output['note']
    assert stored_keys(cloud, user, job['id']) == [f'results/{user.user_id}/{job["id"]}/0.mp4']
