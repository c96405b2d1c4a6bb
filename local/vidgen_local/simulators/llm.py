"""A local OpenAI-compatible Chat Completions server: the scene writer's LLM when LLM_BASE_URL is not given.

`POST /v1/chat/completions` answers the way the real API does: 401 `invalid_api_key` without the right
`Authorization: Bearer` key, 400 `invalid_request_error` for a body without `model`, `messages` or a
`response_format` of type `json_schema` with a schema, else a `chat.completion` whose assistant message content
is `{"scenes": [...]}`: as many scenes as the request's user message asks for (its JSON `scene_count`), made
from the product's name, description and style found there. It binds 127.0.0.1 only and fetches nothing.

Faults, for the scene writer's fallback paths: per request by a tag in the product's name or description, or
for the next `times` requests with `queue_fault(kind, times)`:

- `[llm:slow]`        answer after `slow_seconds` (more than the writer's budget)
- `[llm:5xx]`         HTTP 503 with an OpenAI error body
- `[llm:non-json]`    200, but the assistant content is prose, not JSON
- `[llm:wrong-count]` one scene fewer than asked for
- `[llm:long-prompt]` scene prompts far over any video model's limit, with no sentence end to cut at
- `[llm:refuse]`      200 with `refusal` set and no content

`[scene-N sim:TAG]` in the description puts `[sim:TAG]` into scene N's prompt, to steer that scene's job at
the video simulators (e.g. `[scene-2 sim:content-policy]`). `requests` keeps every request received (its
body, and whether its key was right) for tests of the wire shape.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from vidgen_local.simulators.faults import Counters

logger = logging.getLogger(__name__)

LOOPBACK = '127.0.0.1'
FAULTS = ('slow', '5xx', 'non-json', 'wrong-count', 'long-prompt', 'refuse')
_FAULT_TAG = re.compile(r'\[llm:([a-z0-9-]+)\]')
_SCENE_TAG = re.compile(r'\[scene-(\d+) (sim:[^\]]+)\]')
_MAX_BODY_BYTES = 20 * 1024 * 1024
# (title, shot) of the scenes the simulator writes; deliberately not the service's built-in scenes.
_SHOTS = (('Opening reveal', 'Slow push-in under soft studio light.'),
          ('In the details', 'Macro detail shot, the camera gliding across the surface.'),
          ('Everyday use', 'Handheld shot of the product in use, warm natural light.'),
          ('All around', 'Full turntable rotation on a seamless backdrop.'),
          ('At home', 'Golden-hour lifestyle scene, slow dolly.'),
          ('Final frame', 'Calm closing frame, the camera pulling back.'))


@dataclass
class LlmSimConfig:
    api_key: str = 'sim-llm-key'
    model: str = 'sim-scene-writer'
    slow_seconds: float = 35.0


@dataclass(frozen=True)
class ReceivedRequest:
    body: dict[str, Any]
    authorized: bool
    authorization: str


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, simulator: LlmSimulator) -> None:
        super().__init__((LOOPBACK, 0), _Handler)
        self.simulator = simulator


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.server.simulator._handle(self)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def send_json(self, status: int, payload: Any) -> None:
        self.send_text(status, json.dumps(payload), 'application/json')

    def send_text(self, status: int, text: str, content_type: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _error(message: str, type_: str, code: str | None) -> dict[str, Any]:
    return {'error': {'message': message, 'type': type_, 'param': None, 'code': code}}


class LlmSimulator:
    """The simulated LLM on 127.0.0.1. `start()` returns the base URL (ending in /v1); `stop()` ends it."""

    def __init__(self, config: LlmSimConfig | None = None) -> None:
        self.config = config or LlmSimConfig()
        self.stats = Counters()
        self.requests: list[ReceivedRequest] = []
        self._queued: list[str] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None

    def start(self) -> str:
        if self._server is None:
            self._server = _Server(self)
            threading.Thread(target=self._server.serve_forever, kwargs={'poll_interval': 0.05}, name='llm-sim-http',
                             daemon=True).start()
        return self.base_url

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers held by a slow fault
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError('the LLM simulator is not started')
        return f'http://{LOOPBACK}:{self._server.server_address[1]}/v1'

    def queue_fault(self, kind: str, times: int = 1) -> None:
        if kind not in FAULTS:
            raise ValueError(f'unknown LLM fault {kind!r}; known: {", ".join(FAULTS)}')
        with self._lock:
            self._queued.extend([kind] * times)

    def clear(self) -> None:
        with self._lock:
            self._queued.clear()
            self.requests.clear()

    # --- one request -------------------------------------------------------------------------------------

    def _handle(self, handler: _Handler) -> None:
        self.stats.incr('requests')
        if handler.path.split('?', 1)[0] != '/v1/chat/completions':
            handler.send_json(404, _error(f'Unknown request URL: POST {handler.path}.', 'invalid_request_error',
                                          'unknown_url'))
            return
        length = int(handler.headers.get('Content-Length') or 0)
        raw = handler.rfile.read(min(length, _MAX_BODY_BYTES))
        authorization = handler.headers.get('Authorization') or ''
        authorized = authorization == f'Bearer {self.config.api_key}'
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with self._lock:
            self.requests.append(ReceivedRequest(body if isinstance(body, dict) else {}, authorized, authorization))
        if not authorized:
            self.stats.incr('auth_failures')
            handler.send_json(401, _error('Incorrect API key provided.', 'invalid_request_error', 'invalid_api_key'))
            return
        problem = _request_problem(body)
        if problem:
            handler.send_json(400, _error(problem, 'invalid_request_error', None))
            return
        product, style, count = _brief(body)
        fault = self._fault(product)
        if fault:
            self.stats.incr(f'faults.{fault}')
        if fault == 'slow':
            self._stopping.wait(self.config.slow_seconds)
        if fault == '5xx':
            handler.send_json(503, _error('The server is overloaded or not ready yet.', 'server_error', None))
            return
        scenes = _scenes(product, style, count - 1 if fault == 'wrong-count' else count, long=fault == 'long-prompt')
        message: dict[str, Any] = {'role': 'assistant', 'content': json.dumps({'scenes': scenes}), 'refusal': None}
        if fault == 'non-json':
            message['content'] = 'Here are some lovely scenes for your product: first, a hero shot...'
        if fault == 'refuse':
            message = {'role': 'assistant', 'content': None, 'refusal': 'I can\'t help with that request.'}
        try:
            handler.send_json(200, {
                'id': f'chatcmpl-{uuid.uuid4().hex[:24]}', 'object': 'chat.completion', 'created': int(time.time()),
                'model': body['model'], 'choices': [{'index': 0, 'message': message, 'finish_reason': 'stop',
                                                     'logprobs': None}],
                'usage': {'prompt_tokens': 400, 'completion_tokens': 300, 'total_tokens': 700}})
        except OSError:
            handler.close_connection = True  # the client gave up (its timeout) while we were slow

    def _fault(self, product: dict[str, str]) -> str | None:
        with self._lock:
            if self._queued:
                return self._queued.pop(0)
        tags = _FAULT_TAG.findall(f'{product.get("name", "")} {product.get("description", "")}')
        return next((tag for tag in tags if tag in FAULTS), None)


def _request_problem(body: Any) -> str | None:
    if not isinstance(body, dict):
        return 'We could not parse the JSON body of your request.'
    if not isinstance(body.get('model'), str) or not body['model']:
        return "you must provide a model parameter"
    if not isinstance(body.get('messages'), list) or not body['messages']:
        return "[] is too short - 'messages'"
    response_format = body.get('response_format') or {}
    schema = (response_format.get('json_schema') or {}).get('schema') if isinstance(response_format, dict) else None
    if response_format.get('type') != 'json_schema' or not isinstance(schema, dict):
        return "response_format must be {'type': 'json_schema', 'json_schema': {'name', 'schema'}} here"
    return None


def _brief(body: dict[str, Any]) -> tuple[dict[str, str], str | None, int]:
    """The product, style and scene count from the user message's JSON text part."""
    for message in body['messages']:
        if message.get('role') != 'user':
            continue
        parts = message.get('content')
        texts = [parts] if isinstance(parts, str) else [p.get('text', '') for p in parts or [] if p.get('type') == 'text']
        for text in texts:
            try:
                data = json.loads(text)
            except ValueError:
                continue
            if isinstance(data, dict) and isinstance(data.get('product'), dict):
                return data['product'], data.get('style'), int(data.get('scene_count') or 3)
    return {'name': 'the product', 'description': ''}, None, 3


def _scenes(product: dict[str, str], style: str | None, count: int, *, long: bool) -> list[dict[str, str]]:
    name = _clean(product.get('name', 'the product'))
    description = product.get('description', '')
    steer = {int(n): tag for n, tag in _SCENE_TAG.findall(description)}
    summary = _clean(description).split('. ')[0].rstrip('.')
    look = f' Style: {style}.' if style else ''
    scenes = []
    for index in range(max(count, 0)):
        title, shot = _SHOTS[index % len(_SHOTS)]
        prompt = f'{name}: {summary}. {shot}{look}'
        if index + 1 in steer:
            prompt += f' [{steer[index + 1]}]'
        if long:
            prompt = ' '.join([f'{name} shown in loving detail'] * 400)  # no sentence end to cut at
        scenes.append({'title': title, 'description': f'{name}, shot {index + 1}: {summary}.',
                       'prompt': prompt})
    return scenes


def _clean(text: str) -> str:
    return ' '.join(_SCENE_TAG.sub('', _FAULT_TAG.sub('', text)).split())
