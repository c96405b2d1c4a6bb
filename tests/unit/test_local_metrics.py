"""The local cloud keeps metrics on but off stdout (see vidgen_local.runtime.route_metrics_to_log)."""

import inspect
import logging

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf import cloudwatch
from vidgen_local.runtime import METRICS_LOGGER, route_metrics_to_log


def test_powertools_still_flushes_through_the_module_level_print():
    # If a Powertools upgrade stops printing this way, the redirect below would silently stop working.
    assert 'print(json.dumps(metrics' in inspect.getsource(cloudwatch.AmazonCloudWatchEMFProvider.flush_metrics)


def test_metric_lines_go_to_the_log_not_stdout(capsys, caplog):
    route_metrics_to_log()
    metrics = Metrics(namespace='VidgenTest', service='test')
    metrics.add_metric(name='JobSubmitted', unit=MetricUnit.Count, value=1)

    with caplog.at_level(logging.DEBUG, logger=METRICS_LOGGER):
        metrics.flush_metrics()

    assert '_aws' not in capsys.readouterr().out
    [record] = [r for r in caplog.records if r.name == METRICS_LOGGER]
    assert '"JobSubmitted"' in record.getMessage() and '"VidgenTest"' in record.getMessage()
