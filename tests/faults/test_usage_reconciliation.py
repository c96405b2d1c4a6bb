"""Usage on a cloud of its own: the known mix (tests/usage_mix.py) gives exactly its figures in every group for
the user AND for the admin view (nothing else runs here, so the service-wide counters hold the mix alone);
then the same mix again while the simulators drop, duplicate and delay callbacks and answer 5xx and 429 at
seeded rates, after which `vidgen admin usage-check` still finds no difference and the admin view still
equals the sum of what its users' own views say."""

from __future__ import annotations

import os

import pytest
from faults_support import record_figures
from support import Api
from usage_mix import MIX, expected, figures, run_mix

pytestmark = pytest.mark.faults

TIME_SCALE = 20.0
ENV = {'CALLBACK_WAIT_SECONDS': '3', 'POLL_INTERVALS': '20,40', 'QUEUED_GRACE_SECONDS': '5',
       'SWEEP_LIVENESS_SECONDS': '5', 'POWERTOOLS_LOG_LEVEL': 'ERROR'}
SEED = 20261202


@pytest.fixture(scope='module')
def cloud():
    from vidgen_local.cloud import LocalCloud
    from vidgen_local.simulators.kie import KieSimConfig
    from vidgen_local.simulators.kling import KlingSimConfig

    os.environ.pop('KLING_BASE_URL', None)
    os.environ.pop('KIE_BASE_URL', None)
    local = LocalCloud(port=0, time_scale=TIME_SCALE, env=ENV, admin_key='usage-admin-key',
                       kling_sim_config=KlingSimConfig(generation_seconds=1.0, result_bytes=300_000),
                       kie_sim_config=KieSimConfig(generation_seconds=1.0, result_bytes=200_000,
                                                   rate_limit_per_10s=10_000, callback_retry_seconds=(0.5, 1.0)))
    local.start()
    yield local
    local.stop()


def make_user(admin: Api, user_id: str) -> tuple[Api, dict, dict]:
    """A user with 1000 credits and a second key: (the user, its first key's record, the second key)."""
    response = admin.post('/v1/admin/users', json={'user_id': user_id, 'credits': 1000})
    assert response.status_code == 201, response.text
    user = admin.as_user(response.json()['api_key'])
    user.user_id = user_id  # type: ignore[attr-defined]
    first = admin.get(f'/v1/admin/users/{user_id}/keys').json()['keys'][0]
    second = admin.post(f'/v1/admin/users/{user_id}/keys', json={'label': 'second'}).json()
    return user, first, second


@pytest.fixture(scope='module')
def calm(cloud):
    admin = Api(cloud.api_url, cloud.admin_key)
    user, first, second = make_user(admin, 'mix-calm')
    done = run_mix(user, second['api_key'])
    return admin, user, expected(done, first['key_id'], second['key_id'])


def test_the_mix_gives_its_figures_for_the_user_and_for_the_admin_view(calm):
    admin, user, want = calm
    mine = user.get('/v1/usage').json()
    service = admin.get('/v1/admin/usage').json()

    for group in ('totals', 'by_model', 'by_kind', 'by_type', 'by_duration'):
        assert mine[group] == want[group] == service[group], group
    assert mine['by_api_key'] == want['by_api_key']
    assert service['by_day'] == mine['by_day']
    assert service['top_users'] == [{'user_id': 'mix-calm', 'jobs': 6, 'credits_charged': 128, 'credits_refunded': 30,
                                     'credits_net': 98, 'provider_cost_usd': 0.9625}]
    images = admin.get('/v1/admin/usage', params={'type': 'image'}).json()
    assert images['totals'] == want['by_type']['image'] and list(images['by_model']) == ['seedream-4-5']


def test_the_same_mix_under_faults_still_reconciles(cloud, calm, capsys):
    from vidgen_local.cli import main
    from vidgen_local.simulators.faults import FaultPlan

    admin, calm_user, _ = calm
    plan = {'create_server_error': 0.2, 'create_throttle': 0.2, 'status_server_error': 0.2, 'status_throttle': 0.2,
            'callback_drop': 0.3, 'callback_duplicate': 0.3}
    cloud.kling_sim.config.faults = FaultPlan(seed=SEED, **plan)
    cloud.kie_sim.config.faults = FaultPlan(seed=SEED + 1, callback_delay_seconds=5, **plan)
    try:
        users = [make_user(admin, f'mix-faults-{n}') for n in range(2)]
        # Transient faults that outlast every retry may fail a job (refunded): the outcomes are not checked
        # here, the counting is.
        views = [run_mix(user, second['api_key'], check_outcomes=False) for user, _, second in users]
    finally:
        cloud.kling_sim.config.faults = FaultPlan()
        cloud.kie_sim.config.faults = FaultPlan()

    code = main(['admin', 'usage-check', '--api-url', cloud.api_url, '--admin-key', cloud.admin_key])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert printed.startswith(f'checked 3 users, {3 * len(MIX)} jobs and the service-wide counters: '
                              'no differences'), printed
    for (user, first, second), done in zip(users, views, strict=True):
        assert user.get('/v1/usage').json()['by_api_key'] == expected(done, first['key_id'], second['key_id'])['by_api_key']
    # The service-wide shards hold exactly what the three users' own counters hold.
    service = admin.get('/v1/admin/usage').json()['totals']
    summed = figures()
    for user in [calm_user] + [u for u, _, _ in users]:
        totals = user.get('/v1/usage').json()['totals']
        for name in ('jobs', 'succeeded', 'failed', 'canceled', 'credits_charged', 'credits_refunded', 'output_bytes'):
            summed[name] += totals[name]
    assert {k: service[k] for k in ('jobs', 'succeeded', 'failed', 'canceled', 'credits_charged', 'credits_refunded',
                                    'output_bytes')} == {k: summed[k] for k in ('jobs', 'succeeded', 'failed', 'canceled',
                                                                                'credits_charged', 'credits_refunded',
                                                                                'output_bytes')}
    record_figures('usage_mix', {'printed': printed.strip(), 'service_totals': service},
                   [printed.strip(), f'service-wide after the faulty mix: {service["jobs"]} jobs, '
                                     f'{service["credits_net"]} credits net, {service["provider_cost_usd"]} USD'])
