"""Route of the callback function: provider callbacks, verified and confirmed before they count."""

from __future__ import annotations

import json
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from vidgen.api.http import ERROR_RESPONSES, NO_AUTH
from vidgen.errors import MalformedRequestError
from vidgen.jobs.callbacks import handle_callback
from vidgen.models import CallbackAck

router = APIGatewayHttpRouter()


@router.post('/v1/callbacks/<provider>/<job_id>', tags=['callbacks'], summary='Provider callback endpoint',
             operation_id='provider_callback',
             description='Called by providers, not clients. The per-job token in `?token=` is checked first; the '
                         'body is a hint, confirmed with the provider before anything changes.',
             responses={200: {'description': 'The callback was verified: `{"status": "ignored" | "noted" | '
                                             '"delivered"}`.'}, **ERROR_RESPONSES},
             security=NO_AUTH)  # no API key: the signed per-job token in the URL is what authenticates it
def provider_callback(
    provider: str, job_id: str,
    token: Annotated[str | None, Query(max_length=512, description='The per-job token from the callback URL.')] = None,
) -> CallbackAck:
    event = router.current_event
    try:
        body = json.loads(event.decoded_body or '')
    except ValueError as exc:
        raise MalformedRequestError('The callback body is not valid JSON.') from exc
    return CallbackAck.model_validate(handle_callback(provider, job_id, token, body, event.headers or {}).as_dict())
