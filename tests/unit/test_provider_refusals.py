"""Every documented refusal of Kling and Kie, as the job's owner reads it: our sentence around the provider's
own reason, cleaned of secrets, tokenised URLs and dumps, with the provider's code kept apart."""

from __future__ import annotations

import pytest
from vidgen.errors import (
    GenerationFailedError,
    ProviderAuthError,
    ProviderContentPolicyError,
    ProviderNotFoundError,
    ProviderQuotaError,
    ProviderRejectedError,
    ProviderThrottledError,
    ProviderUnavailableError,
)
from vidgen.providers.kie_common import error_for, failure_for
from vidgen.providers.kling import failure_from_message, kling_error
from vidgen.providers.reasons import clean_reason

_OPERATOR_KEYS = 'This is not your request: the operator must check KLING_ACCESS_KEY and KLING_SECRET_KEY.'

# Kling's error table (code, HTTP status), a message Kling sends for it, the error and the job's message.
KLING = [
    (1000, 'Authentication failed', ProviderAuthError, f'Kling refused our API credentials. {_OPERATOR_KEYS}'),
    (1001, 'Authorization is empty', ProviderAuthError,
     'Kling received no Authorization header from us. This is a vidgen bug; report it.'),
    (1002, 'Authorization is invalid', ProviderAuthError, f'Kling rejected our access token as invalid. {_OPERATOR_KEYS}'),
    (1003, 'Authorization is not yet valid', ProviderAuthError,
     'Kling says our access token is not valid yet. The operator must check the server clock.'),
    (1004, 'Authorization has expired', ProviderAuthError,
     'Kling says our access token has expired. The operator must check the server clock.'),
    (1100, 'Account exception: account frozen', ProviderAuthError,
     'Kling reports a problem with our account: Account exception: account frozen. '
     'The operator must check it in the Kling console.'),
    (1101, 'Account in arrears (postpaid)', ProviderQuotaError,
     'Our Kling account is in arrears: Account in arrears (postpaid). The operator must settle the bill; try again later.'),
    (1102, 'Resource pack depleted or expired (prepaid)', ProviderQuotaError,
     'Our Kling resource pack is used up or expired: Resource pack depleted or expired (prepaid). '
     'The operator must buy or renew one; try again later.'),
    (1103, 'Unauthorized access to requested resource: kling-v3', ProviderAuthError,
     'Our Kling account has no access to this model or API: Unauthorized access to requested resource: kling-v3. '
     'Choose another model, or ask the operator to enable it in the Kling console.'),
    (1200, 'request body is not valid JSON', ProviderRejectedError,
     'Kling refused the request parameters: request body is not valid JSON. Change that input and submit again.'),
    (1201, 'image must be at least 300px on each side, got 64x64', ProviderRejectedError,
     'Kling refused a request parameter: image must be at least 300px on each side, got 64x64. '
     'Change that input and submit again.'),
    (1201, "duration '7' is not supported by kling-v2-6; allowed: 5, 10", ProviderRejectedError,
     "Kling refused a request parameter: duration '7' is not supported by kling-v2-6; allowed: 5, 10. "
     'Change that input and submit again.'),
    (1202, 'Invalid request method', ProviderRejectedError,
     'Kling does not accept this request method. This is a vidgen bug; report it.'),
    (1203, "model_name 'kling-v9' does not exist", ProviderRejectedError,
     "Kling does not know the requested model or resource: model_name 'kling-v9' does not exist. "
     'Choose another model from GET /v1/models.'),
    (1300, 'Trigger platform strategy', ProviderContentPolicyError,
     'Kling refused the request under its platform policy. Change the prompt or image and submit again.'),
    (1301, 'Trigger the content security policy of the platform', ProviderContentPolicyError,
     'Kling refused the prompt or image under its content policy. Change them and submit again.'),
    (1302, 'API request too fast, exceeding the rate limit', ProviderThrottledError,
     'Kling is rate limiting our requests: API request too fast, exceeding the rate limit. The call will be retried.'),
    (1303, 'parallel task over resource pack limit', ProviderThrottledError,
     'Our Kling concurrency limit is reached: parallel task over resource pack limit. The call will be retried.'),
    (1304, 'Trigger the IP whitelisting policy', ProviderAuthError,
     "Kling refused this server's IP address: Trigger the IP whitelisting policy. "
     'The operator must add it to the whitelist in the Kling console.'),
    (5000, 'Server internal error', ProviderUnavailableError, 'Kling had an internal error. The call will be retried.'),
    (5001, 'Server temporarily unavailable, usually due to maintenance', ProviderUnavailableError,
     'Kling is temporarily unavailable for maintenance: Server temporarily unavailable, usually due to maintenance. '
     'The call will be retried.'),
    (5002, 'Server internal timeout, usually due to a backlog', ProviderUnavailableError,
     'Kling timed out internally: Server internal timeout, usually due to a backlog. The call will be retried.'),
]


