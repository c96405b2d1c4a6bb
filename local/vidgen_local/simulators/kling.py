"""A local Kling AI server that speaks the official wire protocol (docs/providers/kling.md).

It checks the JWT the way Kling documents it (401 with codes 1001-1004), validates creates (400/1201,
404/1203), moves tasks submitted -> processing -> succeed | failed on one scheduler thread, POSTs a
callback on every status change, serves the result files itself and lets them expire, and answers the
free account query (`GET /account/costs`) with its configured resource packs. It binds
127.0.0.1 only and never fetches image URLs.

Scenario tags in a prompt steer one task:

- `[sim:content-policy]`  the task fails with a content risk-control message
- `[sim:fail]`            the task fails for a generic reason
- `[sim:drop-callbacks]`  no callbacks for this task (counted as `callbacks_dropped`)
- `[sim:slow=N]`          generation takes N seconds instead of `generation_seconds`
- `[sim:reject-create]`   the create itself answers 400/1301 (content policy at create time)

`queue_error(code)` makes the next create (or status query) answer one of Kling's documented errors, e.g.
1102 (resource pack depleted), 1302 (rate limit) or 5001 (maintenance); `FaultPlan` adds random,
seeded transport and callback faults.

Where Kling's docs are silent we chose, and the adapter relies on, these answers: a duplicate
`external_task_id` is 400/1201 with a message naming the field; an unknown task is 404/1203; `cfg_scale`
on a kling-v2.x model and `sound` on a model without audio are 400/1201; start+end frames follow the
capability map (pro only on most models). A create that hits a timeout fault is carried out and answered
too late, which is exactly the lost answer that a retried create with the same external_task_id recovers.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import logging
import random
import re
import struct
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt

from vidgen_local import sample_media
from vidgen_local.simulators.base import LOOPBACK, Reply, SimHandler, Simulator, SimulatorError
from vidgen_local.simulators.faults import FaultPlan

logger = logging.getLogger(__name__)

ENDPOINTS = ('text2video', 'image2video')
MAX_IMAGE_BYTES = 10 * 1024 * 1024
CALLBACK_TIMEOUT = (1.0, 3.0)
CALLBACK_RETRY_SECONDS = 0.25
PROCESSING_AT = 0.25  # share of the generation time a task spends in `submitted`

# HTTP status and Kling's wording for every error code the simulator can answer.
ERRORS: dict[int, tuple[int, str]] = {
    1000: (401, 'Authentication failed'),
    1001: (401, 'Authorization is empty'),
    1002: (401, 'Authorization is invalid'),
    1003: (401, 'Authorization is not yet valid'),
    1004: (401, 'Authorization has expired'),
    1100: (429, 'Account exception'),
    1101: (429, 'Account in arrears (postpaid)'),
    1102: (429, 'Resource pack depleted or expired (prepaid)'),
    1103: (403, 'Unauthorized access to requested resource'),
    1200: (400, 'Invalid request parameters'),
    1201: (400, 'Invalid parameter'),
    1202: (404, 'Invalid request method'),
    1203: (404, 'Requested resource does not exist'),
    1300: (400, 'Trigger platform strategy'),
    1301: (400, 'Trigger the content security policy of the platform'),
    1302: (429, 'API request too fast, exceeding the rate limit'),
    1303: (429, 'parallel task over resource pack limit'),
    1304: (429, 'Trigger the IP whitelisting policy'),
    5000: (500, 'Server internal error'),
    5001: (503, 'Server temporarily unavailable, usually due to maintenance'),
    5002: (504, 'Server internal timeout, usually due to a backlog'),
}
SERVER_ERROR_CODES = (5000, 5001, 5002)
CONTENT_POLICY_MESSAGE = 'Failure to pass the risk control system: the prompt or image may contain sensitive content'
GENERIC_FAILURE_MESSAGE = 'Video generation failed due to an internal error, please try again'

_SCENARIO = re.compile(r'\[sim:([a-z-]+)(?:=([0-9]+(?:\.[0-9]+)?))?\]')
_TASK_PATH = re.compile(r'^/v1/videos/([a-z0-9-]+)(?:/([^/]+))?/?$')
_RESULT_PATH = re.compile(r'^/results/([0-9]+)/([0-9]+)(-watermark)?\.mp4$')


@dataclass(frozen=True)
class ModelRule:
    endpoints: tuple[str, ...]
    durations: tuple[str, ...] = ('5', '10')
    tail_modes: tuple[str, ...] = ('pro',)  # modes that take start+end frames; () = no end frame at all
    tail_durations: tuple[str, ...] = ('5', '10')
    sound: bool = False
    cfg_scale: bool = True
    multi_shot: bool = False


_BOTH = ('text2video', 'image2video')
# Kling's capability map (docs/providers/kling.md §3).
MODELS: dict[str, ModelRule] = {
    'kling-v1': ModelRule(_BOTH, tail_modes=('std', 'pro'), tail_durations=('5',)),
    'kling-v1-5': ModelRule(('image2video',)),
    'kling-v1-6': ModelRule(_BOTH),
    'kling-v2-master': ModelRule(_BOTH, tail_modes=(), cfg_scale=False),
    'kling-v2-1': ModelRule(('image2video',), cfg_scale=False),
    'kling-v2-1-master': ModelRule(_BOTH, tail_modes=(), cfg_scale=False),
    'kling-v2-5-turbo': ModelRule(_BOTH, cfg_scale=False),
    'kling-v2-6': ModelRule(_BOTH, sound=True, cfg_scale=False),
    'kling-v3': ModelRule(_BOTH, durations=tuple(str(n) for n in range(3, 16)), tail_modes=('std', 'pro'),
                          tail_durations=tuple(str(n) for n in range(3, 16)), sound=True, cfg_scale=False,
                          multi_shot=True),
}
_HTTP = ('http', 'https')
CAMERA_TYPES = ('simple', 'down_back', 'forward_up', 'right_turn_forward', 'left_turn_forward')
CAMERA_AXES = ('horizontal', 'vertical', 'pan', 'tilt', 'roll', 'zoom')


@dataclass
class KlingSimConfig:
    access_key: str = 'ak-sim-local'  # fake keys only
    secret_key: str = 'sk-sim-local-not-a-real-secret-key-0000'  # 32+ bytes: PyJWT warns on shorter HMAC keys
    generation_seconds: float = 2.0  # submitted -> processing -> succeed spread over this time
    result_bytes: int = 0  # pad each served result file to this size (0: the clip as made, a few dozen KB)
    callback_envelope: bool = False  # POST the bare task object (official) or the enveloped form
    callback_retries: int = 0  # extra attempts when the callback endpoint answers non-2xx
    max_concurrency: int = 0  # >0: creates past this many unfinished tasks get 429/1303
    result_ttl_seconds: float = 3600.0  # result URLs stop working after this (404)
    faults: FaultPlan = field(default_factory=FaultPlan)
    check_image_pixels: bool = True  # base64 images must be JPG/PNG of >= 300 px, aspect 1:2.5-2.5:1
    loopback_callbacks_only: bool = True  # never POST a callback off this machine
    # What GET /account/costs (Kling's free account query) reports.
    resource_packs: list[dict[str, Any]] = field(default_factory=lambda: [{
        'resource_pack_name': 'Video generation - 1000 units', 'resource_pack_id': 'sim-pack-1',
        'resource_pack_type': 'decreasing_total', 'total_quantity': 1000.0, 'remaining_quantity': 1000.0,
        'purchase_time': 1_700_000_000_000, 'effective_time': 1_700_000_000_000, 'invalid_time': 4_000_000_000_000,
        'status': 'online'}])


class KlingApiError(SimulatorError):
    """An error answer: HTTP status from Kling's table, code, and a descriptive message."""

    def __init__(self, code: int, message: str | None = None) -> None:
        self.status, default = ERRORS[code]
        super().__init__(code, message or default)


