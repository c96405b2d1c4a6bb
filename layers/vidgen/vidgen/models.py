"""The API's request and response models, and the job record they are made from.

These pydantic models are the HTTP contract (README.md, 'The HTTP API (v1)'): Powertools validates request bodies against
them and publishes them in the OpenAPI document. What a model accepts beyond shape (which inputs, which
parameter values) is the catalog's call, not these models'.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

JobStatus = Literal['queued', 'running', 'succeeded', 'failed', 'canceled']

_DATA_URI = re.compile(r'^data:image/(png|jpeg|jpg|webp);base64,[A-Za-z0-9+/=\s]+$')
# An inline image travels in the request body, which may be 5 MB (config.max_body_bytes, under Lambda's 6 MB
# invocation payload): as base64 that holds at most 3.75 MB of image. Larger images go by https URL, up to
# the model's own limit (the catalog's max_bytes).
MAX_IMAGE_CHARS = 5 * 1024 * 1024
MAX_INLINE_IMAGE_MB = 3.75


def check_image_input(value: str) -> str:
    """An image is an https URL or a base64 `data:image/...` URI; anything else is refused up front."""
    if len(value) > MAX_IMAGE_CHARS:
        raise ValueError(f'an inline image may be at most {MAX_INLINE_IMAGE_MB:g} MB; send a larger one by https URL')
    if value.startswith('data:'):
        if not _DATA_URI.match(value):
            raise ValueError('a data URI must look like data:image/png;base64,<data> (png, jpeg or webp)')
        return value
    if value.startswith('https://') or value.startswith('http://'):
        if len(value) > 2048:
            raise ValueError('an image URL may be at most 2048 characters')
        return value
    raise ValueError('an image must be an https URL or a data:image/...;base64 URI')


def check_webhook_url(value: str | None) -> str | None:
    if value is not None and not value.startswith(('https://', 'http://')):
        raise ValueError('webhook_url must be an http(s) URL')
    return value


def check_metadata(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is not None:
        if len(value) > 20:
            raise ValueError('metadata may hold at most 20 keys')
        if any(len(k) > 64 or len(v) > 512 for k, v in value.items()):
            raise ValueError('metadata keys may be 64 characters and values 512 at most')
    return value


class _Model(BaseModel):
    """The base of every model here. Each function uses a few of these models, and building one's validator
    and serializer is most of the cost of defining it: pydantic builds them when a model is first used
    (defer_build), so a cold start pays only for the models its own requests and responses need."""

    model_config = ConfigDict(defer_build=True)


class _ClientFields(_Model):
    """The fields a job request and a storyboard request both give back to the client (its webhook and its
    metadata), checked by one rule each. Each request declares the fields with its own description."""

    @field_validator('webhook_url', check_fields=False)
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        return check_webhook_url(value)

    @field_validator('metadata', check_fields=False)
    @classmethod
    def _metadata(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return check_metadata(value)


class JobRequest(_ClientFields):
    """POST /v1/jobs. Which fields a model accepts, and their allowed values, come from GET /v1/models."""

    model_config = ConfigDict(extra='forbid', json_schema_extra={'examples': [
        {'model': 'kling-v2-6', 'prompt': 'A lighthouse at dawn', 'duration': 5, 'aspect_ratio': '16:9'},
        {'model': 'seedream-4-5', 'prompt': 'A red bicycle', 'options': {'quality': 'high'}, 'metadata': {'order': '42'}},
    ]})

    model: str = Field(min_length=1, max_length=64, description='A model id from GET /v1/models.')
    prompt: str = Field('', max_length=10_000, description='What to generate.')
    negative_prompt: str | None = Field(None, max_length=2500, description='What to avoid.')
    image: str | None = Field(None, description='Start frame / source image: https URL or data:image URI.')
    end_image: str | None = Field(None, description='End frame (first-and-last-frame video).')
    reference_images: list[str] | None = Field(None, max_length=8, description='Reference images.')
    duration: int | None = Field(None, ge=1, le=60, description='Seconds of video.')
    aspect_ratio: str | None = Field(None, max_length=11, description='W:H, e.g. 16:9.')
    mode: str | None = Field(None, max_length=16, description='Quality mode where the model has one (std/pro).')
    options: dict[str, Any] | None = Field(None, description='Model-specific parameters (see GET /v1/models).')
    webhook_url: str | None = Field(None, max_length=2048, description='https URL notified when the job ends.')
    metadata: dict[str, str] | None = Field(None, description='Up to 20 string pairs kept with the job.')

    @field_validator('image', 'end_image')
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        return None if value is None else check_image_input(value)

    @field_validator('reference_images')
    @classmethod
    def _images(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [check_image_input(item) for item in value]


class ErrorDetail(_Model):
    code: str = Field(description='INVALID_PARAMETERS, AUTH_FAILED, NOT_FOUND, INSUFFICIENT_CREDITS, '
                                  'IDEMPOTENCY_CONFLICT, CONFLICT, RATE_LIMIT_EXCEEDED or SYSTEM_ERROR.')
    message: str = Field(description='What went wrong and what to do about it.')
    request_id: str = Field(description='Quote it when reporting a problem.')
    field: str | None = Field(None, description='The request field at fault, when there is one.')


class ErrorResponse(_Model):
    """Every error the API answers: `{"error": {"code", "message", "request_id", "field"?}}`."""

    error: ErrorDetail


class VideoFacts(_Model):
    container: str = Field(description='mp4, mov, webm, mkv, ...')
    video_codec: str = Field(description="FFmpeg's codec name: h264, hevc, vp9, av1, ...")
    width: int
    height: int
    duration_seconds: float
    fps: float | None
    has_audio: bool


class ImageFacts(_Model):
    format: str = Field(description='png, jpeg, webp, ...')
    width: int
    height: int


class ProviderOutputFacts(_Model):
    duration_seconds: float | None = Field(None, description='The duration the provider reports (Kling).')
    resolution: str | None = Field(None, description='The resolution the provider reports (Veo), e.g. 1080p.')


class JobOutput(_Model):
    url: str = Field(description='Presigned GET URL of the copy in our bucket; it expires, read the job again.')
    content_type: str
    bytes: int
    media: VideoFacts | ImageFacts | None = Field(
        None, description='What the file is, read from the file itself before the job succeeded.')
    poster_url: str | None = Field(
        None, description='Presigned URL of a full-size JPEG frame (videos); null for images, or when no frame decoded.')
    thumbnail_url: str | None = Field(
        None, description='Presigned URL of a JPEG at most 320 px on its long side, aspect kept.')
    note: str | None = Field(None, description='Why a poster or thumbnail is missing.')
    provider_facts: ProviderOutputFacts | None = Field(
        None, description='What the provider itself reported about the file, where it does; null otherwise.')


class JobErrorView(_Model):
    code: str = Field(description='CONTENT_POLICY, GENERATION_FAILED, PROVIDER_TIMEOUT, PROVIDER_UNAVAILABLE, '
                                  'PROVIDER_AUTH, PROVIDER_QUOTA, CANCELED or SYSTEM_ERROR.')
    message: str = Field(description="What went wrong, with the provider's own reason where it gave one, "
                                     'and what to do about it.')
    provider_code: str | None = Field(None, description="The provider's own error code, when it gave one.")


class ProviderRef(_Model):
    name: str
    task_id: str | None = None


class JobTiming(_Model):
    queued_seconds: float | None = Field(description='Submit to the provider accepting the task; null while queued, '
                                                     'or when the job ended before that.')
    processing_seconds: float | None = Field(description='The provider accepting the task to the job ending (the '
                                                         "provider's time plus copying and checking the result); null "
                                                         'until both happened.')
    total_seconds: float | None = Field(description='Submit to the job ending; null while active.')


class JobView(_Model):
    id: str
    status: JobStatus
    model: str
    kind: str
    prompt: str
    params: dict[str, Any]
    credits: int
    refunded: bool
    outputs: list[JobOutput]
    error: JobErrorView | None
    provider: ProviderRef
    created_at: str
    updated_at: str
    completed_at: str | None
    metadata: dict[str, str]
    storyboard_id: str | None = Field(None, description='The storyboard this job is a scene of, if any.')
    api_key_id: str | None = Field(None, description='The id of the API key that submitted the job.')
    timing: JobTiming
    started_at: str | None = Field(None, description='When the provider accepted the task.')


class JobList(_Model):
    jobs: list[JobView]
    next_cursor: str | None


class LedgerEntry(_Model):
    type: Literal['grant', 'debit', 'refund']
    amount: int = Field(description='Positive for grants and refunds, negative for debits.')
    job_id: str | None = None
    reference_id: str | None = None
    storyboard_id: str | None = None
    reason: str | None = None
    at: str


class CreditsView(_Model):
    balance: int
    ledger: list[LedgerEntry]
    next_cursor: str | None = None


# --- usage: GET /v1/usage and GET /v1/admin/usage, read from the usage counters --------------------------

UsageType = Literal['video', 'image']


class UsageFigures(_Model):
    """One group's figures. Jobs count under the UTC day they were submitted, whenever they end."""

    jobs: int = Field(description='Jobs submitted (storyboard scenes count one each).')
    succeeded: int
    failed: int
    canceled: int
    active: int = Field(description='Queued or running now.')
    credits_charged: int = Field(description='Credits debited for these jobs.')
    credits_refunded: int = Field(description='Credits given back for the failed and canceled ones.')
    credits_net: int = Field(description='credits_charged - credits_refunded.')
    provider_cost_usd: float = Field(description="What the providers charge for the succeeded jobs, in USD, from the "
                                                 "catalog's provider prices.")
    output_bytes: int = Field(description='Bytes of the succeeded jobs\' stored results.')
    seconds_p50: int | None = Field(description='Median processing time (submit to result) of the succeeded jobs, '
                                                'in seconds: the upper bound of the histogram bucket it falls in; '
                                                'null without a success.')
    seconds_p95: int | None = Field(description='95th percentile of the same, read the same way.')


