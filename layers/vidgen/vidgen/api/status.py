"""Routes of the status function: everything a client reads."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from vidgen.api.auth import authenticate
from vidgen.api.http import ERROR_RESPONSES, NO_AUTH
from vidgen.jobs import queries
from vidgen.models import CreditsView, JobList, JobView

router = APIGatewayHttpRouter()


@router.get('/v1/health', tags=['meta'], summary='Liveness check (no auth)', security=NO_AUTH)
def health() -> dict[str, str]:
    return {'status': 'ok'}


@router.get('/v1/models', tags=['models'], summary='The model catalog: inputs, parameters and prices (no auth)',
            security=NO_AUTH)
def list_models() -> dict[str, list[dict[str, Any]]]:
    return {'models': queries.list_models()}


@router.get('/v1/jobs/<job_id>', tags=['jobs'], summary='One of your jobs',
            responses={200: {'description': 'The job.'}, **ERROR_RESPONSES})
def get_job(job_id: str) -> JobView:
    return queries.get_job(authenticate(router.current_event), job_id)


@router.get('/v1/jobs', tags=['jobs'], summary='Your jobs, newest first',
            responses={200: {'description': 'A page of your jobs.'}, **ERROR_RESPONSES})
def list_jobs(
    status: Annotated[Literal['queued', 'running', 'succeeded', 'failed', 'canceled'] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_PAGE)] = 20,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> JobList:
    return queries.list_jobs(authenticate(router.current_event), status=status, limit=limit, cursor=cursor)


@router.get('/v1/credits', tags=['credits'], summary='Your balance and ledger, newest entries first',
            responses={200: {'description': 'Your balance and a page of the ledger.'}, **ERROR_RESPONSES})
def get_credits(
    limit: Annotated[int, Query(ge=1, le=queries.MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> CreditsView:
    return queries.get_credits(authenticate(router.current_event), limit=limit, cursor=cursor)


@router.get('/v1/usage', tags=['credits'], summary='Usage analytics: totals, per model, per kind, per day',
            responses={200: {'description': 'Usage in the window.'}, **ERROR_RESPONSES})
def get_usage(
    start: Annotated[str | None, Query(alias='from', max_length=40)] = None,
    end: Annotated[str | None, Query(alias='to', max_length=40)] = None,
) -> dict[str, Any]:
    return queries.get_usage(authenticate(router.current_event), start=start, end=end)