def _invalid(message: str) -> KlingApiError:
    return KlingApiError(1201, message)


def now_ms() -> int:
    return int(time.time() * 1000)


def result_payload(task: _Task, size: int, *, bad: str | None = None) -> bytes:
    """The result file: a real MP4 of the task's aspect ratio, duration and sound, at least `size` bytes;
    or the bad file its prompt (`[sim:undecodable]`, ...) or a fault asks for."""
    return sample_media.video_result(
        aspect_ratio=task.request.get('aspect_ratio'), seconds=float(task.duration),
        audio=task.request.get('sound') == 'on', size=size, seed=task.task_id,
        bad=bad or sample_media.bad_result(task.request.get('prompt')))


# --- Tasks --------------------------------------------------------------------------------------------


@dataclass
class _Task:
    task_id: str
    endpoint: str
    external_task_id: str | None
    request: dict[str, Any]
    callback_url: str | None
    duration: str
    mode: str
    outcome: str  # 'succeed', 'content-policy' or 'fail'
    drop_callbacks: bool
    generation_seconds: float
    created_at: int
    updated_at: int
    status: str = 'submitted'
    status_msg: str = ''
    finished_at: float | None = None  # monotonic, for result expiry
    history: list[dict[str, Any]] = field(default_factory=list)  # the task as it was at each status

    @property
    def is_open(self) -> bool:
        return self.status not in ('succeed', 'failed')

    def wire(self, base_url: str) -> dict[str, Any]:
        data: dict[str, Any] = {
            'task_id': self.task_id,
            'task_status': self.status,
            'task_status_msg': self.status_msg,
            'task_info': {'external_task_id': self.external_task_id} if self.external_task_id else {},
            'watermark_info': {'enabled': _watermark_enabled(self.request)},
            'created_at': self.created_at,
            'updated_at': self.updated_at,
        }
        if not self.is_open:  # a plausible figure: 1 unit per 5 s in std, 2 in pro, nothing for a failure
            units = int(self.duration) / 5 * (2 if self.mode == 'pro' else 1) if self.status == 'succeed' else 0
            data['final_unit_deduction'] = f'{units:g}'
        if self.status == 'succeed':
            data['task_result'] = {'videos': [{
                'id': f'{self.task_id}0',
                'url': f'{base_url}/results/{self.task_id}/0.mp4',
                'watermark_url': f'{base_url}/results/{self.task_id}/0-watermark.mp4',
                'duration': f'{int(self.duration)}.0',
            }]}
        return data


