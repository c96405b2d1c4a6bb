"""Status function: every read route, plus health and the OpenAPI document (vidgen.api.status, .docs)."""

from vidgen.api import docs, status
from vidgen.api.entry import http_handler

lambda_handler = http_handler(status.router, docs.router)
