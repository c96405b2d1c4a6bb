"""The one Logger, Tracer and Metrics of the service (service name and namespace come from the env)."""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger()
tracer = Tracer()
metrics = Metrics()

__all__ = ['logger', 'tracer', 'metrics', 'MetricUnit']
