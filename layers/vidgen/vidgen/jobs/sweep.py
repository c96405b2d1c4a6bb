"""The scheduled sweep: the last line of defence, so that every job reaches a final state.

It reads only the sparse `Sweep` index (active jobs and storyboards whose `sweep_at` has passed; storyboards:
`vidgen.jobs.storyboards.sweep`) and, per job:
- queued, no execution: the start was lost (a crash after the credit transaction) -> start it (same name,
  so harmless if it did start meanwhile);
- queued or running, execution still running, before the deadline -> look again later;
- execution gone (failed, aborted, crashed) or past the deadline -> settle the job here: ask the provider,
  finalize if it finished, fail and refund if it failed or the deadline passed, else look again later.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vidgen.config import get_settings
from vidgen.errors import ProviderError, ProviderTimeoutError, VidgenError
from vidgen.jobs import tasks
from vidgen.jobs.context import LIVE, Context
from vidgen.jobs.storyboards import sweep as storyboard_sweep
from vidgen.observability import MetricUnit, logger, metrics
from vidgen.store import jobs as job_store


@dataclass
class SweepReport:
    started: list[str] = field(default_factory=list)
    finalized: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {k: v for k, v in self.__dict__.items()}


def sweep(ctx: Context = LIVE) -> SweepReport:
    report = SweepReport()
    sweep_jobs(report, ctx)
    storyboard_sweep.sweep(report)
    for name in ('started', 'finalized', 'failed'):
        if getattr(report, name):
            metrics.add_metric(name=f'Sweep{name.capitalize()}', unit=MetricUnit.Count, value=len(getattr(report, name)))
    logger.info('sweep done', extra={k: len(v) for k, v in report.as_dict().items()})
    return report


def sweep_jobs(report: SweepReport, ctx: Context = LIVE) -> None:
    """The jobs part of the sweep: every active job whose check time has passed, one at a time."""
    settings = get_settings()
    now = ctx.clock()
    for status in ('queued', 'running'):
        for job_id in ctx.jobs.jobs_needing_attention(status, now, settings.sweep_batch_size):
            try:
                _sweep_job(job_id, report, ctx)
            except VidgenError as exc:  # one bad job must not stop the sweep of the others
                logger.warning('sweep could not settle a job', job_id=job_id, error=type(exc).__name__)
                report.errors.append(job_id)


def _sweep_job(job_id: str, report: SweepReport, ctx: Context) -> None:
    settings = get_settings()
    job = ctx.jobs.find_job(job_id)
    if job is None or not job.is_active:
        return
    now = ctx.clock()
    execution = ctx.executions.status(job_id)
    if job.status == 'queued' and execution is None and now < job.deadline_at:
        ctx.executions.start(job_id)
        ctx.jobs.defer_sweep(job_id, 'queued', now + settings.queued_grace_seconds)
        report.started.append(job_id)
        return
    if execution == 'RUNNING' and now < job.deadline_at:
        ctx.jobs.defer_sweep(job_id, job.status, min(job.deadline_at, now + settings.sweep_liveness_seconds))
        report.deferred.append(job_id)
        return
    _settle_here(job, now, report, ctx)


def _settle_here(job: job_store.Job, now: float, report: SweepReport, ctx: Context) -> None:
    """The execution cannot finish this job (gone, or out of time): finish it from here."""
    settings = get_settings()
    try:
        state = _provider_state(job, ctx)
        if state == 'succeeded':
            outcome = tasks.finalize_here(job)
            if outcome is not None:
                (report.finalized if outcome == 'succeeded' else report.failed).append(job.id)
                tasks.notify_once(job.id, ctx)
            return
        if now >= job.deadline_at:
            raise ProviderTimeoutError(f'The provider did not finish the job within '
                                       f'{settings.job_deadline_seconds // 60} minutes; its credits were refunded.')
        if state == 'never-created':
            # Its execution ended before creating the provider task: nothing will ever run it.
            raise ProviderError('The job could not be started at the provider; its credits were refunded.')
    except ProviderError as exc:
        if exc.retryable and now < job.deadline_at:
            ctx.jobs.defer_sweep(job.id, job.status, now + tasks.poll_interval(0))
            report.deferred.append(job.id)
            return
        if tasks.fail_from_error(job, exc, ctx):
            report.failed.append(job.id)
            tasks.notify_once(job.id, ctx)
        ctx.executions.stop(job.id, 'settled by the sweep')
        return
    ctx.jobs.defer_sweep(job.id, job.status, min(job.deadline_at, now + tasks.poll_interval(1)))
    report.deferred.append(job.id)


def _provider_state(job: job_store.Job, ctx: Context) -> str:
    """'succeeded', 'running' or 'never-created'; raises the task's typed error if it failed."""
    if not job.provider_task_id:
        return 'never-created'
    task = tasks.fetch_task(job, ctx=ctx)
    tasks.raise_if_failed(task)
    return 'succeeded' if task.state == 'succeeded' else 'running'
