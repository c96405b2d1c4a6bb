"""The model catalog: what each model accepts and costs, read from `catalog.json`.

`resolve()` turns a `JobRequest` into a `ResolvedJob` (model, mode, parameters with defaults, price) or
raises `InvalidParametersError` naming the offending field and what is allowed. The mode follows from
the inputs given: an end frame makes first-and-last-frame video, reference images make reference video,
a start image makes image-to-video, no image makes text-to-video (or text-to-image on an image model).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidgen import images
from vidgen.errors import ImageRuleError, InvalidParametersError

if TYPE_CHECKING:  # only its fields are read here: the poller and storyboard steps use the catalog without pydantic
    from vidgen.models import JobRequest

MODE_NAMES = {
    't2v': 'text-to-video',
    'i2v': 'image-to-video',
    'flf2v': 'first-and-last-frame video',
    'ref2v': 'reference-image video',
    't2i': 'text-to-image',
    'i2i': 'image-to-image',
}
# Top-level request fields that are catalog parameters; everything else model-specific goes in `options`.
_TOP_LEVEL_PARAMETERS = ('duration', 'aspect_ratio', 'mode')
# Catalog fields that say how to drive the provider; not part of the public model description.
_INTERNAL_FIELDS = ('provider_model', 'provider_modes', 'provider_params', 'provider_prices')


@dataclass(frozen=True)
class ModelSpec:
    id: str
    name: str
    provider: str
    provider_model: str
    kind: str
    modes: tuple[str, ...]
    raw: dict[str, Any]

    @property
    def parameters(self) -> dict[str, dict[str, Any]]:
        parameters: dict[str, dict[str, Any]] = self.raw.get('parameters', {})
        return parameters

    @property
    def max_prompt_chars(self) -> int:
        """The longest prompt the model takes (`prompt.max_chars`, else 2,500)."""
        return int(self.raw.get('prompt', {}).get('max_chars', 2500))

    def provider_model_for(self, mode: str) -> str:
        """The provider's model id that runs this mode (`provider_modes`, else `provider_model`)."""
        return self.raw.get('provider_modes', {}).get(mode) or self.provider_model

    @property
    def provider_params(self) -> dict[str, Any]:
        """How the provider names and shapes our parameters (`provider_params`; empty when it takes ours)."""
        return dict(self.raw.get('provider_params', {}))

    def public_view(self) -> dict[str, Any]:
        """The entry GET /v1/models serves: everything but how the provider is driven."""
        view = {k: v for k, v in self.raw.items() if k not in _INTERNAL_FIELDS}
        view['mode_names'] = {mode: MODE_NAMES[mode] for mode in self.modes}
        return view


@dataclass(frozen=True)
class ResolvedJob:
    model: ModelSpec
    mode: str
    params: dict[str, Any]
    credits: int
    provider_cost_micro_usd: int  # what the provider charges us for it (usage reports' provider_cost_usd)


@lru_cache(maxsize=1)
def _load() -> dict[str, ModelSpec]:
    data = json.loads((Path(__file__).with_name('catalog.json')).read_text(encoding='utf-8'))
    specs = {}
    for entry in data['models']:
        specs[entry['id']] = ModelSpec(
            id=entry['id'], name=entry['name'], provider=entry['provider'], provider_model=entry['provider_model'],
            kind=entry['kind'], modes=tuple(entry['modes']), raw=entry,
        )
    return specs


def all_models() -> list[ModelSpec]:
    return list(_load().values())


def get_model(model_id: str) -> ModelSpec:
    spec = _load().get(model_id)
    if spec is None:
        known = ', '.join(sorted(_load()))
        raise InvalidParametersError(f'Unknown model {model_id!r}. Available models: {known}.', details={'field': 'model'})
    return spec


def provider_params(model_id: str) -> dict[str, Any]:
    """The model's `provider_params`, for the adapter; empty for a model the catalog no longer has."""
    spec = _load().get(model_id)
    return spec.provider_params if spec else {}


def infer_mode(spec: ModelSpec, request: JobRequest) -> str:
    if request.end_image and not request.image:
        raise _invalid('end_image', 'An end_image needs a start image in `image` too.')
    if request.reference_images and (request.image or request.end_image):
        raise _invalid('reference_images', 'Send either reference_images or image/end_image, not both.')
    if request.end_image:
        mode = 'flf2v'
    elif request.reference_images:
        mode = 'ref2v'
    elif request.image:
        mode = 'i2i' if spec.kind == 'image' else 'i2v'
    else:
        mode = 't2i' if spec.kind == 'image' else 't2v'
    if mode not in spec.modes:
        allowed = ', '.join(f'{m} ({MODE_NAMES[m]})' for m in spec.modes)
        field = {'flf2v': 'end_image', 'ref2v': 'reference_images', 'i2v': 'image', 'i2i': 'image'}.get(mode, 'image')
        raise _invalid(field, f'{spec.id} does not do {MODE_NAMES[mode]}; it does: {allowed}.'
                       + (' Give a start image in `image`.' if mode in ('t2v', 't2i') else ''))
    return mode


