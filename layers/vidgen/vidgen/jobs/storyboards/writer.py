"""Writing a storyboard's scenes: the LLM's, validated, or the built-in ones.

What the LLM answers is kept only if it is exactly `scene_count` scenes with non-empty title, description and
prompt, every prompt within the target model's limit. A prompt a little over the limit is cut at its last
sentence end inside the limit, when that keeps at least half of the limit; a title or description that is too
long is cut at a word. Anything else, and every way the call itself fails, gives the built-in scenes
(`scenes.json`) made from the product's name and the first sentence of its description, with a note saying
why. A storyboard never fails because the LLM did.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from string import Template
from typing import Any

from vidgen.errors import LlmUnusableError
from vidgen.jobs.storyboards.llm import SceneBrief, ask_for_scenes, scene_data
from vidgen.observability import MetricUnit, logger, metrics
from vidgen.store.storyboards import Scene

MAX_TITLE_CHARS = 100
MAX_DESCRIPTION_CHARS = 600
_FALLBACK_TAIL = ', so built-in scenes were used.'
_SENTENCE_END = re.compile(r'[.!?](?=\s|$)')


@dataclass(frozen=True)
class WrittenScenes:
    scenes: list[Scene]
    source: str  # 'llm' | 'fallback'
    note: str | None


def write_scenes(brief: SceneBrief) -> WrittenScenes:
    try:
        scenes = validate(ask_for_scenes(brief), brief)
    except LlmUnusableError as exc:
        metrics.add_metric(name='StoryboardFallbackScenes', unit=MetricUnit.Count, value=1)
        logger.info('storyboard uses built-in scenes', reason=exc.message)
        return fallback(brief, exc.message)
    metrics.add_metric(name='StoryboardLlmScenes', unit=MetricUnit.Count, value=1)
    return WrittenScenes(scenes=scenes, source='llm', note=None)


def fallback(brief: SceneBrief, reason: str) -> WrittenScenes:
    return WrittenScenes(scenes=fallback_scenes(brief), source='fallback', note=reason.rstrip('.') + _FALLBACK_TAIL)


def validate(drafts: list[Any], brief: SceneBrief) -> list[Scene]:
    if len(drafts) != brief.scene_count:
        raise LlmUnusableError(f'The scene-writing model wrote {len(drafts)} scenes instead of {brief.scene_count}')
    scenes = []
    for index, draft in enumerate(drafts):
        fields = {name: draft.get(name) if isinstance(draft, dict) else None
                  for name in ('title', 'description', 'prompt')}
        blank = [name for name, value in fields.items() if not isinstance(value, str) or not value.strip()]
        if blank:
            raise LlmUnusableError(f'Scene {index + 1} from the scene-writing model has no {blank[0]}')
        prompt = _squash(str(fields['prompt']))
        if len(prompt) > brief.max_prompt_chars:
            trimmed = trim_at_sentence(prompt, brief.max_prompt_chars)
            if trimmed is None:
                raise LlmUnusableError(f'Scene {index + 1}\'s prompt from the scene-writing model is {len(prompt)} '
                                  f'characters, over the {brief.max_prompt_chars} that {brief.model_name} takes')
            prompt = trimmed
        scenes.append(Scene(index=index, title=trim_at_word(_squash(str(fields['title'])), MAX_TITLE_CHARS),
                            description=trim_at_word(_squash(str(fields['description'])), MAX_DESCRIPTION_CHARS),
                            prompt=prompt))
    return scenes


def fallback_scenes(brief: SceneBrief) -> list[Scene]:
    """The built-in scenes for this product, each prompt within the target model's limit."""
    name = _squash(brief.product_name)
    summary = first_sentence(_squash(brief.product_description))
    scenes = []
    for index, entry in enumerate(scene_data()['fallback_scenes'][:brief.scene_count]):
        prompt = _fill(entry['prompt'], name, summary)
        if len(prompt) > brief.max_prompt_chars:  # a long product text: drop the summary, then cut at a word
            prompt = trim_at_word(_fill(entry['prompt'], name, ''), brief.max_prompt_chars)
        scenes.append(Scene(index=index, title=entry['title'],
                            description=trim_at_word(_fill(entry['description'], name, summary), MAX_DESCRIPTION_CHARS),
                            prompt=prompt))
    return scenes


def first_sentence(text: str, limit: int = 300) -> str:
    match = _SENTENCE_END.search(text)
    sentence = text[:match.end()] if match else text
    sentence = trim_at_word(sentence, limit)
    return sentence if sentence.endswith(('.', '!', '?')) else sentence.rstrip(',;:') + '.'


def trim_at_sentence(text: str, limit: int) -> str | None:
    """`text` cut after its last sentence end within `limit`, or None when that keeps less than half."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text[:limit + 1]) if m.end() <= limit]
    if not ends or ends[-1] < limit // 2:
        return None
    return text[:ends[-1]].strip()


def trim_at_word(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit - 1]
    cut = cut[:cut.rfind(' ')] if ' ' in cut else cut
    return cut.rstrip(' ,;:') + '…'


def _fill(pattern: str, name: str, summary: str) -> str:
    return _squash(Template(pattern).safe_substitute(name=name, summary=summary))


def _squash(text: str) -> str:
    return ' '.join(text.split())
