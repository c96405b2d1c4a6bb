"""The published OpenAPI document: every route of every function, built from the same routers."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from vidgen.api.http import NO_AUTH
from vidgen.models import OpenApiDocument

router = APIGatewayHttpRouter()


@lru_cache(maxsize=1)
def openapi_document() -> str:
    # Imported here: only this route needs every router, the others stay light. Powertools' OpenAPI models
    # (pydantic models of the whole OpenAPI specification) cost more to import than the rest of the status
    # function together, and only building the document needs them.
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

    from vidgen.api import admin, callbacks, status, storyboard_reads, storyboards, submit
    from vidgen.api.http import create_app

    app = create_app(submit.router, status.router, admin.router, callbacks.router, storyboards.router,
                     storyboard_reads.router, router)
    document: dict[str, Any] = json.loads(app.get_openapi_json_schema(
        title='vidgen', version='1.0.0',
        description='AI video and image generation jobs: submit, track, read credits and usage.',
        security_schemes={'bearerAuth': HTTPBearer(scheme='bearer')}, security=[{'bearerAuth': []}],
    ))
    _validation_errors_as_sent(document)
    return json.dumps(document)


def _validation_errors_as_sent(document: dict[str, Any]) -> None:
    """Powertools documents a 422 as FastAPI's `{"detail": [ValidationError]}` on every route that does not
    declare its own; this API answers every error as `ErrorResponse` (vidgen/api/http.py). A route without
    parameters or body cannot fail validation, so it loses the 422; the others describe what is sent."""
    for operation in (op for ops in document['paths'].values() for op in ops.values()):
        responses = operation.get('responses', {})
        if 'HTTPValidationError' not in json.dumps(responses.get('422', {})):
            continue
        if operation.get('parameters') or operation.get('requestBody'):
            responses['422'] = {'description': 'Invalid parameters (INVALID_PARAMETERS), naming the field.',
                                'content': {'application/json': {'schema': {'$ref': '#/components/schemas/ErrorResponse'}}}}
        else:
            del responses['422']
    # Nothing refers to FastAPI's shapes any more (response validation errors are never answered either).
    for name in ('HTTPValidationError', 'ValidationError', 'ResponseValidationError'):
        document['components']['schemas'].pop(name, None)


@router.get('/v1/openapi.json', tags=['meta'], summary='This OpenAPI document (no auth)', operation_id='get_openapi',
            security=NO_AUTH)
def get_openapi() -> OpenApiDocument:
    return OpenApiDocument.model_validate(json.loads(openapi_document()))
