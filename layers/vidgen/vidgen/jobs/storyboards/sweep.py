"""The sweep's part for storyboards: every active storyboard whose `sweep_at` passed is looked at, and moved on.

- no execution (the start after the submit transaction was lost): start it (same name, so harmless);
- execution running: look again later;
- execution ended without finishing it (a crash, a step that kept failing): do the rest from here: built-in
  scenes if none were written, the scene jobs, their executions, and the final status once every job ended;
- ended, with its notification not sent (marked `storyboard.notify`): send it once when its execution is no
  longer running (it died before its Notify step, or that step gave up).
"""

from __future__ import annotations

from typing import Protocol

from vidgen import executions, ids
from vidgen.config import get_settings
from vidgen.errors import VidgenError
from vidgen.jobs.storyboards import steps
from vidgen.observability import logger
from vidgen.store import storyboards as store


class Report(Protocol):
    started: list[str]
    finalized: list[str]
    deferred: list[str]
    errors: list[str]


def sweep(report: Report) -> None:
    settings = get_settings()
    now = ids.now()
    for status in store.ACTIVE_STATUSES:
        for storyboard_id in store.needing_attention(status, now, settings.sweep_batch_size):
            try:
                _sweep_one(storyboard_id, report)
            except VidgenError as exc:  # one bad storyboard must not stop the sweep of the others
                logger.warning('sweep could not move a storyboard on', storyboard_id=storyboard_id,
                               error=type(exc).__name__)
                report.errors.append(storyboard_id)
    for storyboard_id in store.needing_attention(store.NOTIFY, now, settings.sweep_batch_size):
        try:
            _sweep_notification(storyboard_id, report)
        except VidgenError as exc:
            logger.warning('sweep could not notify for a storyboard', storyboard_id=storyboard_id,
                           error=type(exc).__name__)
            report.errors.append(storyboard_id)


def _sweep_notification(storyboard_id: str, report: Report) -> None:
    if not store.awaiting_notification(storyboard_id):
        return  # sent meanwhile: the index lags behind the table
    if executions.storyboard_status(storyboard_id) == 'RUNNING':  # its Notify step is at it, with its retries
        store.defer_notify(storyboard_id, ids.now() + get_settings().sweep_liveness_seconds)
        report.deferred.append(storyboard_id)
        return
    steps.notify_once(storyboard_id)


def _sweep_one(storyboard_id: str, report: Report) -> None:
    settings = get_settings()
    storyboard = store.find(storyboard_id)
    if storyboard is None or not storyboard.is_active:
        return
    now = ids.now()
    execution = executions.storyboard_status(storyboard_id)
    if execution is None:
        executions.start_storyboard(storyboard_id)
        store.defer_sweep(storyboard_id, storyboard.status, now + settings.queued_grace_seconds)
        report.started.append(storyboard_id)
        return
    if execution == 'RUNNING':
        store.defer_sweep(storyboard_id, storyboard.status, now + settings.sweep_liveness_seconds)
        report.deferred.append(storyboard_id)
        return
    if steps.create_jobs(storyboard_id)['state'] == 'generating':
        steps.start_jobs(storyboard_id)
    if steps.settle(storyboard_id):
        report.finalized.append(storyboard_id)
        steps.notify_once(storyboard_id)
        return
    # Its jobs are still running (the job sweep looks after them): look again later.
    store.defer_sweep(storyboard_id, store.GENERATING, now + settings.sweep_liveness_seconds)
    report.deferred.append(storyboard_id)
