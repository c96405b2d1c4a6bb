"""Usage on the local cloud: the known mix of tests/usage_mix.py gives exactly its figures in every group of
GET /v1/usage; filters, windows and bad input; several API keys per user; per-job timing; and the
reconciliation agrees with the counters. (The admin view's exact figures need a cloud of its own: see
tests/faults/test_usage_reconciliation.py.)"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from usage_mix import COST, CREDITS, MIX, expected, figures, run_mix


@pytest.fixture(scope='module')
def mixed(admin, new_user):
    """A user who ran the mix with two keys: (user, second key's id, first key's id, final job views)."""
    user = new_user(1000)
    first_key = admin.get(f'/v1/admin/users/{user.user_id}/keys').json()['keys'][0]
    second = admin.post(f'/v1/admin/users/{user.user_id}/keys', json={'label': 'ci'})
    assert second.status_code == 201, second.text
    done = run_mix(user, second.json()['api_key'])
    return user, second.json(), first_key, done


@pytest.fixture(scope='module')
def new_user(admin):  # module scope, so the mix runs once for every test here
    import itertools
    import os

    numbers = itertools.count(1)

    def make(credits: int = 1000):
        user_id = f'usage-{os.getpid()}-{next(numbers)}'
        response = admin.post('/v1/admin/users', json={'user_id': user_id, 'credits': credits})
        assert response.status_code == 201, response.text
        api = admin.as_user(response.json()['api_key'])
        api.user_id = user_id
        return api
    return make


def report(user, **params):
    response = user.get('/v1/usage', params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_mix_gives_exactly_its_figures_in_every_group(mixed):
    user, second, first_key, done = mixed
    assert [job['credits'] for job in done] == CREDITS
    want = expected(done, first_key['key_id'], second['key_id'])

    usage = report(user)

    assert 'truncated' not in usage
    for group in ('totals', 'by_model', 'by_kind', 'by_type', 'by_duration', 'by_api_key'):
        assert usage[group] == want[group], group
    assert usage['totals']['provider_cost_usd'] == round(sum(c for c, (_, _, end) in zip(COST, MIX, strict=True)
                                                             if end == 'succeeded'), 6) == 0.9625
    assert usage['totals']['credits_net'] == 128 - 30


def test_every_day_of_the_window_is_present_zeros_included(mixed):
    user, _, _, done = mixed
    today = date.fromisoformat(done[0]['created_at'][:10])
    usage = report(user, **{'from': (today - timedelta(days=2)).isoformat(), 'to': today.isoformat()})

    assert [d['date'] for d in usage['by_day']] == [(today - timedelta(days=n)).isoformat() for n in (2, 1, 0)]
    assert [{k: v for k, v in d.items() if k != 'date'} for d in usage['by_day'][:2]] == [figures()] * 2
    assert {k: v for k, v in usage['by_day'][2].items() if k != 'date'} == usage['totals']
    assert (usage['from'], usage['to']) == ((today - timedelta(days=2)).isoformat(), today.isoformat())
    # The default window is the last 30 days, today included.
    default = report(user)
    assert len(default['by_day']) == 30 and default['to'] == today.isoformat()


def test_the_model_and_type_filters_apply_to_every_group(mixed):
    user, second, first_key, done = mixed
    want = expected(done, first_key['key_id'], second['key_id'])

    kling = report(user, model='kling-v2-6')
    assert kling['totals'] == want['by_model']['kling-v2-6']
    assert list(kling['by_model']) == ['kling-v2-6'] and kling['filters'] == {'model': 'kling-v2-6', 'type': None}
    assert kling['by_duration']['10']['jobs'] == 1 and kling['by_duration']['5']['jobs'] == 2

    images = report(user, type='image')
    assert images['totals'] == want['by_type']['image'] and list(images['by_model']) == ['seedream-4-5']
    assert images['by_duration'] == {} and list(images['by_api_key']) == [second['key_id']]


@pytest.mark.parametrize(('params', 'field'), [
    ({'from': '2026-13-01'}, 'from'),
    ({'from': '2026-01-10', 'to': '2026-01-01'}, 'from'),
    ({'from': '2026-01-01', 'to': '2026-06-01'}, 'from'),  # more than 90 days
    ({'model': 'no-such-model'}, 'model'),
    ({'type': 'audio'}, 'query.type'),  # refused by the route's own validation
])
def test_a_bad_filter_is_a_clear_422(mixed, params, field):
    user = mixed[0]
    response = user.get('/v1/usage', params=params)
    assert response.status_code == 422, response.text
    assert response.json()['error']['field'] == field


def test_a_user_without_jobs_gets_zeros(new_user):
    usage = report(new_user(10))
    assert usage['totals'] == figures() and usage['by_model'] == {} and len(usage['by_day']) == 30


def test_jobs_record_their_key_their_timing_and_what_the_provider_reported(mixed):
    _, second, first_key, done = mixed
    assert [job['api_key_id'] for job in done] == [first_key['key_id'] if k == 'first' else second['key_id']
                                                   for k, _, _ in MIX]
    for job in done:
        timing = job['timing']
        assert timing['total_seconds'] is not None and timing['total_seconds'] > 0
        if job['status'] == 'succeeded':  # the provider took it, then it ended
            assert timing['queued_seconds'] >= 0 and timing['processing_seconds'] > 0
            assert timing['queued_seconds'] + timing['processing_seconds'] == pytest.approx(timing['total_seconds'],
                                                                                            abs=0.002)
            assert job['started_at'] is not None
    # What the providers report about their files: Kling a video's duration, Veo its resolution.
    assert done[1]['outputs'][0]['provider_facts'] == {'duration_seconds': 10.0, 'resolution': None}
    assert done[5]['outputs'][0]['provider_facts'] == {'duration_seconds': None, 'resolution': '720p'}
    assert done[4]['outputs'][0]['provider_facts'] is None  # the Market image: nothing reported


def test_keys_are_listed_without_the_key_and_a_revoked_key_is_refused_at_once(admin, new_user):
    user = new_user(100)
    created = admin.post(f'/v1/admin/users/{user.user_id}/keys', json={'label': 'laptop'})
    assert created.status_code == 201, created.text
    key = created.json()
    assert key['api_key'].startswith(key['prefix']) and key['label'] == 'laptop' and key['revoked_at'] is None
    assert user.get('/v1/credits', key=key['api_key']).status_code == 200

    listed = admin.get(f'/v1/admin/users/{user.user_id}/keys').json()
    assert [k['label'] for k in listed['keys']] == ['default', 'laptop']
    assert key['api_key'] not in str(listed) and user.key not in str(listed)

    revoked = admin.request('DELETE', f'/v1/admin/users/{user.user_id}/keys/{key["key_id"]}')
    assert revoked.status_code == 200 and revoked.json()['revoked_at'] is not None
    refused = user.get('/v1/credits', key=key['api_key'])
    assert refused.status_code == 401 and refused.json()['error']['code'] == 'AUTH_FAILED'
    assert user.get('/v1/credits').status_code == 200  # the other key still works
    again = admin.request('DELETE', f'/v1/admin/users/{user.user_id}/keys/{key["key_id"]}')
    assert again.json()['revoked_at'] == revoked.json()['revoked_at']
    assert admin.request('DELETE', f'/v1/admin/users/{user.user_id}/keys/key_nope').status_code == 404
    assert admin.get('/v1/admin/users/nobody-at-all/keys').status_code == 404
    assert admin.post('/v1/admin/users/nobody-at-all/keys', json={}).status_code == 404
    assert user.get(f'/v1/admin/users/{user.user_id}/keys').status_code == 401  # a user key is not the admin key


def test_the_reconciliation_of_the_mix_finds_no_difference(admin, mixed):
    user = mixed[0]
    response = admin.get('/v1/admin/usage-check', params={'user': user.user_id})
    assert response.status_code == 200, response.text
    assert response.json() == {'users': 1, 'jobs': len(MIX), 'differences': [], 'next_cursor': None}


def test_the_admin_view_has_the_same_shape_and_ranks_the_top_users(admin, mixed):
    service = admin.get('/v1/admin/usage', params={'top': 3})
    assert service.status_code == 200, service.text
    body = service.json()
    assert 'by_api_key' not in body and body['totals']['jobs'] >= len(MIX)
    assert set(body) == {'from', 'to', 'filters', 'totals', 'by_day', 'by_model', 'by_kind', 'by_type', 'by_duration',
                         'top_users'}
    net = [row['credits_net'] for row in body['top_users']]
    assert len(net) <= 3 and net == sorted(net, reverse=True)
    assert mixed[0].get('/v1/admin/usage').status_code == 401  # a user key is not the admin key


def test_a_counter_that_disagrees_with_the_jobs_is_reported_and_the_check_exits_1(cloud, admin, new_user, capsys):
    import boto3
    from vidgen_local.cli import main

    user = new_user(100)
    job = user.wait(user.submit({'model': 'kling-v2-6', 'prompt': 'one job'}).json()['id'], timeout=60)
    assert job['status'] == 'succeeded'
    command = ['admin', 'usage-check', '--user', user.user_id, '--api-url', cloud.api_url, '--admin-key', cloud.admin_key]
    assert main(command) == 0
    table = boto3.resource('dynamodb').Table(cloud.handler_env['TABLE_NAME'])
    [cell] = table.query(KeyConditionExpression='PK = :pk', ExpressionAttributeValues={':pk': f'USAGE#{user.user_id}'})['Items']
    table.update_item(Key={'PK': cell['PK'], 'SK': cell['SK']}, UpdateExpression='ADD credits_refunded :n',
                      ExpressionAttributeValues={':n': 20})  # as if a refund had been counted that never happened
    capsys.readouterr()

    assert main(command) == 1
    printed = capsys.readouterr().out
    assert printed.startswith('checked 1 users, 1 jobs: 2 differences'), printed
    differences = admin.get('/v1/admin/usage-check', params={'user': user.user_id}).json()['differences']
    assert [(d['scope'], d['figure'], d['expected'], d['stored']) for d in differences] == [
        (f'user {user.user_id}', 'credits_refunded', 0, 20),  # the cell against the job
        ('ledger', 'credits_refunded', 0, 20),  # the ledger (no refund entry) against the counters
    ]
    assert user.get('/v1/usage').json()['totals']['credits_refunded'] == 20  # reports read the counters alone
