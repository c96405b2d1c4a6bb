"""Imported once by the fork server that execution environments are forked from (runtime.py): the libraries
every function imports, and botocore's service data for the services they call, so that a cold start pays
for the function's own modules and clients rather than for reading the SDK's JSON files again.

Only what reads no function setting belongs here. The clients made below use placeholder credentials,
region and endpoint and are thrown away: what stays is the default session's data loader with its cache,
while credentials, region and endpoints are still resolved by each environment from its own variables.
"""

from __future__ import annotations

import aws_lambda_powertools.event_handler  # noqa: F401
import aws_lambda_powertools.logging  # noqa: F401
import aws_lambda_powertools.metrics  # noqa: F401
import aws_lambda_powertools.utilities.parameters  # noqa: F401
import boto3
import jwt  # noqa: F401
import pydantic  # noqa: F401
import requests  # noqa: F401

SERVICES = ('dynamodb', 's3', 'stepfunctions', 'secretsmanager', 'sts', 'lambda')


def _warm_sdk_data() -> None:
    placeholders = {'region_name': 'us-east-1', 'aws_access_key_id': 'preload', 'aws_secret_access_key': 'preload',
                    'endpoint_url': 'http://127.0.0.1:9'}
    for service in SERVICES:
        boto3.client(service, **placeholders)
    boto3.resource('dynamodb', **placeholders)


_warm_sdk_data()
