"""Submitting and canceling jobs.

A submit is one transaction: debit the owner (conditioned on the balance and the active-job cap), create
the job, write the ledger entry and, with an Idempotency-Key, the key's record. Then it starts the job's
execution. A crash between the two leaves a queued job that the sweep starts later; the transaction is
what makes a retried or concurrent duplicate charge once.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from vidgen import catalog, executions, ids, ledger
from vidgen.config import get_settings
from vidgen.errors import (
    AuthFailedError,
    ConflictError,
    IdempotencyConflictError,
    InsufficientCreditsError,
    InvalidParametersError,
    NotFoundError,
    RateLimitExceededError,
    UnsafeUrlError,
)
from vidgen.models import JobRequest
from vidgen.netguard import check_url
from vidgen.observability import MetricUnit, logger, metrics
from vidgen.store import jobs as job_store
from vidgen.store import media
from vidgen.store.table import TransactionCanceled, idempotency_key, table, transact, user_key

# How long a client at its active-job cap is told to wait before trying again.
_CAP_RETRY_AFTER_SECONDS = 30


@dataclass(frozen=True)
class Submitted:
    job: job_store.Job
    replayed: bool


def request_fingerprint(request: JobRequest) -> str:
    """A stable hash of what was asked, to tell a replay from a different request under the same key."""
    canonical = json.dumps(request.model_dump(exclude_none=True), sort_keys=True, separators=(',', ':'))
    return hashlib.sha256(canonical.encode()).hexdigest()


def submit_job(owner: str, request: JobRequest, idempotency_key_value: str | None = None) -> Submitted:
    settings = get_settings()
    resolved = catalog.resolve(request)
    if request.webhook_url:
        _check_webhook_url(request.webhook_url, settings.allow_private_urls)
    fingerprint = request_fingerprint(request)
    now = ids.now()
    if idempotency_key_value:
        replay = _replay(owner, idempotency_key_value, fingerprint, now)
        if replay:
            return Submitted(replay, replayed=True)
    _precheck_balance(owner, resolved.credits)

    job_id = ids.new_job_id()
    job = job_store.Job(
        id=job_id, owner=owner, status='queued', model=resolved.model.id, provider=resolved.model.provider,
        provider_model=resolved.model.provider_model_for(resolved.mode), kind=resolved.mode, prompt=request.prompt,
        negative_prompt=request.negative_prompt, params=resolved.params, credits=resolved.credits,
        created_at=now, updated_at=now, deadline_at=now + settings.job_deadline_seconds,
        image=_store_image(owner, job_id, 'image', request.image),
        end_image=_store_image(owner, job_id, 'end_image', request.end_image),
        reference_images=[_store_image(owner, job_id, f'reference_{i}', img) or ''
                          for i, img in enumerate(request.reference_images or [])],
        webhook_url=request.webhook_url, metadata=request.metadata or {}, request_hash=fingerprint,
    )
    items = [
        ledger.debit_op(owner, resolved.credits, settings.max_active_jobs_per_user),
        job_store.put_item_op(job, sweep_at=now + settings.queued_grace_seconds),
        ledger.entry_op(owner, type_='debit', amount=-resolved.credits, at=now, job_id=job_id),
    ]
    if idempotency_key_value:
        items.append(_idempotency_op(owner, idempotency_key_value, job_id, fingerprint, now))
    try:
        transact(items)
    except TransactionCanceled as exc:
        if idempotency_key_value and exc.failed(3):
            replay = _replay(owner, idempotency_key_value, fingerprint, now)
            if replay:
                return Submitted(replay, replayed=True)
        if exc.failed(0):
            raise _debit_refusal(exc.items[0], resolved.credits, settings.max_active_jobs_per_user) from exc
        raise
    metrics.add_metric(name='JobSubmitted', unit=MetricUnit.Count, value=1)
    logger.info('job submitted', job_id=job_id, model=job.model, kind=job.kind, credits=job.credits)
    try:
        executions.start(job_id)
    except (ClientError, BotoCoreError) as exc:
        # The job is paid for and stored: answering 500 now would invite a second, paid retry. The
        # sweep starts queued jobs whose execution never began.
        logger.warning('execution not started; the sweep will start it', job_id=job_id, error=type(exc).__name__)
        metrics.add_metric(name='ExecutionStartDeferred', unit=MetricUnit.Count, value=1)
    return Submitted(job, replayed=False)


def cancel_job(owner: str, job_id: str) -> job_store.Job:
    """Cancel an active job and refund it. The provider may still finish; its result is discarded."""
    job = job_store.get_job(job_id)
    if job.owner != owner:
        raise NotFoundError(f'No job {job_id!r}.')
    if not job.is_active:
        raise ConflictError(f'Job {job_id} already ended as {job.status}; only queued or running jobs can be canceled.')
    error = {'code': 'CANCELED', 'message': 'The job was canceled by its owner; its credits were refunded.'}
    if not ledger.settle_job(job, status='canceled', now=ids.now(), refund=True, extra={'error': error}):
        job = job_store.get_job(job_id)
        raise ConflictError(f'Job {job_id} already ended as {job.status}; only queued or running jobs can be canceled.')
    executions.stop(job_id, 'canceled by its owner')
    metrics.add_metric(name='JobCanceled', unit=MetricUnit.Count, value=1)
    return job_store.get_job(job_id)


def _check_webhook_url(url: str, allow_private: bool) -> None:
    try:
        check_url(url, allow_private=allow_private)
    except UnsafeUrlError as exc:
        raise InvalidParametersError(f'webhook_url is not usable: {exc.message}', details={'field': 'webhook_url'}) from exc


def _store_image(owner: str, job_id: str, name: str, value: str | None) -> str | None:
    if value is None or not value.startswith('data:'):
        return value
    return media.save_input_image(owner, job_id, name, value)


def _precheck_balance(owner: str, cost: int) -> None:
    """A cheap read so that a request that cannot be paid stores nothing (not even its images). The
    transaction's condition remains the authority; this only answers early."""
    item = table().get_item(Key=user_key(owner)).get('Item')
    if item is None:
        raise AuthFailedError('The API key belongs to no user.')
    if int(item.get('balance', 0)) < cost:
        raise InsufficientCreditsError(
            f'This job costs {cost} credits and your balance is {int(item.get("balance", 0))}; '
            'add credits or choose a cheaper model or shorter duration.',
            details={'required': cost, 'balance': int(item.get('balance', 0))},
        )


