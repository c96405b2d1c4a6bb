"""The scene writer's one call: OpenAI-compatible Chat Completions with a JSON-schema response format.

`POST {LLM_BASE_URL}/chat/completions` with `Authorization: Bearer <key>` (the key from the LLM secret), the
instructions (`scene_writer.txt`, filled with numbers and names the service chose: never with client text) as
the system message, and the product as the user message: its name, description and style as a JSON document,
and its photo as an `image_url` part when LLM_VISION is on. The answer must be `{"scenes": [...]}` in the
assistant message's content (`response_format: {"type": "json_schema", ...}`).

The call goes through the project's one HTTP path (`providers.http.ProviderHttp`): explicit timeouts, typed
transport errors, nothing logged. It is bounded as a whole: all attempts share one deadline,
LLM_BUDGET_SECONDS (at most 30) from the first, which also ends an answer that is still arriving (a server
that trickles bytes, each read well within the read timeout, is cut off at the deadline: see
`providers.deadline`); only transport failures, 429 and 5xx are tried again. Every way the
call can fail raises `LlmUnusableError` with a sentence for the storyboard's `scenes_note`; none of them carries
the key, a header or the provider's body.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from string import Template
from typing import Any

import requests

from vidgen.config import get_settings
from vidgen.errors import LlmUnusableError, ProviderUnavailableError, SecretUnavailableError
from vidgen.observability import logger
from vidgen.providers.http import ProviderHttp
from vidgen.secrets import get_secret_field

_HERE = Path(__file__).parent
_MAX_ATTEMPTS = 3
_CONNECT_SECONDS = 5.0
_LEAST_ATTEMPT_SECONDS = 0.5  # an attempt with less time left than this is not started
_MAX_COMPLETION_TOKENS = 4000


@dataclass(frozen=True)
class SceneBrief:
    """Everything the scene writer is told."""

    product_name: str
    product_description: str
    style: str | None
    scene_count: int
    model_name: str
    mode_name: str
    duration: int | None
    max_prompt_chars: int
    image: str | None  # an https URL or a data: URI, sent only to vision models


@lru_cache(maxsize=1)
def scene_data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((_HERE / 'scenes.json').read_text(encoding='utf-8'))
    return data


@lru_cache(maxsize=1)
def _instructions_template() -> Template:
    return Template((_HERE / 'scene_writer.txt').read_text(encoding='utf-8'))


def instructions(brief: SceneBrief, *, with_image: bool) -> str:
    image_rule = ('The user message includes the product photo: every scene starts from that photo as its first '
                  'frame, so describe motion and camera work that fit it.\n' if with_image else '')
    return _instructions_template().substitute(
        scene_count=brief.scene_count, mode_name=brief.mode_name, model_name=brief.model_name,
        duration=brief.duration or 5, max_prompt_chars=brief.max_prompt_chars, image_rule=image_rule)


def chat_request(brief: SceneBrief, model: str, *, vision: bool) -> dict[str, Any]:
    """The Chat Completions body. The product text is user content only, as a JSON document."""
    with_image = bool(brief.image and vision)
    product = {'product': {'name': brief.product_name, 'description': brief.product_description},
               'style': brief.style, 'scene_count': brief.scene_count}
    content: list[dict[str, Any]] = [{'type': 'text', 'text': json.dumps(product, ensure_ascii=False)}]
    if with_image:
        content.append({'type': 'image_url', 'image_url': {'url': brief.image, 'detail': 'low'}})
    return {
        'model': model,
        'messages': [{'role': 'system', 'content': instructions(brief, with_image=with_image)},
                     {'role': 'user', 'content': content}],
        'response_format': {'type': 'json_schema',
                            'json_schema': {'name': 'storyboard_scenes', 'strict': True,
                                            'schema': scene_data()['schema']}},
        'max_completion_tokens': _MAX_COMPLETION_TOKENS,
    }


def api_key() -> str:
    try:
        return get_secret_field(get_settings().llm_secret_name, 'api_key')
    except SecretUnavailableError as exc:
        raise LlmUnusableError('No LLM API key is configured') from exc


def ask_for_scenes(brief: SceneBrief) -> list[Any]:
    """The `scenes` array of the model's answer, unvalidated. Raises `LlmUnusableError`."""
    settings = get_settings()
    key = api_key()
    body = chat_request(brief, settings.llm_model, vision=settings.llm_vision)
    reply = _post_within_budget(settings.llm_base_url, key, body, settings.llm_budget_seconds)
    return _scenes_from(reply)


def _post_within_budget(base_url: str, key: str, body: dict[str, Any], budget: float) -> Any:
    deadline = time.monotonic() + budget
    headers = {'Authorization': f'Bearer {key}', 'Content-Type': 'application/json'}
    failure = f'The scene-writing model did not answer within {budget:g} seconds'
    http = ProviderHttp('LLM', base_url, timeout=(_CONNECT_SECONDS, budget))
    try:
        for attempt in range(_MAX_ATTEMPTS):
            if deadline - time.monotonic() < _LEAST_ATTEMPT_SECONDS:
                break
            try:
                reply = http.request('POST', '/chat/completions', headers=headers, json=body, deadline=deadline)
            except ProviderUnavailableError as exc:
                failure = _transport_failure(exc, budget)
                logger.warning('scene writer call failed', attempt=attempt + 1, error=type(exc.__cause__).__name__)
            else:
                if 200 <= reply.status < 300:
                    return reply.body
                failure = _status_failure(reply.status)
                logger.warning('scene writer call refused', attempt=attempt + 1, status=reply.status)
                if reply.status != 429 and reply.status < 500:
                    break  # a 4xx other than 429 will not change on a retry
            if attempt + 1 < _MAX_ATTEMPTS:
                time.sleep(max(0.0, min(0.5 * 2**attempt, deadline - time.monotonic() - _LEAST_ATTEMPT_SECONDS)))
    finally:
        http.close()
    raise LlmUnusableError(failure)


def _transport_failure(exc: ProviderUnavailableError, budget: float) -> str:
    if isinstance(exc.__cause__, requests.Timeout):
        return f'The scene-writing model did not answer within {budget:g} seconds'
    if exc.provider_code is not None:
        return f'The scene-writing model answered HTTP {exc.provider_code} with a body that is not JSON'
    return 'The scene-writing model could not be reached'


def _status_failure(status: int) -> str:
    if status == 429:
        return 'The scene-writing model was rate limited (HTTP 429)'
    if status >= 500:
        return f'The scene-writing model failed (HTTP {status})'
    return f'The scene-writing model refused the request (HTTP {status})'


def _scenes_from(reply: Any) -> list[Any]:
    try:
        message = reply['choices'][0]['message']
    except (KeyError, IndexError, TypeError) as exc:
        raise LlmUnusableError('The scene-writing model answered without a message') from exc
    if not isinstance(message, dict):
        raise LlmUnusableError('The scene-writing model answered without a message')
    if message.get('refusal'):
        raise LlmUnusableError('The scene-writing model declined to write scenes for this product')
    content = message.get('content')
    try:
        parsed = json.loads(content) if isinstance(content, str) else None
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict) or not isinstance(parsed.get('scenes'), list):
        raise LlmUnusableError('The scene-writing model\'s answer was not the JSON object asked for')
    scenes: list[Any] = parsed['scenes']
    return scenes