def _watermark_enabled(request: dict[str, Any]) -> bool:
    info = request.get('watermark_info')
    return isinstance(info, dict) and bool(info.get('enabled'))


def _scenarios(prompt: Any) -> dict[str, str]:
    return {m.group(1): m.group(2) or '' for m in _SCENARIO.finditer(prompt)} if isinstance(prompt, str) else {}


# --- Validation ---------------------------------------------------------------------------------------


def validate_create(endpoint: str, body: dict[str, Any], *, check_pixels: bool) -> tuple[str, ModelRule]:
    """Check a create body as Kling does; return the model name and its rule."""
    model_name = body.get('model_name') or 'kling-v1'  # legacy `model` behaves as an empty model_name
    rule = MODELS.get(model_name) if isinstance(model_name, str) else None
    if rule is None:
        raise KlingApiError(1203, f'model_name {model_name!r} does not exist')
    if endpoint not in rule.endpoints:
        raise _invalid(f'model_name {model_name} does not support {endpoint}')
    _check_text(body, 'prompt', required=endpoint == 'text2video' and not body.get('multi_shot'))
    _check_text(body, 'negative_prompt', required=False)
    mode = body.get('mode', 'std')
    if mode not in ('std', 'pro'):
        raise _invalid(f'mode must be "std" or "pro", got {mode!r}')
    duration = body.get('duration', '5')
    if not isinstance(duration, str):
        raise _invalid(f'duration must be a string such as "5", got {type(duration).__name__}')
    if duration not in rule.durations:
        raise _invalid(f'duration {duration!r} is not supported by {model_name}; allowed: {", ".join(rule.durations)}')
    _check_options(body, model_name, rule)
    if endpoint == 'text2video':
        _check_text2video(body)
    else:
        _check_image2video(body, model_name, rule, mode, duration, check_pixels)
    return model_name, rule


