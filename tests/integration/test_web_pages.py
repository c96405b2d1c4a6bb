"""The browser pages as the gateway serves them: the playground, Swagger UI and their files, each with a
Content-Security-Policy of the page's own origin (plus the bucket's, for media), no inline script, and
nothing loaded from another host."""

from __future__ import annotations

import gzip
import re
from html.parser import HTMLParser

import pytest
import requests
from vidgen.api import web

PAGES = ('/', '/docs')


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline_script = False
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == 'script'
        if any(name.startswith('on') for name, _ in attrs):
            self.inline_script = True  # an event-handler attribute is inline script too

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline_script = True


def _parse(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    return parser


@pytest.mark.parametrize('path', PAGES)
def test_pages_are_served_with_a_strict_policy(cloud, path) -> None:
    response = requests.get(cloud.api_url + path, timeout=30)
    assert response.status_code == 200
    assert response.headers['content-type'] == 'text/html; charset=utf-8'
    policy = dict(part.strip().split(' ', 1) for part in response.headers['content-security-policy'].split(';'))
    assert policy['default-src'] == "'self'" and policy['script-src'] == "'self'" and policy['connect-src'] == "'self'"
    # Media may come from the results bucket (presigned GETs), and from nowhere else.
    assert policy['media-src'] == f"'self' blob: {cloud.moto_url}"
    assert policy['img-src'] == f"'self' data: blob: {cloud.moto_url}"
    assert policy['frame-ancestors'] == "'none'" and policy['object-src'] == "'none'"
    assert response.headers['x-content-type-options'] == 'nosniff'
    tags = _parse(response.text)
    assert not tags.inline_script
    for tag, attrs in tags.tags:
        for name in ('src', 'href'):
            value = attrs.get(name) or ''
            assert not re.match(r'^(https?:)?//', value), f'<{tag} {name}={value}> points at another host'


def test_every_static_file_is_served_and_names_no_other_host(cloud) -> None:
    ours = sorted(path.name for path in (web.WEB_DIR / 'static').iterdir())
    assert {'app.js', 'style.css', 'docs.js', 'logo.svg'} <= set(ours)
    for name in ours:
        response = requests.get(f'{cloud.api_url}/static/{name}', timeout=30)
        assert response.status_code == 200, name
        assert response.headers['cache-control'] == 'public, max-age=300'
        if name.endswith(('.js', '.css')):
            # No URL to another host (the SVG's XML namespace is a name, not a request).
            assert not re.search(r'https?://(?!www\.w3\.org/2000/svg)', response.text), name
    assert requests.get(f'{cloud.api_url}/static/app.js', timeout=30).headers['content-type'].startswith('text/javascript')


def test_swagger_ui_comes_from_the_stack_compressed(cloud) -> None:
    raw = requests.get(f'{cloud.api_url}/static/swagger-ui-bundle.js', headers={'Accept-Encoding': 'gzip'},
                       timeout=30, stream=True)
    body = raw.raw.read()
    assert raw.status_code == 200 and raw.headers['content-encoding'] == 'gzip'
    assert len(body) < 600_000  # about 1.5 MB before compression: API Gateway would carry it whole either way
    assert b'SwaggerUIBundle' in gzip.decompress(body)
    assert requests.get(f'{cloud.api_url}/static/swagger-ui.css', timeout=30).headers['content-type'].startswith('text/css')


@pytest.mark.parametrize('name', ['nope.js', '..%2Findex.html', '%2E%2E%2Fweb.py', 'index.html', 'html.py'])
def test_only_listed_files_are_served(cloud, name) -> None:
    response = requests.get(f'{cloud.api_url}/static/{name}', timeout=30)
    assert response.status_code == 404
    assert response.json()['error']['code'] == 'NOT_FOUND'


def test_pages_are_not_in_the_api_document(cloud) -> None:
    paths = requests.get(f'{cloud.api_url}/v1/openapi.json', timeout=30).json()['paths']
    assert '/' not in paths and '/docs' not in paths and not any(p.startswith('/static') for p in paths)
    assert '/v1/jobs' in paths