class UsageDay(UsageFigures):
    date: str = Field(description='A UTC date, YYYY-MM-DD.')


class UsageFilters(_Model):
    model: str | None
    type: UsageType | None


class UsageWindow(_Model):
    """Figures over whole UTC days `from`..`to` (both included): totals, and the same figures per group."""

    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias='from', description='First UTC day of the window, YYYY-MM-DD.')
    to: str = Field(description='Last UTC day of the window (included).')
    filters: UsageFilters
    totals: UsageFigures
    by_day: list[UsageDay] = Field(description='Every day of the window, oldest first, zeros included.')
    by_model: dict[str, UsageFigures]
    by_kind: dict[str, UsageFigures] = Field(description='t2v, i2v, flf2v, ref2v, t2i, i2i.')
    by_type: dict[str, UsageFigures] = Field(description='video, image.')
    by_duration: dict[str, UsageFigures] = Field(description='Seconds of video asked for; video jobs of models '
                                                             'that take a duration.')


class UsageReport(UsageWindow):
    by_api_key: dict[str, UsageFigures] = Field(description='By the id of the API key that submitted the jobs.')


class TopUser(_Model):
    user_id: str
    jobs: int
    credits_charged: int
    credits_refunded: int
    credits_net: int
    provider_cost_usd: float


