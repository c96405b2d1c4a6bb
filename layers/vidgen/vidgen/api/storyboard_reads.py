"""Storyboard routes of the status function: one storyboard, and the caller's storyboards."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from vidgen.api.auth import authenticate
from vidgen.api.http import ERROR_RESPONSES
from vidgen.jobs.queries import MAX_PAGE
from vidgen.jobs.storyboards.views import get_storyboard, list_storyboards
from vidgen.models import StoryboardList, StoryboardView

router = APIGatewayHttpRouter()


@router.get('/v1/storyboards/<storyboard_id>', tags=['storyboards'], summary='One of your storyboards',
            operation_id='get_storyboard',
                 responses={200: {'description': 'The storyboard, with each scene\'s job.'}, **ERROR_RESPONSES})
def get_one(storyboard_id: str) -> StoryboardView:
    return get_storyboard(authenticate(router.current_event), storyboard_id)


@router.get('/v1/storyboards', tags=['storyboards'], summary='Your storyboards, newest first',
            operation_id='list_storyboards',
                 responses={200: {'description': 'A page of your storyboards.'}, **ERROR_RESPONSES})
def list_all(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> StoryboardList:
    return list_storyboards(authenticate(router.current_event), limit=limit, cursor=cursor)
