"""The storyboard state machine's steps, also run by the sweep. Each reads the storyboard first and does
nothing that already happened, so a retried step, a restarted execution, the sweep and a cancel can run in
any order: scenes are saved once (first writer wins), the jobs are created in the same transaction that
moves the storyboard to `generating`, job executions are named by the job id, and the final status is set
once.

Settling: the machine checks the scene jobs in a bounded wait/poll loop (STORYBOARD_CHECK_INTERVALS), not
by a callback from the job machine, so the job machine stays as it is and a storyboard can never wait on a
signal that got lost; each check is one consistent read per scene (at most six).
"""

from __future__ import annotations

from typing import Any

from vidgen import catalog, executions, ids
from vidgen.config import get_settings
from vidgen.errors import StoryboardMovedOn, WebhookDeliveryError
from vidgen.jobs import notifications
from vidgen.jobs.storyboards import writer
from vidgen.jobs.storyboards.llm import SceneBrief
from vidgen.jobs.storyboards.rules import notify_at
from vidgen.observability import MetricUnit, logger, metrics
from vidgen.store import jobs as job_store
from vidgen.store import media
from vidgen.store import storyboards as store

CRASHED_WRITER_NOTE = 'Writing the scenes failed unexpectedly'
SWEPT_WRITER_NOTE = 'The scene writer did not finish in time'


def brief(storyboard: store.Storyboard, *, with_image: bool) -> SceneBrief:
    spec = catalog.get_model(storyboard.model)
    image = storyboard.product.get('image')
    return SceneBrief(
        product_name=storyboard.product['name'], product_description=storyboard.product['description'],
        style=storyboard.style, scene_count=storyboard.scene_count, model_name=spec.name,
        mode_name=catalog.MODE_NAMES[storyboard.kind], duration=storyboard.params.get('duration'),
        max_prompt_chars=spec.max_prompt_chars,
        image=media.load_input_image(image) if image and with_image else None,
    )


def write_scenes(storyboard_id: str) -> None:
    """Ask the LLM (or fall back) and save the scenes, unless they are saved already or the storyboard moved on."""
    storyboard = store.get(storyboard_id)
    if storyboard.status != store.WRITING or storyboard.scenes_source:
        return
    _save(storyboard, writer.write_scenes(brief(storyboard, with_image=get_settings().llm_vision)))


def write_fallback(storyboard_id: str, note: str = CRASHED_WRITER_NOTE) -> None:
    """The built-in scenes, when writing them with the LLM did not end (a crash, a Lambda timeout)."""
    storyboard = store.get(storyboard_id)
    if storyboard.status != store.WRITING or storyboard.scenes_source:
        return
    _save(storyboard, writer.fallback(brief(storyboard, with_image=False), note))


def _save(storyboard: store.Storyboard, written: writer.WrittenScenes) -> None:
    now = ids.now()
    try:
        store.save_scenes(storyboard.id, written.scenes, source=written.source, note=written.note, now=now,
                          sweep_at=now + get_settings().sweep_liveness_seconds)
    except StoryboardMovedOn:
        logger.info('scenes not saved: already written, or the storyboard moved on', storyboard_id=storyboard.id)


def create_jobs(storyboard_id: str) -> dict[str, str]:
    """One ordinary job per scene, created with the move to `generating`: {state: generating | settled}."""
    settings = get_settings()
    storyboard = store.get(storyboard_id)
    if storyboard.status == store.WRITING and not storyboard.scenes_source:
        write_fallback(storyboard_id, SWEPT_WRITER_NOTE)  # only the sweep gets here: the machine writes first
        storyboard = store.get(storyboard_id)
    if storyboard.status != store.WRITING:
        return {'state': 'generating' if storyboard.status == store.GENERATING else 'settled'}
    now = ids.now()
    jobs = [job_store.Job(
        id=storyboard.job_ids[scene.index], owner=storyboard.owner, status='queued', model=storyboard.model,
        provider=storyboard.provider, provider_model=storyboard.provider_model, kind=storyboard.kind,
        prompt=scene.prompt, params=storyboard.params, credits=storyboard.price, created_at=now, updated_at=now,
        deadline_at=now + settings.job_deadline_seconds, image=storyboard.product.get('image'),
        metadata=storyboard.metadata, storyboard_id=storyboard.id, api_key_id=storyboard.api_key_id,
        usage_day=storyboard.usage_day, provider_cost_micro_usd=storyboard.provider_cost_micro_usd,
    ) for scene in storyboard.scenes]
    try:
        store.create_scene_jobs(storyboard, jobs, now=now, job_sweep_at=now + settings.queued_grace_seconds,
                                sweep_at=now + settings.sweep_liveness_seconds)
    except StoryboardMovedOn:
        status = store.get(storyboard_id).status  # another step created them, or a cancel came first
        return {'state': 'generating' if status == store.GENERATING else 'settled'}
    metrics.add_metric(name='StoryboardJobsCreated', unit=MetricUnit.Count, value=len(jobs))
    logger.info('storyboard scene jobs created', storyboard_id=storyboard_id, jobs=len(jobs))
    return {'state': 'generating'}


