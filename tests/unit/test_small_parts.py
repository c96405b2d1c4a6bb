"""Ids, cursors and request models (the SSRF guard: test_netguard.py)."""

import pytest
from pydantic import ValidationError
from vidgen import ids
from vidgen.errors import InvalidParametersError
from vidgen.jobs.queries import decode_cursor, encode_cursor
from vidgen.models import JobRequest


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


def test_settings_are_parsed_from_their_variables_and_every_bad_one_is_named():
    from vidgen.config import load_settings
    from vidgen.errors import ConfigurationError

    complete = {name: 'x' for name in REQUIRED_SETTINGS}
    settings = load_settings({**complete, 'POLL_INTERVALS': '5, 10,20', 'PROVIDER_TIMEOUT': '2,9.5', 'LLM_VISION': 'Off',
                              'VIDGEN_ALLOW_LOOPBACK_URLS': 'yes', 'CALLBACK_WAIT_SECONDS': ' 12 '})
    assert (settings.poll_intervals, settings.provider_timeout) == ((5, 10, 20), (2.0, 9.5))
    assert (settings.llm_vision, settings.allow_loopback_urls, settings.callback_wait_seconds) == (False, True, 12)
    assert (settings.job_deadline_seconds, settings.kling_secret_name) == (3600, 'vidgen/kling')  # the defaults
    with pytest.raises(ConfigurationError) as refused:
        load_settings({**complete, 'LLM_BUDGET_SECONDS': '31', 'JOB_DEADLINE_SECONDS': '59', 'LLM_VISION': 'maybe',
                       'PROVIDER_TIMEOUT': '5', 'SWEEP_BATCH_SIZE': 'ten'})
    message = str(refused.value)
    assert all(f'{name} is not valid' in message for name in ('LLM_BUDGET_SECONDS', 'JOB_DEADLINE_SECONDS', 'LLM_VISION',
                                                              'PROVIDER_TIMEOUT', 'SWEEP_BATCH_SIZE')), message
    with pytest.raises(AttributeError):
        settings.table_name = 'other'  # type: ignore[misc]  # frozen: a cached setting cannot drift


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
