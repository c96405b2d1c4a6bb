"""Routes of the submit function: create a job (debits credits) and cancel one (refunds them)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from vidgen.api.auth import authenticate, authenticate_caller
from vidgen.api.http import ERROR_RESPONSES, accepted, error_doc, idempotency_key_header
from vidgen.jobs import submit
from vidgen.jobs.views import job_view
from vidgen.models import JobRequest, JobView
from vidgen.observability import logger

router = APIGatewayHttpRouter()


@router.post(
    '/v1/jobs', status_code=202, tags=['jobs'], summary='Submit a generation job', operation_id='submit_job',
    description='Validates the request against the model catalog, debits its price atomically and starts the job. '
                'Send an `Idempotency-Key` header to make retries safe: the same key and body return the same job '
                '(header `Idempotent-Replayed: true`) and charge once; the same key with another body is a 409.',
    responses={
        202: {'description': 'The job, queued.', 'content': {'application/json': {'model': JobView}}},
        402: error_doc('Not enough credits (INSUFFICIENT_CREDITS).'),
        409: error_doc('Idempotency-Key reused with a different body (IDEMPOTENCY_CONFLICT).'),
        429: error_doc('Too many active jobs (RATE_LIMIT_EXCEEDED); see Retry-After.'),
        **ERROR_RESPONSES,
    },
)
def submit_job(request: JobRequest) -> Response[JobView]:
    caller = authenticate_caller(router.current_event)
    logger.append_keys(user_id=caller.user_id)
    submitted = submit.submit_job(caller.user_id, request, idempotency_key_header(router.current_event),
                                  api_key_id=caller.key_id)
    return accepted(job_view(submitted.job), replayed=submitted.replayed)


@router.post(
    '/v1/jobs/<job_id>/cancel', tags=['jobs'], summary='Cancel a queued or running job', operation_id='cancel_job',
    description='Ends the job as `canceled` and refunds its credits. A job that already ended gives 409.',
    responses={200: {'description': 'The job, canceled and refunded.', 'content': {'application/json': {'model': JobView}}},
               409: error_doc('The job already ended (CONFLICT).'), **ERROR_RESPONSES},
)
def cancel_job(job_id: str) -> JobView:
    owner = authenticate(router.current_event)
    return job_view(submit.cancel_job(owner, job_id))
