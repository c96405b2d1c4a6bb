"""Storyboard routes of the submit function: create a storyboard (debits every scene) and cancel one.

The storyboard use cases (and the storyboard store) are imported by these routes when they first run: the
submit function's environments mostly serve job requests, which need none of it. The request and view models
stay at the top, since the routes' signatures (validation, the OpenAPI document) are made from them.
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from vidgen.api.auth import authenticate, authenticate_caller
from vidgen.api.http import ERROR_RESPONSES, accepted, error_doc, idempotency_key_header
from vidgen.models import StoryboardRequest, StoryboardView
from vidgen.observability import logger

router = APIGatewayHttpRouter()


@router.post(
    '/v1/storyboards', status_code=202, tags=['storyboards'], operation_id='submit_storyboard',
    summary='Submit a storyboard: scenes written from a product, one video job per scene',
    description='Validates the request as its scene jobs will be (with `product.image`, every scene is '
                'image-to-video from it), debits all scenes in one transaction and starts writing the scenes. '
                '`Idempotency-Key` works as for jobs.',
    responses={
        202: {'description': 'The storyboard, writing its scenes.',
              'content': {'application/json': {'model': StoryboardView}}},
        402: error_doc('Not enough credits for every scene (INSUFFICIENT_CREDITS); nothing was written.'),
        409: error_doc('Idempotency-Key reused with a different body (IDEMPOTENCY_CONFLICT).'),
        429: error_doc('Not enough room under the active-job limit for every scene (RATE_LIMIT_EXCEEDED).'),
        **ERROR_RESPONSES,
    },
)
def submit_storyboard(request: StoryboardRequest) -> Response[StoryboardView]:
    from vidgen.jobs.storyboards import submit
    from vidgen.jobs.storyboards.views import storyboard_view

    caller = authenticate_caller(router.current_event)
    logger.append_keys(user_id=caller.user_id)
    submitted = submit.submit_storyboard(caller.user_id, request, idempotency_key_header(router.current_event),
                                         api_key_id=caller.key_id)
    return accepted(storyboard_view(submitted.storyboard), replayed=submitted.replayed)


@router.post(
    '/v1/storyboards/<storyboard_id>/cancel', tags=['storyboards'], summary='Cancel a storyboard',
    operation_id='cancel_storyboard',
    description='Cancels the scenes not finished yet, each refunded once; finished scenes keep their videos.',
    responses={200: {'description': 'The storyboard, canceled.'},
               409: error_doc('The storyboard already ended (CONFLICT).'), **ERROR_RESPONSES},
)
def cancel_storyboard(storyboard_id: str) -> StoryboardView:
    from vidgen.jobs.storyboards import submit
    from vidgen.jobs.storyboards.views import storyboard_view

    owner = authenticate(router.current_event)
    return storyboard_view(submit.cancel_storyboard(owner, storyboard_id))
