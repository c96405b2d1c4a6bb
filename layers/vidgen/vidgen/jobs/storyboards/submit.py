"""Submitting and canceling storyboards.

A submit is validated against the catalog as its scene jobs will be (one price per scene, the mode from the
product photo), paid for in one transaction (`store.storyboards.submit`), then its execution is started. A crash
between the two leaves a `writing` storyboard that the sweep starts later. An Idempotency-Key works as for jobs:
the same key and body give the same storyboard and charge once; another body under the key is a conflict.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from vidgen import catalog, executions, ids
from vidgen.config import get_settings
from vidgen.errors import (
    ActiveCapReached,
    AuthFailedError,
    ConflictError,
    IdempotencyConflictError,
    InsufficientCredits,
    InsufficientCreditsError,
    InvalidParametersError,
    NotFoundError,
    RateLimitExceededError,
    StoryboardMovedOn,
    StoryboardReplayed,
    UnknownUser,
)
from vidgen.jobs.storyboards.rules import notify_at
from vidgen.jobs.submit import cancel_active_job, check_webhook_url
from vidgen.models import JobRequest, StoryboardRequest
from vidgen.observability import MetricUnit, logger, metrics
from vidgen.store import idempotency, ledger, media
from vidgen.store import storyboards as store

_CAP_RETRY_AFTER_SECONDS = 30
_NO_USER = 'The API key belongs to no user.'
# Stands in for the scene prompts (not written yet) when the catalog checks the request.
_PLACEHOLDER_PROMPT = 'storyboard scene'


@dataclass(frozen=True)
class Submitted:
    storyboard: store.Storyboard
    replayed: bool


def resolve(request: StoryboardRequest) -> catalog.ResolvedJob:
    """The scene jobs' model, mode, parameters and price per scene; 422 naming the field otherwise."""
    spec = catalog.get_model(request.model)
    if spec.kind != 'video':
        raise InvalidParametersError(f'{spec.id} makes images; a storyboard needs a video model.',
                                     details={'field': 'model'})
    scene = JobRequest(model=request.model, prompt=_PLACEHOLDER_PROMPT, image=request.product.image,
                       duration=request.duration, aspect_ratio=request.aspect_ratio, mode=request.mode,
                       options=request.options)
    try:
        return catalog.resolve(scene)
    except InvalidParametersError as exc:
        if exc.details.get('field') == 'image':  # the scenes' image is the product photo
            raise InvalidParametersError(exc.message.replace('`image`', '`product.image`'),
                                         details={'field': 'product.image'}) from exc
        raise


def fingerprint(request: StoryboardRequest) -> str:
    # Prefixed: a key once used for a job and now for a storyboard is a different request, hence a conflict.
    canonical = json.dumps(request.model_dump(exclude_none=True), sort_keys=True, separators=(',', ':'))
    return 'storyboard:' + hashlib.sha256(canonical.encode()).hexdigest()


def submit_storyboard(owner: str, request: StoryboardRequest, idempotency_key: str | None = None, *,
                      api_key_id: str | None = None) -> Submitted:
    settings = get_settings()
    resolved = resolve(request)
    if request.webhook_url:
        check_webhook_url(request.webhook_url, settings.allow_loopback_urls)
    digest = fingerprint(request)
    now = ids.now()
    if idempotency_key and (replay := _replay(owner, idempotency_key, digest, now)):
        return Submitted(replay, replayed=True)
    count = request.scenes
    cost = count * resolved.credits
    image = request.product.image
    if image and image.startswith('data:'):  # a photo to store: refuse first what cannot be paid
        _precheck_balance(owner, cost, count, resolved.credits)

    storyboard_id = f'sb_{ids.ulid()}'
    if image and image.startswith('data:'):
        image = media.save_input_image(owner, storyboard_id, 'product', image)
    storyboard = store.Storyboard(
        id=storyboard_id, owner=owner, status=store.WRITING,
        product={k: v for k, v in {'name': request.product.name, 'description': request.product.description,
                                   'image': image}.items() if v},
        model=resolved.model.id, provider=resolved.model.provider,
        provider_model=resolved.model.provider_model_for(resolved.mode), kind=resolved.mode, params=resolved.params,
        scene_count=count, price=resolved.credits, credits=cost, job_ids=[ids.new_job_id() for _ in range(count)],
        created_at=now, updated_at=now, style=request.style, webhook_url=request.webhook_url,
        metadata=request.metadata or {}, request_hash=digest, api_key_id=api_key_id,
        provider_cost_micro_usd=resolved.provider_cost_micro_usd,
    )
    claim = (idempotency.IdempotencyClaim(idempotency_key, digest, settings.idempotency_ttl_seconds)
             if idempotency_key else None)
    try:
        store.submit(storyboard, max_active_jobs=settings.max_active_jobs_per_user,
                     sweep_at=now + settings.queued_grace_seconds, idempotency=claim)
    except StoryboardReplayed as replayed:
        return Submitted(_replayed(replayed.storyboard_id, replayed.request_hash, digest), replayed=True)
    except UnknownUser as exc:
        raise AuthFailedError(_NO_USER) from exc
    except InsufficientCredits as exc:
        raise _insufficient(cost, exc.balance, count, resolved.credits) from exc
    except ActiveCapReached as exc:
        raise RateLimitExceededError(
            f'This storyboard needs {count} job slots and you already have {exc.active} jobs queued or running '
            f'(the limit is {settings.max_active_jobs_per_user}); wait for some to finish.',
            retry_after=_CAP_RETRY_AFTER_SECONDS) from exc
    metrics.add_metric(name='StoryboardSubmitted', unit=MetricUnit.Count, value=1)
    logger.info('storyboard submitted', storyboard_id=storyboard_id, model=storyboard.model, scenes=count,
                credits=cost)
    try:
        executions.start_storyboard(storyboard_id)
    except (ClientError, BotoCoreError) as exc:
        # Paid for and stored: a 500 now would invite a second, paid retry. The sweep starts it.
        logger.warning('storyboard execution not started; the sweep will start it', storyboard_id=storyboard_id,
                       error=type(exc).__name__)
    return Submitted(storyboard, replayed=False)