@pytest.mark.parametrize(('code', 'text', 'error_class', 'message'), KLING, ids=[f'{c[0]}' for c in KLING])
def test_every_kling_refusal_code_keeps_its_reason(code, text, error_class, message):
    error = kling_error(code, text)
    assert type(error) is error_class
    assert error.message == message
    assert error.provider_code == code


def test_kling_task_failures_keep_their_reason_without_a_code():
    policy = failure_from_message('Failure to pass the risk control system: the prompt may contain sensitive content')
    assert (policy.code, policy.provider_code) == ('CONTENT_POLICY', None)
    assert policy.message == ('Kling refused the prompt or image under its content policy: Failure to pass the risk '
                              'control system: the prompt may contain sensitive content. Change them and submit again.')
    failed = failure_from_message('Video generation failed due to an internal error, please try again')
    assert failed.code == 'GENERATION_FAILED'
    assert failed.message == ('Kling could not generate this video: Video generation failed due to an internal error, '
                              'please try again. Submit it again, or change the prompt or image.')
    assert failure_from_message(None).message == ('Kling could not generate this video. '
                                                  'Submit it again, or change the prompt or image.')


_KIE_OPERATOR = 'This is not your request: the operator must'

# Kie's codes (docs: 200 ok, then these), a message Kie sends, the operation, the error and the job's message.
KIE = [
    (400, 'create', 'Your prompt was flagged by Website as violating content policies.', ProviderContentPolicyError,
     'Kie.ai refused the prompt or an input image under its content policy: Your prompt was flagged by Website as '
     'violating content policies. Change them and submit again.'),
    (400, 'create', 'Only English prompts are supported', ProviderRejectedError,
     'Kie.ai refused the request as invalid: Only English prompts are supported. '
     'Change the inputs or options it names and submit again.'),
    (401, 'create', 'You do not have access permissions', ProviderAuthError,
     f'Kie.ai refused our API key. {_KIE_OPERATOR} check the configured Kie key.'),
    (402, 'create', 'The current credits are insufficient. Please top up.', ProviderQuotaError,
     'Our Kie.ai account is out of credits: The current credits are insufficient. Please top up. '
     f'{_KIE_OPERATOR} top it up; try again later.'),
    (404, 'status', 'Not Found', ProviderNotFoundError, 'Kie.ai does not know this task or endpoint.'),
    (408, 'status', 'upstream returned no result within 10 minutes', ProviderUnavailableError,
     'Kie.ai produced no result within its own time limit: upstream returned no result within 10 minutes. '
     'The call will be retried.'),
    (422, 'create', 'Your request was rejected by Flow(image_urls: at most 1 item)', ProviderRejectedError,
     'Kie.ai rejected the request parameters: Your request was rejected by Flow(image_urls: at most 1 item). '
     'Change the inputs or options it names and submit again.'),
    (422, 'status', 'record is null', ProviderNotFoundError,
     'Kie.ai no longer knows this task (it keeps records for 14 days) or never created it.'),
    (429, 'create', 'Rate limited: too many requests, please slow down.', ProviderThrottledError,
     'Kie.ai is rate limiting our requests: Rate limited: too many requests, please slow down. '
     'The call will be retried with backoff.'),
    (433, 'create', 'sub key usage limit reached', ProviderQuotaError,
     f'Our Kie.ai key reached its usage limit: sub key usage limit reached. {_KIE_OPERATOR} raise it; try again later.'),
    (451, 'create', 'Failed to fetch the image. Please check the image URL.', ProviderRejectedError,
     'Kie.ai could not fetch an input image: Failed to fetch the image. Please check the image URL. '
     'Give a public https URL or a data: URI and submit again.'),
    (455, 'create', 'Service is under maintenance. Please try again later.', ProviderUnavailableError,
     'Kie.ai is under maintenance: Service is under maintenance. Please try again later. The call will be retried.'),
    (500, 'create', 'Internal Error, Please try again later.', ProviderUnavailableError,
     'Kie.ai had an internal error. The call will be retried.'),
    (501, 'create', 'Video generation failed.', GenerationFailedError,
     'Kie.ai failed to generate the result. Submit it again, or change the prompt.'),
    (505, 'create', 'This feature is currently disabled.', ProviderRejectedError,
     'Kie.ai has disabled this feature for our account: This feature is currently disabled. Choose another model.'),
]


