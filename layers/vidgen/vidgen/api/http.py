"""The HTTP edge shared by every API function: the Powertools resolver, request limits, and the one place
errors become HTTP responses (`{"error": {"code", "message", "request_id"}}`)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Mapping, Sequence

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from vidgen.config import get_settings
from vidgen.errors import InvalidParametersError, RateLimitExceededError, VidgenError
from vidgen.models import ErrorResponse
from vidgen.observability import logger


def error_doc(description: str) -> OpenAPIResponse:
    """An error response in the OpenAPI document: its description and the one error body every error has."""
    return {'description': description, 'content': {'application/json': {'model': ErrorResponse}}}


# API Gateway answers some errors itself, before (413) or instead of (500) a function: `{"message": "..."}`.
_GATEWAY_ERROR = {'type': 'object', 'properties': {'message': {'type': 'string'}}, 'required': ['message']}


def _error_or_gateway_doc(description: str) -> OpenAPIResponse:
    schema = {'anyOf': [{'$ref': '#/components/schemas/ErrorResponse'}, _GATEWAY_ERROR]}
    return {'description': description, 'content': {'application/json': {'schema': schema}}}


ERROR_RESPONSES: dict[int, OpenAPIResponse] = {
    400: error_doc('Malformed request (e.g. the body is not JSON).'),
    401: error_doc('Missing or invalid API key (AUTH_FAILED).'),
    404: error_doc('No such resource, or not yours (NOT_FOUND).'),
    413: _error_or_gateway_doc('Request body over 5 MB (INVALID_PARAMETERS). Past the 6 MB of event Lambda takes, '
                               'vidgen never runs and API Gateway answers `{"message": ...}`.'),
    422: error_doc('Invalid parameters (INVALID_PARAMETERS), naming the field and what is allowed.'),
    500: _error_or_gateway_doc('Internal error (SYSTEM_ERROR); `{"message": ...}` when API Gateway answers it.'),
}


# A route anyone may call: in OpenAPI an empty requirement object means no credentials are needed (Powertools
# drops an empty `security` list, so the document would otherwise show the global bearer requirement).
NO_AUTH: list[dict[str, list[str]]] = [{}]

_MAX_IDEMPOTENCY_KEY = 255


def idempotency_key_header(event: Any) -> str | None:
    """The request's Idempotency-Key header, if any (422 when it is empty or too long)."""
    key = (event.headers or {}).get('idempotency-key')
    if key is not None and not 0 < len(key) <= _MAX_IDEMPOTENCY_KEY:
        raise InvalidParametersError(f'Idempotency-Key must be 1 to {_MAX_IDEMPOTENCY_KEY} characters.',
                                     details={'field': 'Idempotency-Key'})
    return key


def accepted(body: Any, *, replayed: bool) -> Response[Any]:
    """202 with a submitted resource (a job, a storyboard); `Idempotent-Replayed: true` when the request's
    Idempotency-Key gave back the one an earlier request created (and charged nothing again)."""
    headers = {'Idempotent-Replayed': 'true'} if replayed else {}
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body=body, headers=headers)


def create_app(*routers: APIGatewayHttpRouter) -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(enable_validation=True)
    for router in routers:
        app.include_router(router)

    @app.exception_handler(VidgenError)
    def _vidgen_error(exc: VidgenError) -> Response[str]:
        if exc.http_status >= 500:
            logger.exception('request failed', error=type(exc).__name__)
        headers = {'Retry-After': str(exc.retry_after)} if isinstance(exc, RateLimitExceededError) else None
        return error_response(app, exc.http_status, exc.code, exc.message, headers=headers,
                              field=exc.details.get('field'))

    @app.exception_handler(RequestValidationError)
    def _validation_error(exc: RequestValidationError) -> Response[str]:
        errors = exc.errors()
        if any(e.get('type') == 'json_invalid' for e in errors):
            return error_response(app, 400, 'INVALID_PARAMETERS', 'The request body is not valid JSON.')
        message, field = describe_validation_errors(errors)
        return error_response(app, 422, 'INVALID_PARAMETERS', message, field=field)

    @app.exception_handler(RequestUnsupportedContentType)
    def _content_type(exc: RequestUnsupportedContentType) -> Response[str]:
        return error_response(app, 400, 'INVALID_PARAMETERS', 'Send the request body as application/json.')

    @app.not_found
    def _not_found(exc: Exception) -> Response[str]:
        return error_response(app, 404, 'NOT_FOUND', 'No such route.')

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response[str]:
        logger.exception('unexpected error', error=type(exc).__name__)
        return error_response(app, 500, 'SYSTEM_ERROR', 'vidgen hit an internal error; try again later.')

    return app


