"""Reconciliation: recompute the usage counters from the facts they count and report every difference.

For a user, the expected cells are rebuilt from their jobs (each read again with a consistent read: the index
that lists them may lag) and from their storyboards' scenes that have no job yet (still writing, or canceled
while writing); they must equal the stored cells counter by counter, the owner's day totals must equal the
cells' sums per day, and the ledger's debits and refunds that name a job must equal the credits the cells
count. For the whole service, the sum of every user's cells must also equal the sum of the service-wide shards.

Run it on a quiet service: a job ending between two of its reads shows up as a difference that is gone on
the next run. Checking every user reads the whole table once (a scan for the users), so it is for the
operator's occasional check and the fault tests, not for a request path.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from vidgen.models import UsageCheck, UsageDifference
from vidgen.store import accounts, ledger, usage
from vidgen.store import jobs as job_store
from vidgen.store import storyboards as storyboard_store

_DAY_COUNTERS = ('jobs', 'credits_charged', 'credits_refunded', 'cost_micro_usd')
Counters = dict[str, int]


def check(user_id: str | None = None) -> UsageCheck:
    """Check one user, or every user and the service-wide counters."""
    users = [user_id] if user_id else accounts.all_user_ids()
    differences: list[UsageDifference] = []
    service_expected: dict[str, Counters] = defaultdict(_zeros)
    jobs = 0
    for user in users:
        expected, counted = expected_cells(user)
        jobs += counted
        stored = {str(item['SK']): item for item in usage.all_user_cells(user)}
        differences += _compare('user', user, expected, {sk: _counters(item) for sk, item in stored.items()})
        differences += _check_days(user, expected)
        differences += _check_ledger(user, expected)
        for sort_key, counters in expected.items():
            _add_into(service_expected[_service_key(sort_key)], counters)
    if user_id is None:
        stored_service: dict[str, Counters] = defaultdict(_zeros)
        for item in usage.all_service_cells():
            _add_into(stored_service[str(item['SK'])], _counters(item))
        differences += _compare('service', 'all users', service_expected, stored_service)
    return UsageCheck(users=len(users), jobs=jobs, differences=differences)


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


def _check_ledger(user_id: str, expected: dict[str, Counters]) -> list[UsageDifference]:
    """The ledger's job debits and refunds against what the counters say was charged and refunded."""
    charged = refunded = 0
    for entry in ledger.all_entries(user_id):
        if not entry.get('job_id'):
            continue  # grants
        if entry['type'] == 'debit':
            charged -= int(entry['amount'])
        elif entry['type'] == 'refund':
            refunded += int(entry['amount'])
    counted = _zeros()
    for counters in expected.values():
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
