"""A local Kie.ai: Veo 3.1, the Market, file upload and the common endpoints, over loopback HTTP.

It speaks Kie's wire protocol as docs/providers/kie.md describes it, so the real adapters run
against it unchanged. ONE server serves both hosts Kie has: point `KIE_BASE_URL` and
`KIE_UPLOAD_BASE_URL` at the same `base_url`. It also serves what the real CDNs would: uploaded files under
`/files/...` and generated results under `/results/...`, both without auth and both expiring.

Task lifecycle follows the clock (no ticks to drive): Veo `successFlag` 0 until `generation_seconds` have
passed, then 1 (or 2/3); Market `state` waiting -> queuing -> generating -> success | fail. One callback per
task is POSTed when it ends, signed when `webhook_hmac_key` is set.

Scenario tags in a prompt steer one task (the Kling simulator's, plus Kie's own):

- `[sim:content-policy]`  the task fails on content policy (Veo errorCode 400, Market failCode "400")
- `[sim:fail]`            the task fails with code 501; `[sim:fail=500]` picks the code
- `[sim:drop-callbacks]`  no callback for this task (counted as `callbacks_dropped`)
- `[sim:slow=N]`          generation takes N seconds instead of `generation_seconds`
- `[sim:reject-create]`   the create is refused on content policy (400 "flagged"), as in the Kling simulator
- `[sim:quota]`           the create answers 402 (insufficient credits)
- `[sim:code=N]`          the create answers Kie code N (451, 455, 500, 501, 505, ...)

`queue_error(code)` makes the next create (or status query) answer a Kie code; `FaultPlan` adds seeded
transport and callback faults. `callback_reorder` has nothing to act on: Kie sends one callback per task.
Errors come inside an HTTP 200 (`errors_in_http_200`, the OpenAPI's reading) or with the code as the
HTTP status too. A create that hits a timeout fault is carried out and answered too late.
"""

from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
import hashlib
import hmac
import json
import logging
import re
import struct
import time
import uuid
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from vidgen_local import sample_media
from vidgen_local.simulators.base import LOOPBACK, Delivery, Reply, SimHandler, Simulator, SimulatorError
from vidgen_local.simulators.faults import FaultPlan

logger = logging.getLogger(__name__)

_UPLOAD_TTL_SECONDS = 3 * 24 * 3600
_DOWNLOAD_URL_TTL_SECONDS = 20 * 60
_CALLBACK_TIMEOUT_SECONDS = 15.0
_TAG = re.compile(r'\[sim:([a-z-]+)(?:=(\d+(?:\.\d+)?))?\]')
_VEO_MODELS = ('veo3', 'veo3_fast')
_VEO_TYPES = {'TEXT_2_VIDEO': (0, 0), 'FIRST_AND_LAST_FRAMES_2_VIDEO': (1, 2), 'REFERENCE_2_VIDEO': (1, 3)}
_VEO_RATIOS = ('16:9', '9:16', 'Auto')
_MESSAGES = {
    400: 'Your prompt was flagged by Website as violating content policies.',
    401: 'You do not have access permissions',
    402: 'The current credits are insufficient. Please top up.',
    404: 'Not Found',
    422: 'Your request was rejected by Flow (validation failed).',
    429: 'Rate limited: too many requests, please slow down.',
    451: 'Failed to fetch the image. Please check the image URL.',
    455: 'Service is under maintenance. Please try again later.',
    500: 'Internal Error, Please try again later.',
    501: 'Video generation failed.',
    505: 'This feature is currently disabled.',
}


@dataclass(frozen=True)
class MarketModel:
    """What the simulator checks of one Market model's `input` (the real API answers 422 otherwise)."""

    kind: str  # 'image' | 'video'
    required: tuple[str, ...]
    enums: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    types: dict[str, type] = field(default_factory=dict)


