"""One error tree for the whole service: every exception class vidgen raises on purpose is here.

Each class states, as class attributes, `code` and `http_status` (the public API error, turned into a response
only by the exception handlers of `vidgen.api`), `job_code` (the error a job ends with when this error stops
it) and `retryable` (whether the step that raised it may run again). The class name is the Lambda
`errorType`, so the ASL `Retry` and `Catch` blocks match on these names: rename a class and
`statemachine/job.asl.json` must follow. The maps at the end are derived from these attributes.

Store outcomes (`StoreOutcome`) name why a transaction did not happen; the use cases in `vidgen.jobs` turn
them into the API errors a caller sees.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar


class VidgenError(Exception):
    """Base of every error the service raises on purpose."""

    code: ClassVar[str] = 'SYSTEM_ERROR'
    http_status: ClassVar[int] = 500
    job_code: ClassVar[str] = 'SYSTEM_ERROR'
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


# --- API errors -------------------------------------------------------------------------------------


class InvalidParametersError(VidgenError):
    code = 'INVALID_PARAMETERS'
    http_status = 422


class MalformedRequestError(VidgenError):
    code = 'INVALID_PARAMETERS'
    http_status = 400


class AuthFailedError(VidgenError):
    code = 'AUTH_FAILED'
    http_status = 401


class NotFoundError(VidgenError):
    code = 'NOT_FOUND'
    http_status = 404


class InsufficientCreditsError(VidgenError):
    code = 'INSUFFICIENT_CREDITS'
    http_status = 402


class IdempotencyConflictError(VidgenError):
    code = 'IDEMPOTENCY_CONFLICT'
    http_status = 409


class RateLimitExceededError(VidgenError):
    code = 'RATE_LIMIT_EXCEEDED'
    http_status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, details={'retry_after': retry_after})
        self.retry_after = retry_after


class ConflictError(VidgenError):
    """A state transition that the current state does not allow (e.g. canceling a finished job)."""

    code = 'CONFLICT'
    http_status = 409


class CallbackRejectedError(VidgenError):
    """A provider callback that failed verification. Never says which check failed."""

    code = 'AUTH_FAILED'
    http_status = 401


# --- Provider errors: raised by adapters, matched by the state machine -----------------------------


class ProviderError(VidgenError):
    """The provider refused or failed a call. `job_code` is the error a job ends with."""

    job_code = 'PROVIDER_UNAVAILABLE'

    def __init__(self, message: str, *, provider_code: str | int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.provider_code = provider_code
        self.retry_after = retry_after

    def __str__(self) -> str:
        # The Lambda runtime sends str(exc) as `errorMessage` to the state machine, whose fail step reads the
        # job's error back from it: with a provider code, both travel as one JSON object (see `read_cause`).
        return self.message if self.provider_code is None else failure_cause(self.message, self.provider_code)


class ProviderAuthError(ProviderError):
    """Our credentials were refused: an operator problem, never the user's."""

    job_code = 'PROVIDER_AUTH'


class ProviderQuotaError(ProviderError):
    """Our provider account ran out of credits or resource packs."""

    job_code = 'PROVIDER_QUOTA'


class ProviderThrottledError(ProviderError):
    """Rate or concurrency limit: retried with backoff by the state machine."""

    job_code = 'PROVIDER_UNAVAILABLE'
    retryable = True


class ProviderUnavailableError(ProviderError):
    """5xx, timeouts, connection failures, malformed answers: retried with backoff."""

    job_code = 'PROVIDER_UNAVAILABLE'
    retryable = True


class ProviderGaveUpError(ProviderError):
    """The provider ended the task itself as failed for want of capacity (its own final verdict, e.g. Kie.ai's
    internal error on a finished record): asking again cannot change it, so the job fails and is refunded at
    once. Not `retryable`, and not in any state's Retry list, unlike the transient `ProviderUnavailableError`."""

    job_code = 'PROVIDER_UNAVAILABLE'


class ProviderContentPolicyError(ProviderError):
    """The prompt or an input image was refused by the provider's content policy."""

    job_code = 'CONTENT_POLICY'


class ProviderRejectedError(ProviderError):
    """The provider refused the request's parameters (our catalog let through what it does not take)."""

    job_code = 'GENERATION_FAILED'


class ProviderNotFoundError(ProviderError):
    """The provider does not know the task (expired or never created)."""

    job_code = 'GENERATION_FAILED'


