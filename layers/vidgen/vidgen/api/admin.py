"""Routes of the admin function: users, their API keys, credit grants. Admin key only."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from vidgen.api.auth import require_admin
from vidgen.api.http import ERROR_RESPONSES, error_doc
from vidgen.jobs import accounts, diagnostics
from vidgen.models import CreatedUser, CreateUserRequest, GrantRequest, GrantResult, ProviderReport

router = APIGatewayHttpRouter()


@router.post('/v1/admin/users', status_code=201, tags=['admin'], summary='Create a user and their API key',
             operation_id='create_user',
             description='The API key is in this response only; vidgen stores its hash.',
             responses={201: {'description': 'The user.', 'content': {'application/json': {'model': CreatedUser}}},
                        409: error_doc('The user id exists (CONFLICT).'), **ERROR_RESPONSES})
def create_user(request: CreateUserRequest) -> Response[CreatedUser]:
    require_admin(router.current_event)
    user_id, api_key = accounts.create_user(request.user_id, request.credits)
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON,
                    body=CreatedUser(user_id=user_id, api_key=api_key, balance=request.credits))


@router.post('/v1/admin/users/<user_id>/credits', tags=['admin'], summary='Grant credits, once per reference_id',
             operation_id='grant_credits',
             responses={200: {'description': 'The balance, and whether this grant added credits.'}, **ERROR_RESPONSES})
def grant_credits(user_id: str, request: GrantRequest) -> GrantResult:
    require_admin(router.current_event)
    grant = accounts.grant_credits(user_id, request.amount, request.reference_id, request.reason)
    return GrantResult(user_id=user_id, balance=grant.balance, granted=grant.granted)


@router.get('/v1/admin/providers', tags=['admin'], summary="Check the providers' credentials and the callback URL",
            operation_id='check_providers',
            description='Asks each provider its cheapest authenticated question from inside the stack (the keys never '
                        'leave it) and whether the URL providers call back on reaches this stack. `vidgen doctor '
                        '--providers` prints it.',
            responses={200: {'description': 'One check per provider, and the callback URL.'}, **ERROR_RESPONSES})
def check_providers() -> ProviderReport:
    require_admin(router.current_event)
    return diagnostics.provider_report()
