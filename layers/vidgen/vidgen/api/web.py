"""The browser pages: the playground at `/`, Swagger UI at `/docs`, and their files under `/static/`.

The files live once, in `vidgen/web/` (shipped in the layer), and the status function serves them through
the same routes locally and on AWS. Swagger UI's own script and stylesheet come from the copy inside
aws-lambda-powertools (already in the layer), so no page loads anything from another host.

Every page is sent with a Content-Security-Policy that allows the page's own origin only, plus the
results bucket's origin for the media a job produced (presigned GETs), and no inline script at all.
"""

from __future__ import annotations

import mimetypes
from functools import lru_cache
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler import Response, openapi
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from vidgen.errors import NotFoundError
from vidgen.jobs.views import results_origin

router = APIGatewayHttpRouter()

WEB_DIR = Path(__file__).resolve().parent.parent / 'web'
# Powertools' vendored Swagger UI files, found by path: importing the swagger_ui package would import its OAuth2
# config, and with it Powertools' pydantic models of the whole OpenAPI specification, at every cold start.
_SWAGGER_DIR = Path(openapi.__file__).resolve().parent / 'swagger_ui'
# Public name -> file. Only these are served: a name is looked up, never joined onto a path.
_VENDORED = {'swagger-ui-bundle.js': _SWAGGER_DIR / 'swagger-ui-bundle.min.js',
             'swagger-ui.css': _SWAGGER_DIR / 'swagger-ui.min.css'}
_TYPES = {'.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
          '.svg': 'image/svg+xml', '.html': 'text/html; charset=utf-8', '.png': 'image/png'}
_HTML_CACHE = 'no-cache'
_STATIC_CACHE = 'public, max-age=300'


@lru_cache(maxsize=1)
def static_files() -> dict[str, Path]:
    files = {path.name: path for path in (WEB_DIR / 'static').iterdir() if path.is_file()}
    return {**files, **_VENDORED}


@lru_cache(maxsize=1)
def content_security_policy() -> str:
    """Own origin only; media and images also from the results bucket (where presigned URLs point)."""
    bucket = results_origin()
    return '; '.join([
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        f"img-src 'self' data: blob: {bucket}",
        f"media-src 'self' blob: {bucket}",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


def _page_headers(cache_control: str) -> dict[str, str]:
    return {'Content-Security-Policy': content_security_policy(), 'X-Content-Type-Options': 'nosniff',
            'Referrer-Policy': 'no-referrer', 'Cache-Control': cache_control}


def _file_response(path: Path, cache_control: str) -> Response[Any]:  # text or bytes, by file
    content_type = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or 'application/octet-stream'
    body: str | bytes = path.read_bytes() if content_type == 'image/png' else path.read_text(encoding='utf-8')
    return Response(status_code=200, content_type=content_type, body=body, headers=_page_headers(cache_control))


@router.get('/', include_in_schema=False, compress=True)
def playground() -> Response[str]:
    return _file_response(WEB_DIR / 'index.html', _HTML_CACHE)


@router.get('/docs', include_in_schema=False, compress=True)
def api_docs() -> Response[str]:
    return _file_response(WEB_DIR / 'docs.html', _HTML_CACHE)


@router.get('/static/<name>', include_in_schema=False, compress=True)
def static_file(name: str) -> Response[str]:
    path = static_files().get(name)
    if path is None:
        raise NotFoundError('No such file.')
    return _file_response(path, _STATIC_CACHE)
