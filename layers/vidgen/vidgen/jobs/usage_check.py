"""Reconciliation: recompute the usage counters from the facts they count and report every difference.

For a user, the expected cells are rebuilt from their jobs (each read again with a consistent read: the index
that lists them may lag) and from their storyboards' scenes that have no job yet (still writing, or canceled
while writing); they must equal the stored cells counter by counter, the owner's day totals must equal the
cells' sums per day, and the ledger's debits and refunds that name a job must equal the credits the cells
count. For the whole service, the sum of every user's cells must also equal the sum of the service-wide shards.

Each call is bounded: one user, a page of users (the CLI follows `next_cursor`), or the service-wide sums.
Run it on a quiet service: a job ending between two of its reads shows up as a difference that is gone on
the next run. Checking every user, page by page, and the service-wide sums each read the whole table once
(scans), so this is for the operator's occasional check and the fault tests, not for a request path.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from vidgen.errors import InvalidParametersError
from vidgen.models import UsageCheck, UsageDifference
from vidgen.store import accounts, ledger, usage
from vidgen.store import jobs as job_store
from vidgen.store import storyboards as storyboard_store
from vidgen.store.pages import PageKey, is_table_key

_DAY_COUNTERS = ('jobs', 'credits_charged', 'credits_refunded', 'cost_micro_usd')
Counters = dict[str, int]


USERS_PER_PAGE = 10


def check_user(user_id: str) -> UsageCheck:
    """One user's cells against their jobs, storyboards and ledger, and their day totals against their cells."""
    return _check_users([user_id], next_cursor=None)


def check_users_page(cursor: str | None) -> UsageCheck:
    """The next few users (at least USERS_PER_PAGE, unless the table ends), each checked as `check_user`;
    `next_cursor` goes on, None after the last user."""
    start = decode_cursor(cursor)
    users, last = accounts.user_ids_page(start, at_least=USERS_PER_PAGE)
    return _check_users(users, next_cursor=encode_cursor(last))


def check_service() -> UsageCheck:
    """The service-wide shards against the sum of every user's cells (read with one scan of the table)."""
    summed: dict[str, Counters] = defaultdict(_zeros)
    users = set()
    for item in usage.every_user_cell():
        users.add(str(item['PK']))
        _add_into(summed[_service_key(str(item['SK']))], _counters(item))
    stored: dict[str, Counters] = defaultdict(_zeros)
    for item in usage.all_service_cells():
        _add_into(stored[str(item['SK'])], _counters(item))
    return UsageCheck(users=len(users), jobs=sum(c['jobs'] for c in summed.values()),
                      differences=_compare('service', 'all users', summed, stored), next_cursor=None)


def _check_users(users: list[str], *, next_cursor: str | None) -> UsageCheck:
    differences: list[UsageDifference] = []
    jobs = 0
    for user in users:
        expected, counted = expected_cells(user)
        jobs += counted
        stored = {str(item['SK']): _counters(item) for item in usage.all_user_cells(user)}
        differences += _compare('user', user, expected, stored)
        differences += _check_days(user, expected)
        differences += _check_ledger(user, stored)
    return UsageCheck(users=len(users), jobs=jobs, differences=differences, next_cursor=next_cursor)


def encode_cursor(key: PageKey | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(key, separators=(',', ':')).encode()).decode().rstrip('=')


def decode_cursor(cursor: str | None) -> PageKey | None:
    if not cursor:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + '=' * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        key = None
    if not is_table_key(key):
        raise InvalidParametersError('The cursor is not valid; pass next_cursor from the previous page.',
                                     details={'field': 'cursor'})
    return key


