"""What Kie.ai's two APIs (Veo 3.1 and the Market) share: auth, the envelope, error mapping, callback signatures.

Kie answers `{code, msg | message, data}`. An error code may come inside an HTTP 200 or as the HTTP status
itself (docs/providers/kie.md §1), so both are checked. Error messages are our own sentences around Kie's
own reason, cleaned (`vidgen.providers.reasons`): Kie's text can echo the request, and a message must never
carry the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any, Literal, Mapping

from vidgen.errors import (
    CallbackRejectedError,
    GenerationFailedError,
    ProviderAuthError,
    ProviderContentPolicyError,
    ProviderError,
    ProviderNotFoundError,
    ProviderQuotaError,
    ProviderRejectedError,
    ProviderThrottledError,
    ProviderUnavailableError,
)
from vidgen.providers.base import TaskFailure
from vidgen.providers.http import HttpReply
from vidgen.providers.reasons import clean_reason, explain

Operation = Literal['create', 'status', 'upload']

_POLICY_WORDS = ('flagged', 'policy', 'policies')
_MISSING_RECORD_WORDS = ('record is null', 'records within', 'not found')

_RETRIED = 'The call will be retried.'
_OPERATOR = 'This is not your request: the operator must'
# Per code: the error class, what happened (our words), what to do. The job's message is
# "<what happened>: <Kie's own reason>. <what to do>" (vidgen.providers.reasons.explain).
_ERRORS: dict[int, tuple[type[ProviderError], str, str]] = {
    401: (ProviderAuthError, 'Kie.ai refused our API key', f'{_OPERATOR} check the configured Kie key.'),
    402: (ProviderQuotaError, 'Our Kie.ai account is out of credits', f'{_OPERATOR} top it up; try again later.'),
    404: (ProviderNotFoundError, 'Kie.ai does not know this task or endpoint', ''),
    408: (ProviderUnavailableError, 'Kie.ai produced no result within its own time limit', _RETRIED),
    422: (ProviderRejectedError, 'Kie.ai rejected the request parameters',
          'Change the inputs or options it names and submit again.'),
    429: (ProviderThrottledError, 'Kie.ai is rate limiting our requests', 'The call will be retried with backoff.'),
    # 433: a sub-key's own spending limit, which only the operator can lift.
    433: (ProviderQuotaError, 'Our Kie.ai key reached its usage limit', f'{_OPERATOR} raise it; try again later.'),
    451: (ProviderRejectedError, 'Kie.ai could not fetch an input image',
          'Give a public https URL or a data: URI and submit again.'),
    455: (ProviderUnavailableError, 'Kie.ai is under maintenance', _RETRIED),
    500: (ProviderUnavailableError, 'Kie.ai had an internal error', _RETRIED),
    501: (GenerationFailedError, 'Kie.ai failed to generate the result', 'Submit it again, or change the prompt.'),
    505: (ProviderRejectedError, 'Kie.ai has disabled this feature for our account', 'Choose another model.'),
}
_CONTENT_POLICY = ('Kie.ai refused the prompt or an input image under its content policy', 'Change them and submit again.')
_INVALID = ('Kie.ai refused the request as invalid', 'Change the inputs or options it names and submit again.')
_TASK_GONE = 'Kie.ai no longer knows this task (it keeps records for 14 days) or never created it.'
# Kie's stock texts: a message that only says one of these adds nothing to our sentence.
_GENERIC_TEXTS = ('success', 'error', 'failed', 'you do not have access permissions', 'not found',
                  'internal error, please try again later', 'playground task failed', 'generation failed',
                  'video generation failed')


def error_for(code: int, provider_text: str = '', *, operation: Operation = 'create',
              retry_after: float | None = None, secrets: tuple[str, ...] = ()) -> ProviderError:
    """The typed error for a Kie error code; its message keeps Kie's own reason, cleaned of secrets and URLs."""
    text = provider_text.lower()
    reason = clean_reason(provider_text, secrets)
    if code == 400:
        if any(word in text for word in _POLICY_WORDS):
            return ProviderContentPolicyError(_explain(_CONTENT_POLICY, reason), provider_code=code)
        return ProviderRejectedError(_explain(_INVALID, reason), provider_code=code)
    if code == 422 and operation == 'status' and any(word in text for word in _MISSING_RECORD_WORDS):
        return ProviderNotFoundError(_TASK_GONE, provider_code=code)
    cls, lead, advice = _ERRORS.get(code, (ProviderUnavailableError, f'Kie.ai answered with unexpected code {code}',
                                           _RETRIED))
    return cls(_explain((lead, advice), reason), provider_code=code, retry_after=retry_after if code == 429 else None)


def _explain(sentence: tuple[str, str], reason: str) -> str:
    return explain(sentence[0], reason, sentence[1], generic=_GENERIC_TEXTS)


def unwrap(reply: HttpReply, *, operation: Operation = 'create', secrets: tuple[str, ...] = ()) -> Any:
    """The envelope's `data` when both the HTTP status and the body code say 200; otherwise a typed error."""
    body = reply.body
    if not isinstance(body, dict) or 'code' not in body:
        raise ProviderUnavailableError('Kie.ai answered with a body we do not understand; the call will be retried.',
                                       provider_code=reply.status)
    code = _as_int(body.get('code'))
    if reply.status == 200 and code == 200:
        return body.get('data')
    # An error status with a 200 (or missing) body code still is an error: trust whichever one says so.
    effective = code if code not in (None, 200) else reply.status
    raise error_for(effective, _text_of(body), operation=operation, retry_after=reply.retry_after(), secrets=secrets)


