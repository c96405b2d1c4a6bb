"""Storyboard rules shared by its submit path, the state machine's steps and the sweep.

Kept apart from `submit` so that the storyboard function, which runs the steps, imports neither the API's
pydantic models nor the job submit path that validates them: its cold start is the steps' own imports.
"""

from __future__ import annotations

from vidgen.config import get_settings
from vidgen.store import storyboards as store


def notify_at(storyboard: store.Storyboard, now: float) -> float | None:
    """When the sweep sends an ended storyboard's notification if its execution has not (None: no webhook)."""
    return now + get_settings().sweep_liveness_seconds if storyboard.webhook_url else None