def start_jobs(storyboard_id: str) -> None:
    """Start every queued scene job's execution (by job id: a repeat start is harmless)."""
    storyboard = store.get(storyboard_id)
    for job in store.scene_jobs(storyboard).values():
        if job.status == 'queued':
            executions.start(job.id)


def check(storyboard_id: str, attempt: int) -> dict[str, Any]:
    """One look at the scene jobs: {state: generating | ended | settled, attempt, wait_seconds}."""
    intervals = get_settings().storyboard_check_intervals
    result = {'attempt': attempt + 1, 'wait_seconds': int(intervals[min(attempt, len(intervals) - 1)])}
    storyboard = store.get(storyboard_id)
    if storyboard.status != store.GENERATING:
        return result | {'state': 'settled'}
    jobs = store.scene_jobs(storyboard)
    ended = len(jobs) == storyboard.scene_count and not any(job.is_active for job in jobs.values())
    return result | {'state': 'ended' if ended else 'generating'}


def final_status(jobs: list[job_store.Job]) -> str:
    succeeded = sum(job.status == 'succeeded' for job in jobs)
    if succeeded == len(jobs):
        return 'succeeded'
    if succeeded:
        return 'partial'
    return 'canceled' if all(job.status == 'canceled' for job in jobs) else 'failed'


def settle(storyboard_id: str) -> bool:
    """Give a storyboard whose scene jobs all ended its final status (once). False if not settled by this call."""
    storyboard = store.get(storyboard_id)
    jobs = list(store.scene_jobs(storyboard).values())
    if storyboard.status != store.GENERATING or len(jobs) != storyboard.scene_count or any(j.is_active for j in jobs):
        return False
    status = final_status(jobs)
    now = ids.now()
    try:
        store.finish(storyboard_id, status, now=now, notify_at=notify_at(storyboard, now))
    except StoryboardMovedOn:
        return False
    metrics.add_metric(name=f'Storyboard{status.capitalize()}', unit=MetricUnit.Count, value=1)
    logger.info('storyboard ended', storyboard_id=storyboard_id, status=status)
    return True


def notify(storyboard_id: str) -> bool:
    """Send the storyboard's one `storyboard.<status>` notification; raises `WebhookDeliveryError` to be retried.
    Once it is sent, or can never be (410, a refused URL), the sweep no longer looks for it."""
    storyboard = store.get(storyboard_id)
    if not storyboard.webhook_url or storyboard.is_active:
        return False
    # The body is the API's view of the storyboard, a pydantic model: imported by the one step that sends it,
    # so the function's other steps (and its cold start) never build the API's models.
    from vidgen.jobs.storyboards.views import storyboard_view

    message_id, body = notifications.message(storyboard.id, f'storyboard.{storyboard.status}',
                                        storyboard_view(storyboard).model_dump(mode='json'))
    sent = notifications.send(storyboard.webhook_url, message_id, body)
    store.notified(storyboard_id)
    return sent


def notify_once(storyboard_id: str) -> None:
    """Best-effort notification from the sweep (a storyboard it settled, or one whose execution ended before
    notifying): one attempt, then the sweep no longer looks for it."""
    try:
        notify(storyboard_id)
    except WebhookDeliveryError:
        logger.warning('storyboard webhook not delivered', storyboard_id=storyboard_id)
        store.notified(storyboard_id)
