"""Reads: the model catalog, and for a job's owner one job, the job history, credits with the ledger and usage."""

from __future__ import annotations

import base64
import binascii
import json
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

from vidgen import catalog, ids
from vidgen.errors import InvalidParametersError, NotFoundError, UnknownUser
from vidgen.jobs.views import job_view
from vidgen.models import CreditsView, JobList, JobView, LedgerEntry
from vidgen.store import jobs as job_store
from vidgen.store import ledger
from vidgen.store.pages import PageKey, page_key_belongs_to

MAX_PAGE = 100
MAX_USAGE_DAYS = 90
MAX_USAGE_JOBS = 10_000


def list_models() -> list[dict[str, Any]]:
    """Every model as GET /v1/models shows it: inputs, parameters and prices, not how the provider is driven."""
    return [spec.public_view() for spec in catalog.all_models()]


def get_job(owner: str, job_id: str) -> JobView:
    job = job_store.find_job(job_id)
    if job is None or job.owner != owner:
        # Another user's job is as invisible as a job that does not exist.
        raise NotFoundError(f'No job {job_id!r}.')
    return job_view(job)


def list_jobs(owner: str, *, status: str | None, limit: int, cursor: str | None) -> JobList:
    jobs, last_key = job_store.list_user_jobs(owner, status=status, limit=limit,
                                              cursor=decode_cursor(cursor, owner, ('owner',)))
    return JobList(jobs=[job_view(j) for j in jobs], next_cursor=encode_cursor(last_key))


def get_credits(owner: str, *, limit: int, cursor: str | None) -> CreditsView:
    entries, last_key = ledger.ledger_page(owner, limit=limit, cursor=decode_cursor(cursor, owner, ()))
    try:
        balance = ledger.balance(owner)
    except UnknownUser as exc:
        raise NotFoundError(f'No user {owner!r}.') from exc
    return CreditsView(balance=balance, ledger=[LedgerEntry(**e) for e in entries], next_cursor=encode_cursor(last_key))


def get_usage(owner: str, *, start: str | None, end: str | None) -> dict[str, Any]:
    """Usage over a window (default: the last 30 days): totals, per model, per kind, per day."""
    end_at = _parse_time(end, 'to') if end else ids.now()
    start_at = _parse_time(start, 'from') if start else end_at - 30 * 86400
    if start_at >= end_at:
        raise InvalidParametersError('`from` must be before `to`.', details={'field': 'from'})
    if end_at - start_at > MAX_USAGE_DAYS * 86400:
        raise InvalidParametersError(f'A usage window may span at most {MAX_USAGE_DAYS} days.', details={'field': 'from'})
    jobs = job_store.jobs_created_between(owner, start_at, end_at, max_items=MAX_USAGE_JOBS)
    totals = _usage_bucket()
    by_model: dict[str, dict[str, Any]] = defaultdict(_usage_bucket)
    by_kind: dict[str, dict[str, Any]] = defaultdict(_usage_bucket)
    by_day: dict[str, dict[str, Any]] = defaultdict(_usage_bucket)
    for job in jobs:
        day = datetime.fromtimestamp(job.created_at, tz=timezone.utc).date().isoformat()
        for bucket in (totals, by_model[job.model], by_kind[job.kind], by_day[day]):
            _count(bucket, job)
    for bucket in (totals, *by_model.values(), *by_kind.values(), *by_day.values()):
        bucket.pop('_seconds')
    return {
        'from': ids.iso(start_at), 'to': ids.iso(end_at), 'truncated': len(jobs) >= MAX_USAGE_JOBS,
        'totals': totals, 'by_model': dict(by_model), 'by_kind': dict(by_kind),
        'by_day': [{'date': day, **bucket} for day, bucket in sorted(by_day.items())],
    }


def _usage_bucket() -> dict[str, Any]:
    return {'jobs': 0, 'succeeded': 0, 'failed': 0, 'canceled': 0, 'active': 0, 'credits_charged': 0,
            'credits_refunded': 0, 'credits_net': 0, 'output_bytes': 0, 'average_seconds': None, '_seconds': 0.0}


def _count(bucket: dict[str, Any], job: job_store.Job) -> None:
    bucket['jobs'] += 1
    bucket['active' if job.is_active else job.status] += 1
    bucket['credits_charged'] += job.credits
    bucket['credits_refunded'] += job.credits if job.refunded else 0
    bucket['credits_net'] = bucket['credits_charged'] - bucket['credits_refunded']
    bucket['output_bytes'] += sum(o.bytes for o in job.outputs)
    if job.status == 'succeeded' and job.completed_at:
        bucket['_seconds'] += job.completed_at - job.created_at
        bucket['average_seconds'] = round(bucket['_seconds'] / bucket['succeeded'], 1)


def _parse_time(value: str, field: str) -> float:
    try:
        parsed = datetime.fromisoformat(value.replace('Z', '+00:00'))
    except ValueError as exc:
        raise InvalidParametersError(f'`{field}` must be an ISO 8601 date or time, e.g. 2026-11-01.',
                                     details={'field': field}) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def encode_cursor(last_key: PageKey | None) -> str | None:
    if not last_key:
        return None
    return base64.urlsafe_b64encode(json.dumps(last_key, separators=(',', ':')).encode()).decode().rstrip('=')


def decode_cursor(cursor: str | None, owner: str, owner_fields: tuple[str, ...]) -> PageKey | None:
    """A cursor is the last key of the previous page. It must be well formed and the caller's own."""
    if not cursor:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + '=' * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        key = None
    if not page_key_belongs_to(key, owner, owner_fields):
        raise InvalidParametersError('The cursor is not valid; pass next_cursor from the previous page.',
                                     details={'field': 'cursor'})
    return key

