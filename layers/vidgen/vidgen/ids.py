"""Identifiers and timestamps.

Ids are ULIDs (48-bit millisecond time + 80 random bits, Crockford base32): unique without
coordination, and sorting them sorts by creation time, which the ledger and job listings rely on.
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime, timezone

_CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'


def ulid(now_ms: int | None = None) -> str:
    value = ((now_ms if now_ms is not None else time.time_ns() // 1_000_000) << 80) | secrets.randbits(80)
    return ''.join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def new_job_id() -> str:
    return f'job_{ulid()}'


def now() -> float:
    return time.time()


def iso(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, tz=timezone.utc).isoformat(timespec='milliseconds').replace('+00:00', 'Z')


def now_iso() -> str:
    return iso(now())


def day(epoch_seconds: float) -> str:
    """The UTC date of a moment, YYYY-MM-DD: the day usage is counted under."""
    return datetime.fromtimestamp(epoch_seconds, tz=timezone.utc).date().isoformat()
