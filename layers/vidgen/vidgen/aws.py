"""Cached boto3 clients, made on first use so a cold start pays only for the clients it needs."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_stepfunctions import SFNClient

# Standard retry mode retries throttling and transient errors with backoff; conditional-check failures
# are business outcomes and are never retried by botocore.
CLIENT_CONFIG = Config(retries={'mode': 'standard', 'max_attempts': 5}, connect_timeout=5, read_timeout=30)


@lru_cache(maxsize=1)
def s3() -> S3Client:
    # s3v4 so presigned URLs carry an expiry that S3 enforces.
    return boto3.client('s3', config=CLIENT_CONFIG.merge(Config(signature_version='s3v4')))


@lru_cache(maxsize=1)
def stepfunctions() -> SFNClient:
    return boto3.client('stepfunctions', config=CLIENT_CONFIG)
