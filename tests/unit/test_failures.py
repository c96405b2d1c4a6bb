"""How errors caught by the state machine become the job's error code and message."""

import json

import pytest
from vidgen import errors
from vidgen.jobs.tasks import failure_reason


def lambda_cause(message: str, error_type: str) -> str:
    return json.dumps({'errorMessage': message, 'errorType': error_type, 'stackTrace': []})


@pytest.mark.parametrize(('error_type', 'code'), [
    ('ProviderContentPolicyError', 'CONTENT_POLICY'),
    ('GenerationFailedError', 'GENERATION_FAILED'),
    ('ProviderTimeoutError', 'PROVIDER_TIMEOUT'),
    ('ProviderUnavailableError', 'PROVIDER_UNAVAILABLE'),
    ('ProviderThrottledError', 'PROVIDER_UNAVAILABLE'),
    ('ProviderAuthError', 'PROVIDER_AUTH'),
    ('ProviderQuotaError', 'PROVIDER_QUOTA'),
    ('States.Timeout', 'PROVIDER_TIMEOUT'),
])
def test_known_errors_keep_their_own_message(error_type, code):
    got = failure_reason({'Error': error_type, 'Cause': lambda_cause('A sentence for the user.', error_type)})
    assert got == (code, 'A sentence for the user.', None)


def test_a_plain_cause_from_send_task_failure_is_the_message():
    assert failure_reason({'Error': 'ProviderContentPolicyError', 'Cause': 'Refused by policy.'}) == (
        'CONTENT_POLICY', 'Refused by policy.', None)


def test_anything_else_is_a_system_error_and_hides_the_internal_message():
    code, message, _ = failure_reason({'Error': 'KeyError', 'Cause': lambda_cause("'secret-internal-detail'", 'KeyError')})
    assert code == 'SYSTEM_ERROR'
    assert 'secret-internal-detail' not in message and 'refunded' in message


def test_missing_cause_gets_a_default_sentence():
    assert failure_reason({'Error': 'States.Timeout'}) == (
        'PROVIDER_TIMEOUT', 'The provider did not finish the job in time; its credits were refunded.', None)


def test_job_codes_map_back_to_error_classes_the_asl_knows():
    for code in ('CONTENT_POLICY', 'GENERATION_FAILED', 'PROVIDER_TIMEOUT', 'PROVIDER_UNAVAILABLE', 'PROVIDER_AUTH',
                 'PROVIDER_QUOTA', 'CANCELED'):
        cls = errors.error_class_for_job_code(code)
        assert cls.job_code == code
        assert errors.job_code_for_error_type(cls.__name__) == code


def test_the_provider_code_travels_with_the_message_from_a_raised_error_and_from_a_callback():
    # Raised by a step: the Lambda runtime sends str(exc) as errorMessage
    raised = errors.ProviderRejectedError('Kling refused a request parameter: image too small.', provider_code=1201)
    got = failure_reason({'Error': 'ProviderRejectedError', 'Cause': lambda_cause(str(raised), 'ProviderRejectedError')})
    assert got == ('GENERATION_FAILED', 'Kling refused a request parameter: image too small.', '1201')
    # Sent by the callback with SendTaskFailure
    cause = errors.failure_cause('Kie.ai failed to generate the result.', '501')
    assert failure_reason({'Error': 'GenerationFailedError', 'Cause': cause}) == (
        'GENERATION_FAILED', 'Kie.ai failed to generate the result.', '501')
    # An error without a code stays a plain sentence
    assert str(errors.ProviderUnavailableError('Kling timed out.')) == 'Kling timed out.'