class ServiceUsageReport(UsageWindow):
    top_users: list[TopUser] = Field(description='The users with the most credits_net in the window, most first. '
                                                 'Model and type filters do not apply to it.')


class UsageDifference(_Model):
    scope: str = Field(description="'user', 'user-day' or 'service', and what it is about.")
    key: str = Field(description='The counter item, by its facts.')
    figure: str
    expected: int = Field(description='Recomputed from the jobs, storyboards and ledger.')
    stored: int = Field(description='What the usage counters hold.')


class UsageCheck(_Model):
    users: int = Field(description='Users checked.')
    jobs: int = Field(description='Jobs (and scenes without a job yet) recomputed, or counted (service).')
    differences: list[UsageDifference]
    next_cursor: str | None = Field(description='Checking every user: pass it back for the next users; null at '
                                                'the end.')


# --- admin ---------------------------------------------------------------------------------------------------


class CreateUserRequest(_Model):
    model_config = ConfigDict(extra='forbid')

    user_id: str | None = Field(None, pattern=r'^[A-Za-z0-9_.@-]{1,64}$')
    credits: int = Field(0, ge=0, le=10_000_000)


class CreatedUser(_Model):
    user_id: str
    api_key: str = Field(description='Shown once; only its hash is stored.')
    balance: int


class CreateKeyRequest(_Model):
    model_config = ConfigDict(extra='forbid')

    label: str | None = Field(None, min_length=1, max_length=64, description='What the key is for, e.g. "ci".')


class ApiKeyView(_Model):
    key_id: str
    label: str | None
    prefix: str = Field(description='The first characters of the key, to tell keys apart.')
    created_at: str
    revoked_at: str | None


class CreatedKey(ApiKeyView):
    user_id: str
    api_key: str = Field(description='Shown once; only its hash is stored.')


class ApiKeyList(_Model):
    user_id: str
    keys: list[ApiKeyView] = Field(description='Oldest first, revoked keys included; never the keys themselves.')


class GrantRequest(_Model):
    model_config = ConfigDict(extra='forbid')

    amount: int = Field(gt=0, le=10_000_000)
    reference_id: str = Field(min_length=1, max_length=128, pattern=r'^[A-Za-z0-9_.:@-]+$')
    reason: str | None = Field(None, max_length=256)


class GrantResult(_Model):
    user_id: str
    balance: int
    granted: bool = Field(description='False when this reference_id was already granted (nothing changed).')


# --- storyboards: a product in, one scene job per LLM-written scene out ----------------------------------

StoryboardStatus = Literal['writing', 'generating', 'succeeded', 'partial', 'failed', 'canceled']
MAX_STORYBOARD_SCENES = 6


class ProductInput(_Model):
    model_config = ConfigDict(extra='forbid')

    name: str = Field(min_length=1, max_length=200, description='The product name.')
    description: str = Field(min_length=1, max_length=5000, description='What the product is and what matters about it.')
    image: str | None = Field(None, description='Product photo: https URL or data:image URI. Every scene is then an '
                                                'image-to-video job from it (the model must do i2v).')

    @field_validator('name', 'description')
    @classmethod
    def _text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError('must not be blank')
        return value.strip()

    @field_validator('image')
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        return None if value is None else check_image_input(value)


