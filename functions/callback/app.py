"""Callback function: POST /v1/callbacks/{provider}/{job_id} from providers (vidgen.api.callbacks)."""

from vidgen.api import callbacks
from vidgen.api.entry import http_handler

lambda_handler = http_handler(callbacks.router)
