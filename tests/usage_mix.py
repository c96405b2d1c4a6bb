"""A known mix of jobs for the usage tests, and the figures it must give.

One user, two API keys, four models (Kling and Kie, video and image), two durations, a failure (the Kling
simulator's content-policy refusal), a cancel and an image job. The credits and provider costs below are the
catalog's (catalog.json's `prices` and `provider_prices`), written out: if the catalog changes, this must be
changed on purpose. What the jobs themselves decide (result sizes, how long they took) is read from the job
views, a source independent of the usage counters.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from support import Api

# (key: 'first' or 'second', request, expected end)
MIX: list[tuple[str, dict[str, Any], str]] = [
    ('first', {'model': 'kling-v2-6', 'prompt': 'a lighthouse at dawn', 'duration': 5}, 'succeeded'),
    ('first', {'model': 'kling-v2-6', 'prompt': 'a longer lighthouse', 'duration': 10}, 'succeeded'),
    ('second', {'model': 'kling-v1-6', 'prompt': 'refused [sim:content-policy]', 'duration': 5}, 'failed'),
    ('second', {'model': 'kling-v2-6', 'prompt': 'canceled [sim:slow=60]', 'duration': 5}, 'canceled'),
    ('second', {'model': 'seedream-4-5', 'prompt': 'a red bicycle'}, 'succeeded'),
    ('first', {'model': 'veo-3-1-fast', 'prompt': 'a fox in the snow'}, 'succeeded'),
]


def figures(**given: Any) -> dict[str, Any]:
    """A group's figures: zeros but for `given`; credits_net and active follow from the rest."""
    base = {'jobs': 0, 'succeeded': 0, 'failed': 0, 'canceled': 0, 'credits_charged': 0, 'credits_refunded': 0,
            'provider_cost_usd': 0.0, 'output_bytes': 0, 'seconds_p50': None, 'seconds_p95': None}
    base |= given
    base['credits_net'] = base['credits_charged'] - base['credits_refunded']
    base['active'] = base['jobs'] - base['succeeded'] - base['failed'] - base['canceled']
    return base


def run_mix(user: Api, second_key: str, *, check_outcomes: bool = True) -> list[dict[str, Any]]:
    """Submit the mix (the second key's jobs with `second_key`), cancel the one to cancel, wait for all; the
    final job views in MIX order. With `check_outcomes`, each job must have ended as MIX says."""
    keys = {'first': None, 'second': second_key}
    submitted = []
    for key, body, end in MIX:
        response = user.submit(body, key=keys[key])
        assert response.status_code == 202, response.text
        submitted.append(response.json())
        if end == 'canceled':
            assert user.post(f'/v1/jobs/{submitted[-1]["id"]}/cancel').status_code == 200
    done = [user.wait(job['id'], timeout=120) for job in submitted]
    if check_outcomes:
        assert [job['status'] for job in done] == [end for _, _, end in MIX], done
    return done


BOUNDS = (15, 30, 45, 60, 90, 120, 180, 240, 300, 450, 600, 900, 1200, 1800, 3600)  # docs/usage.md


def bucket_percentile(seconds: list[float], q: float) -> int | None:
    """The documented reading of a percentile: the upper bound of the bucket holding the rank-th time."""
    if not seconds:
        return None
    bounds = sorted(next((b for b in BOUNDS if s <= b), BOUNDS[-1]) for s in seconds)
    return bounds[max(1, math.ceil(q * len(bounds))) - 1]


def expected(done: list[dict[str, Any]], first_key_id: str, second_key_id: str) -> dict[str, Any]:
    """The figures the mix must give, per group, from the jobs' own views (sizes, times) and the catalog."""
    by_index = list(zip(MIX, done, strict=True))

    def group(members: list[int]) -> dict[str, Any]:
        jobs = [by_index[i][1] for i in members]
        succeeded = [j for j in jobs if j['status'] == 'succeeded']
        seconds = [j['timing']['total_seconds'] for j in succeeded]
        return figures(
            jobs=len(jobs), succeeded=len(succeeded), failed=sum(j['status'] == 'failed' for j in jobs),
            canceled=sum(j['status'] == 'canceled' for j in jobs), credits_charged=sum(j['credits'] for j in jobs),
            credits_refunded=sum(j['credits'] for j in jobs if j['refunded']),
            provider_cost_usd=round(sum(COST[i] for i in members if by_index[i][1]['status'] == 'succeeded'), 6),
            output_bytes=sum(o['bytes'] for j in succeeded for o in j['outputs']),
            seconds_p50=bucket_percentile(seconds, 0.5), seconds_p95=bucket_percentile(seconds, 0.95))

    return {
        'totals': group([0, 1, 2, 3, 4, 5]),
        'by_model': {'kling-v1-6': group([2]), 'kling-v2-6': group([0, 1, 3]), 'seedream-4-5': group([4]),
                     'veo-3-1-fast': group([5])},
        'by_kind': {'t2i': group([4]), 't2v': group([0, 1, 2, 3, 5])},
        'by_type': {'image': group([4]), 'video': group([0, 1, 2, 3, 5])},
        'by_duration': {'10': group([1]), '5': group([0, 2, 3])},  # Veo takes no duration
        'by_api_key': {first_key_id: group([0, 1, 5]), second_key_id: group([2, 3, 4])},
    }


# The catalog's provider price of each job of MIX, in USD (provider_prices).
COST = [0.21, 0.42, 0.14, 0.21, 0.0325, 0.30]
# The catalog's credits of each job of MIX (prices): what the job views must say too.
CREDITS = [20, 40, 10, 20, 8, 30]


def day_of(job: dict[str, Any]) -> str:
    return datetime.fromisoformat(job['created_at'].replace('Z', '+00:00')).astimezone(timezone.utc).date().isoformat()
