"""Status function: every read route, plus health, the OpenAPI document (vidgen.api.status, .storyboard_reads,
.docs) and the browser pages: the playground and Swagger UI (vidgen.api.web)."""

from vidgen.api import docs, status, storyboard_reads, web
from vidgen.api.entry import http_handler

lambda_handler = http_handler(status.router, storyboard_reads.router, docs.router, web.router)