class StoryboardRequest(_ClientFields):
    """POST /v1/storyboards: scenes written by an LLM from the product, one video job per scene."""

    model_config = ConfigDict(extra='forbid', json_schema_extra={'examples': [
        {'product': {'name': 'Aurora desk lamp', 'description': 'A brass desk lamp with a warm, dimmable light.'},
         'scenes': 3, 'model': 'kling-v2-6', 'duration': 5},
    ]})

    product: ProductInput
    scenes: int = Field(3, ge=1, le=MAX_STORYBOARD_SCENES, description='How many scenes (and videos) to make.')
    model: str = Field(min_length=1, max_length=64, description='A video model id from GET /v1/models.')
    duration: int | None = Field(None, ge=1, le=60, description='Seconds of each scene video.')
    aspect_ratio: str | None = Field(None, max_length=11, description='W:H, e.g. 16:9.')
    mode: str | None = Field(None, max_length=16, description='Quality mode where the model has one (std/pro).')
    options: dict[str, Any] | None = Field(None, description='Model-specific parameters (see GET /v1/models).')
    style: str | None = Field(None, max_length=500, description='The look to aim for, e.g. "warm, minimal, 35 mm film".')
    webhook_url: str | None = Field(None, max_length=2048, description='Notified once, when the storyboard ends.')
    metadata: dict[str, str] | None = Field(None, description='Up to 20 string pairs kept with the storyboard.')


class StoryboardProductView(_Model):
    name: str
    description: str
    image_url: str | None = Field(None, description='The product photo: the URL given, or a presigned copy of an '
                                                    'inline one.')


class SceneView(_Model):
    index: int
    title: str
    description: str
    prompt: str
    job_id: str
    job: JobView | None = Field(description='The scene\'s job, or null before it exists.')


class StoryboardView(_Model):
    id: str
    status: StoryboardStatus
    product: StoryboardProductView
    model: str
    scene_count: int
    scenes_source: Literal['llm', 'fallback'] | None = Field(description='Who wrote the scenes; null until written.')
    scenes_note: str | None = Field(description='Why built-in scenes were used, when they were.')
    scenes: list[SceneView]
    credits: int
    refunded_credits: int
    created_at: str
    updated_at: str
    completed_at: str | None
    metadata: dict[str, str]


class StoryboardList(_Model):
    storyboards: list[StoryboardView]
    next_cursor: str | None


class Health(_Model):
    status: Literal['ok']
    version: str = Field(description='The vidgen version this stack runs.')


class InputImageRules(_Model):
    """What every input image of a model must be; checked from the image header before anything is charged."""

    model_config = ConfigDict(extra='allow')

    formats: list[str] = Field(description='File formats: png, jpeg, webp.')
    max_bytes: int = Field(description='Largest file, in bytes.')
    min_width: int | None = None
    min_height: int | None = None
    max_width: int | None = None
    max_height: int | None = None
    aspect_ratio: dict[str, Any] | None = Field(None, description='width/height range: {min, max, text}.')
    source: str = Field(description='The provider documentation these rules follow.')


class ModelView(_Model):
    """One model of GET /v1/models: inputs, parameters (with allowed values and defaults) and prices."""

    model_config = ConfigDict(extra='allow')

    id: str
    name: str
    provider: str
    kind: Literal['video', 'image']
    modes: list[str]
    mode_names: dict[str, str]
    parameters: dict[str, dict[str, Any]] = Field(description='Parameter name -> {type, values?, default?, ...}.')
    prices: list[dict[str, Any]] = Field(description='The first rule whose `when` matches gives the credits.')
    input_images: InputImageRules | None = None


class ModelList(_Model):
    models: list[ModelView]


class CallbackAck(_Model):
    status: Literal['ignored', 'noted', 'delivered']


class ProviderCheck(_Model):
    name: str = Field(description='kling or kie.')
    host: str
    ok: bool
    detail: str = Field(description="The provider's own summary, or why the check failed.")
    credits_remaining: float | None = Field(None, description='What the provider reports is left, where it tells it.')
    provider_code: str | None = None


class CallbackCheck(_Model):
    url: str | None = Field(description='The base URL providers call back on (PUBLIC_API_URL).')
    ok: bool
    detail: str


class ProviderReport(_Model):
    """GET /v1/admin/providers: each provider's credentials, checked from inside the stack, and the callback URL."""

    providers: list[ProviderCheck]
    callbacks: CallbackCheck


class OpenApiDocument(_Model):
    """This API's OpenAPI 3.1 document."""

    model_config = ConfigDict(extra='allow')

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