def error_response(app: APIGatewayHttpResolver, status: int, code: str, message: str, *,
                   headers: dict[str, str] | None = None, field: str | None = None) -> Response[str]:
    error: dict[str, Any] = {'code': code, 'message': message, 'request_id': request_id(app)}
    if field:
        error['field'] = field
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON,
                    body=json.dumps({'error': error}), headers=headers)


def request_id(app: APIGatewayHttpResolver) -> str:
    try:
        return app.current_event.request_context.request_id or ''
    except (AttributeError, KeyError, TypeError):
        return ''


def describe_validation_errors(errors: Sequence[Mapping[str, Any]]) -> tuple[str, str | None]:
    """One readable sentence per problem, naming the field (`body.duration`, `query.limit`, ...)."""
    sentences = []
    first_field = None
    for error in errors[:5]:
        location = [str(part) for part in error.get('loc', ()) if part not in ('body',)]
        field = '.'.join(location) or 'body'
        first_field = first_field or field
        if error.get('type') == 'extra_forbidden':
            sentences.append(f'{field} is not a known field.')
        elif error.get('type') == 'missing':
            sentences.append(f'{field} is required.')
        else:
            detail = str(error.get('msg') or error.get('type', 'invalid value'))
            # pydantic prefixes the text of a ValueError raised by our own validators; the sentence is ours.
            detail = detail.removeprefix('Value error, ')
            sentences.append(f'{field}: {detail}.')
    return ' '.join(sentences) or 'The request is not valid.', first_field


# Powertools reads, parses and validates the body before any middleware runs, so the limits on the body
# itself are checked before the resolver sees the event: its size (a 5 MB JSON body was parsed before
# the old size middleware could refuse it), JSON only (a multipart type without a boundary made Powertools
# raise a bare ValueError: a 500), and UTF-8 (API Gateway passes other bytes base64-encoded; decoding them
# raised UnicodeDecodeError: a 500).
_FORM_TYPES = ('multipart/', 'application/x-www-form-urlencoded')


def refuse_before_parsing(event: dict[str, Any]) -> dict[str, Any] | None:
    """A 413 or 400 response for a body that breaks those limits, else None (the request goes on)."""
    body = event.get('body') or ''
    limit = get_settings().max_body_bytes
    headers = {str(k).lower(): str(v) for k, v in (event.get('headers') or {}).items()}
    if _body_bytes(body, bool(event.get('isBase64Encoded'))) > limit:
        status, message = 413, f'The request body is larger than {limit // (1024 * 1024)} MB.'
    elif headers.get('content-type', '').strip().lower().startswith(_FORM_TYPES):
        status, message = 400, 'Send the request body as application/json.'
    elif event.get('isBase64Encoded') and body and not _is_utf8_base64(body):
        status, message = 400, 'The request body is not valid JSON: it is not UTF-8 text.'
    else:
        return None
    error = {'code': 'INVALID_PARAMETERS', 'message': message,
             'request_id': (event.get('requestContext') or {}).get('requestId') or ''}
    return {'statusCode': status, 'headers': {'Content-Type': content_types.APPLICATION_JSON},
            'body': json.dumps({'error': error}), 'isBase64Encoded': False}


def _body_bytes(body: str, base64_encoded: bool) -> int:
    """The size of the body as sent (API Gateway's limit is on bytes): base64 decodes 4 characters to 3."""
    if base64_encoded:
        return len(body) * 3 // 4 - (len(body) - len(body.rstrip('=')))
    return len(body) if body.isascii() else len(body.encode())


def _is_utf8_base64(body: str) -> bool:
    try:
        base64.b64decode(body, validate=True).decode('utf-8')
    except (binascii.Error, UnicodeDecodeError):
        return False
    return True
