"""The local EventBridge: fires the template's Schedule events on a time-scaled clock.

moto accepts schedules but never fires them (docs/local-cloud.md), so a daemon thread does. The clock runs
`time_scale` times faster than the wall clock from the moment the ticker starts: `rate(2 minutes)` at
scale 10 fires every 12 s; a `cron(...)` fires at the scaled moments its fields match (UTC, as AWS does).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

_RATE = re.compile(r'rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)')
_CRON = re.compile(r'cron\((.+)\)')
_UNIT_SECONDS = {'minute': 60, 'hour': 3600, 'day': 86400}
_MONTHS = {name: i for i, name in enumerate('JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC'.split(), start=1)}
_WEEKDAYS = {name: i for i, name in enumerate('SUN MON TUE WED THU FRI SAT'.split(), start=1)}  # AWS: 1 = Sunday


def _field(text: str, low: int, high: int, names: dict[str, int] | None = None) -> frozenset[int] | None:
    """The values a cron field allows; None for `*`/`?` (any)."""
    if text in ('*', '?'):
        return None
    values: set[int] = set()
    for part in text.split(','):
        bare = part.upper()
        for name in names or {}:
            bare = bare.replace(name, '')
        if re.search(r'[LW#]', bare):
            raise ValueError(f'cron field {text!r}: L, W and # are not supported locally')
        span, _, step = part.partition('/')
        if span == '*':
            start, end = low, high
        else:
            bounds = [int(names.get(b.upper(), b)) if names else int(b) for b in span.split('-')]
            start, end = bounds[0], bounds[-1] if len(bounds) > 1 or not step else high
        values.update(range(start, end + 1, int(step) if step else 1))
    if not values or min(values) < low or max(values) > high:
        raise ValueError(f'cron field {text!r} is outside {low}-{high}')
    return frozenset(values)


class Cron:
    """AWS's six-field cron: minutes hours day-of-month month day-of-week year."""

    def __init__(self, body: str) -> None:
        fields = body.split()
        if len(fields) != 6:
            raise ValueError(f'cron({body}) needs six fields')
        self.minutes = _field(fields[0], 0, 59)
        self.hours = _field(fields[1], 0, 23)
        self.days = _field(fields[2], 1, 31)
        self.months = _field(fields[3], 1, 12, _MONTHS)
        self.weekdays = _field(fields[4], 1, 7, _WEEKDAYS)
        self.years = _field(fields[5], 1970, 2199)

    def _day_matches(self, day: dt.date) -> bool:
        weekday = day.isoweekday() % 7 + 1  # Sunday -> 1
        return ((self.months is None or day.month in self.months) and (self.years is None or day.year in self.years)
                and (self.days is None or day.day in self.days) and (self.weekdays is None or weekday in self.weekdays))

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        start = (moment + dt.timedelta(minutes=1)).replace(second=0, microsecond=0)
        hours = sorted(self.hours) if self.hours is not None else range(24)
        minutes = sorted(self.minutes) if self.minutes is not None else range(60)
        day = start.date()
        for _ in range(366 * 5):
            if self._day_matches(day):
                for hour in hours:
                    for minute in minutes:
                        candidate = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=dt.timezone.utc)
                        if candidate >= start:
                            return candidate
            day += dt.timedelta(days=1)
        raise ValueError('the cron expression never fires in the next five years')


def next_fire(expression: str, after: dt.datetime, origin: dt.datetime) -> dt.datetime:
    """The first firing strictly after `after`; rates count from `origin` (when the schedule started)."""
    rate = _RATE.fullmatch(expression.strip())
    if rate:
        period = int(rate.group(1)) * _UNIT_SECONDS[rate.group(2).rstrip('s')]
        if period <= 0:
            raise ValueError(f'{expression}: the rate must be positive')
        elapsed = (after - origin).total_seconds()
        return origin + dt.timedelta(seconds=(int(elapsed // period) + 1) * period)
    cron = _CRON.fullmatch(expression.strip())
    if cron:
        return Cron(cron.group(1)).next_after(after)
    raise ValueError(f'Unsupported schedule expression {expression!r} (use rate(...) or cron(...))')


class Ticker:
    """Calls `fire()` whenever `expression` is due on a clock `time_scale` times faster than real time."""

    def __init__(self, expression: str, fire: Callable[[], object], *, time_scale: float, name: str = 'schedule') -> None:
        next_fire(expression, dt.datetime.now(dt.timezone.utc), dt.datetime.now(dt.timezone.utc))  # validate now
        self.expression = expression
        self.fire = fire
        self.time_scale = time_scale
        self.fired = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f'vidgen-{name}', daemon=True)

    def start(self) -> Ticker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        real_origin = time.monotonic()
        origin = dt.datetime.now(dt.timezone.utc)
        scheduled = origin
        while not self._stop.is_set():
            scheduled = next_fire(self.expression, scheduled, origin)
            real_due = real_origin + (scheduled - origin).total_seconds() / self.time_scale
            if self._stop.wait(max(0.0, real_due - time.monotonic())):
                return
            try:
                self.fire()
                self.fired += 1
            except Exception:  # noqa: BLE001 - a failed run is logged and retried at the next firing, like EventBridge
                logger.exception('scheduled %s failed', self.expression)
