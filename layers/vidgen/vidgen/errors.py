"""One error tree for the whole service.

API errors carry the HTTP status and the public error code; the mapping to a response happens only in
the exception handlers of `vidgen.api`. Provider errors carry the job error code they end a job with and
whether the state machine may retry them. The class name is the Lambda `errorType`, so the ASL `Retry`
and `Catch` blocks match on these names: rename a class and `statemachine/job.asl.json` must follow.
"""

from __future__ import annotations


class VidgenError(Exception):
    """Base of every error the service raises on purpose."""

    code = 'SYSTEM_ERROR'
    http_status = 500

    def __init__(self, message: str, *, details: dict | None = None) -> None:
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
    retryable = False

    def __init__(self, message: str, *, provider_code: str | int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.provider_code = provider_code
        self.retry_after = retry_after


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


class ProviderTimeoutError(ProviderError):
    """The job passed its deadline without the provider finishing it."""

    job_code = 'PROVIDER_TIMEOUT'


class JobCanceledError(ProviderError):
    """The owner canceled the job."""

    job_code = 'CANCELED'


class OutputDownloadError(VidgenError):
    """Copying a result from the provider into our bucket failed part-way; safe to retry."""

    code = 'GENERATION_FAILED'
    retryable = True


class WebhookDeliveryError(VidgenError):
    """The client's webhook receiver did not take a notification; safe to retry (its id stays the same)."""

    code = 'SYSTEM_ERROR'
    retryable = True


class UnsafeUrlError(VidgenError):
    """A URL the service was asked to fetch points somewhere it must not (SSRF guard)."""

    code = 'INVALID_PARAMETERS'
    http_status = 422


# The job error a Lambda failure (caught by the state machine) ends a job with, by errorType.
_JOB_CODES_BY_ERROR_TYPE: dict[str, str] = {
    cls.__name__: cls.job_code
    for cls in (
        ProviderError, ProviderAuthError, ProviderQuotaError, ProviderThrottledError, ProviderUnavailableError,
        ProviderContentPolicyError, ProviderRejectedError, ProviderNotFoundError, GenerationFailedError,
        ProviderTimeoutError, JobCanceledError,
    )
}
_JOB_CODES_BY_ERROR_TYPE.update({
    'OutputDownloadError': 'GENERATION_FAILED',
    'UnsafeUrlError': 'GENERATION_FAILED',
    'States.Timeout': 'PROVIDER_TIMEOUT',
    'States.HeartbeatTimeout': 'PROVIDER_TIMEOUT',
})

JOB_ERROR_CODES = (
    'CONTENT_POLICY', 'GENERATION_FAILED', 'PROVIDER_TIMEOUT', 'PROVIDER_UNAVAILABLE', 'PROVIDER_AUTH',
    'PROVIDER_QUOTA', 'CANCELED', 'SYSTEM_ERROR',
)


def job_code_for_error_type(error_type: str) -> str:
    """Map a caught Lambda/States error type to the job error code; unknown types are our own bugs."""
    return _JOB_CODES_BY_ERROR_TYPE.get(error_type, 'SYSTEM_ERROR')


_ERROR_CLASS_BY_JOB_CODE: dict[str, type[ProviderError]] = {
    'CONTENT_POLICY': ProviderContentPolicyError,
    'GENERATION_FAILED': GenerationFailedError,
    'PROVIDER_TIMEOUT': ProviderTimeoutError,
    'PROVIDER_UNAVAILABLE': ProviderUnavailableError,
    'PROVIDER_AUTH': ProviderAuthError,
    'PROVIDER_QUOTA': ProviderQuotaError,
    'CANCELED': JobCanceledError,
}


def error_class_for_job_code(code: str) -> type[ProviderError]:
    """The error a task step raises when the provider reports a failed task with this job code."""
    return _ERROR_CLASS_BY_JOB_CODE.get(code, GenerationFailedError)
