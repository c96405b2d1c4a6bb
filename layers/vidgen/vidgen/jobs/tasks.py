"""The state machine's steps. Each reads the job first and does nothing to a job that already ended, so a
retried step, a late callback, the sweep and a cancel can all run in any order.

Failures are raised as typed errors (`vidgen.errors.Provider*Error`): the ASL retries the transient ones
and sends the rest to `fail_job` as `{Error, Cause}`.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from vidgen import catalog, executions, ids, images
from vidgen.config import get_settings
from vidgen.errors import (
    AlreadySettled,
    GenerationFailedError,
    ImageRuleError,
    OutputDownloadError,
    ProviderError,
    ProviderRejectedError,
    ProviderThrottledError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    UnplayableResultError,
    UnsafeUrlError,
    VidgenError,
    WebhookDeliveryError,
    error_class_for_job_code,
    job_code_for_error_type,
    read_cause,
)
from vidgen.jobs import media_calls, notifications
from vidgen.jobs.context import LIVE, Context
from vidgen.observability import MetricUnit, logger, metrics, per_model
from vidgen.providers.base import GenerationRequest, ImageInput, ProviderTask
from vidgen.store import jobs as job_store
from vidgen.store import ledger, media

_SYSTEM_ERROR_MESSAGE = 'vidgen hit an internal error while running this job; its credits were refunded.'


def generation_request(job: job_store.Job, *, with_images: bool) -> GenerationRequest:
    """What the adapter needs. Images are loaded (from S3 for inline ones) only to create the task."""
    def image(ref: str | None) -> ImageInput | None:
        return ImageInput(media.load_input_image(ref)) if ref and with_images else None

    return GenerationRequest(
        job_id=job.id, model=job.model, provider_model=job.provider_model, kind=job.kind, prompt=job.prompt,
        negative_prompt=job.negative_prompt, image=image(job.image), end_image=image(job.end_image),
        reference_images=tuple(i for i in (image(r) for r in job.reference_images) if i),
        params=job.params, provider_params=catalog.provider_params(job.model),
    )


def fetch_task(job: job_store.Job, task_id: str | None = None, ctx: Context = LIVE) -> ProviderTask:
    """The provider's current view of the job's task: the only source of truth for its outcome."""
    return ctx.provider(job.provider).get_task(task_id or job.provider_task_id or '',
                                               generation_request(job, with_images=False))


def create_task(job_id: str, task_token: str) -> None:
    """Remember the task token, then create the provider task (once: a retry after a crash reuses it)."""
    job = job_store.record_task_token(job_id, task_token, ids.now())
    if job is None:  # the token is stored only while the job is active: this one was settled already
        executions.send_success(task_token, {'state': 'settled'})
        return
    if job.provider_task_id:
        return
    _create_at_provider(job)


def _create_at_provider(job: job_store.Job, ctx: Context = LIVE) -> None:
    check_linked_images(job, ctx)
    provider = ctx.provider(job.provider)
    task_id = provider.create_task(generation_request(job, with_images=True), ctx.callback_url(job.provider, job.id))
    now = ctx.clock()
    if ctx.jobs.mark_running(job.id, task_id, now, _next_liveness_check(job, now)) is None:
        logger.info('job settled, or its task created by another step, while this one created it', job_id=job.id)
    metrics.add_metric(name='ProviderTaskCreated', unit=MetricUnit.Count, value=1)
    logger.info('provider task created', job_id=job.id, provider=job.provider, task_id=task_id)


def check_linked_images(job: job_store.Job, ctx: Context = LIVE) -> None:
    """Check the job's https images against its model's rules where they are first fetched: here, before the
    provider sees them. A broken rule fails the job with the sentence submit gives for a data: image.

    Inline images were checked at submit (they are stored as s3:// references by now).
    """
    rules = catalog.get_model(job.model).raw.get('input_images')
    if not rules:
        return
    named = [('image', job.image), ('end_image', job.end_image)]
    named += [(f'reference_images[{i}]', ref) for i, ref in enumerate(job.reference_images)]
    for field, ref in named:
        if not ref or ref.startswith('s3://'):
            continue
        try:
            head, total = ctx.read_image_head(ref, images.HEAD_BYTES)
        except (OutputDownloadError, UnsafeUrlError) as exc:
            status = exc.details.get('status') if isinstance(exc, OutputDownloadError) else None
            if status is None and isinstance(exc, OutputDownloadError):
                raise ProviderUnavailableError(f'{field} could not be fetched yet; the call will be retried.') from exc
            reason = f'answered HTTP {status}' if status else exc.message
            raise ProviderRejectedError(f'{field} could not be fetched from its URL ({reason}); give a public https '
                                        'URL or a data: URI and submit again.') from exc
        facts = images.facts_from_head(head, total if total is not None else len(head))
        try:
            images.check_image(facts, rules if total is not None else {k: v for k, v in rules.items()
                                                                      if k != 'max_bytes'}, job.model)
        except ImageRuleError as exc:
            raise ProviderRejectedError(f'{field} {exc}.') from None


def poll_job(job_id: str, attempt: int, ctx: Context = LIVE) -> dict[str, Any]:
    """One poll of the safety-net loop: {state: running|succeeded|settled, attempt, wait_seconds}."""
    settings = get_settings()
    job = ctx.jobs.get_job(job_id)
    result = {'attempt': attempt + 1, 'wait_seconds': poll_interval(attempt)}
    if not job.is_active:
        return result | {'state': 'settled'}
    if ctx.clock() >= job.deadline_at:
        minutes = settings.job_deadline_seconds // 60
        raise ProviderTimeoutError(f'The provider did not finish the job within {minutes} minutes; '
                                   'its credits were refunded.')
    if not job.provider_task_id:
        # The callback wait ran out before the create step got the task to the provider (its retries outlasted
        # the wait): nothing else would ever start this paid job, so the poll loop creates the task itself,
        # from the second poll on (a create attempt still in flight gets one interval to land). Transient
        # refusals are tried again at the next poll; the others fail the job (refunded).
        if attempt >= 1:
            try:
                _create_at_provider(job, ctx)
            except (ProviderThrottledError, ProviderUnavailableError) as exc:
                logger.warning('task not created yet, will try again at the next poll', job_id=job_id,
                               error=type(exc).__name__)
        return result | {'state': 'running'}
    try:
        task = fetch_task(job, ctx=ctx)
    except (ProviderThrottledError, ProviderUnavailableError) as exc:
        # A provider hiccup is not the job's failure: ask again next time, until the deadline.
        logger.warning('poll failed, will poll again', job_id=job_id, error=type(exc).__name__)
        return result | {'state': 'running'}
    raise_if_failed(task)
    return result | {'state': 'succeeded' if task.state == 'succeeded' else 'running'}


def poll_interval(attempt: int) -> int:
    intervals = get_settings().poll_intervals
    return int(intervals[min(attempt, len(intervals) - 1)])


def raise_if_failed(task: ProviderTask) -> None:
    if task.state == 'failed':
        failure = task.failure
        code = failure.code if failure else 'GENERATION_FAILED'
        message = failure.message if failure else 'The provider failed to generate this job.'
        raise error_class_for_job_code(code)(message, provider_code=failure.provider_code if failure else None)


def finalize_job(job_id: str) -> dict[str, Any]:
    """Copy every result into our bucket: {'kind': 'video'|'image', 'outputs': [...]} for the media step.
    A job that already ended gets no outputs, and the steps after this one leave it alone."""
    job = job_store.get_job(job_id)
    kind = catalog.get_model(job.model).kind
    if not job.is_active:
        return {'kind': kind, 'outputs': []}
    task = fetch_task(job)
    raise_if_failed(task)
    if task.state != 'succeeded':
        raise ProviderUnavailableError('The provider no longer reports the task as finished; finalizing again.')
    if not task.outputs:
        raise GenerationFailedError('The provider finished the task but returned no result.')
    outputs = [dataclasses.replace(media.copy_result(out.url, job.owner, job.id, index, out.content_type),
                                   provider_facts=out.reported_facts())
               for index, out in enumerate(task.outputs)]
    return {'kind': kind, 'outputs': job_store.outputs_value(outputs)}


def succeed_job(job_id: str, outputs: list[dict[str, Any]]) -> bool:
    """Mark the job succeeded with its inspected outputs (once, conditionally on it still being active)."""
    job = job_store.get_job(job_id)
    if not job.is_active:
        return False
    stored = [job_store.StoredOutput(**o) for o in outputs]
    if not stored or any(o.media is None for o in stored):
        raise GenerationFailedError('The results were not checked before the job was to succeed.')
    try:
        ledger.settle(job, status='succeeded', now=ids.now(), refund=False,
                      extra={'outputs': job_store.outputs_value(stored)})
    except AlreadySettled:
        return False
    metrics.add_metric(name='JobSucceeded', unit=MetricUnit.Count, value=1)
    per_model('JobSucceeded', job.model)
    per_model('JobSeconds', job.model, value=max(0.0, ids.now() - job.created_at), unit=MetricUnit.Seconds)
    logger.info('job succeeded', job_id=job_id, outputs=len(stored), bytes=sum(o.bytes for o in stored))
    return True


def finalize_here(job: job_store.Job) -> str | None:
    """Copy, inspect and settle a job outside the state machine (the sweep): 'succeeded' when its results
    play, else 'failed' (refunded, nothing kept); None when someone else settled it first."""
    copied = finalize_job(job.id)
    if not copied['outputs']:
        return None
    try:
        inspected = media_calls.inspect(job.id, copied['kind'], copied['outputs'])
    except UnplayableResultError as exc:
        media_calls.discard(job.id, copied['outputs'])
        return 'failed' if fail_from_error(job, exc) else None
    return 'succeeded' if succeed_job(job.id, inspected['outputs']) else None


def fail_job(job_id: str, failure: dict[str, Any]) -> None:
    """Mark the job failed and refund it, in one transaction that a second run cannot repeat."""
    job = job_store.get_job(job_id)
    if not job.is_active:
        return
    code, message, provider_code = failure_reason(failure)
    try:
        ledger.settle(job, status='failed', now=ids.now(), refund=True,
                      extra={'error': job_error(code, message, provider_code)})
    except AlreadySettled:
        return
    metrics.add_metric(name='JobFailed', unit=MetricUnit.Count, value=1)
    per_model('JobFailed', job.model)
    logger.info('job failed and refunded', job_id=job_id, code=code, credits=job.credits)


def notify_job(job_id: str) -> None:
    """Tell the client how the job ended (its webhook_url, if any); raises to be retried."""
    notifications.deliver(job_store.get_job(job_id))


def notify_once(job_id: str, ctx: Context = LIVE) -> None:
    """Best-effort notification for jobs settled outside the state machine (the sweep)."""
    try:
        notifications.deliver(ctx.jobs.get_job(job_id))
    except WebhookDeliveryError:
        logger.warning('webhook not delivered', job_id=job_id)


def fail_from_error(job: job_store.Job, error: VidgenError, ctx: Context = LIVE) -> bool:
    """Fail a job from an error raised outside the state machine (the sweep). False if it had ended."""
    code, provider_code = (error.job_code, error.provider_code) if isinstance(error, ProviderError) else ('SYSTEM_ERROR', None)
    try:
        ctx.ledger.settle(job, status='failed', now=ctx.clock(), refund=True,
                          extra={'error': job_error(code, error.message, provider_code)})
    except AlreadySettled:
        return False
    return True


def job_error(code: str, message: str, provider_code: str | int | None) -> dict[str, str]:
    """The error a failed job keeps: our code and sentence, and the provider's own code when it gave one."""
    error = {'code': code, 'message': message}
    if provider_code not in (None, ''):
        error['provider_code'] = str(provider_code)
    return error


def failure_reason(failure: dict[str, Any]) -> tuple[str, str, str | None]:
    """Turn a caught `{Error, Cause}` into the job's (code, message, provider_code). Only our own errors'
    messages are shown to users; anything else (a bug, a Lambda crash) becomes a generic SYSTEM_ERROR sentence.

    The Cause is a Lambda error (`{"errorMessage": ...}`) or the cause a callback sent; either text is
    `failure_cause` JSON when the provider gave a code.
    """
    error_type = str(failure.get('Error', ''))
    code = job_code_for_error_type(error_type)
    cause = failure.get('Cause') or ''
    message = cause
    try:
        parsed = json.loads(cause)
        if isinstance(parsed, dict) and 'errorMessage' in parsed:
            message = parsed.get('errorMessage', '')
    except (TypeError, ValueError):
        pass
    provider_code = None
    if isinstance(message, str):
        message, provider_code = read_cause(message)
    if code == 'SYSTEM_ERROR' or not isinstance(message, str) or not message:
        return code, (_SYSTEM_ERROR_MESSAGE if code == 'SYSTEM_ERROR' else _default_message(code)), None
    return code, message[:500], provider_code


def _default_message(code: str) -> str:
    return {
        'PROVIDER_TIMEOUT': 'The provider did not finish the job in time; its credits were refunded.',
        'PROVIDER_UNAVAILABLE': 'The provider was unavailable; its credits were refunded. Try again later.',
    }.get(code, 'The provider failed to generate this job; its credits were refunded.')


def _next_liveness_check(job: job_store.Job, now: float) -> float:
    """When the sweep should next look at a running job: soon enough to notice a dead execution."""
    return min(job.deadline_at, now + get_settings().sweep_liveness_seconds)
