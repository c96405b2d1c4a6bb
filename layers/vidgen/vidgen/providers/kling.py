"""Kling AI (official API): text-to-video, image-to-video and first/last-frame video.

Wire protocol: `docs/providers/kling.md`. Every request carries a fresh HS256 JWT signed with the
secret key; every answer is a `{code, message, request_id, data}` envelope whose `code` says what went
wrong, so errors are mapped by code first and by HTTP status only when there is no envelope. Error
messages are our own sentences around Kling's own reason, cleaned (`vidgen.providers.reasons`): the
provider's text may echo the request, and nothing here may leak the token or the keys.
"""

from __future__ import annotations

import time
from typing import Any, Mapping
from urllib.parse import quote

import jwt
import requests

from vidgen.errors import (
    CallbackRejectedError,
    ProviderAuthError,
    ProviderContentPolicyError,
    ProviderError,
    ProviderNotFoundError,
    ProviderQuotaError,
    ProviderRejectedError,
    ProviderThrottledError,
    ProviderUnavailableError,
)
from vidgen.providers.base import (
    AccountStatus,
    CallbackHint,
    GenerationRequest,
    ImageInput,
    ProviderTask,
    TaskFailure,
    TaskOutput,
    TaskState,
)
from vidgen.providers.http import DEFAULT_TIMEOUT, HttpReply, ProviderHttp
from vidgen.providers.reasons import clean_reason, explain

TOKEN_LIFETIME_SECONDS = 1800
# The account query looks back this far: a yearly resource pack bought 11 months ago still counts.
ACCOUNT_WINDOW_DAYS = 400
# Kling's official sample backdates nbf so a slightly fast Kling clock still accepts a brand-new token.
TOKEN_NOT_BEFORE_SKEW_SECONDS = 5
_clock = time.time  # the token clock, replaceable in tests without touching the global time.time

_ENDPOINTS = {'t2v': 'text2video', 'i2v': 'image2video', 'flf2v': 'image2video'}
_STATES: dict[str, TaskState] = {
    'submitted': 'pending',
    'processing': 'running',
    'succeed': 'succeeded',
    'failed': 'failed',
}
# Words Kling uses when its risk control or content review stops a task (English and Chinese hosts).
_POLICY_WORDS = ('risk', 'content', 'policy', 'sensitive', 'violat', 'moderat', 'prohibit', '风控', '敏感', '违规')
_CONTENT_POLICY = 'Kling refused the prompt or image under its content policy'
_GENERATION_FAILED = 'Kling could not generate this video'
_CHANGE_INPUTS = ('Change them and submit again.', 'Submit it again, or change the prompt or image.')
# The duplicate-external_task_id answer is not documented by Kling (docs/providers/kling.md §3). We
# take the documented "invalid parameter" answer, 400 / code 1201, whose message names external_task_id;
# the local simulator answers a duplicate exactly that way.
_DUPLICATE_CODE = 1201
_DUPLICATE_FIELD = 'external_task_id'

