"""The sample events in events/ are real: each one, handed to the function the template routes it to,
is understood by the real handler (a 4xx for its fake credentials, never a 5xx or a crash)."""

import json
from pathlib import Path

import pytest

EVENTS = Path(__file__).resolve().parents[2] / 'events'
SECRET_LOOKING = ('AKIA', 'sk-', 'whsec_', 'BEGIN PRIVATE KEY')


def http_events():
    for path in sorted(EVENTS.glob('*.json')):
        event = json.loads(path.read_text())
        if 'routeKey' in event:
            yield pytest.param(path.name, event, id=path.stem)


@pytest.mark.parametrize(('name', 'event'), list(http_events()))
def test_http_sample_events_reach_their_handler(cloud, name, event):
    [function] = [spec.logical_id for spec in cloud.template.functions()
                  if any(route.route_key == event['routeKey'] for route in spec.routes)]
    response = cloud.invoke(function, event)
    assert response['statusCode'] < 500, (name, response)
    if event['routeKey'] in ('GET /v1/health', 'GET /v1/models'):
        assert response['statusCode'] == 200
    else:  # the events carry placeholder keys and tokens
        assert response['statusCode'] == 401, (name, response['body'])


def test_poller_sample_events_name_real_actions():
    for path in EVENTS.glob('poller-*.json'):
        assert json.loads(path.read_text())['action'] in ('create_task', 'poll', 'finalize', 'fail', 'sweep')


def test_storyboard_sample_events_reach_the_storyboard_handler(cloud):
    from vidgen_local.environments import FunctionError

    paths = sorted(EVENTS.glob('storyboard-*.json'))
    assert paths
    for path in paths:
        with pytest.raises(FunctionError) as failed:
            cloud.invoke('StoryboardFunction', json.loads(path.read_text()))
        assert failed.value.error_type == 'NotFoundError'  # a real action, for a storyboard that does not exist


def test_media_sample_events_are_understood_by_the_media_function(cloud):
    from vidgen_local.environments import FunctionError

    discard = json.loads((EVENTS / 'media-discard.json').read_text())
    assert cloud.invoke('MediaFunction', discard) == {}  # deleting what is not there is not an error
    inspect = json.loads((EVENTS / 'media-inspect.json').read_text())
    with pytest.raises(FunctionError) as failed:
        cloud.invoke('MediaFunction', inspect)
    assert failed.value.error_type == 'MediaStorageError'  # the sample names an object not in the bucket


def test_sample_events_carry_no_secret_looking_values():
    for path in EVENTS.glob('*.json'):
        text = path.read_text()
        assert not any(marker in text for marker in SECRET_LOOKING), path.name