@pytest.mark.parametrize(('code', 'operation', 'text', 'error_class', 'message'), KIE,
                         ids=[f'{c[0]}-{c[1]}' for c in KIE])
def test_every_kie_refusal_code_keeps_its_reason(code, operation, text, error_class, message):
    error = error_for(code, text, operation=operation)
    assert type(error) is error_class
    assert error.message == message
    assert error.provider_code == code


@pytest.mark.parametrize(('code', 'text', 'job_code', 'message'), [
    ('400', 'Your prompt was flagged by Website as violating content policies.', 'CONTENT_POLICY',
     'Kie.ai refused the prompt or an input image under its content policy: Your prompt was flagged by Website as '
     'violating content policies. Change them and submit again.'),
    ('500', 'Internal Error - Timeout', 'PROVIDER_UNAVAILABLE',
     'Kie.ai had an internal error while generating: Internal Error - Timeout. Submit it again later.'),
    ('501', 'The video could not be rendered: the scene is too complex', 'GENERATION_FAILED',
     'Kie.ai failed to generate the result: The video could not be rendered: the scene is too complex. '
     'Submit it again, or change the prompt.'),
    ('451', 'image download failed: https://cdn.example.com/a.png?X-Amz-Signature=abc123', 'GENERATION_FAILED',
     'Kie.ai could not fetch an input image: image download failed: <a URL on cdn.example.com>. '
     'Give a public https URL or a data: URI and submit again.'),
])
def test_kie_task_failures_keep_their_reason_and_code(code, text, job_code, message):
    failure = failure_for(code, text)
    assert (failure.code, failure.message, failure.provider_code) == (job_code, message, code)


@pytest.mark.parametrize(('raw', 'cleaned'), [
    ('image must be at least 300px, got https://cdn.example.com/u/1.png?token=abcdef123456',
     'image must be at least 300px, got <a URL on cdn.example.com>'),
    ('bad header Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJhayJ9.sig-part', 'bad header Authorization: <hidden>'),
    ('invalid api_key=sk-0123456789abcdef', 'invalid api_key=<hidden>'),
    ('image is not valid: data:image/png;base64,iVBORw0KGgoAAAANSUhEUg==', 'image is not valid: <image data>'),
    ('request {"model": "kling-v2-6", "image": "AAAA", "prompt": "x"} is invalid', 'request is invalid'),
    ('<html><body>502 Bad Gateway</body></html>', '502 Bad Gateway'),
    ('hash 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 mismatch', 'hash <hidden> mismatch'),
    ('  lots   of\n whitespace.  ', 'lots of whitespace'),
    ('{"code": 1, "data": null}', ''),
    (None, ''),
])
def test_reasons_lose_secrets_tokenised_urls_and_dumps(raw, cleaned):
    assert clean_reason(raw) == cleaned


def test_a_reason_that_echoes_our_own_key_loses_it_and_long_reasons_are_cut():
    assert clean_reason('key kie-key-123 is not valid', ('kie-key-123',)) == 'key <hidden> is not valid'
    long = clean_reason('word ' * 100)
    assert len(long) == 200 and long.endswith('…')
