"""Seeded fault injection shared by the provider simulators.

A `FaultPlan` holds one probability per kind of fault. Simulators call `roll(kind)` (or `pick(stage)` for
the request-level faults) at the point where the fault would happen; a seeded `random.Random` makes a run
reproducible, and every injected fault is counted by kind so a test can assert how many it saw. The kinds
describe what goes wrong on the wire, not which provider it happens to, so every simulator shares them.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field, fields

# Request-level faults, in the order `pick()` tries them: transport failures first, because a connection
# that is reset or never answered cannot also carry an error envelope.
REQUEST_FAULTS = ('reset', 'timeout', 'malformed', 'server_error', 'throttle')
REQUEST_STAGES = ('create', 'status')


class Counters:
    """A thread-safe `name -> count` map; missing names read as 0."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def incr(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + amount

    def __getitem__(self, name: str) -> int:
        with self._lock:
            return self._counts.get(name, 0)

    def get(self, name: str, default: int = 0) -> int:
        with self._lock:
            return self._counts.get(name, default)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def __repr__(self) -> str:
        return f'Counters({self.snapshot()!r})'


@dataclass
class FaultPlan:
    """Probabilities (0..1) of each fault; the default injects nothing."""

    # Answering a create: 429 rate limit, 5xx, an answer later than the client waits, a socket closed
    # without an answer, a 200 whose body is not JSON.
    create_throttle: float = 0.0
    create_server_error: float = 0.0
    create_timeout: float = 0.0
    create_reset: float = 0.0
    create_malformed: float = 0.0
    # The same five on status queries.
    status_throttle: float = 0.0
    status_server_error: float = 0.0
    status_timeout: float = 0.0
    status_reset: float = 0.0
    status_malformed: float = 0.0
    # Callbacks: lost, delivered twice, an older status delivered after the final one.
    callback_drop: float = 0.0
    callback_duplicate: float = 0.0
    callback_reorder: float = 0.0
    # Not a probability: final callbacks are held back this many seconds (0 = sent at once).
    callback_delay_seconds: float = 0.0
    # A result download whose connection closes half way through the file.
    download_fail_midway: float = 0.0
    # A result download that serves undecodable bytes (noise behind an MP4 header) instead of the file.
    download_undecodable: float = 0.0
    # How long a timeout fault stalls before answering; bounded so a stopped simulator never hangs.
    timeout_sleep_seconds: float = 6.0
    seed: int | None = 0
    injected: Counters = field(default_factory=Counters, init=False, repr=False, compare=False)
    _rng: random.Random = field(init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in FAULT_KINDS:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f'FaultPlan.{name} is a probability and must be between 0 and 1, not {value}.')
        if self.callback_delay_seconds < 0 or self.timeout_sleep_seconds < 0:
            raise ValueError('FaultPlan delays must not be negative.')
        self._rng = random.Random(self.seed)

    def roll(self, kind: str) -> bool:
        """Decide whether this fault happens now; counts it when it does."""
        if kind not in FAULT_KINDS:
            raise ValueError(f'unknown fault kind {kind!r}; known: {", ".join(FAULT_KINDS)}')
        probability = getattr(self, kind)
        # No draw for 0 or 1, so enabling one kind does not shift the random sequence of the others.
        if probability <= 0.0:
            return False
        with self._lock:
            hit = probability >= 1.0 or self._rng.random() < probability
        if hit:
            self.injected.incr(kind)
        return hit

    def pick(self, stage: str) -> str | None:
        """The request-level fault for this `create` or `status` request (e.g. 'reset'), or None."""
        if stage not in REQUEST_STAGES:
            raise ValueError(f'unknown request stage {stage!r}; known: {", ".join(REQUEST_STAGES)}')
        for fault in REQUEST_FAULTS:
            if self.roll(f'{stage}_{fault}'):
                return fault
        return None

    def choice(self, options: tuple) -> object:
        """A seeded choice among options (e.g. which 5xx a server_error fault answers)."""
        with self._lock:
            return self._rng.choice(options)


# Every kind `roll()` accepts: the probability fields, i.e. all floats but the two durations.
FAULT_KINDS: tuple[str, ...] = tuple(
    f.name for f in fields(FaultPlan)
    if f.type == 'float' and f.name not in ('callback_delay_seconds', 'timeout_sleep_seconds')
)