_CREDENTIALS = 'the operator must check KLING_ACCESS_KEY and KLING_SECRET_KEY'
_RETRIED = 'the call will be retried'
_RESUBMIT = 'Change that input and submit again.'
# Per code: the error class, what happened (our words), what to do. The job's message is
# "<what happened>: <Kling's own reason>. <what to do>" (vidgen.providers.reasons.explain).
_ERRORS: dict[int, tuple[type[ProviderError], str, str]] = {
    1000: (ProviderAuthError, 'Kling refused our API credentials', f'This is not your request: {_CREDENTIALS}.'),
    1001: (ProviderAuthError, 'Kling received no Authorization header from us', 'This is a vidgen bug; report it.'),
    1002: (ProviderAuthError, 'Kling rejected our access token as invalid', f'This is not your request: {_CREDENTIALS}.'),
    1003: (ProviderAuthError, 'Kling says our access token is not valid yet', 'The operator must check the server clock.'),
    1004: (ProviderAuthError, 'Kling says our access token has expired', 'The operator must check the server clock.'),
    1100: (ProviderAuthError, 'Kling reports a problem with our account', 'The operator must check it in the Kling console.'),
    1101: (ProviderQuotaError, 'Our Kling account is in arrears', 'The operator must settle the bill; try again later.'),
    1102: (ProviderQuotaError, 'Our Kling resource pack is used up or expired',
           'The operator must buy or renew one; try again later.'),
    1103: (ProviderAuthError, 'Our Kling account has no access to this model or API',
           'Choose another model, or ask the operator to enable it in the Kling console.'),
    1200: (ProviderRejectedError, 'Kling refused the request parameters', _RESUBMIT),
    1201: (ProviderRejectedError, 'Kling refused a request parameter', _RESUBMIT),
    1202: (ProviderRejectedError, 'Kling does not accept this request method', 'This is a vidgen bug; report it.'),
    1203: (ProviderRejectedError, 'Kling does not know the requested model or resource',
           'Choose another model from GET /v1/models.'),
    1300: (ProviderContentPolicyError, 'Kling refused the request under its platform policy',
           'Change the prompt or image and submit again.'),
    1301: (ProviderContentPolicyError, 'Kling refused the prompt or image under its content policy',
           'Change them and submit again.'),
    1302: (ProviderThrottledError, 'Kling is rate limiting our requests', f'{_RETRIED.capitalize()}.'),
    1303: (ProviderThrottledError, 'Our Kling concurrency limit is reached', f'{_RETRIED.capitalize()}.'),
    1304: (ProviderAuthError, "Kling refused this server's IP address",
           'The operator must add it to the whitelist in the Kling console.'),
    5000: (ProviderUnavailableError, 'Kling had an internal error', f'{_RETRIED.capitalize()}.'),
    5001: (ProviderUnavailableError, 'Kling is temporarily unavailable for maintenance', f'{_RETRIED.capitalize()}.'),
    5002: (ProviderUnavailableError, 'Kling timed out internally', f'{_RETRIED.capitalize()}.'),
}
# Kling's table wording for each code (its docs' error table): a message that only says this adds nothing.
_GENERIC_TEXTS = (
    'authentication failed', 'authorization is empty', 'authorization is invalid', 'authorization is not yet valid',
    'authorization has expired', 'account exception', 'invalid request parameters', 'invalid parameter',
    'invalid request method', 'requested resource does not exist', 'trigger platform strategy',
    'trigger the content security policy of the platform', 'server internal error', 'succeed',
)
_TASK_NOT_FOUND = 'Kling does not know this task; it may have expired or never been created.'
_UNKNOWN_ERROR = 'Kling answered with an error we do not recognise'
_MALFORMED = 'Kling answered with a reply we could not read; the call will be retried.'


def kling_error(code: int, provider_message: object = None, *, retry_after: float | None = None,
                secrets: tuple[str, ...] = ()) -> ProviderError:
    """The typed error for one of Kling's codes, its message keeping Kling's own (cleaned) reason."""
    cls, lead, advice = _ERRORS.get(code, (ProviderUnavailableError, _UNKNOWN_ERROR, f'{_RETRIED.capitalize()}.'))
    message = explain(lead, clean_reason(provider_message, secrets), advice, generic=_GENERIC_TEXTS)
    return cls(message, provider_code=code, retry_after=retry_after)


def build_create_body(request: GenerationRequest, callback_url: str | None) -> dict[str, Any]:
    """The JSON body of a create call for this request."""
    params = request.params
    body: dict[str, Any] = {'model_name': request.provider_model, 'external_task_id': request.job_id}
    if request.prompt:
        body['prompt'] = request.prompt
    if request.negative_prompt:
        body['negative_prompt'] = request.negative_prompt
    if 'mode' in params:
        body['mode'] = params['mode']
    if 'duration' in params:
        body['duration'] = _duration_text(params['duration'])
    if 'cfg_scale' in params:
        body['cfg_scale'] = params['cfg_scale']
    if 'sound' in params:
        body['sound'] = 'on' if params['sound'] else 'off'
    if params.get('multi_shot'):
        # Our shots become Kling's own storyboard ("customize"): numbered from 1, durations as strings like
        # the top-level duration; they must add up to it (the catalog checked that).
        body['multi_shot'] = True
        body['shot_type'] = 'customize'
        body['multi_prompt'] = [{'index': index, 'prompt': shot['prompt'], 'duration': _duration_text(shot['duration'])}
                                for index, shot in enumerate(params['multi_shot'], start=1)]
    if request.kind == 't2v':
        # image2video has no aspect_ratio: the frame follows the input image.
        if 'aspect_ratio' in params:
            body['aspect_ratio'] = params['aspect_ratio']  # the catalog admits only Kling's own ratios
    else:
        if request.image is not None:
            body['image'] = _image_field(request.image)
        if request.end_image is not None:
            body['image_tail'] = _image_field(request.end_image)
    if callback_url is not None:
        body['callback_url'] = callback_url
    return body


def _duration_text(value: Any) -> str:
    # Kling wants "5", not 5 and not "5.0".
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _image_field(image: ImageInput) -> str:
    # Kling takes raw base64 or a URL; a data: URI prefix makes it refuse the image.
    return image.base64_payload if image.is_data_uri else image.value


def _endpoint(kind: str) -> str:
    endpoint = _ENDPOINTS.get(kind)
    if endpoint is None:
        raise ProviderRejectedError(f'The Kling adapter does not support the {kind!r} mode; check the catalog.')
    return endpoint


