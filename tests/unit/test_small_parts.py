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


@pytest.mark.parametrize('variable', ['TABLE_NAME', 'BUCKET_NAME', 'STATE_MACHINE_ARN'])
def test_a_missing_deployment_setting_fails_at_cold_start_naming_it(monkeypatch, variable):
    from vidgen.api import status
    from vidgen.api.entry import http_handler
    from vidgen.config import get_settings
    from vidgen.errors import ConfigurationError

    monkeypatch.delenv(variable)
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigurationError, match=f'{variable} is not set'):
            http_handler(status.router)  # what each function's module does when Lambda loads it
        monkeypatch.setenv(variable, '')
        get_settings.cache_clear()
        with pytest.raises(ConfigurationError, match=f'{variable} is not valid'):
            get_settings()
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert get_settings().table_name