class GenerationFailedError(ProviderError):
    """The provider accepted the task but failed to generate it."""

    job_code = 'GENERATION_FAILED'


class UnplayableResultError(ProviderError):
    """The provider's result is not what its model makes (noise, a web page, a cut-off file, an image where a
    video was due): the job fails and is refunded, and nothing of the result is kept."""

    job_code = 'GENERATION_FAILED'


class ProviderTimeoutError(ProviderError):
    """The job passed its deadline without the provider finishing it."""

    job_code = 'PROVIDER_TIMEOUT'


class JobCanceledError(ProviderError):
    """The owner canceled the job."""

    job_code = 'CANCELED'


class OutputDownloadError(VidgenError):
    """Copying a result from the provider into our bucket failed part-way; safe to retry."""

    code = 'GENERATION_FAILED'
    job_code = 'GENERATION_FAILED'
    retryable = True


class MediaStorageError(VidgenError):
    """Reading a stored result, or writing its poster, failed part-way; safe to retry."""

    code = 'SYSTEM_ERROR'
    retryable = True


class WebhookDeliveryError(VidgenError):
    """The client's webhook receiver did not take a notification; safe to retry (its id stays the same)."""

    code = 'SYSTEM_ERROR'
    retryable = True


class LlmUnusableError(VidgenError):
    """The scene-writing LLM gave no usable scenes (no key, timeout, 4xx/5xx, not JSON, wrong scenes). The
    message is a sentence fit for the storyboard's `scenes_note`: no key, header or provider body in it. Never
    leaves the scene writer: the storyboard falls back to its built-in scenes."""


class ImageRuleError(ValueError):
    """An input image breaks one of its model's rules (`vidgen.images`); the text names the rule and the image.
    Submit turns it into a 422 on the field, the create step into a failed job."""


class UnsafeUrlError(VidgenError):
    """A URL the service was asked to fetch points somewhere it must not (SSRF guard)."""

    code = 'INVALID_PARAMETERS'
    http_status = 422
    job_code = 'GENERATION_FAILED'


# --- Infrastructure errors -------------------------------------------------------------------------------


class StoreError(VidgenError):
    """The database refused or could not take a read or write (not a business outcome)."""


class ConfigurationError(VidgenError):
    """A deployment setting is missing or invalid; the message names the environment variable."""


class SecretUnavailableError(VidgenError):
    """A secret is missing or malformed; reported by its name only, never by its value."""


class TransactionCanceled(StoreError):
    """A transaction failed a condition. Seen only inside `vidgen.store`: every item of a transaction has a
    role (its name in the transaction), and the store reads the outcome by role, never by position.

    `reasons[role]` is the item's cancellation code ('None' when its condition held) and `items[role]` the
    item as it was (every item asks for ALL_OLD)."""

    def __init__(self, reasons: dict[str, str], items: dict[str, dict[str, Any] | None]) -> None:
        super().__init__('A transaction condition did not hold.')
        self.reasons = reasons
        self.items = items

    def refused(self, role: str) -> bool:
        """Did the item in `role` fail its condition? False for a role the transaction did not have."""
        return self.reasons.get(role) == 'ConditionalCheckFailed'

    def old(self, role: str) -> dict[str, Any] | None:
        return self.items.get(role)


# --- Store outcomes: why a transaction did not happen -------------------------------------------------------


class StoreOutcome(VidgenError):
    """A money or job transaction did not happen, for a reason the caller must act on. One that escapes its
    use case answers SYSTEM_ERROR: the use case has a bug."""


class UnknownUser(StoreOutcome):
    def __init__(self, user_id: str) -> None:
        super().__init__(f'No user {user_id!r}.')
        self.user_id = user_id


class UserExists(StoreOutcome):
    def __init__(self, user_id: str) -> None:
        super().__init__(f'A user {user_id!r} already exists.')
        self.user_id = user_id


class InsufficientCredits(StoreOutcome):
    def __init__(self, balance: int) -> None:
        super().__init__(f'The balance is {balance}.')
        self.balance = balance


class ActiveCapReached(StoreOutcome):
    def __init__(self, active: int) -> None:
        super().__init__(f'{active} jobs are queued or running.')
        self.active = active


