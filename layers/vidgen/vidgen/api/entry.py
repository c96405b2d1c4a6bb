"""Turns routers into a Lambda handler with the observability every function shares."""

from __future__ import annotations

from typing import Any, Callable, cast

from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.logging import correlation_paths

from vidgen.api.http import create_app, refuse_before_parsing
from vidgen.config import require_settings
from vidgen.observability import logger, metrics, tracer


def http_handler(*routers: APIGatewayHttpRouter) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    require_settings()  # at cold start: a misconfigured deployment fails here, naming the variable
    app = create_app(*routers)

    # Never log the event: it carries API keys, callback tokens and inline images. clear_state: keys a
    # request appended (its user_id) must not label the next request's lines in a warm environment.
    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False,
                                  clear_state=True)
    @tracer.capture_lambda_handler(capture_response=False)
    @metrics.log_metrics
    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return refuse_before_parsing(event) or app.resolve(event, context)

    lambda_handler.app = app  # type: ignore[attr-defined]  # the resolver, for tests and the OpenAPI document
    # Powertools' logger and metrics decorators are untyped: name the decorated handler's type once, here.
    return cast(Callable[[dict[str, Any], Any], dict[str, Any]], lambda_handler)
