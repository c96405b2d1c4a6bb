"""Ids, cursors, the SSRF guard and request models."""

import pytest
from pydantic import ValidationError
from vidgen import ids
from vidgen.errors import InvalidParametersError, UnsafeUrlError
from vidgen.jobs.queries import decode_cursor, encode_cursor
from vidgen.models import JobRequest
from vidgen.netguard import check_url


def test_ulids_sort_by_time_and_are_unique():
    early, late = ids.ulid(1_700_000_000_000), ids.ulid(1_700_000_000_001)
    assert len(early) == 26 and early < late
    assert len({ids.ulid() for _ in range(1000)}) == 1000


def test_cursor_round_trip_and_ownership():
    key = {'PK': 'JOB#job_1', 'SK': 'JOB', 'owner': 'alice', 'created_key': '1#job_1'}
    assert decode_cursor(encode_cursor(key), 'alice', ('owner',)) == key
    with pytest.raises(InvalidParametersError):
        decode_cursor(encode_cursor(key), 'mallory', ('owner',))
    with pytest.raises(InvalidParametersError):
        decode_cursor('not-a-cursor!!', 'alice', ('owner',))
    with pytest.raises(InvalidParametersError):
        decode_cursor(encode_cursor({'PK': 'USER#bob', 'SK': 'LEDGER#1'}), 'alice', ())


@pytest.mark.parametrize('url', ['http://127.0.0.1/x', 'http://10.0.0.5/x', 'http://169.254.169.254/latest/meta-data',
                                 'http://[::1]/x', 'http://localhost/x', 'file:///etc/passwd', 'ftp://example.com/x',
                                 'http://192.168.1.1/x', 'http://0.0.0.0/x'])
def test_private_and_non_http_urls_are_refused(url):
    with pytest.raises(UnsafeUrlError):
        check_url(url, allow_private=False)


def test_public_addresses_pass_and_local_mode_allows_loopback():
    check_url('http://8.8.8.8/x', allow_private=False)
    check_url('http://127.0.0.1:9000/x', allow_private=True)
    with pytest.raises(UnsafeUrlError):
        check_url('file:///etc/passwd', allow_private=True)


def test_job_request_refuses_unknown_fields_and_bad_images():
    with pytest.raises(ValidationError):
        JobRequest(model='m', prompt='x', colour='red')
    with pytest.raises(ValidationError):
        JobRequest(model='m', prompt='x', image='ftp://x/y.png')
    with pytest.raises(ValidationError):
        JobRequest(model='m', prompt='x', image='data:text/html;base64,PGI+')
    assert JobRequest(model='m', image='data:image/png;base64,iVBORw0KGgo=').image.startswith('data:image/png')



REQUIRED_SETTINGS = ('TABLE_NAME', 'BUCKET_NAME', 'STATE_MACHINE_ARN', 'STORYBOARD_STATE_MACHINE_ARN')


@pytest.mark.parametrize('variable', REQUIRED_SETTINGS)
def test_a_missing_or_empty_deployment_setting_is_named(variable):
    from vidgen.config import load_settings
    from vidgen.errors import ConfigurationError

    complete = {name: 'x' for name in REQUIRED_SETTINGS}
    assert load_settings(complete).table_name == 'x'
    with pytest.raises(ConfigurationError, match=f'{variable} is not set'):
        load_settings({k: v for k, v in complete.items() if k != variable})
    with pytest.raises(ConfigurationError, match=f'{variable} is not valid'):
        load_settings({**complete, variable: ''})


def test_a_function_started_without_its_settings_fails_at_cold_start_naming_them():
    """What Lambda does when it loads a function module: import it, in a fresh interpreter."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k not in REQUIRED_SETTINGS}
    for function in ('poller', 'status'):
        result = subprocess.run([sys.executable, '-c', 'import runpy, sys; runpy.run_path(sys.argv[1])',
                                 str(root / 'functions' / function / 'app.py')],
                                env=env, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode != 0, function
        assert 'ConfigurationError' in result.stderr and all(f'{name} is not set' in result.stderr
                                                             for name in REQUIRED_SETTINGS), result.stderr[-800:]