class KlingProvider:
    """The VideoProvider for Kling's official API."""

    name = 'kling'

    def __init__(self, base_url: str, access_key: str, secret_key: str, *, session: requests.Session | None = None,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        self._http = ProviderHttp('Kling', base_url, session=session, timeout=timeout)
        self._access_key = access_key
        self._secret_key = secret_key
        self._secrets = (access_key, secret_key)  # removed from any provider text that reaches an error message

    def __repr__(self) -> str:
        return f'KlingProvider({self._http.base_url!r})'

    def create_task(self, request: GenerationRequest, callback_url: str | None) -> str:
        path = f'/v1/videos/{_endpoint(request.kind)}'
        reply = self._request('POST', path, json=build_create_body(request, callback_url))
        if _is_duplicate_external_id(reply):
            # A create retried after a crash or a lost answer: the first attempt made the task.
            return self._task_id_for_external_id(path, request.job_id, reply.body.get('message'))
        return _task_id(_unwrap(reply, creating=True, secrets=self._secrets))

    def get_task(self, task_id: str, request: GenerationRequest) -> ProviderTask:
        reply = self._request('GET', f'/v1/videos/{_endpoint(request.kind)}/{quote(task_id, safe="")}')
        data = _unwrap(reply, creating=False, secrets=self._secrets)
        return task_from_data(data, fallback_task_id=task_id)

    def parse_callback(self, body: Any, headers: Mapping[str, str]) -> CallbackHint:
        return parse_callback_body(body)

    def account_status(self) -> AccountStatus:
        """Kling's free account query (`GET /account/costs`, QPS <= 1): the resource packs and what is left."""
        end = int(_clock() * 1000)
        start = end - ACCOUNT_WINDOW_DAYS * 86_400_000
        data = _unwrap(self._request('GET', f'/account/costs?start_time={start}&end_time={end}'), creating=False,
                       secrets=self._secrets)
        packs = [p for p in data.get('resource_pack_subscribe_infos') or [] if isinstance(p, dict)]
        online = [p for p in packs if p.get('status') == 'online']
        remaining = sum(_number(p.get('remaining_quantity')) for p in online)
        return AccountStatus(detail=f'{len(online)} of {len(packs)} resource packs online',
                             credits_remaining=remaining if packs else None)

    def _task_id_for_external_id(self, path: str, external_task_id: str, refusal: object) -> str:
        try:
            data = _unwrap(self._request('GET', f'{path}/{quote(external_task_id, safe="")}'), creating=False,
                           secrets=self._secrets)
        except ProviderNotFoundError:
            # The 1201 was about external_task_id after all (e.g. its format), not a duplicate.
            raise kling_error(_DUPLICATE_CODE, refusal, secrets=self._secrets) from None
        return _task_id(data)

    def _request(self, method: str, path: str, *, json: Any = None) -> HttpReply:
        return self._http.request(method, path, headers=self._headers(), json=json)

    def _headers(self) -> dict[str, str]:
        return {'Authorization': f'Bearer {make_token(self._access_key, self._secret_key)}',
                'Content-Type': 'application/json'}


def make_token(access_key: str, secret_key: str, *, now: float | None = None) -> str:
    """A fresh Kling API token: HS256 JWT, iss = access key, valid for 30 minutes."""
    issued = int(_clock() if now is None else now)
    payload = {'iss': access_key, 'exp': issued + TOKEN_LIFETIME_SECONDS, 'nbf': issued - TOKEN_NOT_BEFORE_SKEW_SECONDS}
    return jwt.encode(payload, secret_key, algorithm='HS256', headers={'typ': 'JWT'})


# --- Replies ------------------------------------------------------------------------------------------


def _envelope_code(body: Any) -> int | None:
    if not isinstance(body, dict) or 'code' not in body or isinstance(body['code'], bool):
        return None
    try:
        return int(body['code'])
    except (TypeError, ValueError):
        return None


def _is_duplicate_external_id(reply: HttpReply) -> bool:
    if reply.status != 400 or _envelope_code(reply.body) != _DUPLICATE_CODE:
        return False
    message = reply.body.get('message')
    return isinstance(message, str) and _DUPLICATE_FIELD in message


def _unwrap(reply: HttpReply, *, creating: bool, secrets: tuple[str, ...] = ()) -> dict[str, Any]:
    """The `data` of a success envelope; any other reply raises the matching typed error."""
    code = _envelope_code(reply.body)
    if code == 0 and reply.status < 400:
        data = reply.body.get('data')
        if not isinstance(data, dict):
            raise ProviderUnavailableError(_MALFORMED, provider_code=reply.status)
        return data
    raise error_for_reply(reply, creating=creating, secrets=secrets)


def error_for_reply(reply: HttpReply, *, creating: bool, secrets: tuple[str, ...] = ()) -> ProviderError:
    """The typed error for a failed reply: by envelope code, else by HTTP status."""
    code = _envelope_code(reply.body)
    retry_after = reply.retry_after()
    if code == 1203 and not creating:
        return ProviderNotFoundError(_TASK_NOT_FOUND, provider_code=code)
    if code is not None and code != 0:
        return kling_error(code, reply.body.get('message'), retry_after=retry_after, secrets=secrets)
    return _error_for_status(reply.status, retry_after)


def _error_for_status(status: int, retry_after: float | None) -> ProviderError:
    # No usable envelope: a gateway or proxy answered, or the envelope said success with an error status.
    if status == 429:
        return ProviderThrottledError(kling_error(1302).message, provider_code=status, retry_after=retry_after)
    if status in (401, 403):
        return ProviderAuthError(kling_error(1000).message, provider_code=status)
    if status >= 400:
        return ProviderUnavailableError(f'{_UNKNOWN_ERROR} (HTTP {status}); the call will be retried.',
                                        provider_code=status, retry_after=retry_after)
    return ProviderUnavailableError(_MALFORMED, provider_code=status, retry_after=retry_after)


def _task_id(data: Mapping[str, Any]) -> str:
    task_id = data.get('task_id')
    if not isinstance(task_id, (str, int)) or isinstance(task_id, bool) or task_id == '':
        raise ProviderUnavailableError(_MALFORMED)
    return str(task_id)


# --- Tasks and callbacks -------------------------------------------------------------------------------


def map_status(task_status: Any) -> TaskState:
    """Kling's task_status as our task state. Anything unknown stays non-terminal (keep polling)."""
    return _STATES.get(task_status, 'running') if isinstance(task_status, str) else 'running'


def task_from_data(data: Mapping[str, Any], *, fallback_task_id: str) -> ProviderTask:
    """A ProviderTask from the `data` of a status query."""
    raw_status = data.get('task_status')
    state = map_status(raw_status)
    task_id = str(data.get('task_id') or fallback_task_id)
    raw = raw_status if isinstance(raw_status, str) else None
    if state == 'succeeded':
        outputs = _outputs(data)
        if not outputs:
            # Success without a video is a reply we cannot use; retrying beats failing a finished job.
            raise ProviderUnavailableError('Kling reported the task done but gave no video; the call will be retried.')
        return ProviderTask(task_id=task_id, state=state, outputs=outputs, raw_status=raw)
    if state == 'failed':
        return ProviderTask(task_id=task_id, state=state, failure=failure_from_message(data.get('task_status_msg')),
                            raw_status=raw)
    return ProviderTask(task_id=task_id, state=state, raw_status=raw)


def _outputs(data: Mapping[str, Any]) -> tuple[TaskOutput, ...]:
    result = data.get('task_result')
    videos = result.get('videos') if isinstance(result, dict) else None
    if not isinstance(videos, list):
        return ()
    return tuple(TaskOutput(url=video['url'], content_type='video/mp4', duration_seconds=_seconds(video.get('duration')))
                 for video in videos if isinstance(video, dict) and isinstance(video.get('url'), str) and video['url'])


def _seconds(value: Any) -> float | None:
    """A reported duration ("5.0", a string in Kling's answers; a number is taken too); None when absent or odd."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if 0 < seconds < 86_400 else None


def failure_from_message(task_status_msg: Any) -> TaskFailure:
    """Classify a failed task by Kling's reason, and keep that reason (cleaned) in the job's message.

    A failed task carries no code, only `task_status_msg`, so `provider_code` stays None.
    """
    reason = clean_reason(task_status_msg)
    if any(word in reason.lower() for word in _POLICY_WORDS):
        return TaskFailure(code='CONTENT_POLICY', message=explain(_CONTENT_POLICY, reason, _CHANGE_INPUTS[0]))
    return TaskFailure(code='GENERATION_FAILED', message=explain(_GENERATION_FAILED, reason, _CHANGE_INPUTS[1]))


def parse_callback_body(body: Any) -> CallbackHint:
    """Read a Kling callback: the bare task object (official) or the same inside an envelope.

    Only a hint: a callback is unsigned, so the caller confirms it with `get_task`. `task_id` is None
    when the body names only our external_task_id (the job id, which the caller already has).
    """
    if not isinstance(body, dict):
        raise CallbackRejectedError('The callback body is not a Kling task.')
    task = body['data'] if 'code' in body and isinstance(body.get('data'), dict) else body
    task_id = task.get('task_id')
    task_info = task.get('task_info')
    external_id = task_info.get('external_task_id') if isinstance(task_info, dict) else None
    if not _is_id(task_id) and not _is_id(external_id):
        raise CallbackRejectedError('The callback body is not a Kling task.')
    status = task.get('task_status')
    return CallbackHint(task_id=str(task_id) if _is_id(task_id) else None,
                        claimed_state=map_status(status) if status is not None else None)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _is_id(value: Any) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool) and value != ''
