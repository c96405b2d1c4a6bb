"""Settings: the one place that reads the environment.

Read through `get_settings()` (cached; tests change settings with `get_settings.cache_clear()`). What a
deployment must provide - the table, the bucket, the state machine - has no default: each function reads
its settings once at cold start (`require_settings()`), so a misconfigured deploy fails there, with a
message naming the missing variable, instead of at some later request. Secrets are not settings: only their
names live here, the values come from Secrets Manager through `vidgen.secrets`.

The settings are a frozen dataclass read by a few lines of parsing, not a pydantic model: every function
reads them at cold start, and building a pydantic validator for forty fields was the largest single part of
the layer's own import time; functions whose events need no API model then never import pydantic at all.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

from vidgen.errors import ConfigurationError

_REQUIRED: Any = object()  # the default of a setting the template must give


def _setting(variable: str, default: Any = _REQUIRED, *, min_length: int = 0, ge: float | None = None,
             gt: float | None = None, le: float | None = None) -> Any:
    """A field read from `variable`; its type is its default's (a required setting is a string)."""
    return dataclasses.field(default=default, metadata={'variable': variable, 'min_length': min_length,
                                                        'ge': ge, 'gt': gt, 'le': le})


@dataclass(frozen=True)
class Settings:
    # Required: set by the template for every function.
    table_name: str = _setting('TABLE_NAME', min_length=1)
    bucket_name: str = _setting('BUCKET_NAME', min_length=1)
    state_machine_arn: str = _setting('STATE_MACHINE_ARN', min_length=1)
    storyboard_state_machine_arn: str = _setting('STORYBOARD_STATE_MACHINE_ARN', min_length=1)
    media_function_name: str = _setting('MEDIA_FUNCTION_NAME', '')  # the sweep inspects results with it

    admin_secret_name: str = _setting('ADMIN_SECRET_NAME', 'vidgen/admin')
    callback_secret_name: str = _setting('CALLBACK_SECRET_NAME', 'vidgen/callback')
    kling_secret_name: str = _setting('KLING_SECRET_NAME', 'vidgen/kling')
    kie_secret_name: str = _setting('KIE_SECRET_NAME', 'vidgen/kie')
    webhook_secret_name: str = _setting('WEBHOOK_SECRET_NAME', 'vidgen/webhook')
    llm_secret_name: str = _setting('LLM_SECRET_NAME', 'vidgen/llm')

    kling_base_url: str = _setting('KLING_BASE_URL', 'https://api-singapore.klingai.com')
    kie_base_url: str = _setting('KIE_BASE_URL', 'https://api.kie.ai')
    kie_upload_base_url: str = _setting('KIE_UPLOAD_BASE_URL', 'https://kieai.redpandaai.co')
    # The scene writer: any OpenAI-compatible Chat Completions endpoint; its key is in LLM_SECRET_NAME.
    llm_base_url: str = _setting('LLM_BASE_URL', 'https://api.openai.com/v1')
    llm_model: str = _setting('LLM_MODEL', 'gpt-4o-mini', min_length=1)
    llm_vision: bool = _setting('LLM_VISION', True)  # send the product photo to the model
    llm_budget_seconds: float = _setting('LLM_BUDGET_SECONDS', 30.0, gt=0, le=30)
    storyboard_check_intervals: tuple[int, ...] = _setting('STORYBOARD_CHECK_INTERVALS', (10, 20, 30, 60))
    public_api_url: str = _setting('PUBLIC_API_URL', '')  # the base URL that provider callbacks reach

    max_active_jobs_per_user: int = _setting('VIDGEN_MAX_ACTIVE_JOBS_PER_USER', 100, ge=1)
    callback_wait_seconds: int = _setting('CALLBACK_WAIT_SECONDS', 300, ge=1)
    poll_intervals: tuple[int, ...] = _setting('POLL_INTERVALS', (15, 30, 60, 120))
    job_deadline_seconds: int = _setting('JOB_DEADLINE_SECONDS', 3600, ge=60)
    queued_grace_seconds: int = _setting('QUEUED_GRACE_SECONDS', 120, ge=1)
    sweep_liveness_seconds: int = _setting('SWEEP_LIVENESS_SECONDS', 600, ge=1)
    sweep_batch_size: int = _setting('SWEEP_BATCH_SIZE', 100, ge=1)
    idempotency_ttl_seconds: int = _setting('IDEMPOTENCY_TTL_SECONDS', 86400, ge=86400)

    result_url_ttl_seconds: int = _setting('RESULT_URL_TTL_SECONDS', 3600, ge=60)
    max_output_bytes: int = _setting('MAX_OUTPUT_BYTES', 2 * 1024**3, ge=1)
    # Below what reaches a function at all: Lambda takes at most 6 MB of event (body, headers and request
    # context, a binary body base64-encoded), so a 5 MB JSON body is refused here, in vidgen's error shape,
    # rather than by Lambda with API Gateway's bare 413.
    max_body_bytes: int = _setting('MAX_BODY_BYTES', 5 * 1024**2, ge=1024, le=5 * 1024**2)
    max_prompt_chars: int = _setting('MAX_PROMPT_CHARS', 2500, ge=1)
    provider_timeout: tuple[float, float] = _setting('PROVIDER_TIMEOUT', (5.0, 30.0))
    # Local mode only: lets the service reach loopback addresses (the simulators, a test's webhook receiver)
    # and take http webhook URLs; every other private address stays refused (vidgen/netguard.py). Never set in AWS.
    allow_loopback_urls: bool = _setting('VIDGEN_ALLOW_LOOPBACK_URLS', False)