def expected_cells(user_id: str) -> tuple[dict[str, Counters], int]:
    """The user's cells as their jobs and storyboards say they must be (by sort key), and how many jobs and
    job-less scenes that took."""
    cells: dict[str, Counters] = defaultdict(_zeros)
    counted = 0
    for job_id in job_store.all_job_ids_of(user_id):
        job = job_store.find_job(job_id)
        if job is None:
            continue
        counted += 1
        counters = cells[job_store.usage_cell(job).sort_key()]
        _add_into(counters, usage.submitted(1, job.credits).counters())
        if not job.is_active:
            ending = job_store.usage_ending(job, status=job.status, completed_at=job.completed_at or job.updated_at,
                                            refunded=job.refunded, outputs=job_store.outputs_value(job.outputs))
            _add_into(counters, ending.counters())
    for storyboard_id in storyboard_store.all_ids_of(user_id):
        storyboard = storyboard_store.find(storyboard_id)
        if storyboard is None:
            continue
        waiting = [j for j in storyboard.job_ids if job_store.find_job(j) is None]
        if not waiting:
            continue
        counted += len(waiting)
        counters = cells[storyboard.usage_cell().sort_key()]
        _add_into(counters, usage.submitted(len(waiting), len(waiting) * storyboard.price).counters())
        if storyboard.status == 'canceled':  # canceled while writing: every scene refunded by the storyboard
            refunded = len(waiting) * storyboard.price
            _add_into(counters, usage.ended('canceled', count=len(waiting), refunded=refunded).counters())
    return dict(cells), counted


def _check_days(user_id: str, expected: dict[str, Counters]) -> list[UsageDifference]:
    per_day: dict[str, Counters] = defaultdict(lambda: dict.fromkeys(_DAY_COUNTERS, 0))
    for sort_key, counters in expected.items():
        day = sort_key.split('#')[1]
        for name in _DAY_COUNTERS:
            per_day[f'DAY#{day}#{user_id}'][name] += counters[name]
    stored = {str(item['SK']): {name: int(item.get(name, 0)) for name in _DAY_COUNTERS}
              for item in usage.user_days_of(user_id)}
    return _compare('user-day', user_id, per_day, stored, names=_DAY_COUNTERS)


def _check_ledger(user_id: str, stored: dict[str, Counters]) -> list[UsageDifference]:
    """The ledger's job debits and refunds against what the stored counters say was charged and refunded."""
    charged = refunded = 0
    for entry in ledger.all_entries(user_id):
        if not entry.get('job_id'):
            continue  # grants
        if entry['type'] == 'debit':
            charged -= int(entry['amount'])
        elif entry['type'] == 'refund':
            refunded += int(entry['amount'])
    counted = _zeros()
    for counters in stored.values():
        _add_into(counted, counters)
    return [UsageDifference(scope='ledger', key=user_id, figure=figure, expected=from_ledger, stored=in_counters)
            for figure, from_ledger, in_counters in (('credits_charged', charged, counted['credits_charged']),
                                                     ('credits_refunded', refunded, counted['credits_refunded']))
            if from_ledger != in_counters]


def _compare(scope: str, who: str, expected: dict[str, Counters], stored: dict[str, Counters],
             names: Iterable[str] = usage.COUNTERS) -> list[UsageDifference]:
    differences = []
    for sort_key in sorted(set(expected) | set(stored)):
        want = expected.get(sort_key, {})
        have = stored.get(sort_key, {})
        for name in names:
            if want.get(name, 0) != have.get(name, 0):
                differences.append(UsageDifference(scope=f'{scope} {who}', key=sort_key, figure=name,
                                                   expected=want.get(name, 0), stored=have.get(name, 0)))
    return differences


def _service_key(user_sort_key: str) -> str:
    """A user cell's sort key without its API key part: the service-wide cell it also counts in."""
    return user_sort_key.rsplit('#', 1)[0]


def _counters(item: dict[str, Any]) -> Counters:
    return {name: int(item.get(name, 0)) for name in usage.COUNTERS}


def _zeros() -> Counters:
    return dict.fromkeys(usage.COUNTERS, 0)


def _add_into(total: Counters, counters: dict[str, int]) -> None:
    for name, amount in counters.items():
        total[name] += amount
