"""Admin function: users, API keys and credit grants (vidgen.api.admin)."""

from vidgen.api import admin
from vidgen.api.entry import http_handler

lambda_handler = http_handler(admin.router)
