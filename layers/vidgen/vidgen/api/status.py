"""Routes of the status function: everything a client reads."""

from __future__ import annotations

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from vidgen.api.auth import authenticate
from vidgen.api.http import ERROR_RESPONSES
from vidgen.jobs import queries
from vidgen.models import CreditsView, Health, JobList, JobView, ModelList, UsageView
from vidgen.version import VERSION

router = APIGatewayHttpRouter()


@router.get('/v1/health', tags=['meta'], summary='Liveness check (no auth)', operation_id='get_health')
def health() -> Health:
    return Health(status='ok', version=VERSION)


@router.get('/v1/models', tags=['models'], summary='The model catalog: inputs, parameters and prices',
            operation_id='list_models')
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


@router.get('/v1/usage', tags=['account'], summary='Usage analytics: totals, per model, per kind, per day',
            operation_id='get_usage',
            responses={200: {'description': 'Usage in the window.'}, **ERROR_RESPONSES})
def get_usage(
    start: Annotated[str | None, Query(alias='from', max_length=40)] = None,
    end: Annotated[str | None, Query(alias='to', max_length=40)] = None,
) -> UsageView:
    return UsageView.model_validate(queries.get_usage(authenticate(router.current_event), start=start, end=end))