def task_id_from(data: Any) -> str:
    task_id = data.get('taskId') if isinstance(data, dict) else None
    if not isinstance(task_id, str) or not task_id:
        raise ProviderUnavailableError('Kie.ai accepted the task but returned no task id; the call will be retried.')
    return task_id


# --- Tolerant readers for fields Kie sends in more than one shape ---------------------------------------------


def parse_url_list(value: Any) -> list[str]:
    """`resultUrls` as a list, a JSON string of a list, or the bracketed non-JSON string one schema shows."""
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str) and item]
    if not isinstance(value, str) or not value.strip():
        return []
    text = value.strip()
    if text.startswith('['):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = [part.strip().strip('\'"') for part in text.strip('[]').split(',')]
        return parse_url_list(parsed if isinstance(parsed, list) else [])
    return [part.strip() for part in text.split(',') if part.strip()]


def parse_json_field(value: Any) -> dict[str, Any]:
    """`param` / `resultJson` / `paramJson`: a JSON object sent as a string (or, defensively, as an object)."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip():
        try:
            parsed = json.loads(value)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


_CONTENT_TYPES = {'.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.webp': 'image/webp',
                  '.gif': 'image/gif', '.mp4': 'video/mp4', '.mov': 'video/quicktime', '.webm': 'video/webm'}


def content_type_for(url: str, default: str | None = None) -> str | None:
    path = url.split('?', 1)[0].split('#', 1)[0].lower()
    for extension, content_type in _CONTENT_TYPES.items():
        if path.endswith(extension):
            return content_type
    return default


def failure_for(code: Any, provider_text: str | None) -> TaskFailure:
    """A failed task's job error from Kie's errorCode / failCode (400 policy, 500 internal, 501 generation),
    its message keeping Kie's own reason (`errorMessage` / `failMsg`), cleaned."""
    code_text = str(code) if code not in (None, '') else None
    text = (provider_text or '').lower()
    reason = clean_reason(provider_text)
    if code_text == '400' or any(word in text for word in _POLICY_WORDS):
        return TaskFailure('CONTENT_POLICY', _explain(_CONTENT_POLICY, reason), code_text)
    if code_text in ('500', '408', '455'):
        # The provider broke, not the request: a new job may well succeed.
        return TaskFailure('PROVIDER_UNAVAILABLE', _explain(('Kie.ai had an internal error while generating',
                                                             'Submit it again later.'), reason), code_text)
    if code_text == '451':
        return TaskFailure('GENERATION_FAILED', _explain(_ERRORS[451][1:], reason), code_text)
    return TaskFailure('GENERATION_FAILED', _explain(('Kie.ai failed to generate the result',
                                                      'Submit it again, or change the prompt.'), reason), code_text)


# --- Callback signatures (docs/providers/kie.md §4): base64(HMAC-SHA256(key, f'{taskId}.{timestamp}')) -------------


def webhook_signature(task_id: str, timestamp: str | int, key: str) -> str:
    digest = hmac.new(key.encode(), f'{task_id}.{timestamp}'.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode('ascii')


def verify_webhook_signature(task_id: str | None, timestamp: str | int | None, signature: str | None, key: str, *,
                             now: float | None = None, tolerance: int = 300) -> None:
    """Raise `CallbackRejectedError` unless the signature matches and the timestamp is fresh.

    Kie signs only the task id and the time, not the body, so a valid signature proves the sender, not the
    result: the caller still re-fetches the task before acting on it.
    """
    rejected = CallbackRejectedError('The callback could not be verified.')
    if not task_id or not signature or timestamp in (None, ''):
        raise rejected
    stamp = _as_int(timestamp)
    current = time.time() if now is None else now
    if stamp is None or abs(current - stamp) > tolerance:
        raise rejected
    expected = webhook_signature(task_id, str(timestamp).strip(), key)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise rejected


def verify_callback(body: Any, headers: Mapping[str, str], key: str | None, *, now: float | None = None) -> None:
    """Check the signature headers of a callback when a webhook key is configured; do nothing otherwise."""
    if key is None:
        return
    verify_webhook_signature(callback_task_id(body), header(headers, 'X-Webhook-Timestamp'),
                             header(headers, 'X-Webhook-Signature'), key, now=now)


def callback_record(body: Any) -> dict[str, Any] | None:
    """The task record a callback carries: `data` of the `{code, msg, data}` envelope, or the body itself when
    it is the flat record (`{"taskId", "state", "resultJson", ...}`, as integrations have seen it)."""
    if not isinstance(body, dict):
        return None
    data = body.get('data')
    if isinstance(data, dict):
        return data
    return body if 'code' not in body and ('taskId' in body or 'task_id' in body) else None


def callback_task_id(body: Any) -> str | None:
    record = callback_record(body)
    task_id = (record.get('taskId') or record.get('task_id')) if record is not None else None
    return task_id if isinstance(task_id, str) and task_id else None


def header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def _text_of(body: dict[str, Any]) -> str:
    text = body.get('msg') or body.get('message') or ''
    return text if isinstance(text, str) else ''


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip('-').isdigit():
        return int(value.strip())
    return None
