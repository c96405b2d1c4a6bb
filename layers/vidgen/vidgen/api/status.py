"""Routes of the status function: everything a client reads."""

from __future__ import annotations

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from vidgen.api.auth import authenticate
from vidgen.api.http import ERROR_RESPONSES, NO_AUTH
from vidgen.jobs import queries, usage
from vidgen.models import CreditsView, Health, JobList, JobView, ModelList, UsageReport
from vidgen.version import VERSION

router = APIGatewayHttpRouter()


@router.get('/v1/health', tags=['meta'], summary='Liveness check (no auth)', operation_id='get_health', security=NO_AUTH)
def health() -> Health:
    return Health(status='ok', version=VERSION)


@router.get('/v1/models', tags=['models'], summary='The model catalog: inputs, parameters and prices (no auth)',
            operation_id='list_models', security=NO_AUTH)
def list_models() -> ModelList:
    return ModelList.model_validate({'models': queries.list_models()})


@router.get('/v1/jobs/<job_id>', tags=['jobs'], summary='One of your jobs', operation_id='get_job',
            responses={200: {'description': 'The job.'}, **ERROR_RESPONSES})
def get_job(job_id: str) -> JobView:
    return queries.get_job(authenticate(router.current_event), job_id)


@router.get('/v1/jobs', tags=['jobs'], summary='Your jobs, newest first', operation_id='list_jobs',
            responses={200: {'description': 'A page of your jobs.'}, **ERROR_RESPONSES})
def list_jobs(
    status: Annotated[Literal['queued', 'running', 'succeeded', 'failed', 'canceled'] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_PAGE)] = 20,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> JobList:
    return queries.list_jobs(authenticate(router.current_event), status=status, limit=limit, cursor=cursor)


@router.get('/v1/credits', tags=['account'], summary='Your balance and ledger, newest entries first',
            operation_id='get_credits',
            responses={200: {'description': 'Your balance and a page of the ledger.'}, **ERROR_RESPONSES})
def get_credits(
    limit: Annotated[int, Query(ge=1, le=queries.MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> CreditsView:
    return queries.get_credits(authenticate(router.current_event), limit=limit, cursor=cursor)


@router.get('/v1/usage', tags=['account'], operation_id='get_usage',
            summary='Your usage: totals and per day, model, kind, type, duration and key',
            description='Read from usage counters kept in the same transactions as the credits, so its figures agree '
                        'with the ledger and it costs the same however many jobs the window holds. Whole UTC days '
                        '`from`..`to`, both included (default: the last 30 days); at most 90 days.',
            responses={200: {'description': 'Usage in the window.',
                             'content': {'application/json': {'model': UsageReport}}}, **ERROR_RESPONSES})
def get_usage(
    start: Annotated[str | None, Query(alias='from', max_length=40, description='First day, YYYY-MM-DD.')] = None,
    end: Annotated[str | None, Query(alias='to', max_length=40, description='Last day (included), YYYY-MM-DD.')] = None,
    model: Annotated[str | None, Query(max_length=64, description='Only this model.')] = None,
    type_: Annotated[Literal['video', 'image'] | None, Query(alias='type', description='Only videos, or images.')] = None,
) -> UsageReport:
    return usage.user_report(authenticate(router.current_event), start=start, end=end, model=model, type_=type_)
