"""Submitting and canceling jobs.

A submit is one transaction: debit the owner (conditioned on the balance and the active-job cap), create
the job, write the ledger entry and, with an Idempotency-Key, the key's record. Then it starts the job's
execution. A crash between the two leaves a queued job that the sweep starts later; the transaction is
what makes a retried or concurrent duplicate charge once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from vidgen import catalog, ids
from vidgen.config import get_settings
from vidgen.errors import (
    ActiveCapReached,
    AlreadySettled,
    AuthFailedError,
    ConflictError,
    IdempotencyConflictError,
    InsufficientCredits,
    InsufficientCreditsError,
    InvalidParametersError,
    NotFoundError,
    RateLimitExceededError,
    Replayed,
    UnknownUser,
    UnsafeUrlError,
)
from vidgen.jobs.context import LIVE, Context
from vidgen.models import JobRequest
from vidgen.netguard import check_url
from vidgen.observability import MetricUnit, logger, metrics, per_model
from vidgen.store import idempotency
from vidgen.store import jobs as job_store

# How long a client at its active-job cap is told to wait before trying again.
_CAP_RETRY_AFTER_SECONDS = 30
_NO_USER = 'The API key belongs to no user.'


@dataclass(frozen=True)
class Submitted:
    job: job_store.Job
    replayed: bool


def request_fingerprint(request: JobRequest) -> str:
    """A stable hash of what was asked, to tell a replay from a different request under the same key."""
    canonical = json.dumps(request.model_dump(exclude_none=True), sort_keys=True, separators=(',', ':'))
    return hashlib.sha256(canonical.encode()).hexdigest()


def submit_job(owner: str, request: JobRequest, idempotency_key_value: str | None = None,
               ctx: Context = LIVE, *, api_key_id: str | None = None) -> Submitted:
    settings = get_settings()
    resolved = catalog.resolve(request)
    if request.webhook_url:
        check_webhook_url(request.webhook_url, settings.allow_loopback_urls)
    fingerprint = request_fingerprint(request)
    now = ctx.clock()
    if idempotency_key_value:
        replay = _replay(owner, idempotency_key_value, fingerprint, now, ctx)
        if replay:
            return Submitted(replay, replayed=True)
    if _inline_images(request):
        _precheck_balance(owner, resolved.credits, ctx)

    job_id = ids.new_job_id()
    job = job_store.Job(
        id=job_id, owner=owner, status='queued', model=resolved.model.id, provider=resolved.model.provider,
        provider_model=resolved.model.provider_model_for(resolved.mode), kind=resolved.mode, prompt=request.prompt,
        negative_prompt=request.negative_prompt, params=resolved.params, credits=resolved.credits,
        created_at=now, updated_at=now, deadline_at=now + settings.job_deadline_seconds,
        image=_store_image(owner, job_id, 'image', request.image, ctx),
        end_image=_store_image(owner, job_id, 'end_image', request.end_image, ctx),
        reference_images=[_store_image(owner, job_id, f'reference_{i}', img, ctx) or ''
                          for i, img in enumerate(request.reference_images or [])],
        webhook_url=request.webhook_url, metadata=request.metadata or {}, request_hash=fingerprint,
        api_key_id=api_key_id, provider_cost_micro_usd=resolved.provider_cost_micro_usd,
    )
    claim = (idempotency.IdempotencyClaim(idempotency_key_value, fingerprint, settings.idempotency_ttl_seconds)
             if idempotency_key_value else None)
    try:
        ctx.ledger.submit_debit(job, max_active_jobs=settings.max_active_jobs_per_user,
                            sweep_at=now + settings.queued_grace_seconds, idempotency=claim)
    except Replayed as replayed:
        return Submitted(_replayed_job(replayed.job_id, replayed.request_hash, fingerprint, ctx), replayed=True)
    except UnknownUser as exc:
        raise AuthFailedError(_NO_USER) from exc
    except InsufficientCredits as exc:
        raise _insufficient(resolved.credits, exc.balance) from exc
    except ActiveCapReached as exc:
        raise RateLimitExceededError(
            f'You already have {exc.active} jobs queued or running (the limit is {settings.max_active_jobs_per_user}); '
            'wait for some to finish.', retry_after=_CAP_RETRY_AFTER_SECONDS,
        ) from exc
    metrics.add_metric(name='JobSubmitted', unit=MetricUnit.Count, value=1)
    per_model('JobSubmitted', job.model)
    per_model('JobCredits', job.model, value=job.credits)
    logger.info('job submitted', job_id=job_id, model=job.model, kind=job.kind, credits=job.credits)
    try:
        ctx.executions.start(job_id)
    except (ClientError, BotoCoreError) as exc:
        # The job is paid for and stored: answering 500 now would invite a second, paid retry. The
        # sweep starts queued jobs whose execution never began.
        # The reason names the refused action and resource (an AccessDenied after a permission change), never
        # a secret: StartExecution's errors carry ARNs and the caller's role, not the execution's input.
        logger.warning('execution not started; the sweep will start it', job_id=job_id, error=type(exc).__name__,
                       reason=str(exc))
        metrics.add_metric(name='ExecutionStartDeferred', unit=MetricUnit.Count, value=1)
    return Submitted(job, replayed=False)


def cancel_job(owner: str, job_id: str, ctx: Context = LIVE) -> job_store.Job:
    """Cancel an active job and refund it. The provider may still finish; its result is discarded."""
    job = ctx.jobs.get_job(job_id)
    if job.owner != owner:
        raise NotFoundError(f'No job {job_id!r}.')
    if not job.is_active:
        raise ConflictError(f'Job {job_id} already ended as {job.status}; only queued or running jobs can be canceled.')
    if not cancel_active_job(job, ctx):
        job = ctx.jobs.get_job(job_id)
        raise ConflictError(f'Job {job_id} already ended as {job.status}; only queued or running jobs can be canceled.')
    return ctx.jobs.get_job(job_id)


def cancel_active_job(job: job_store.Job, ctx: Context = LIVE) -> bool:
    """End an active job as canceled, refunded once, and stop its execution. False if it had ended already."""
    error = {'code': 'CANCELED', 'message': 'The job was canceled by its owner; its credits were refunded.'}
    try:
        ctx.ledger.settle(job, status='canceled', now=ctx.clock(), refund=True, extra={'error': error})
    except AlreadySettled:
        return False
    ctx.executions.stop(job.id, 'canceled by its owner')
    metrics.add_metric(name='JobCanceled', unit=MetricUnit.Count, value=1)
    return True


def check_webhook_url(url: str, local_mode: bool) -> None:
    """422 on `webhook_url` for a URL the service must not call (private addresses, other schemes). Deployed,
    only https: a notification carries presigned result links and must not cross the network in clear."""
    try:
        check_url(url, allow_loopback=local_mode, https_only=not local_mode)
    except UnsafeUrlError as exc:
        raise InvalidParametersError(f'webhook_url is not usable: {exc.message}', details={'field': 'webhook_url'}) from exc


def _store_image(owner: str, job_id: str, name: str, value: str | None, ctx: Context) -> str | None:
    if value is None or not value.startswith('data:'):
        return value
    return ctx.save_input_image(owner, job_id, name, value)


def _inline_images(request: JobRequest) -> bool:
    return any(value and value.startswith('data:')
               for value in (request.image, request.end_image, *(request.reference_images or [])))


def _precheck_balance(owner: str, cost: int, ctx: Context) -> None:
    """A cheap read so that a request that cannot be paid stores nothing, not even its images: made only for
    a request that carries images to store. Without them the transaction's condition, which stays the
    authority, answers the same refusal with nothing written, and the read would be one more call per submit."""
    try:
        balance = ctx.ledger.balance(owner, consistent=False)
    except UnknownUser as exc:
        raise AuthFailedError(_NO_USER) from exc
    if balance < cost:
        raise _insufficient(cost, balance)


def _insufficient(cost: int, balance: int) -> InsufficientCreditsError:
    return InsufficientCreditsError(
        f'This job costs {cost} credits and your balance is {balance}; '
        'add credits or choose a cheaper model or shorter duration.',
        details={'required': cost, 'balance': balance},
    )


def _replay(owner: str, key: str, fingerprint: str, now: float, ctx: Context) -> job_store.Job | None:
    """The job an earlier request with this key created, if the key is still live."""
    record = ctx.find_idempotency_record(owner, key, now)
    if record is None:
        return None
    return _replayed_job(record.job_id, record.request_hash, fingerprint, ctx)


def _replayed_job(job_id: str, request_hash: str, fingerprint: str, ctx: Context) -> job_store.Job:
    """A different request under the same key is a conflict; the same request gets its job back."""
    if request_hash != fingerprint:
        raise IdempotencyConflictError(
            'This Idempotency-Key was already used with a different request; use a new key for a new job.')
    return ctx.jobs.get_job(job_id)
