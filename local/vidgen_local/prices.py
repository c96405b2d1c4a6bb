"""What a job costs on AWS at public on-demand prices, and what the seed designs would cost for the same work.

Prices: us-east-1, Lambda on arm64, first pricing tier, no free tier; read from the public pricing pages
on 2026-12-01 (sources below). Storage of the results (S3 GB-month), data transfer and the providers' own
fees are the same whichever design runs the job and are left out of every figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PRICES_DATE = '2026-12-01'
PRICES = {
    # name: (USD per unit, unit, source)
    'lambda_request': (0.20 / 1e6, 'request', 'aws.amazon.com/lambda/pricing'),
    'lambda_gb_second_arm64': (0.0000133334, 'GB-second', 'aws.amazon.com/lambda/pricing (Arm, first 7.5B GB-s)'),
    'state_transition': (0.025 / 1000, 'state transition', 'aws.amazon.com/step-functions/pricing (Standard)'),
    'dynamodb_read_unit': (0.125 / 1e6, 'read request unit', 'aws.amazon.com/dynamodb/pricing/on-demand'),
    'dynamodb_write_unit': (0.625 / 1e6, 'write request unit', 'aws.amazon.com/dynamodb/pricing/on-demand'),
    's3_tier1_request': (0.005 / 1000, 'PUT/COPY/POST/LIST request', 'aws.amazon.com/s3/pricing (S3 Standard)'),
    's3_tier2_request': (0.0004 / 1000, 'GET/HEAD request', 'aws.amazon.com/s3/pricing (S3 Standard)'),
    'http_api_request': (1.00 / 1e6, 'HTTP API request', 'aws.amazon.com/api-gateway/pricing (first 300M)'),
    'secrets_manager_call': (0.05 / 10000, 'API call', 'aws.amazon.com/secrets-manager/pricing'),
}


def price(name: str) -> float:
    return PRICES[name][0]


@dataclass(frozen=True)
class JobCost:
    """Usage of one job, in billed units; `dollars()` prices it."""

    state_transitions: float = 0.0
    lambda_invocations: float = 0.0
    lambda_gb_seconds: float = 0.0
    dynamodb_read_units: float = 0.0
    dynamodb_write_units: float = 0.0
    s3_tier1_requests: float = 0.0
    s3_tier2_requests: float = 0.0
    api_requests: float = 0.0
    secrets_manager_calls: float = 0.0

    def dollars(self) -> float:
        return (self.state_transitions * price('state_transition')
                + self.lambda_invocations * price('lambda_request')
                + self.lambda_gb_seconds * price('lambda_gb_second_arm64')
                + self.dynamodb_read_units * price('dynamodb_read_unit')
                + self.dynamodb_write_units * price('dynamodb_write_unit')
                + self.s3_tier1_requests * price('s3_tier1_request')
                + self.s3_tier2_requests * price('s3_tier2_request')
                + self.api_requests * price('http_api_request')
                + self.secrets_manager_calls * price('secrets_manager_call'))

    def per_thousand(self) -> float:
        return 1000 * self.dollars()


@dataclass(frozen=True)
class Measured:
    """What the seed models take from our own run: how long a comparable invocation took, at what memory."""

    request_seconds: float  # a short API invocation (our submit's mean billed duration)
    read_seconds: float  # a read of one job (our status function's mean, or the submit's when not measured)
    create_seconds: float  # creating a provider task (our create step's mean)
    memory_gb: float  # the API functions' MemorySize


def seed_000(generation_seconds: float, m: Measured) -> JobCost:
    """Seed 000: the submit request itself creates the task and stays open, polling every 5 s for up to
    5 minutes, then answers with the provider's URL (no copy to storage). One invocation lives as long as
    the generation, rounded up to the next poll; the credits are one read and one write (a refund is a
    second write, on failure only). It cannot run behind an HTTP API, whose integrations end at 30 s: it
    needs a function URL or a server. Polls past 5 minutes are not modelled (the job fails)."""
    polls = max(1, math.ceil(min(generation_seconds, 300) / 5))
    held = m.create_seconds + polls * 5.0
    return JobCost(lambda_invocations=1, lambda_gb_seconds=m.memory_gb * held, dynamodb_read_units=1,
                   dynamodb_write_units=1, api_requests=1)


def seed_002(generation_seconds: float, burst: int, m: Measured) -> JobCost:
    """Seed 002: submit inserts a pending job; a cron every minute takes 5 pending jobs and creates their
    tasks; the provider's callback marks the job done; the browser asks for the job every 2 s until then.
    For a burst of `burst` jobs, the k-th waits k // 5 minutes plus half a minute (the next tick) on
    average, so its client polls (wait + generation) / 2 times. Per job: the insert, the cron's select
    (a fifth of one query) and two updates, the callback's lookup and update, the debit and its ledger row;
    one fifth of a cron invocation creating five tasks; one invocation per poll, reading one item."""
    waits = [(k // 5) * 60 + 30 for k in range(max(burst, 1))]
    mean_wait = sum(waits) / len(waits)
    polls = (mean_wait + generation_seconds) / 2
    cron_share = 1 / 5
    gb_seconds = m.memory_gb * (m.request_seconds * 2 + cron_share * 5 * m.create_seconds + polls * m.read_seconds)
    return JobCost(lambda_invocations=2 + cron_share + polls, lambda_gb_seconds=gb_seconds,
                   dynamodb_read_units=0.5 * (cron_share + 1 + polls) + 1,
                   dynamodb_write_units=1 + 2 + 1 + 2, api_requests=2 + polls)


def fixed_monthly_cost(cost_per_run: JobCost, runs_per_month: float) -> float:
    """A schedule's own cost in a month (it runs whether there are jobs or not)."""
    return cost_per_run.dollars() * runs_per_month