def _check_text(body: dict[str, Any], name: str, *, required: bool) -> None:
    value = body.get(name)
    if value is None or value == '':
        if required:
            raise _invalid(f'{name} is required')
        return
    if not isinstance(value, str) or len(value) > 2500:
        raise _invalid(f'{name} must be a string of at most 2500 characters')


def _check_options(body: dict[str, Any], model_name: str, rule: ModelRule) -> None:
    if 'cfg_scale' in body:
        value = body['cfg_scale']
        if not rule.cfg_scale:
            raise _invalid(f'cfg_scale is not supported by {model_name}')
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise _invalid('cfg_scale must be a number between 0 and 1')
    if 'sound' in body:
        if not rule.sound:
            raise _invalid(f'sound is not supported by {model_name}')
        if body['sound'] not in ('on', 'off'):
            raise _invalid(f'sound must be "on" or "off", got {body["sound"]!r}')
    callback_url = body.get('callback_url')
    if callback_url is not None and not (isinstance(callback_url, str) and urlsplit(callback_url).scheme in _HTTP):
        raise _invalid('callback_url must be an http(s) URL')
    external = body.get('external_task_id')
    if external is not None and not (isinstance(external, str) and 0 < len(external) <= 256):
        raise _invalid('external_task_id must be a non-empty string')
    if 'camera_control' in body:
        _check_camera(body['camera_control'])
    if 'multi_shot' in body or 'multi_prompt' in body or 'shot_type' in body:
        _check_multi_shot(body, model_name, rule)


MAX_SHOTS = 6


def _check_multi_shot(body: dict[str, Any], model_name: str, rule: ModelRule) -> None:
    """Kling's multi-shot fields: customize takes up to 6 shots whose durations add up to the duration."""
    if not rule.multi_shot:
        raise _invalid(f'multi_shot is not supported by {model_name}')
    if not isinstance(body.get('multi_shot'), bool):
        raise _invalid('multi_shot must be true or false')
    if not body['multi_shot']:
        return
    if body.get('image_tail'):
        raise _invalid('multi_shot cannot be used with image_tail')
    shot_type = body.get('shot_type')
    if shot_type not in ('customize', 'intelligence'):
        raise _invalid(f'shot_type must be "customize" or "intelligence", got {shot_type!r}')
    if shot_type == 'intelligence':
        return
    shots = body.get('multi_prompt')
    if not isinstance(shots, list) or not 1 <= len(shots) <= MAX_SHOTS:
        raise _invalid(f'multi_prompt must hold 1 to {MAX_SHOTS} shots when shot_type is customize')
    total = 0
    for number, shot in enumerate(shots, start=1):
        if not isinstance(shot, dict) or shot.get('index') != number:
            raise _invalid(f'multi_prompt[{number - 1}].index must be {number}')
        if not isinstance(shot.get('prompt'), str) or not shot['prompt'] or len(shot['prompt']) > 2500:
            raise _invalid(f'multi_prompt[{number - 1}].prompt must be a string of 1 to 2500 characters')
        duration = shot.get('duration')
        if not isinstance(duration, str) or not duration.isdigit() or int(duration) < 1:
            raise _invalid(f'multi_prompt[{number - 1}].duration must be a string such as "3"')
        total += int(duration)
    if str(total) != body.get('duration', '5'):
        raise _invalid(f'multi_prompt durations add up to {total}, not to duration {body.get("duration", "5")!r}')


