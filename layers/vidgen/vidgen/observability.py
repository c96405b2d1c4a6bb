"""The one Logger, Tracer and Metrics of the service (service name and namespace come from the env).

The tracer is Powertools' Tracer, built on the first traced invocation instead of at import: building it
imports the X-Ray SDK and patches boto3 and requests, the largest single part of a cold start, and where
tracing is off (POWERTOOLS_TRACE_DISABLED, or outside Lambda, as Powertools decides) it is never built.
"""

from __future__ import annotations

import functools
import os
import threading
from typing import Any, Callable

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

Handler = Callable[[Any, Any], Any]

logger = Logger()
metrics = Metrics()


def per_model(name: str, model: str, value: float = 1, unit: MetricUnit = MetricUnit.Count) -> None:
    """One more record of a job figure, dimensioned by model, for the dashboard's per-model widgets. The
    alarms watch the service-wide figures `metrics.add_metric` keeps; a record of its own (one EMF line,
    written now by a provider of its own, so concurrent calls share no state) keeps the dimension sets apart."""
    record = AmazonCloudWatchEMFProvider()
    record.add_dimension(name='model', value=model)
    record.add_metric(name=name, unit=unit, value=value)
    record.flush_metrics()


def tracing_enabled() -> bool:
    """Powertools' own rule: traced in Lambda (not under SAM local or Chalice) unless POWERTOOLS_TRACE_DISABLED."""
    if os.getenv('POWERTOOLS_TRACE_DISABLED', 'false').strip().lower() in ('1', 'true', 'yes', 'on', 'y', 't'):
        return False
    return bool(os.getenv('LAMBDA_TASK_ROOT')) and not (os.getenv('AWS_SAM_LOCAL') or os.getenv('AWS_CHALICE_CLI_MODE'))


class LazyTracer:
    """`capture_lambda_handler` as Powertools' Tracer has it, with the Tracer made on first use."""

    def __init__(self) -> None:
        self._tracer: Any = None
        self._lock = threading.Lock()

    def tracer(self) -> Any:
        """The Powertools Tracer (built now if needed), or None where tracing is off."""
        if self._tracer is None:
            if not tracing_enabled():
                return None
            with self._lock:
                if self._tracer is None:
                    from aws_lambda_powertools import Tracer

                    self._tracer = Tracer()
        return self._tracer

    def capture_lambda_handler(self, capture_response: bool | None = None,
                               capture_error: bool | None = None) -> Callable[[Handler], Handler]:
        def decorate(handler: Handler) -> Handler:
            traced: list[Handler] = []

            @functools.wraps(handler)
            def invoke(event: Any, context: Any) -> Any:
                tracer = self.tracer()
                if tracer is None:
                    return handler(event, context)
                if not traced:
                    traced.append(tracer.capture_lambda_handler(handler, capture_response=capture_response,
                                                                capture_error=capture_error))
                return traced[0](event, context)

            return invoke

        return decorate


tracer = LazyTracer()

__all__ = ['logger', 'tracer', 'metrics', 'MetricUnit', 'tracing_enabled']