def cancel_storyboard(owner: str, storyboard_id: str) -> store.Storyboard:
    """Cancel a storyboard: before its jobs exist, every scene is refunded at once; after, each scene job not
    finished yet is canceled and refunded once (finished scenes keep their videos)."""
    storyboard = _owned(owner, storyboard_id)
    if storyboard.status == store.WRITING:
        try:
            now = ids.now()
            store.cancel_writing(storyboard, now=now, notify_at=notify_at(storyboard, now))
        except StoryboardMovedOn:
            storyboard = store.get(storyboard_id)  # its jobs were created meanwhile
        else:
            metrics.add_metric(name='StoryboardCanceled', unit=MetricUnit.Count, value=1)
            return store.get(storyboard_id)
    canceled_now = False
    if storyboard.status == store.GENERATING:
        try:
            now = ids.now()
            store.finish(storyboard_id, 'canceled', now=now, notify_at=notify_at(storyboard, now))
            canceled_now = True
        except StoryboardMovedOn:
            pass  # it ended meanwhile: the check below says how
        storyboard = store.get(storyboard_id)
    active = [job for job in store.scene_jobs(storyboard).values() if job.is_active]
    if storyboard.status != 'canceled' or not (canceled_now or active):
        raise ConflictError(f'Storyboard {storyboard_id} already ended as {storyboard.status}; only a writing or '
                            'generating storyboard can be canceled.')
    # Also reached by a repeated cancel whose first run stopped half way: the remaining jobs are canceled now.
    for job in active:
        cancel_active_job(job)
    metrics.add_metric(name='StoryboardCanceled', unit=MetricUnit.Count, value=1)
    return store.get(storyboard_id)


def _owned(owner: str, storyboard_id: str) -> store.Storyboard:
    storyboard = store.find(storyboard_id)
    if storyboard is None or storyboard.owner != owner:
        raise NotFoundError(f'No storyboard {storyboard_id!r}.')
    return storyboard


def _precheck_balance(owner: str, cost: int, count: int, price: int) -> None:
    """A cheap read so that a storyboard that cannot be paid stores nothing, not even its photo: made only
    when there is a photo to store. The transaction's condition stays the authority and answers the rest."""
    try:
        balance = ledger.balance(owner, consistent=False)
    except UnknownUser as exc:
        raise AuthFailedError(_NO_USER) from exc
    if balance < cost:
        raise _insufficient(cost, balance, count, price)


def _insufficient(cost: int, balance: int, count: int, price: int) -> InsufficientCreditsError:
    return InsufficientCreditsError(
        f'This storyboard costs {cost} credits ({count} scenes at {price}) and your balance is {balance}; add '
        'credits, or ask for fewer scenes or a cheaper model or duration.',
        details={'required': cost, 'balance': balance})


def _replay(owner: str, key: str, digest: str, now: float) -> store.Storyboard | None:
    """The storyboard an earlier request with this key created, if the key is still live."""
    record = idempotency.find_live(owner, key, now)
    if record is None:
        return None
    return _replayed(record.storyboard_id or '', record.request_hash, digest)


def _replayed(storyboard_id: str, request_hash: str, digest: str) -> store.Storyboard:
    """A different request under the same key (a job's, or another storyboard's) is a conflict."""
    if request_hash != digest or not storyboard_id:
        raise IdempotencyConflictError('This Idempotency-Key was already used with a different request; use a new '
                                       'key for a new storyboard.')
    return store.get(storyboard_id)