MARKET_MODELS: dict[str, MarketModel] = {
    'kling-2.6/text-to-video': MarketModel(
        'video', ('prompt', 'sound', 'duration'),
        {'duration': ('5', '10'), 'aspect_ratio': ('16:9', '9:16', '1:1')}, {'sound': bool}),
    'kling-2.6/image-to-video': MarketModel(
        'video', ('prompt', 'image_urls', 'sound', 'duration'), {'duration': ('5', '10')},
        {'sound': bool, 'image_urls': list}),
    'seedream/4.5-text-to-image': MarketModel(
        'image', ('prompt', 'aspect_ratio', 'quality'),
        {'aspect_ratio': ('1:1', '4:3', '3:4', '16:9', '9:16', '2:3', '3:2', '21:9'), 'quality': ('basic', 'high')}),
    'flux-2/pro-text-to-image': MarketModel(
        'image', ('prompt', 'aspect_ratio', 'resolution'),
        {'aspect_ratio': ('1:1', '4:3', '3:4', '16:9', '9:16', '3:2', '2:3'), 'resolution': ('1K', '2K')}),
    'bytedance/v1-pro-image-to-video': MarketModel(
        'video', ('prompt', 'image_url'), {'resolution': ('480p', '720p', '1080p'), 'duration': ('5', '10')},
        {'image_url': str, 'camera_fixed': bool}),
}


@dataclass
class KieSimConfig:
    api_key: str = 'kie-sim-local-key'  # fake
    webhook_hmac_key: str | None = None  # when set, callbacks carry X-Webhook-Timestamp / X-Webhook-Signature
    generation_seconds: float = 2.0
    result_bytes: int = 0  # pad each served video to this size (0: the clip as made, a few dozen KB)
    credits: int = 10_000  # /api/v1/chat/credit; drops per task; 402 when exhausted
    credits_per_task: int = 10
    errors_in_http_200: bool = True  # error codes inside an HTTP 200 envelope, or as the HTTP status too
    rate_limit_per_10s: int = 20  # 429 past this many creates in 10 s
    result_ttl_seconds: float = 3600.0
    hd_ready_after_seconds: float = 1.0  # get-1080p-video answers non-200 until then
    # Kie's older docs: a failed delivery is retried after 1, 5 and 15 minutes; scaled down here.
    callback_retry_seconds: tuple[float, ...] = (1.0, 5.0, 15.0)
    loopback_callbacks_only: bool = True  # a local simulator never POSTs anywhere but this machine
    faults: FaultPlan = field(default_factory=FaultPlan)


@dataclass
class SimTask:
    task_id: str
    api: str  # 'veo' | 'market'
    model: str
    body: dict[str, Any]
    callback_url: str | None
    created: float
    seconds: float
    fail_code: int | None  # None: the task succeeds
    fail_message: str
    drop_callbacks: bool
    is_image: bool
    callback_done: bool = False
    prompt: str = ''

    @property
    def ends_at(self) -> float:
        return self.created + self.seconds


class SimError(SimulatorError):
    """An error envelope to answer with."""

    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(code, message or _MESSAGES.get(code, 'Error'))


