"""A local OpenAI-compatible Chat Completions server: the scene writer's LLM when LLM_BASE_URL is not given.

A protocol module on `simulators.base` (its loopback server, error queue and transport faults).
`POST /v1/chat/completions` answers the way the real API does: 401 `invalid_api_key` without the right
`Authorization: Bearer` key, 400 `invalid_request_error` for a body without `model`, `messages` or a
`response_format` of type `json_schema` with a schema, else a `chat.completion` whose assistant message content
is `{"scenes": [...]}`: as many scenes as the request's user message asks for (its JSON `scene_count`), made
from the product's name, description and style found there. It binds 127.0.0.1 only and fetches nothing.

Faults, for the scene writer's fallback paths: per request by a tag in the product's name or description, or
for the next `times` requests with `queue_fault(kind, times)`:

- `[llm:slow]`        answer after `slow_seconds` (more than the writer's budget)
- `[llm:trickle]`     the status line and headers at once, then the body one byte every `trickle_seconds`:
                      each read gets a byte well within any read timeout, the whole answer takes minutes
- `[llm:trickle-head]` the same from the status line on, headers included
- `[llm:5xx]`         HTTP 503 with an OpenAI error body
- `[llm:non-json]`    200, but the assistant content is prose, not JSON
- `[llm:wrong-count]` one scene fewer than asked for
- `[llm:long-prompt]` scene prompts far over any video model's limit, with no sentence end to cut at
- `[llm:refuse]`      200 with `refusal` set and no content

The base's transport faults (`config.faults`, stage `create`: reset, timeout, malformed, server_error,
throttle) and `queue_error(code)` (an OpenAI error of that HTTP status) apply to every chat completion.

`[scene-N sim:TAG]` in the description puts `[sim:TAG]` into scene N's prompt, to steer that scene's job at
the video simulators (e.g. `[scene-2 sim:content-policy]`). `requests` keeps every request received (its
body, and whether its key was right) for tests of the wire shape.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

from vidgen_local.simulators.base import Reply, SimHandler, Simulator, SimulatorError
from vidgen_local.simulators.faults import FaultPlan

FAULTS = ('slow', 'trickle', 'trickle-head', '5xx', 'non-json', 'wrong-count', 'long-prompt', 'refuse')
_FAULT_TAG = re.compile(r'\[llm:([a-z0-9-]+)\]')
_SCENE_TAG = re.compile(r'\[scene-(\d+) (sim:[^\]]+)\]')
# OpenAI's error answers by HTTP status: (type, code).
ERRORS: dict[int, tuple[str, str | None]] = {
    400: ('invalid_request_error', None),
    401: ('invalid_request_error', 'invalid_api_key'),
    404: ('invalid_request_error', 'unknown_url'),
    413: ('invalid_request_error', 'request_too_large'),
    429: ('requests', 'rate_limit_exceeded'),
    500: ('server_error', None),
    503: ('server_error', None),
}
_DEFAULT_MESSAGES = {401: 'Incorrect API key provided.', 413: 'Request too large.',
                     429: 'Rate limit reached for requests.', 500: 'The server had an error while processing your '
                     'request.', 503: 'The server is overloaded or not ready yet.'}
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
    trickle_seconds: float = 0.25  # between two bytes of a trickled answer
    faults: FaultPlan = field(default_factory=FaultPlan)
    loopback_callbacks_only: bool = True  # the base reads it; an LLM sends no callbacks


@dataclass(frozen=True)
class ReceivedRequest:
    body: dict[str, Any]
    authorized: bool
    authorization: str


class OpenAiError(SimulatorError):
    """An OpenAI error answer; its code is the HTTP status."""

    def __init__(self, status: int, message: str | None = None) -> None:
        super().__init__(status, message or _DEFAULT_MESSAGES.get(status, 'Invalid request.'))


class LlmSimulator(Simulator):
    """The simulated LLM on 127.0.0.1. `start()` returns the base URL (ending in /v1); `stop()` ends it."""

    name: ClassVar[str] = 'llm-sim'
    max_body_bytes: ClassVar[int] = 20 * 1024 * 1024
    server_error_codes: ClassVar[tuple[int, ...]] = (500, 503)

    def __init__(self, config: LlmSimConfig | None = None) -> None:
        self.config: LlmSimConfig = config or LlmSimConfig()
        super().__init__(self.config)
        self.requests: list[ReceivedRequest] = []
        self._queued: list[str] = []

    @property
    def base_url(self) -> str:
        return f'{super().base_url}/v1'

    def queue_fault(self, kind: str, times: int = 1) -> None:
        if kind not in FAULTS:
            raise ValueError(f'unknown LLM fault {kind!r}; known: {", ".join(FAULTS)}')
        with self._lock:
            self._queued.extend([kind] * times)

    def clear(self) -> None:
        with self._lock:
            self._queued.clear()
            self.requests.clear()

    # --- the protocol ------------------------------------------------------------------------------------

    def make_error(self, code: int, message: str | None = None) -> OpenAiError:
        return OpenAiError(code, message)

    def known_error(self, code: int) -> bool:
        return code in ERRORS

    def body_too_large(self) -> OpenAiError:
        return OpenAiError(413)

    def error_reply(self, handler: SimHandler, error: SimulatorError) -> Reply:
        type_, code = ERRORS.get(error.code, ERRORS[500])
        return Reply.json(error.code if error.code in ERRORS else 500,
                          {'error': {'message': error.message, 'type': type_, 'param': None, 'code': code}})

    def route(self, handler: SimHandler, method: str) -> Reply | None:
        self.stats.incr('requests')
        path = handler.path.split('?', 1)[0]
        if method != 'POST' or path != '/v1/chat/completions':
            raise OpenAiError(404, f'Unknown request URL: {method} {path}.')
        raw = handler.read_body()
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
            raise OpenAiError(401)
        problem = _request_problem(body)
        if problem:
            raise OpenAiError(400, problem)
        if self.transport_fault(handler, 'create'):
            return None
        self.raise_queued('create')
        product, style, count = _brief(body)
        fault = self._fault(product)
        if fault:
            self.stats.incr(f'faults.{fault}')
        if fault == 'slow':
            self._stopping.wait(self.config.slow_seconds)
        if fault == '5xx':
            raise OpenAiError(503)
        reply = Reply.json(200, _completion(body['model'], product, style, count, fault))
        if fault in ('trickle', 'trickle-head'):
            self._trickle(handler, reply, head_too=fault == 'trickle-head')
            return None
        return reply

    def _fault(self, product: dict[str, str]) -> str | None:
        with self._lock:
            if self._queued:
                return self._queued.pop(0)
        tags = _FAULT_TAG.findall(f'{product.get("name", "")} {product.get("description", "")}')
        return next((tag for tag in tags if tag in FAULTS), None)

    def _trickle(self, handler: SimHandler, reply: Reply, *, head_too: bool) -> None:
        """Send the answer a byte at a time (the head at once unless `head_too`), until it is all sent, the
        client hangs up, or the simulator stops."""
        head = (f'HTTP/1.1 {reply.status} OK\r\nContent-Type: {reply.content_type}\r\n'
                f'Content-Length: {len(reply.body)}\r\nConnection: close\r\n\r\n').encode()
        handler.close_connection = True
        data = head + reply.body
        start = 0
        try:
            if not head_too:
                handler.wfile.write(head)
                start = len(head)
            for offset in range(start, len(data)):
                if self._stopping.wait(self.config.trickle_seconds):
                    return
                handler.wfile.write(data[offset:offset + 1])
        except OSError:
            return  # the client gave up: its deadline passed


def _completion(model: str, product: dict[str, str], style: str | None, count: int,
                fault: str | None) -> dict[str, Any]:
    scenes = _scenes(product, style, count - 1 if fault == 'wrong-count' else count, long=fault == 'long-prompt')
    message: dict[str, Any] = {'role': 'assistant', 'content': json.dumps({'scenes': scenes}), 'refusal': None}
    if fault == 'non-json':
        message['content'] = 'Here are some lovely scenes for your product: first, a hero shot...'
    if fault == 'refuse':
        message = {'role': 'assistant', 'content': None, 'refusal': 'I can\'t help with that request.'}
    return {'id': f'chatcmpl-{uuid.uuid4().hex[:24]}', 'object': 'chat.completion', 'created': int(time.time()),
            'model': model, 'choices': [{'index': 0, 'message': message, 'finish_reason': 'stop', 'logprobs': None}],
            'usage': {'prompt_tokens': 400, 'completion_tokens': 300, 'total_tokens': 700}}


def _request_problem(body: Any) -> str | None:
    if not isinstance(body, dict):
        return 'We could not parse the JSON body of your request.'
    if not isinstance(body.get('model'), str) or not body['model']:
        return "you must provide a model parameter"
    if not isinstance(body.get('messages'), list) or not body['messages']:
        return "[] is too short - 'messages'"
    response_format = body.get('response_format') or {}
    schema = (response_format.get('json_schema') or {}).get('schema') if isinstance(response_format, dict) else None
    if not isinstance(response_format, dict) or response_format.get('type') != 'json_schema' \
            or not isinstance(schema, dict):
        return "response_format must be {'type': 'json_schema', 'json_schema': {'name', 'schema'}} here"
    return None


def _brief(body: dict[str, Any]) -> tuple[dict[str, str], str | None, int]:
    """The product, style and scene count from the user message's JSON text part."""
    for message in body['messages']:
        if not isinstance(message, dict) or message.get('role') != 'user':
            continue
        parts = message.get('content')
        texts = [parts] if isinstance(parts, str) else [
            p.get('text', '') for p in parts or [] if isinstance(p, dict) and p.get('type') == 'text']
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