def resolve(request: JobRequest) -> ResolvedJob:
    """Validate a request against its model and price it. Raises `InvalidParametersError`."""
    spec = get_model(request.model)
    mode = infer_mode(spec, request)
    given = _given_parameters(request)
    _check_prompt(spec, mode, request, shots_given='multi_shot' in given)
    _check_reference_images(spec, request)
    params = _resolve_parameters(spec, mode, given)
    _check_shots_fill_the_duration(spec, params)
    check_inline_images(spec, request)
    return ResolvedJob(model=spec, mode=mode, params=params, credits=price(spec, mode, params),
                       provider_cost_micro_usd=provider_cost_micro_usd(spec, mode, params))


def price(spec: ModelSpec, mode: str, params: dict[str, Any]) -> int:
    """The first price rule whose `when` matches: a flat `credits`, or `credits_per_second` of the duration."""
    rule = _first_match(spec.raw['prices'], mode, params)
    if rule is None:
        raise InvalidParametersError(f'{spec.id} has no price for these parameters; choose other values.')
    if 'credits_per_second' in rule:
        return int(rule['credits_per_second']) * int(params['duration'])
    return int(rule['credits'])


def provider_cost_micro_usd(spec: ModelSpec, mode: str, params: dict[str, Any]) -> int:
    """The provider's price of one such job (`provider_prices`: a flat `usd`, or `usd_per_second` of the
    duration), in millionths of a USD so that usage counters add it up exactly. Every model has one
    (tests/unit/test_usage_counters.py); 0 for none that matches."""
    rule = _first_match(spec.raw.get('provider_prices', {}).get('rules', []), mode, params)
    if rule is None:
        return 0
    if 'usd_per_second' in rule:
        return round(float(rule['usd_per_second']) * int(params['duration']) * 1_000_000)
    return round(float(rule['usd']) * 1_000_000)


def _first_match(rules: list[dict[str, Any]], mode: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """The first rule whose `when` holds for the job: its parameters, and `kind` for its mode."""
    facts = {**params, 'kind': mode}
    return next((rule for rule in rules
                 if all(facts.get(key) == value for key, value in rule.get('when', {}).items())), None)


def input_images(request: JobRequest) -> list[tuple[str, str]]:
    """(field, value) of every image in the request, named as the client wrote them."""
    named = [('image', request.image), ('end_image', request.end_image)]
    named += [(f'reference_images[{i}]', value) for i, value in enumerate(request.reference_images or [])]
    return [(field, value) for field, value in named if value]


def check_inline_images(spec: ModelSpec, request: JobRequest) -> None:
    """Check every `data:` image against the model's `input_images` rules, from its header (before charging)."""
    rules = spec.raw.get('input_images')
    if not rules:
        return
    for field, value in input_images(request):
        if value.startswith('data:'):
            try:
                images.check_image(images.data_uri_facts(value), rules, spec.id)
            except ImageRuleError as exc:
                raise _invalid(field, f'{field} {exc}.') from None


def _given_parameters(request: JobRequest) -> dict[str, Any]:
    given = dict(request.options or {})
    for name in _TOP_LEVEL_PARAMETERS:
        value = getattr(request, name)
        if value is not None:
            if name in given:
                raise _invalid(f'options.{name}', f'{name} is given twice: at the top level and in options.')
            given[name] = value
    return given


def _check_prompt(spec: ModelSpec, mode: str, request: JobRequest, *, shots_given: bool = False) -> None:
    rules = spec.raw.get('prompt', {})
    max_chars = spec.max_prompt_chars
    if mode in rules.get('required_for', []) and not request.prompt.strip() and not shots_given:
        raise _invalid('prompt', f'A prompt is required for {MODE_NAMES[mode]} on {spec.id}.')
    if len(request.prompt) > max_chars:
        raise _invalid('prompt', f'The prompt is {len(request.prompt)} characters; {spec.id} takes at most {max_chars}.')
    if request.negative_prompt and not spec.raw.get('negative_prompt', False):
        raise _invalid('negative_prompt', f'{spec.id} does not take a negative_prompt.')


def _check_reference_images(spec: ModelSpec, request: JobRequest) -> None:
    if not request.reference_images:
        return
    limits = spec.raw.get('reference_images', {'min': 1, 'max': 3})
    count = len(request.reference_images)
    if not limits['min'] <= count <= limits['max']:
        raise _invalid('reference_images',
                       f'{spec.id} takes {limits["min"]} to {limits["max"]} reference images; {count} were given.')


def _resolve_parameters(spec: ModelSpec, mode: str, given: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(given) - set(spec.parameters))
    if unknown:
        allowed = ', '.join(sorted(spec.parameters)) or 'none'
        raise _invalid(unknown[0], f'{spec.id} does not take {unknown[0]!r}. Its parameters: {allowed}.')
    mode_rules = spec.raw.get('mode_rules', {}).get(mode, {})
    params: dict[str, Any] = {}
    for name, rule in spec.parameters.items():
        only_modes = rule.get('only_modes')
        applies = only_modes is None or mode in only_modes
        if name in given:
            if not applies:
                raise _invalid(name, f'{name} is not accepted for {MODE_NAMES[mode]} on {spec.id}.')
            params[name] = _check_value(spec, name, rule, given[name])
        elif applies and 'default' in rule:
            params[name] = rule['default']
        elif applies and rule.get('required'):
            raise _invalid(name, f'{spec.id} requires {name}{_allowed_text(rule)}.')
        if name in params and name in mode_rules and params[name] not in mode_rules[name]:
            allowed = ', '.join(map(str, mode_rules[name]))
            if name in given:
                raise _invalid(name, f'{MODE_NAMES[mode]} on {spec.id} needs {name} to be one of: {allowed}.')
            params[name] = mode_rules[name][0]
    return params


def _check_value(spec: ModelSpec, name: str, rule: dict[str, Any], value: Any) -> Any:
    kind = rule['type']
    if kind == 'boolean':
        if not isinstance(value, bool):
            raise _invalid(name, f'{name} must be true or false.')
        return value
    if kind == 'integer':
        if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).lstrip('-').isdigit():
            raise _invalid(name, f'{name} must be a whole number{_allowed_text(rule)}.')
        value = int(value)
    elif kind == 'number':
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _invalid(name, f'{name} must be a number{_allowed_text(rule)}.')
    elif kind == 'ratio':
        if not isinstance(value, str) or not _is_ratio(value):
            raise _invalid(name, f'{name} must be a W:H ratio such as 16:9{_allowed_text(rule)}.')
    elif kind == 'string':
        if not isinstance(value, str):
            raise _invalid(name, f'{name} must be a string{_allowed_text(rule)}.')
    elif kind == 'shots':
        return _check_shots(spec, name, rule, value)
    if 'values' in rule and value not in rule['values']:
        raise _invalid(name, f'{value!r} is not a valid {name} for {spec.id}{_allowed_text(rule)}.')
    if 'minimum' in rule and value < rule['minimum'] or 'maximum' in rule and value > rule['maximum']:
        raise _invalid(name, f'{name} must be between {rule.get("minimum")} and {rule.get("maximum")}.')
    return value