def _debit_refusal(profile: dict | None, cost: int, cap: int) -> Exception:
    if profile is None:
        return AuthFailedError('The API key belongs to no user.')
    balance = int(profile.get('balance', 0))
    if balance < cost:
        return InsufficientCreditsError(
            f'This job costs {cost} credits and your balance is {balance}; '
            'add credits or choose a cheaper model or shorter duration.',
            details={'required': cost, 'balance': balance},
        )
    return RateLimitExceededError(
        f'You already have {int(profile.get("active_jobs", 0))} jobs queued or running (the limit is {cap}); '
        'wait for some to finish.', retry_after=_CAP_RETRY_AFTER_SECONDS,
    )


def _idempotency_op(owner: str, key: str, job_id: str, fingerprint: str, now: float) -> dict:
    # Rounded up: a key is kept at least the whole TTL (int() cut up to a second off the 24 hours).
    expires_at = math.ceil(now + get_settings().idempotency_ttl_seconds)
    item = idempotency_key(owner, key) | {'job_id': job_id, 'request_hash': fingerprint, 'expires_at': expires_at}
    return {'Put': {'TableName': table().name, 'Item': item,
                    'ConditionExpression': 'attribute_not_exists(PK) OR expires_at < :now',
                    'ExpressionAttributeValues': {':now': int(now)}}}


def _replay(owner: str, key: str, fingerprint: str, now: float) -> job_store.Job | None:
    """The job an earlier request with this key created, if the key is still live (TTL deletion lags, so
    the expiry is checked here too). A different request under the same key is a conflict."""
    record = table().get_item(Key=idempotency_key(owner, key), ConsistentRead=True).get('Item')
    if record is None or int(record['expires_at']) < now:
        return None
    if record['request_hash'] != fingerprint:
        raise IdempotencyConflictError(
            'This Idempotency-Key was already used with a different request; use a new key for a new job.')
    return job_store.get_job(record['job_id'])
