"""Reads: the model catalog, and for a job's owner one job, the job history, credits with the ledger (usage:
`vidgen.jobs.usage`)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from vidgen import catalog
from vidgen.errors import InvalidParametersError, NotFoundError, UnknownUser
from vidgen.jobs.views import job_view
from vidgen.models import CreditsView, JobList, JobView, LedgerEntry
from vidgen.store import jobs as job_store
from vidgen.store import ledger
from vidgen.store.pages import PageKey, page_key_belongs_to

MAX_PAGE = 100


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