def _check_shots(spec: ModelSpec, name: str, rule: dict[str, Any], value: Any) -> list[dict[str, Any]]:
    """A multi-shot list: `min_shots`..`max_shots` of {"prompt", "duration"}, each duration in `shot_seconds`."""
    low, high = int(rule['min_shots']), int(rule['max_shots'])
    if not isinstance(value, list) or not low <= len(value) <= high:
        raise _invalid(name, f'{name} must be a list of {low} to {high} shots, each {{"prompt": ..., "duration": N}}.')
    seconds = rule['shot_seconds']
    shots = []
    for index, shot in enumerate(value):
        field = f'{name}[{index}]'
        if not isinstance(shot, dict) or set(shot) != {'prompt', 'duration'}:
            raise _invalid(field, f'{field} must be {{"prompt": ..., "duration": N}} and nothing else.')
        prompt, duration = shot['prompt'], shot['duration']
        if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > int(rule['prompt_max_chars']):
            raise _invalid(f'{field}.prompt', f'{field}.prompt must be text of 1 to {rule["prompt_max_chars"]} characters.')
        if isinstance(duration, bool) or not isinstance(duration, int) or \
                not seconds['minimum'] <= duration <= seconds['maximum']:
            raise _invalid(f'{field}.duration', f'{field}.duration must be a whole number of seconds from '
                                                f'{seconds["minimum"]} to {seconds["maximum"]}.')
        shots.append({'prompt': prompt, 'duration': duration})
    return shots


def _check_shots_fill_the_duration(spec: ModelSpec, params: dict[str, Any]) -> None:
    shots = params.get('multi_shot')
    if shots and sum(shot['duration'] for shot in shots) != params.get('duration'):
        total = sum(shot['duration'] for shot in shots)
        raise _invalid('multi_shot', f'The shots of multi_shot last {total} s in all; they must add up to the '
                                     f'duration ({params.get("duration")} s) on {spec.id}.')


def _is_ratio(value: str) -> bool:
    parts = value.split(':')
    return len(parts) == 2 and all(p.isdigit() and 0 < int(p) <= 100_000 for p in parts)


def _allowed_text(rule: dict[str, Any]) -> str:
    if 'values' in rule:
        return '; allowed: ' + ', '.join(map(str, rule['values']))
    if 'minimum' in rule or 'maximum' in rule:
        return f' from {rule.get("minimum")} to {rule.get("maximum")}'
    return ''


def _invalid(field: str, message: str) -> InvalidParametersError:
    return InvalidParametersError(message, details={'field': field})
