"""What the job use cases act on besides their arguments: the clock, the stores, executions, providers.

Production code runs with `LIVE`, the real modules. The decisions of submit, poll and sweep take a
`Context` as their last argument, so a unit test passes a fixed clock and in-memory fakes and checks every
branch without moto (`tests/unit/test_decisions.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

from vidgen import callback_tokens, executions, ids
from vidgen.providers.base import VideoProvider
from vidgen.providers.registry import get_provider
from vidgen.store import idempotency, media
from vidgen.store import jobs as job_store
from vidgen.store import ledger as ledger_store
from vidgen.store.idempotency import IdempotencyClaim, IdempotencyRecord
from vidgen.store.jobs import Job, StoredOutput


class JobStore(Protocol):
    def get_job(self, job_id: str, *, consistent: bool = ...) -> Job: ...
    def find_job(self, job_id: str) -> Job | None: ...
    def mark_running(self, job_id: str, task_id: str, now: float, sweep_at: float) -> Job | None: ...
    def defer_sweep(self, job_id: str, status: str, sweep_at: float) -> Job | None: ...
    def jobs_needing_attention(self, status: str, now: float, limit: int) -> list[str]: ...


class Ledger(Protocol):
    def submit_debit(self, job: Job, *, max_active_jobs: int, sweep_at: float,
                     idempotency: IdempotencyClaim | None = ...) -> None: ...
    def settle(self, job: Job, *, status: str, now: float, refund: bool, extra: dict[str, Any]) -> None: ...
    def balance(self, user_id: str, *, consistent: bool = ...) -> int: ...


class Executions(Protocol):
    def start(self, job_id: str) -> bool: ...
    def status(self, job_id: str) -> str | None: ...
    def stop(self, job_id: str, cause: str) -> None: ...


@dataclass(frozen=True)
class Context:
    clock: Callable[[], float]
    jobs: JobStore
    ledger: Ledger
    executions: Executions
    provider: Callable[[str], VideoProvider]
    callback_url: Callable[[str, str], str | None]
    find_idempotency_record: Callable[[str, str, float], IdempotencyRecord | None]
    save_input_image: Callable[[str, str, str, str], str]
    copy_result: Callable[[str, str, str, int, str | None], StoredOutput]
    read_image_head: Callable[[str, int], tuple[bytes, int | None]]


LIVE = Context(
    clock=ids.now, jobs=job_store, ledger=ledger_store, executions=executions, provider=get_provider,
    callback_url=callback_tokens.callback_url, find_idempotency_record=idempotency.find_live,
    save_input_image=media.save_input_image, copy_result=media.copy_result, read_image_head=media.read_image_head,
)
