"""Usage reports, read from the usage counters only (`vidgen.store.usage`): a report reads the cells of the
days in its window (per user, or every shard of the service-wide ones), never a job, so it costs the same for
ten jobs as for a million.

Every group is a sum of cells; percentiles come from the cells' fixed histogram buckets (see
`usage.SECONDS_BOUNDS`): a percentile is the upper bound of the bucket its rank falls in.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta, timezone
from typing import Any

from vidgen import catalog, ids
from vidgen.errors import InvalidParametersError
from vidgen.models import ServiceUsageReport, TopUser, UsageDay, UsageFigures, UsageFilters, UsageReport
from vidgen.store import usage

MAX_DAYS = 90
DEFAULT_DAYS = 30
MAX_TOP_USERS = 100
_NO_KEY = 'none'  # by_api_key's group for jobs submitted before keys had ids


def user_report(owner: str, *, start: str | None, end: str | None, model: str | None,
                type_: str | None) -> UsageReport:
    first, last = window(start, end)
    cells = _matching(usage.user_cells(owner, first.isoformat(), last.isoformat()), model, type_)
    groups = _groups(cells, first, last)
    by_key = _group_by(cells, lambda c: str(c.get('api_key_id') or _NO_KEY))
    return UsageReport(**groups, by_api_key=by_key, filters=UsageFilters(model=model, type=type_))


def service_report(*, start: str | None, end: str | None, model: str | None, type_: str | None,
                   top: int) -> ServiceUsageReport:
    first, last = window(start, end)
    cells = _matching(usage.service_cells(first.isoformat(), last.isoformat()), model, type_)
    return ServiceUsageReport(**_groups(cells, first, last), filters=UsageFilters(model=model, type=type_),
                              top_users=top_users(usage.user_days(first.isoformat(), last.isoformat()), top))


def top_users(days: Iterable[dict[str, Any]], top: int) -> list[TopUser]:
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for item in days:
        for name in ('jobs', 'credits_charged', 'credits_refunded', 'cost_micro_usd'):
            totals[str(item['user_id'])][name] += int(item.get(name, 0))
    ranked = sorted(totals.items(),
                    key=lambda pair: (-(pair[1]['credits_charged'] - pair[1]['credits_refunded']), pair[0]))
    return [TopUser(user_id=user, jobs=t['jobs'], credits_charged=t['credits_charged'],
                    credits_refunded=t['credits_refunded'], credits_net=t['credits_charged'] - t['credits_refunded'],
                    provider_cost_usd=_usd(t['cost_micro_usd']))
            for user, t in ranked[:top]]


def window(start: str | None, end: str | None) -> tuple[date, date]:
    """The report's first and last UTC day (both included): by default the last 30 days, today included."""
    last = _day(end, 'to') if end else datetime.fromtimestamp(ids.now(), tz=timezone.utc).date()
    first = _day(start, 'from') if start else last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise InvalidParametersError('`from` must not be after `to`.', details={'field': 'from'})
    if (last - first).days + 1 > MAX_DAYS:
        raise InvalidParametersError(f'A usage window may span at most {MAX_DAYS} days.', details={'field': 'from'})
    return first, last


def figures(counters: dict[str, int]) -> UsageFigures:
    """A group's figures from its summed counters."""
    ended = counters['succeeded'] + counters['failed'] + counters['canceled']
    histogram = [counters[f'h{i:02d}'] for i in range(usage.BUCKETS)]
    return UsageFigures(
        jobs=counters['jobs'], succeeded=counters['succeeded'], failed=counters['failed'],
        canceled=counters['canceled'], active=counters['jobs'] - ended,
        credits_charged=counters['credits_charged'], credits_refunded=counters['credits_refunded'],
        credits_net=counters['credits_charged'] - counters['credits_refunded'],
        provider_cost_usd=_usd(counters['cost_micro_usd']), output_bytes=counters['output_bytes'],
        seconds_p50=percentile(histogram, 0.50), seconds_p95=percentile(histogram, 0.95),
    )


def percentile(histogram: list[int], q: float) -> int | None:
    """The upper bound of the bucket holding the q-th of the counted times (the overflow bucket reads as the
    last bound); None when nothing was counted."""
    count = sum(histogram)
    if not count:
        return None
    rank = max(1, math.ceil(q * count))
    seen = 0
    for index, in_bucket in enumerate(histogram):
        seen += in_bucket
        if seen >= rank:
            return usage.SECONDS_BOUNDS[min(index, len(usage.SECONDS_BOUNDS) - 1)]
    return usage.SECONDS_BOUNDS[-1]


def sum_counters(cells: Iterable[dict[str, Any]]) -> dict[str, int]:
    total = dict.fromkeys(usage.COUNTERS, 0)
    for cell in cells:
        for name in usage.COUNTERS:
            total[name] += int(cell.get(name, 0))
    return total


# --- helpers ----------------------------------------------------------------------------------------------------


def _groups(cells: list[dict[str, Any]], first: date, last: date) -> dict[str, Any]:
    per_day: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for cell in cells:
        per_day[str(cell['day'])].append(cell)
    days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    return {
        'from': first.isoformat(), 'to': last.isoformat(), 'totals': figures(sum_counters(cells)),
        'by_day': [UsageDay(date=day, **figures(sum_counters(per_day.get(day, []))).model_dump()) for day in days],
        'by_model': _group_by(cells, lambda c: str(c['model'])),
        'by_kind': _group_by(cells, lambda c: str(c['kind'])),
        'by_type': _group_by(cells, lambda c: str(c['type'])),
        'by_duration': _group_by([c for c in cells if c.get('duration') is not None and c['type'] == 'video'],
                                 lambda c: str(c['duration'])),
    }


def _group_by(cells: list[dict[str, Any]], group: Callable[[dict[str, Any]], str]) -> dict[str, UsageFigures]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for cell in cells:
        grouped[group(cell)].append(cell)
    return {name: figures(sum_counters(members)) for name, members in sorted(grouped.items())}


def _matching(cells: list[dict[str, Any]], model: str | None, type_: str | None) -> list[dict[str, Any]]:
    if model is not None:
        catalog.get_model(model)  # an unknown model id is a 422 naming the known ones
    return [c for c in cells if (model is None or c['model'] == model) and (type_ is None or c['type'] == type_)]


def _day(value: str, field: str) -> date:
    """A UTC day from a date (YYYY-MM-DD) or a moment (ISO 8601; its UTC date)."""
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        parsed = datetime.fromisoformat(value.replace('Z', '+00:00'))
    except ValueError as exc:
        raise InvalidParametersError(f'`{field}` must be a date (YYYY-MM-DD) or an ISO 8601 time.',
                                     details={'field': field}) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc).date()


def _usd(micro_usd: int) -> float:
    return round(micro_usd / 1_000_000, 6)
