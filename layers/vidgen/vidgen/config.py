"""Settings: the one place that reads the environment.

Read lazily through `get_settings()` (cached), never at import, so a cold start pays only for what it
uses and tests change settings with `get_settings.cache_clear()`. Secrets are not settings: only their
names live here, the values come from Secrets Manager through `vidgen.secrets`.
"""

from __future__ import annotations

import os
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Settings(BaseModel):
    model_config = ConfigDict(extra='ignore', populate_by_name=True, frozen=True)

    table_name: str = Field('vidgen', alias='TABLE_NAME')
    bucket_name: str = Field('vidgen-results', alias='BUCKET_NAME')
    state_machine_arn: str = Field('', alias='STATE_MACHINE_ARN')

    admin_secret_name: str = Field('vidgen/admin', alias='ADMIN_SECRET_NAME')
    callback_secret_name: str = Field('vidgen/callback', alias='CALLBACK_SECRET_NAME')
    kling_secret_name: str = Field('vidgen/kling', alias='KLING_SECRET_NAME')
    kie_secret_name: str = Field('vidgen/kie', alias='KIE_SECRET_NAME')
    webhook_secret_name: str = Field('vidgen/webhook', alias='WEBHOOK_SECRET_NAME')

    kling_base_url: str = Field('https://api-singapore.klingai.com', alias='KLING_BASE_URL')
    kie_base_url: str = Field('https://api.kie.ai', alias='KIE_BASE_URL')
    kie_upload_base_url: str = Field('https://kieai.redpandaai.co', alias='KIE_UPLOAD_BASE_URL')
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
    # Lambda refuses a synchronous event over 6 MB (the body, its headers and the request context), below API
    # Gateway's 10 MB: a body limit under that lets the function refuse a large body itself, in vidgen's shape.
    max_body_bytes: int = Field(5 * 1024**2, alias='MAX_BODY_BYTES', ge=1024, le=5 * 1024**2)
    max_prompt_chars: int = Field(2500, alias='MAX_PROMPT_CHARS', ge=1)
    provider_timeout: tuple[float, float] = Field((5.0, 30.0), alias='PROVIDER_TIMEOUT')
    # Local mode only: lets the service fetch from 127.0.0.1 (the simulators). Never set in AWS.
    allow_private_urls: bool = Field(False, alias='VIDGEN_ALLOW_PRIVATE_URLS')

    @field_validator('poll_intervals', 'provider_timeout', mode='before')
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(',') if part.strip())
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.model_validate(dict(os.environ))
