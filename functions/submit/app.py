"""Submit function: POST /v1/jobs and POST /v1/jobs/{job_id}/cancel (routes in vidgen.api.submit)."""

from vidgen.api import submit
from vidgen.api.entry import http_handler

lambda_handler = http_handler(submit.router)
