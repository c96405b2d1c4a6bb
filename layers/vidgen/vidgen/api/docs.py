"""The published OpenAPI document: every route of every function, built from the same routers."""

from __future__ import annotations

from functools import lru_cache

from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from vidgen.models import OpenApiDocument

router = APIGatewayHttpRouter()


@lru_cache(maxsize=1)
def openapi_document() -> str:
    # Imported here: only this route needs every router, the others stay light.
    from vidgen.api import admin, callbacks, status, storyboard_reads, storyboards, submit
    from vidgen.api.http import create_app

    app = create_app(submit.router, status.router, admin.router, callbacks.router, storyboards.router,
                     storyboard_reads.router, router)
    return app.get_openapi_json_schema(
        title='vidgen', version='1.0.0',
        description='AI video and image generation jobs: submit, track, read credits and usage.',
        security_schemes={'bearerAuth': HTTPBearer(scheme='bearer')}, security=[{'bearerAuth': []}],
    )


@router.get('/v1/openapi.json', tags=['meta'], summary='This OpenAPI document (no auth)', operation_id='get_openapi')
def get_openapi() -> OpenApiDocument:
    import json

    return OpenApiDocument.model_validate(json.loads(openapi_document()))