class Replayed(StoreOutcome):
    """The Idempotency-Key is live: it created `job_id`, for the request whose fingerprint is `request_hash`."""

    def __init__(self, job_id: str, request_hash: str) -> None:
        super().__init__(f'The key already created job {job_id}.')
        self.job_id = job_id
        self.request_hash = request_hash


class StoryboardReplayed(StoreOutcome):
    """The Idempotency-Key is live: it created storyboard `storyboard_id`, for the request `request_hash`."""

    def __init__(self, storyboard_id: str, request_hash: str) -> None:
        super().__init__(f'The key already created storyboard {storyboard_id}.')
        self.storyboard_id = storyboard_id
        self.request_hash = request_hash


class StoryboardMovedOn(StoreOutcome):
    """The storyboard was no longer in the state a write needed (its scenes were written, its jobs created,
    or it ended meanwhile); nothing changed."""

    def __init__(self, storyboard_id: str) -> None:
        super().__init__(f'Storyboard {storyboard_id} moved on.')
        self.storyboard_id = storyboard_id


class AlreadySettled(StoreOutcome):
    """The job was no longer active (someone else settled it first); nothing changed."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f'Job {job_id} already ended.')
        self.job_id = job_id


class TooManyKeys(StoreOutcome):
    """The user already holds as many API keys as one may."""

    def __init__(self, user_id: str, limit: int) -> None:
        super().__init__(f'{user_id} already holds {limit} API keys.')
        self.limit = limit


class UnknownKey(StoreOutcome):
    """The user holds no key with that id."""

    def __init__(self, user_id: str, key_id: str) -> None:
        super().__init__(f'{user_id} has no key {key_id!r}.')
        self.key_id = key_id


# --- Maps derived from the classes --------------------------------------------------------------------------


def _error_classes(root: type[VidgenError] = VidgenError) -> list[type[VidgenError]]:
    classes = [root]
    for sub in root.__subclasses__():
        classes.extend(_error_classes(sub))
    return classes


# The job error a Lambda failure caught by the state machine ends a job with, by errorType. `States.*` are
# the state machine's own error names, not classes of ours.
_JOB_CODES_BY_ERROR_TYPE: dict[str, str] = {cls.__name__: cls.job_code for cls in _error_classes()} | {
    'States.Timeout': 'PROVIDER_TIMEOUT',
    'States.HeartbeatTimeout': 'PROVIDER_TIMEOUT',
}

JOB_ERROR_CODES = (
    'CONTENT_POLICY', 'GENERATION_FAILED', 'PROVIDER_TIMEOUT', 'PROVIDER_UNAVAILABLE', 'PROVIDER_AUTH',
    'PROVIDER_QUOTA', 'CANCELED', 'SYSTEM_ERROR',
)


def job_code_for_error_type(error_type: str) -> str:
    """Map a caught Lambda/States error type to the job error code; unknown types are our own bugs."""
    return _JOB_CODES_BY_ERROR_TYPE.get(error_type, 'SYSTEM_ERROR')


# The error a task step raises for a failure the provider reports with a job code: one class per code.
_FAILURE_CLASSES: tuple[type[ProviderError], ...] = (
    ProviderContentPolicyError, GenerationFailedError, ProviderTimeoutError, ProviderGaveUpError,
    ProviderAuthError, ProviderQuotaError, JobCanceledError,
)
_ERROR_CLASS_BY_JOB_CODE: dict[str, type[ProviderError]] = {cls.job_code: cls for cls in _FAILURE_CLASSES}


def error_class_for_job_code(code: str) -> type[ProviderError]:
    """The error a task step raises when the provider reports a failed task with this job code."""
    return _ERROR_CLASS_BY_JOB_CODE.get(code, GenerationFailedError)


# --- How a job error travels through Step Functions ---------------------------------------------------


def failure_cause(message: str, provider_code: str | int | None) -> str:
    """The text that carries a job error's message and provider code through Step Functions."""
    return json.dumps({'message': message, 'provider_code': None if provider_code is None else str(provider_code)})


def read_cause(text: str) -> tuple[str, str | None]:
    """(message, provider_code) from `failure_cause` text; any other text is a message without a code."""
    try:
        parsed = json.loads(text)
    except (TypeError, ValueError):
        return text, None
    if isinstance(parsed, dict) and isinstance(parsed.get('message'), str):
        code = parsed.get('provider_code')
        return parsed['message'], code if isinstance(code, str) else None
    return text, None