_TRUE = frozenset(('1', 'true', 't', 'yes', 'y', 'on'))
_FALSE = frozenset(('0', 'false', 'f', 'no', 'n', 'off'))


def _boolean(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ValueError('expected true or false')


def _integer(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError('expected a whole number') from None


def _number(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError('expected a number') from None
    if not math.isfinite(value):
        raise ValueError('expected a finite number')
    return value


def _parser(default: Any) -> Callable[[str], Any]:
    """How a variable's text becomes its setting, by the type of the setting's default."""
    if isinstance(default, bool):
        return _boolean
    if isinstance(default, int):
        return _integer
    if isinstance(default, float):
        return _number
    if isinstance(default, tuple):
        item = _number if isinstance(default[0], float) else _integer
        size = None if isinstance(default[0], int) else len(default)  # provider_timeout is a (connect, read) pair

        def parse_list(text: str) -> tuple[Any, ...]:
            values = tuple(item(part) for part in text.split(',') if part.strip())
            if size is not None and len(values) != size:
                raise ValueError(f'expected {size} comma-separated values')
            return values

        return parse_list
    return str


def _check_bounds(value: Any, rules: Mapping[str, Any]) -> None:
    if isinstance(value, str):
        if len(value) < rules['min_length']:
            raise ValueError(f'at least {rules["min_length"]} character(s) required')
        return
    if isinstance(value, bool):
        return
    if rules['ge'] is not None and value < rules['ge']:
        raise ValueError(f'must be at least {rules["ge"]}')
    if rules['gt'] is not None and value <= rules['gt']:
        raise ValueError(f'must be greater than {rules["gt"]}')
    if rules['le'] is not None and value > rules['le']:
        raise ValueError(f'must be at most {rules["le"]}')


_FIELDS = tuple((spec.name, spec.metadata['variable'], _parser(spec.default), spec.metadata)
                for spec in dataclasses.fields(Settings))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings(os.environ)


def load_settings(environment: Mapping[str, str]) -> Settings:
    """The settings in `environment`; raises `ConfigurationError` naming every missing or invalid variable."""
    values: dict[str, Any] = {}
    problems = []
    for name, variable, parse, rules in _FIELDS:
        text = environment.get(variable)
        if text is None:
            if Settings.__dataclass_fields__[name].default is _REQUIRED:
                problems.append(f'{variable} is not set')
            continue
        try:
            value = parse(text)
            _check_bounds(value, rules)
        except ValueError as exc:
            problems.append(f'{variable} is not valid ({exc})')
            continue
        values[name] = value
    if problems:
        raise ConfigurationError('vidgen is misconfigured: ' + '; '.join(problems) + '.')
    return Settings(**values)


def require_settings() -> Settings:
    """Read the settings at cold start: raises `ConfigurationError` naming every missing variable."""
    return get_settings()