def _check_camera(camera: Any) -> None:
    if not isinstance(camera, dict) or camera.get('type', 'simple') not in CAMERA_TYPES:
        raise _invalid(f'camera_control.type must be one of {", ".join(CAMERA_TYPES)}')
    config = camera.get('config')
    if camera.get('type', 'simple') != 'simple':
        if config is not None:
            raise _invalid('camera_control.config is only allowed when type is "simple"')
        return
    if not isinstance(config, dict) or set(config) - set(CAMERA_AXES):
        raise _invalid(f'camera_control.config must hold only {", ".join(CAMERA_AXES)}')
    values = [config.get(axis, 0) for axis in CAMERA_AXES]
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not -10 <= v <= 10 for v in values):
        raise _invalid('camera_control.config values must be numbers between -10 and 10')
    if sum(1 for v in values if v != 0) != 1:
        raise _invalid('camera_control.config must set exactly one non-zero value')


def _check_text2video(body: dict[str, Any]) -> None:
    aspect_ratio = body.get('aspect_ratio', '16:9')
    if aspect_ratio not in ('16:9', '9:16', '1:1'):
        raise _invalid(f'aspect_ratio must be one of 16:9, 9:16, 1:1, got {aspect_ratio!r}')
    for name in ('image', 'image_tail', 'static_mask', 'dynamic_masks'):
        if name in body:
            raise _invalid(f'{name} is not a parameter of text2video')


def _check_image2video(body: dict[str, Any], model_name: str, rule: ModelRule, mode: str, duration: str,
                       check_pixels: bool) -> None:
    if 'aspect_ratio' in body:
        raise _invalid('aspect_ratio is not a parameter of image2video; the frame follows the image')
    if not body.get('image') and not body.get('image_tail'):
        raise _invalid('image or image_tail is required')
    for name in ('image', 'image_tail'):
        if body.get(name):
            _check_image(name, body[name], check_pixels)
    masks = 'static_mask' in body or 'dynamic_masks' in body
    if sum((bool(body.get('image_tail')), masks, 'camera_control' in body)) > 1:
        raise _invalid('image_tail, static_mask/dynamic_masks and camera_control cannot be used together')
    if body.get('image_tail'):
        if mode not in rule.tail_modes or duration not in rule.tail_durations:
            allowed = f'mode {"/".join(rule.tail_modes)}, duration {"/".join(rule.tail_durations)}'
            raise _invalid(f'image_tail is not supported by {model_name} with mode {mode} and duration {duration}'
                           + (f'; allowed: {allowed}' if rule.tail_modes else ''))


def _check_image(name: str, value: Any, check_pixels: bool) -> None:
    if not isinstance(value, str):
        raise _invalid(f'{name} must be a string: a URL or raw Base64')
    if value.startswith('data:'):
        raise _invalid(f'{name} must be raw Base64 without a "data:" prefix, or a URL')
    if value.startswith(('http://', 'https://')):
        return  # never fetched: the simulator makes no outside requests
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _invalid(f'{name} is neither a URL nor valid Base64') from None
    if len(raw) > MAX_IMAGE_BYTES:
        raise _invalid(f'{name} must be at most 10MB')
    if not check_pixels:
        return
    size = image_size(raw)
    if size is None:
        raise _invalid(f'{name} must be a JPG or PNG image')
    width, height = size
    if min(width, height) < 300:
        raise _invalid(f'{name} must be at least 300px on each side, got {width}x{height}')
    if not 1 / 2.5 <= width / height <= 2.5:
        raise _invalid(f'{name} aspect ratio must be between 1:2.5 and 2.5:1, got {width}x{height}')


