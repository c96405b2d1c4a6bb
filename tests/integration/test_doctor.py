"""`vidgen doctor` against the local cloud: the admin route checks each provider from inside the stack."""

from __future__ import annotations

from vidgen_local import cli


def test_doctor_with_providers_passes_on_the_local_stack(cloud, new_user, capsys):
    user = new_user(100)
    code = cli.main(['doctor', '--providers', '--api-url', cloud.api_url, '--api-key', user.key,
                     '--admin-key', cloud.admin_key])
    out = capsys.readouterr().out.splitlines()
    assert code == 0, out
    assert out[0].startswith(f'ok    API {cloud.api_url} answers (vidgen ')
    assert out[1] == 'ok    user key works (balance 100)' and out[2] == 'ok    admin key works'
    assert out[3] == 'ok    kling (127.0.0.1): 1 of 1 resource packs online; 1000 left'
    assert out[4] == f'ok    kie (127.0.0.1): the key works (credit balance read); {cloud.kie_sim.credits:g} left'
    assert out[5] == f'ok    callbacks: {cloud.api_url} is reachable by the local simulators'
    assert out[-1] == 'verdict: all checks passed'
    assert cloud.kling_sim.stats['account_queries'] >= 1


def test_the_provider_report_is_admin_only_and_names_a_refused_key(cloud, admin, new_user):
    user = new_user(10)
    assert user.get('/v1/admin/providers').status_code == 401
    cloud.kling_sim.queue_error(1002, stage='status')  # the account query answers "Authorization is invalid"
    report = admin.get('/v1/admin/providers').json()
    kling = next(check for check in report['providers'] if check['name'] == 'kling')
    assert kling['ok'] is False and kling['provider_code'] == '1002'
    assert kling['detail'].startswith('Kling rejected our access token as invalid.')
    assert cloud.kling_sim.config.secret_key not in str(report)
