"""Settings: the one place that reads the environment.

Read through `get_settings()` (cached; tests change settings with `get_settings.cache_clear()`). What a
deployment must provide - the table, the bucket, the state machine - has no default: each function reads
its settings once at cold start (`require_settings()`), so a misconfigured deploy fails there, with a
message naming the missing variable, instead of at some later request. Secrets are not settings: only their
names live here, the values come from Secrets Manager through `vidgen.secrets`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vidgen.errors import ConfigurationError


class Settings(BaseModel):
    model_config = ConfigDict(extra='ignore', populate_by_name=True, frozen=True)

    # Required: set by the template for every function.
    table_name: str = Field(alias='TABLE_NAME', min_length=1)
    bucket_name: str = Field(alias='BUCKET_NAME', min_length=1)
    state_machine_arn: str = Field(alias='STATE_MACHINE_ARN', min_length=1)
    storyboard_state_machine_arn: str = Field(alias='STORYBOARD_STATE_MACHINE_ARN', min_length=1)
    media_function_name: str = Field('', alias='MEDIA_FUNCTION_NAME', description='The sweep inspects results with it.')

    admin_secret_name: str = Field('vidgen/admin', alias='ADMIN_SECRET_NAME')
    callback_secret_name: str = Field('vidgen/callback', alias='CALLBACK_SECRET_NAME')
    kling_secret_name: str = Field('vidgen/kling', alias='KLING_SECRET_NAME')
    kie_secret_name: str = Field('vidgen/kie', alias='KIE_SECRET_NAME')
    webhook_secret_name: str = Field('vidgen/webhook', alias='WEBHOOK_SECRET_NAME')
    llm_secret_name: str = Field('vidgen/llm', alias='LLM_SECRET_NAME')

    kling_base_url: str = Field('https://api-singapore.klingai.com', alias='KLING_BASE_URL')
    kie_base_url: str = Field('https://api.kie.ai', alias='KIE_BASE_URL')
    kie_upload_base_url: str = Field('https://kieai.redpandaai.co', alias='KIE_UPLOAD_BASE_URL')
    # The scene writer: any OpenAI-compatible Chat Completions endpoint; its key is in LLM_SECRET_NAME.
    llm_base_url: str = Field('https://api.openai.com/v1', alias='LLM_BASE_URL')
    llm_model: str = Field('gpt-4o-mini', alias='LLM_MODEL', min_length=1)
    llm_vision: bool = Field(True, alias='LLM_VISION', description='Send the product photo to the model.')
    llm_budget_seconds: float = Field(30.0, alias='LLM_BUDGET_SECONDS', gt=0, le=30)
    storyboard_check_intervals: tuple[int, ...] = Field((10, 20, 30, 60), alias='STORYBOARD_CHECK_INTERVALS')
    public_api_url: str = Field('', alias='PUBLIC_API_URL', description='Base URL that provider callbacks reach.')

    max_active_jobs_per_user: int = Field(100, alias='VIDGEN_MAX_ACTIVE_JOBS_PER_USER', ge=1)
    callback_wait_seconds: int = Field(300, alias='CALLBACK_WAIT_SECONDS', ge=1)
    poll_intervals: tuple[int, ...] = Field((15, 30, 60, 120), alias='POLL_INTERVALS')
    job_deadline_seconds: int = Field(3600, alias='JOB_DEADLINE_SECONDS', ge=60)
    queued_grace_seconds: int = Field(120, alias='QUEUED_GRACE_SECONDS', ge=1)
    sweep_liveness_seconds: int = Field(600, alias='SWEEP_LIVENESS_SECONDS', ge=1)
    sweep_batch_size: int = Field(100, alias='SWEEP_BATCH_SIZE', ge=1)
    idempotency_ttl_seconds: int = Field(86400, alias='IDEMPOTENCY_TTL_SECONDS', ge=86400)

    result_url_ttl_seconds: int = Field(3600, alias='RESULT_URL_TTL_SECONDS', ge=60)
    max_output_bytes: int = Field(2 * 1024**3, alias='MAX_OUTPUT_BYTES', ge=1)
    # Below what reaches a function at all: Lambda takes at most 6 MB of event (body, headers and request
    # context, a binary body base64-encoded), so a 5 MB JSON body is refused here, in vidgen's error shape,
    # rather than by Lambda with API Gateway's bare 413.
    max_body_bytes: int = Field(5 * 1024**2, alias='MAX_BODY_BYTES', ge=1024, le=5 * 1024**2)
    max_prompt_chars: int = Field(2500, alias='MAX_PROMPT_CHARS', ge=1)
    provider_timeout: tuple[float, float] = Field((5.0, 30.0), alias='PROVIDER_TIMEOUT')
    # Local mode only: lets the service reach loopback addresses (the simulators, a test's webhook receiver)
    # and take http webhook URLs; every other private address stays refused (vidgen/netguard.py). Never set in AWS.
    allow_loopback_urls: bool = Field(False, alias='VIDGEN_ALLOW_LOOPBACK_URLS')

    @field_validator('poll_intervals', 'provider_timeout', 'storyboard_check_intervals', mode='before')
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(',') if part.strip())
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings(os.environ)


def load_settings(environment: Mapping[str, str]) -> Settings:
    """The settings in `environment`; raises `ConfigurationError` naming every missing or invalid variable."""
    try:
        return Settings.model_validate(dict(environment))
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            variable = '.'.join(str(part) for part in error['loc'])
            problems.append(f'{variable} is not set' if error['type'] == 'missing'
                            else f'{variable} is not valid ({error["msg"]})')
        raise ConfigurationError('vidgen is misconfigured: ' + '; '.join(problems) + '.') from None


def require_settings() -> Settings:
    """Read the settings at cold start: raises `ConfigurationError` naming every missing variable."""
    return get_settings()