def image_size(raw: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG or JPEG, or None for anything else."""
    if raw[:8] == b'\x89PNG\r\n\x1a\n' and raw[12:16] == b'IHDR':
        return struct.unpack('>II', raw[16:24])
    if raw[:2] != b'\xff\xd8':
        return None
    i = 2
    while i + 9 <= len(raw):
        if raw[i] != 0xFF:
            return None
        marker = raw[i + 1]
        if marker == 0xFF or 0xD0 <= marker <= 0xD9 or marker == 0x01:
            i += 1 if marker == 0xFF else 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack('>HH', raw[i + 5:i + 9])
            return width, height
        i += 2 + struct.unpack('>H', raw[i + 2:i + 4])[0]
    return None


def _envelope(data: Any) -> dict[str, Any]:
    return {'code': 0, 'message': 'SUCCEED', 'request_id': str(uuid.uuid4()), 'data': data}


class KlingSimulator(Simulator):
    """The simulated Kling API on 127.0.0.1. `start()` returns its base URL; `stop()` ends every thread.

    `stats` counts what happened: `creates`, `gets` (requests received), `tasks_created`,
    `transitions.<status>`, `callbacks_sent` / `_delivered` / `_failed` / `_dropped` / `_duplicated` /
    `_reordered` / `_blocked`, `downloads` (+ `_expired`, `_missing`), `auth_failures`, `errors.<code>`,
    `injected.<code>` (from `queue_error`) and `faults.<kind>`.
    """

    name = 'kling-sim'
    callback_timeout = CALLBACK_TIMEOUT
    throttle_code = 1302
    server_error_codes = SERVER_ERROR_CODES
    internal_error_code = 5000
    config: KlingSimConfig

    def __init__(self, config: KlingSimConfig | None = None, host: str = LOOPBACK, port: int = 0) -> None:
        super().__init__(config or KlingSimConfig(), host, port)
        self._tasks: dict[str, _Task] = {}
        self._by_external: dict[str, str] = {}
        self._next_id = random.Random().randrange(7 * 10**17, 8 * 10**17)

    # --- the protocol ----------------------------------------------------------------------------------

    def make_error(self, code: int, message: str | None = None) -> KlingApiError:
        return KlingApiError(code, message)

    def known_error(self, code: int) -> bool:
        return code in ERRORS

    def body_too_large(self) -> KlingApiError:
        return KlingApiError(1200, 'request body is too large')

    def error_reply(self, handler: SimHandler, error: SimulatorError) -> Reply:
        status = error.status if isinstance(error, KlingApiError) else 500
        return Reply.json(status, {'code': error.code, 'message': error.message, 'request_id': str(uuid.uuid4())})

    def callback_retry_delays(self) -> tuple[float, ...]:
        return tuple(CALLBACK_RETRY_SECONDS * n for n in range(1, self.config.callback_retries + 1))

    # --- test hooks ------------------------------------------------------------------------------------

    def tasks(self) -> list[dict[str, Any]]:
        """A snapshot of every task: its wire object plus `endpoint`, `request` and `callback_url`."""
        with self._lock:
            return [dict(task.wire(self.base_url), endpoint=task.endpoint, request=copy.deepcopy(task.request),
                         callback_url=task.callback_url) for task in self._tasks.values()]

    # --- requests --------------------------------------------------------------------------------------

    def route(self, handler: SimHandler, method: str) -> Reply | None:
        url = urlsplit(handler.path)
        if method == 'GET' and (match := _RESULT_PATH.match(url.path)):
            self._serve_result(handler, match.group(1), int(match.group(2)))
            return None
        body = handler.read_body()
        if method == 'GET' and url.path == '/account/costs':
            self._authenticate(handler.headers.get('Authorization'))
            self.raise_queued('status')  # the account query is a query: queued status errors answer it too
            self.stats.incr('account_queries')
            return Reply.json(200, _envelope({'code': 0, 'msg': 'success', 'resource_pack_subscribe_infos': copy.deepcopy(
                self.config.resource_packs)}))
        match = _TASK_PATH.match(url.path)
        if match is None or match.group(1) not in ENDPOINTS:
            raise KlingApiError(1203, f'{url.path} does not exist on the Kling simulator')
        endpoint, task_ref = match.groups()
        if method not in ('GET', 'POST') or (method == 'POST' and task_ref is not None):
            raise KlingApiError(1202, f'{method} is not supported on {url.path}')
        stage = 'create' if method == 'POST' else 'status'
        self.stats.incr('creates' if stage == 'create' else 'gets')
        if self.transport_fault(handler, stage):
            return None
        self._authenticate(handler.headers.get('Authorization'))
        self.raise_queued(stage)
        if stage == 'create':
            return Reply.json(200, _envelope(self._create(endpoint, body)))
        if task_ref is None:
            return Reply.json(200, _envelope(self._list(endpoint, parse_qs(url.query))))
        return Reply.json(200, _envelope(self._get(endpoint, task_ref)))

    def _authenticate(self, header: str | None) -> None:
        code = self._token_error(header)
        if code is not None:
            self.stats.incr('auth_failures')
            raise KlingApiError(code)

    def _token_error(self, header: str | None) -> int | None:
        """Kling's auth code for this Authorization header, None when it is valid."""
        token = header[len('Bearer '):].strip() if header and header.startswith('Bearer ') else ''
        if not token:
            return 1001
        try:
            # Find the account by its access key first; only its secret can verify the signature.
            if jwt.decode(token, options={'verify_signature': False}).get('iss') != self.config.access_key:
                return 1002
            jwt.decode(token, self.config.secret_key, algorithms=['HS256'], options={'require': ['iss', 'exp', 'nbf']})
        except jwt.ExpiredSignatureError:
            return 1004
        except jwt.ImmatureSignatureError:
            return 1003
        except jwt.PyJWTError:
            return 1002
        return None

    # --- task endpoints --------------------------------------------------------------------------------

    def _create(self, endpoint: str, raw: bytes) -> dict[str, Any]:
        try:
            body = json.loads(raw or b'null')
        except ValueError:
            raise KlingApiError(1200, 'request body is not valid JSON') from None
        if not isinstance(body, dict):
            raise KlingApiError(1200, 'request body must be a JSON object')
        validate_create(endpoint, body, check_pixels=self.config.check_image_pixels)
        scenarios = _scenarios(body.get('prompt'))
        if 'reject-create' in scenarios:
            raise KlingApiError(1301)
        with self._lock:
            task = self._admit(endpoint, body, scenarios)
            self.stats.incr('tasks_created')
            wire = task.wire(self.base_url)
        # Queue the `submitted` callback before scheduling the next step so callbacks keep their order.
        self._notify(task.task_id, wire, final=False)
        self._scheduler.call_later(task.generation_seconds * PROCESSING_AT, self._advance, task.task_id)
        return {key: wire[key] for key in ('task_id', 'task_info', 'task_status', 'created_at', 'updated_at')}

    def _admit(self, endpoint: str, body: dict[str, Any], scenarios: dict[str, str]) -> _Task:
        # Called with the lock held: the duplicate and concurrency checks and the insert are one step.
        external = body.get('external_task_id')
        if external and external in self._by_external:
            raise _invalid(f'external_task_id {external!r} already exists')
        limit = self.config.max_concurrency
        if limit > 0 and sum(1 for t in self._tasks.values() if t.is_open) >= limit:
            raise KlingApiError(1303)
        self._next_id += random.randrange(1, 1000)
        created = now_ms()
        outcome = 'content-policy' if 'content-policy' in scenarios else 'fail' if 'fail' in scenarios else 'succeed'
        slow = scenarios.get('slow')
        task = _Task(
            task_id=str(self._next_id), endpoint=endpoint, external_task_id=external, request=copy.deepcopy(body),
            callback_url=body.get('callback_url'), duration=body.get('duration', '5'), mode=body.get('mode', 'std'),
            outcome=outcome, drop_callbacks='drop-callbacks' in scenarios,
            generation_seconds=float(slow) if slow else self.config.generation_seconds,
            created_at=created, updated_at=created,
        )
        self._tasks[task.task_id] = task
        if external:
            self._by_external[external] = task.task_id
        return task

    def _find(self, endpoint: str, task_ref: str) -> _Task:
        # Called with the lock held. The path takes a task_id or an external_task_id.
        task = self._tasks.get(task_ref) or self._tasks.get(self._by_external.get(task_ref, ''))
        if task is None or task.endpoint != endpoint:
            raise KlingApiError(1203, f'task {task_ref} does not exist')
        return task

    def _get(self, endpoint: str, task_ref: str) -> dict[str, Any]:
        with self._lock:
            return self._find(endpoint, task_ref).wire(self.base_url)

    def _list(self, endpoint: str, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        page_num = _page_arg(query, 'pageNum', 1, 1000)
        page_size = _page_arg(query, 'pageSize', 30, 500)
        with self._lock:
            tasks = sorted((t for t in self._tasks.values() if t.endpoint == endpoint),
                           key=lambda t: (t.created_at, int(t.task_id)), reverse=True)
            start = (page_num - 1) * page_size
            return [task.wire(self.base_url) for task in tasks[start:start + page_size]]

    # --- progression and callbacks ---------------------------------------------------------------------

    def _advance(self, task_id: str) -> None:
        with self._lock:
            task = self._tasks[task_id]
            if task.status == 'submitted':
                task.status = 'processing'
            elif task.outcome == 'succeed':
                task.status = 'succeed'
            else:
                task.status = 'failed'
                policy = task.outcome == 'content-policy'
                task.status_msg = CONTENT_POLICY_MESSAGE if policy else GENERIC_FAILURE_MESSAGE
            task.updated_at = max(now_ms(), task.updated_at + 1)
            final = not task.is_open
            if final:
                task.finished_at = time.monotonic()
            wire = task.wire(self.base_url)
            remaining = task.generation_seconds * (1 - PROCESSING_AT)
        if not final:
            self._scheduler.call_later(remaining, self._advance, task_id)
        self.stats.incr(f'transitions.{wire["task_status"]}')
        self._notify(task_id, wire, final=final)

    def _notify(self, task_id: str, wire: dict[str, Any], *, final: bool) -> None:
        with self._lock:
            task = self._tasks[task_id]
            url, drop = task.callback_url, task.drop_callbacks
            earlier = task.history[-1] if task.history else None
            task.history.append(wire)
        if self.config.callback_envelope:
            wire, earlier = _envelope(wire), _envelope(earlier) if earlier is not None else None
        self.send_callback(task_id, url, wire, drop=drop, final=final, earlier=earlier)

    # --- result files ----------------------------------------------------------------------------------

    def _serve_result(self, handler: SimHandler, task_id: str, index: int) -> None:
        with self._lock:
            task = self._tasks.get(task_id)
            finished_at = task.finished_at if task is not None and task.status == 'succeed' else None
        expired = finished_at is not None and time.monotonic() - finished_at > self.config.result_ttl_seconds
        if finished_at is None or index != 0 or expired:
            self.stats.incr('downloads_expired' if expired else 'downloads_missing')
            handler.send_bytes(404, b'Not Found', 'text/plain')
            return
        bad = None
        if self.config.faults.roll('download_undecodable'):
            self.stats.incr('faults.download_undecodable')
            bad = 'undecodable'
        assert task is not None
        body = result_payload(task, self.config.result_bytes, bad=bad)
        self.stats.incr('downloads')
        if self.config.faults.roll('download_fail_midway'):
            self.stats.incr('faults.download_fail_midway')
            handler.send_response(200)
            handler.send_header('Content-Type', 'video/mp4')
            handler.send_header('Content-Length', str(len(body)))
            handler.end_headers()
            handler.wfile.write(body[:len(body) // 2])
            handler.reset()
            return
        handler.send_bytes(200, body, 'video/mp4')


def _page_arg(query: dict[str, list[str]], name: str, default: int, maximum: int) -> int:
    values = query.get(name)
    if not values:
        return default
    if not values[0].isdigit() or not 1 <= int(values[0]) <= maximum:
        raise _invalid(f'{name} must be an integer from 1 to {maximum}')
    return int(values[0])
