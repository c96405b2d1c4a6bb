"""Submit function: POST /v1/jobs, POST /v1/jobs/{job_id}/cancel (vidgen.api.submit) and POST /v1/storyboards,
POST /v1/storyboards/{storyboard_id}/cancel (vidgen.api.storyboards)."""

from vidgen.api import storyboards, submit
from vidgen.api.entry import http_handler

lambda_handler = http_handler(submit.router, storyboards.router)
