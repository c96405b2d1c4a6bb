"""Routes of the admin function: users, their API keys, credit grants, service-wide usage and its
reconciliation. Admin key only."""

from __future__ import annotations

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from vidgen.api.auth import require_admin
from vidgen.api.http import ERROR_RESPONSES, error_doc
from vidgen.jobs import accounts, diagnostics, usage, usage_check
from vidgen.jobs.accounts import MAX_ACTIVE_KEYS
from vidgen.models import (
    ApiKeyList,
    ApiKeyView,
    CreatedKey,
    CreatedUser,
    CreateKeyRequest,
    CreateUserRequest,
    GrantRequest,
    GrantResult,
    ProviderReport,
    ServiceUsageReport,
    UsageCheck,
)

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


@router.post('/v1/admin/users/<user_id>/keys', status_code=201, tags=['admin'], summary='Give a user another API key',
             operation_id='create_api_key',
             description='The key is in this response only; vidgen stores its hash. A user holds at most '
                         f'{MAX_ACTIVE_KEYS} keys that are not revoked.',
             responses={201: {'description': 'The new key.', 'content': {'application/json': {'model': CreatedKey}}},
                        409: error_doc('The user holds as many keys as one may (CONFLICT).'), **ERROR_RESPONSES})
def create_key(user_id: str, request: CreateKeyRequest) -> Response[CreatedKey]:
    require_admin(router.current_event)
    api_key, record = accounts.create_key(user_id, request.label)
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON,
                    body=CreatedKey(user_id=user_id, api_key=api_key, **_key_fields(record)))


@router.get('/v1/admin/users/<user_id>/keys', tags=['admin'], summary="A user's API keys: labels and prefixes",
            operation_id='list_api_keys',
            responses={200: {'description': 'The keys, oldest first, revoked ones included; never a key itself.'},
                       **ERROR_RESPONSES})
def list_keys(user_id: str) -> ApiKeyList:
    require_admin(router.current_event)
    return ApiKeyList(user_id=user_id, keys=[ApiKeyView(**_key_fields(r)) for r in accounts.list_keys(user_id)])


@router.delete('/v1/admin/users/<user_id>/keys/<key_id>', tags=['admin'], summary='Revoke an API key, at once',
               operation_id='revoke_api_key',
               description='The next request with the key is refused (AUTH_FAILED). Revoking it again changes nothing.',
               responses={200: {'description': 'The revoked key.'}, **ERROR_RESPONSES})
def revoke_key(user_id: str, key_id: str) -> ApiKeyView:
    require_admin(router.current_event)
    return ApiKeyView(**_key_fields(accounts.revoke_key(user_id, key_id)))


@router.get('/v1/admin/usage', tags=['admin'], summary='Service-wide usage, and the top users by credits',
            operation_id='get_service_usage',
            description='The same figures as GET /v1/usage across every user (without by_api_key), read from '
                        'sharded service-wide counters, plus the users with the most net credits in the window.',
            responses={200: {'description': 'Usage in the window.',
                             'content': {'application/json': {'model': ServiceUsageReport}}}, **ERROR_RESPONSES})
def get_service_usage(
    start: Annotated[str | None, Query(alias='from', max_length=40, description='First day, YYYY-MM-DD.')] = None,
    end: Annotated[str | None, Query(alias='to', max_length=40, description='Last day (included), YYYY-MM-DD.')] = None,
    model: Annotated[str | None, Query(max_length=64, description='Only this model.')] = None,
    type_: Annotated[Literal['video', 'image'] | None, Query(alias='type', description='Only videos, or images.')] = None,
    top: Annotated[int, Query(ge=1, le=usage.MAX_TOP_USERS, description='How many top users.')] = 10,
) -> ServiceUsageReport:
    require_admin(router.current_event)
    return usage.service_report(start=start, end=end, model=model, type_=type_, top=top)


@router.get('/v1/admin/usage-check', tags=['admin'], summary='Reconcile the usage counters with the jobs and ledger',
            operation_id='check_usage',
            description='Recomputes the counters of one user (`user`), or of the next page of users (`cursor`), '
                        'from the jobs, storyboards and ledger, or (`scope=service`) compares the service-wide '
                        'counters with the sum of every user\'s, and lists every difference. '
                        '`vidgen admin usage-check` calls it, page by page. Checking every user, and the '
                        'service-wide sums, read the whole table.',
            responses={200: {'description': 'What was checked, and the differences (none when all agree).',
                             'content': {'application/json': {'model': UsageCheck}}}, **ERROR_RESPONSES})
def check_usage(
    user: Annotated[str | None, Query(min_length=1, max_length=64, description='Check this user only.')] = None,
    cursor: Annotated[str | None, Query(max_length=2048, description='next_cursor of the previous page.')] = None,
    scope: Annotated[Literal['users', 'service'], Query(description='users, or the service-wide counters.')] = 'users',
) -> UsageCheck:
    require_admin(router.current_event)
    if scope == 'service':
        return usage_check.check_service()
    if user is not None:
        return usage_check.check_user(user)
    return usage_check.check_users_page(cursor)


def _key_fields(record: accounts.ApiKeyRecord) -> dict[str, str | None]:
    return {'key_id': record.key_id, 'label': record.label, 'prefix': record.prefix, 'created_at': record.created_at,
            'revoked_at': record.revoked_at}


@router.get('/v1/admin/providers', tags=['admin'], summary="Check the providers' credentials and the callback URL",
            operation_id='check_providers',
            description='Asks each provider its cheapest authenticated question from inside the stack (the keys never '
                        'leave it) and whether the URL providers call back on reaches this stack. `vidgen doctor '
                        '--providers` prints it.',
            responses={200: {'description': 'One check per provider, and the callback URL.'}, **ERROR_RESPONSES})
def check_providers() -> ProviderReport:
    require_admin(router.current_event)
    return diagnostics.provider_report()