class KieSimulator(Simulator):
    """Start with `start()` (returns the base URL), stop with `stop()`; safe to use as a context manager."""

    name = 'kie-sim'
    callback_timeout = _CALLBACK_TIMEOUT_SECONDS
    throttle_code = 429
    server_error_codes = (500, 455)
    internal_error_code = 500
    config: KieSimConfig

    def __init__(self, config: KieSimConfig | None = None, host: str = LOOPBACK, port: int = 0) -> None:
        super().__init__(config or KieSimConfig(), host, port)
        self.handler_class = _Handler
        self.market_models = dict(MARKET_MODELS)
        self._tasks: dict[str, SimTask] = {}
        self._files: dict[str, tuple[bytes, str, float]] = {}  # path -> (bytes, mime, expires_at)
        self._creates: deque[float] = deque()
        self._credits = self.config.credits

    # --- the protocol ------------------------------------------------------------------------------------------

    def make_error(self, code: int, message: str | None = None) -> SimError:
        return SimError(code, message)

    def known_error(self, code: int) -> bool:
        return code in _MESSAGES

    def body_too_large(self) -> SimError:
        return SimError(422, 'The request body is too large.')

    def error_reply(self, handler: SimHandler, error: SimulatorError) -> Reply:
        return self.envelope(handler, error.code, error.message, None)

    def envelope(self, handler: SimHandler, code: int, message: str, data: Any) -> Reply:
        status = 200 if code == 200 or self.config.errors_in_http_200 else code
        body: dict[str, Any] = {'code': code, 'msg': message, 'data': data}
        if handler.path.startswith('/api/file-'):
            body['success'] = code == 200
        if code == 200 and handler.path.startswith('/api/file-'):
            body['msg'] = 'File uploaded successfully'
        return Reply.json(status, body)

    def callback_headers(self, delivery: Delivery) -> dict[str, str]:
        key = self.config.webhook_hmac_key
        if not key:
            return {}
        stamp = str(int(time.time()))
        return {'X-Webhook-Timestamp': stamp, 'X-Webhook-Signature': hmac_sha256(key, f'{delivery.task_id}.{stamp}')}

    def callback_retry_delays(self) -> tuple[float, ...]:
        return self.config.callback_retry_seconds

    def route(self, handler: SimHandler, method: str) -> Reply | None:
        assert isinstance(handler, _Handler)
        url = urlsplit(handler.path)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        if method == 'GET' and url.path.startswith('/files/'):
            handler.send_file(url.path)
            return None
        if method == 'GET' and url.path.startswith('/results/'):
            handler.send_result(url.path, query)
            return None
        route = _ROUTES.get((method, url.path))
        if route is None:
            raise SimError(404)
        stage, handle = route
        if stage:
            self.stats.incr('creates' if stage == 'create' else 'gets')
            if self.transport_fault(handler, stage):
                return None
        if handler.headers.get('Authorization', '') != f'Bearer {self.config.api_key}':
            self.stats.incr('auth_failures')
            raise SimError(401)
        if stage:
            self.raise_queued(stage)
        return self.envelope(handler, 200, 'success', handle(handler, query))

    @property
    def credits(self) -> int:
        return self._credits

    def tasks(self) -> list[dict[str, Any]]:
        """A snapshot of every task: id, api, model, state and whether its callback went out."""
        now = time.time()
        with self._lock:
            tasks = list(self._tasks.values())
        return [{'task_id': t.task_id, 'api': t.api, 'model': t.model, 'state': _market_state(t, now),
                 'callback_done': t.callback_done, 'body': t.body} for t in tasks]

    # --- creates -----------------------------------------------------------------------------------------------

    def create_veo(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = _require_prompt(body)
        model = body.get('model', 'veo3_fast')
        if model not in _VEO_MODELS:
            raise SimError(422, f'model must be one of {", ".join(_VEO_MODELS)}.')
        images = body.get('imageUrls') or []
        if not isinstance(images, list) or not all(isinstance(url, str) for url in images):
            raise SimError(422, 'imageUrls must be a list of URLs.')
        kind = body.get('generationType') or ('FIRST_AND_LAST_FRAMES_2_VIDEO' if images else 'TEXT_2_VIDEO')
        if kind not in _VEO_TYPES:
            raise SimError(422, f'generationType must be one of {", ".join(_VEO_TYPES)}.')
        low, high = _VEO_TYPES[kind]
        if not low <= len(images) <= high:
            raise SimError(422, f'{kind} takes {low} to {high} imageUrls.')
        if kind == 'REFERENCE_2_VIDEO' and model != 'veo3_fast':
            raise SimError(422, 'REFERENCE_2_VIDEO is only supported by veo3_fast.')
        _check_veo_ratio(body)
        seeds = body.get('seeds')
        if seeds is not None and (not isinstance(seeds, int) or not 10000 <= seeds <= 99999):
            raise SimError(422, 'seeds must be an integer from 10000 to 99999.')
        self._check_images(images)
        task = self._new_task('veo', model, body, prompt, is_image=False)
        return {'taskId': task.task_id}

    def create_market(self, body: dict[str, Any]) -> dict[str, Any]:
        model_id = body.get('model')
        spec = self.market_models.get(model_id) if isinstance(model_id, str) else None
        if spec is None:
            raise SimError(422, 'The model is not supported.')
        values = body.get('input')
        if not isinstance(values, dict):
            raise SimError(422, 'input is required.')
        prompt = _require_prompt(values)
        for name in spec.required:
            if values.get(name) in (None, '', []):
                raise SimError(422, f'input.{name} is required.')
        for name, allowed in spec.enums.items():
            if name in values and values[name] not in allowed:
                raise SimError(422, f'input.{name} must be one of {", ".join(map(str, allowed))}.')
        for name, expected in spec.types.items():
            if name in values and not isinstance(values[name], expected):
                raise SimError(422, f'input.{name} must be a {expected.__name__}.')
        urls = values.get('image_urls') or []
        self._check_images((urls if isinstance(urls, list) else []) + [values.get('image_url') or ''])
        task = self._new_task('market', model_id, body, prompt, is_image=spec.kind == 'image')
        return {'taskId': task.task_id}

    def guard_create(self, prompt: str) -> None:
        """Scenario tags, the rate limit and the credit balance, checked before a create is accepted."""
        tags = _tags(prompt)
        if 'code' in tags:
            raise SimError(int(tags['code']))
        if 'quota' in tags:
            raise SimError(402)
        if 'reject-create' in tags:
            raise SimError(400)  # content policy at create time, as in the Kling simulator
        now = time.monotonic()
        with self._lock:
            while self._creates and now - self._creates[0] > 10.0:
                self._creates.popleft()
            if len(self._creates) >= self.config.rate_limit_per_10s:
                raise SimError(429)
            self._creates.append(now)
            if self._credits < self.config.credits_per_task:
                raise SimError(402)

    def _new_task(self, api: str, model: str, body: dict[str, Any], prompt: str, *, is_image: bool) -> SimTask:
        tags = _tags(prompt)
        fail_code = 400 if 'content-policy' in tags else int(tags['fail'] or 501) if 'fail' in tags else None
        prefix = 'veo_task_' if api == 'veo' else f'task_{model.split("/")[0]}_'
        task = SimTask(
            task_id=prefix + uuid.uuid4().hex[:16], api=api, model=model, body=body,
            callback_url=body.get('callBackUrl'), created=time.time(),
            seconds=float(tags['slow']) if tags.get('slow') else self.config.generation_seconds,
            fail_code=fail_code, fail_message=_MESSAGES.get(fail_code or 0, 'Generation failed.'),
            drop_callbacks='drop-callbacks' in tags, is_image=is_image, prompt=prompt,
        )
        with self._lock:
            self._credits -= self.config.credits_per_task
            self._tasks[task.task_id] = task
        self._scheduler.call_later(task.seconds, self._task_ended, task.task_id)
        self.stats.incr('tasks_created')
        self.stats.incr(f'tasks_created.{api}')
        return task

    def _check_images(self, urls: list[str]) -> None:
        for url in urls:
            if not url:
                continue
            if not url.startswith(('http://', 'https://')):
                raise SimError(451)
            # Our own upload host: an unknown or expired file cannot be fetched, as on the real one.
            if url.startswith(self.base_url + '/files/') and self._file(urlsplit(url).path) is None:
                raise SimError(451)

    # --- records -----------------------------------------------------------------------------------------------

    def task(self, task_id: str | None) -> SimTask:
        with self._lock:
            task = self._tasks.get(task_id or '')
        if task is None:
            raise SimError(422, 'record is null')
        return task

    def veo_record(self, task: SimTask, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        done = now >= task.ends_at
        flag = 0 if not done else 1 if task.fail_code is None else 2 if task.fail_code == 400 else 3
        record: dict[str, Any] = {
            'taskId': task.task_id, 'paramJson': json.dumps(task.body), 'completeTime': None,
            'response': None, 'successFlag': flag, 'errorCode': None, 'errorMessage': '',
            'createTime': _ms(task.created), 'fallbackFlag': False,
        }
        if done:
            record['completeTime'] = _ms(task.ends_at)
        if flag == 1:
            record['response'] = {'taskId': task.task_id, **self._veo_info(task)}
        elif flag in (2, 3):
            record['errorCode'], record['errorMessage'] = task.fail_code, task.fail_message
        return record

    def market_record(self, task: SimTask, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        state = _market_state(task, now)
        done = state in ('success', 'fail')
        record: dict[str, Any] = {
            'taskId': task.task_id, 'model': task.model, 'state': state, 'param': json.dumps(task.body),
            'resultJson': None, 'failCode': None, 'failMsg': None, 'costTime': None, 'completeTime': None,
            'createTime': _ms(task.created), 'updateTime': _ms(_market_updated(task, now)),
        }
        if done:
            record.update(costTime=int(round(task.seconds)), completeTime=_ms(task.ends_at))
        if state == 'success':
            record['resultJson'] = json.dumps({'resultUrls': [self.result_url(task, 0)]})
        elif state == 'fail':
            record.update(failCode=str(task.fail_code), failMsg=task.fail_message)
        return record

    def hd_video(self, task: SimTask) -> dict[str, Any]:
        now = time.time()
        if now < task.ends_at or task.fail_code is not None:
            raise SimError(422, 'The original video is not generated successfully.')
        if now < task.ends_at + self.config.hd_ready_after_seconds:
            raise SimError(400, '1080P is processing. It should be ready in 1-2 minutes.')
        return {'resultUrl': f'{self.base_url}/results/{task.task_id}/1080p.mp4'}

    def result_url(self, task: SimTask, index: int) -> str:
        extension = 'png' if task.is_image else 'mp4'
        return f'{self.base_url}/results/{task.task_id}/{index}.{extension}'

    def _veo_info(self, task: SimTask) -> dict[str, Any]:
        info: dict[str, Any] = {'resultUrls': [self.result_url(task, 0)], 'resolution': '720p'}
        ratio = task.body.get('aspect_ratio') or task.body.get('aspectRatio') or '16:9'
        if ratio != '16:9':
            info['originUrls'] = [self.result_url(task, 0)]
        return info

    # --- media -------------------------------------------------------------------------------------------------

    def store_file(self, upload_path: str, file_name: str, data: bytes, mime: str) -> dict[str, Any]:
        path = f'/files/{upload_path.strip("/")}/{file_name}'.replace('//', '/')
        now = time.time()
        with self._lock:
            self._files[path] = (data, mime, now + _UPLOAD_TTL_SECONDS)
        return {'fileName': file_name, 'filePath': path.removeprefix('/files/'), 'downloadUrl': self.base_url + path,
                'fileSize': len(data), 'mimeType': mime, 'uploadedAt': time.strftime('%Y-%m-%dT%H:%M:%S.000Z',
                                                                                    time.gmtime(now))}

    def _file(self, path: str) -> tuple[bytes, str] | None:
        with self._lock:
            entry = self._files.get(path)
        if entry is None or entry[2] < time.time():
            return None
        return entry[0], entry[1]

    def result(self, task_id: str, name: str, *, bad: str | None = None) -> tuple[str, bytes] | None:
        """(content type, bytes) of a live result, or None: a real PNG or MP4 of the task's shape, or the bad
        file its prompt (`[sim:undecodable]`, ...) or a fault asks for."""
        with self._lock:
            task = self._tasks.get(task_id)
        now = time.time()
        if task is None or task.fail_code is not None or now < task.ends_at:
            return None
        if now > task.ends_at + self.config.result_ttl_seconds:
            return None
        values = task.body.get('input') if isinstance(task.body.get('input'), dict) else task.body
        ratio = values.get('aspect_ratio') or values.get('aspectRatio')
        bad = bad or sample_media.bad_result(task.prompt)
        if name.endswith('.png'):
            return 'image/png', sample_media.image_result(aspect_ratio=ratio, seed=f'{task_id}/{name}', bad=bad)
        # Veo makes 8-second clips with sound; Market video models take duration and sound as inputs.
        seconds = float(values.get('duration') or 8) if task.api == 'market' else 8.0
        audio = bool(values.get('sound')) if task.api == 'market' else True
        return 'video/mp4', sample_media.video_result(
            aspect_ratio=None if ratio == 'Auto' else ratio, seconds=seconds, audio=audio,
            size=self.config.result_bytes, seed=f'{task_id}/{name}', bad=bad,
            long_side=1920 if name == '1080p.mp4' else sample_media.LONG_SIDE)  # Veo's 1080p render

    # --- callbacks ---------------------------------------------------------------------------------------------

    def _task_ended(self, task_id: str) -> None:
        """One callback per task, when it ends."""
        with self._lock:
            task = self._tasks[task_id]
            task.callback_done = True
        self.send_callback(task.task_id, task.callback_url, self.callback_body(task), drop=task.drop_callbacks)

    def callback_body(self, task: SimTask) -> dict[str, Any]:
        if task.api == 'market':
            record = self.market_record(task, task.ends_at)
            ok = task.fail_code is None
            return {'code': 200 if ok else 501,
                    'msg': 'Playground task completed successfully.' if ok else 'Playground task failed.',
                    'data': record}
        if task.fail_code is None:
            return {'code': 200, 'msg': 'Veo3.1 video generated successfully.',
                    'data': {'taskId': task.task_id, 'info': self._veo_info(task), 'fallbackFlag': False}}
        return {'code': task.fail_code, 'msg': task.fail_message,
                'data': {'taskId': task.task_id, 'fallbackFlag': False}}


def hmac_sha256(key: str, message: str) -> str:
    return base64.b64encode(hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()).decode('ascii')


class _Handler(SimHandler):
    server_version = 'KieSim/1.0'

    @property
    def sim(self) -> KieSimulator:
        simulator = self.server.simulator
        assert isinstance(simulator, KieSimulator)
        return simulator

    # --- API routes --------------------------------------------------------------------------------------------

    def _json(self) -> dict[str, Any]:
        try:
            body = json.loads(self.read_body() or b'{}')
        except ValueError as exc:
            raise SimError(422, 'The request body is not valid JSON.') from exc
        if not isinstance(body, dict):
            raise SimError(422, 'The request body must be a JSON object.')
        return body

    def veo_generate(self, query: dict[str, str]) -> Any:
        body = self._json()
        self.sim.guard_create(str(body.get('prompt') or ''))
        return self.sim.create_veo(body)

    def market_create(self, query: dict[str, str]) -> Any:
        body = self._json()
        values = body.get('input') if isinstance(body.get('input'), dict) else {}
        self.sim.guard_create(str(values.get('prompt') or ''))
        return self.sim.create_market(body)

    def veo_record(self, query: dict[str, str]) -> Any:
        return self.sim.veo_record(self.sim.task(query.get('taskId')))

    def market_record(self, query: dict[str, str]) -> Any:
        return self.sim.market_record(self.sim.task(query.get('taskId')))

    def veo_hd(self, query: dict[str, str]) -> Any:
        self.sim.stats.incr('hd_queries')
        return self.sim.hd_video(self.sim.task(query.get('taskId')))

    def download_url(self, query: dict[str, str]) -> Any:
        url = str(self._json().get('url') or '')
        if not url.startswith(self.sim.base_url + '/results/'):
            raise SimError(422, 'Only URLs of files generated by kie.ai are supported.')
        return f'{url.split("?", 1)[0]}?expires={int(time.time() + _DOWNLOAD_URL_TTL_SECONDS)}'

    def credit(self, query: dict[str, str]) -> Any:
        return self.sim.credits

    def upload_base64(self, query: dict[str, str]) -> Any:
        body = self._json()
        text = str(body.get('base64Data') or '')
        mime = 'application/octet-stream'
        if text.startswith('data:'):
            header, _, text = text.partition(',')
            mime = header[5:].split(';', 1)[0] or mime
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SimError(400, 'base64Data is not valid base64.') from exc
        self.sim.stats.incr('uploads.base64')
        return self._stored(body, data, mime)

    def upload_stream(self, query: dict[str, str]) -> Any:
        raw = self.read_body()
        message = email.parser.BytesParser(policy=email.policy.default).parsebytes(
            f'Content-Type: {self.headers.get("Content-Type", "")}\r\n\r\n'.encode() + raw)
        form: dict[str, Any] = {}
        upload: tuple[bytes, str, str] | None = None
        for part in message.iter_parts() if message.is_multipart() else ():
            name = part.get_param('name', header='content-disposition')
            if name == 'file':
                upload = (part.get_payload(decode=True) or b'', part.get_content_type(), part.get_filename() or '')
            elif name:
                form[name] = part.get_content().strip()
        if upload is None or not upload[0]:
            raise SimError(400, 'file is required.')
        self.sim.stats.incr('uploads.stream')
        return self._stored({**form, 'fileName': form.get('fileName') or upload[2]}, upload[0], upload[1])

    def upload_url(self, query: dict[str, str]) -> Any:
        body = self._json()
        url = str(body.get('fileUrl') or '')
        if not url.startswith(('http://', 'https://')):
            raise SimError(400, 'fileUrl must be an http(s) URL.')
        # The simulator fetches nothing from the outside world: a URL of its own is copied, anything else
        # is stored as a tiny placeholder image.
        own = self.sim._file(urlsplit(url).path) if url.startswith(self.sim.base_url) else None
        data, mime = own or (_png(0), 'image/png')
        self.sim.stats.incr('uploads.url')
        return self._stored(body, data, mime)

    def _stored(self, form: dict[str, Any], data: bytes, mime: str) -> dict[str, Any]:
        upload_path = str(form.get('uploadPath') or '')
        if not upload_path:
            raise SimError(400, 'uploadPath is required.')
        file_name = str(form.get('fileName') or f'{uuid.uuid4().hex}')
        return self.sim.store_file(upload_path, file_name, data, mime)

    # --- files ------------------------------------------------------------------------------------------------

    def send_file(self, path: str) -> None:
        found = self.sim._file(path)
        if found is None:
            return self.send_bytes(404, b'Not Found', 'text/plain')
        self.send_bytes(200, found[0], found[1])

    def send_result(self, path: str, query: dict[str, str]) -> None:
        parts = path.split('/')
        bad = None
        if len(parts) == 4 and self.sim.config.faults.roll('download_undecodable'):
            self.sim.stats.incr('faults.download_undecodable')
            bad = 'undecodable'
        found = self.sim.result(parts[2], parts[3], bad=bad) if len(parts) == 4 else None
        expires = query.get('expires')
        if found is None or (expires and expires.isdigit() and int(expires) < time.time()):
            self.sim.stats.incr('downloads_missing')
            return self.send_bytes(404, b'Not Found', 'text/plain')
        content_type, data = found
        self.sim.stats.incr('downloads')
        self.send_response(200)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        cut = len(data) // 2 if self.sim.config.faults.roll('download_fail_midway') else len(data)
        for start in range(0, cut, 64 * 1024):
            self.wfile.write(data[start:min(start + 64 * 1024, cut)])
        if cut < len(data):
            self.sim.stats.incr('faults.download_fail_midway')
            self.reset()


_ROUTES = {
    ('POST', '/api/v1/veo/generate'): ('create', _Handler.veo_generate),
    ('GET', '/api/v1/veo/record-info'): ('status', _Handler.veo_record),
    ('GET', '/api/v1/veo/get-1080p-video'): ('status', _Handler.veo_hd),
    ('POST', '/api/v1/jobs/createTask'): ('create', _Handler.market_create),
    ('GET', '/api/v1/jobs/recordInfo'): ('status', _Handler.market_record),
    ('POST', '/api/v1/common/download-url'): (None, _Handler.download_url),
    ('GET', '/api/v1/chat/credit'): (None, _Handler.credit),
    ('POST', '/api/file-base64-upload'): (None, _Handler.upload_base64),
    ('POST', '/api/file-stream-upload'): (None, _Handler.upload_stream),
    ('POST', '/api/file-url-upload'): (None, _Handler.upload_url),
}


# --- helpers ---------------------------------------------------------------------------------------------------


def _tags(prompt: str) -> dict[str, str | None]:
    return {name: value for name, value in _TAG.findall(prompt)} if prompt else {}


def _require_prompt(values: dict[str, Any]) -> str:
    prompt = values.get('prompt')
    if not isinstance(prompt, str) or not prompt.strip():
        raise SimError(422, 'prompt is required.')
    return prompt


def _check_veo_ratio(body: dict[str, Any]) -> None:
    spellings = {body[key] for key in ('aspect_ratio', 'aspectRatio') if key in body}
    if len(spellings) > 1:
        raise SimError(422, 'aspect_ratio and aspectRatio disagree.')
    if spellings and next(iter(spellings)) not in _VEO_RATIOS:
        raise SimError(422, f'aspect_ratio must be one of {", ".join(_VEO_RATIOS)}.')


def _market_state(task: SimTask, now: float) -> str:
    if now >= task.ends_at:
        return 'success' if task.fail_code is None else 'fail'
    elapsed = now - task.created
    if elapsed < 0.1 * task.seconds:
        return 'waiting'
    return 'queuing' if elapsed < 0.25 * task.seconds else 'generating'


def _market_updated(task: SimTask, now: float) -> float:
    marks = [task.created + task.seconds * share for share in (0.0, 0.1, 0.25, 1.0)]
    return max(mark for mark in marks if mark <= max(now, task.created))


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _png(seed: int, size: int = 8) -> bytes:
    """A real, tiny, single-colour PNG (the colour follows the seed)."""
    colour = seed.to_bytes(4, 'big')[:3]
    rows = b''.join(b'\x00' + colour * size for _ in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack('>IIBBBBB', size, size, 8, 2, 0, 0, 0)
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b'')
