"""Helpers shared by the integration and e2e tests: an HTTP client for the vidgen API and waits."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any

import requests
from vidgen_local.images import png

TERMINAL = ('succeeded', 'failed', 'canceled')


PNG_IMAGE = png(320, 320)
PNG_DATA_URI = 'data:image/png;base64,' + base64.b64encode(PNG_IMAGE).decode()


@dataclass
class Api:
    base_url: str
    key: str | None = None

    def request(self, method: str, path: str, *, key: str | None = None, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop('headers', {}) or {})
        token = key if key is not None else self.key
        if token:
            headers['Authorization'] = f'Bearer {token}'
        return requests.request(method, f'{self.base_url}{path}', headers=headers, timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request('GET', path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request('POST', path, **kwargs)

    def as_user(self, key: str) -> 'Api':
        return Api(self.base_url, key)

    def submit(self, body: dict[str, Any], **kwargs: Any) -> requests.Response:
        return self.post('/v1/jobs', json=body, **kwargs)

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.get(f'/v1/jobs/{job_id}')
        response.raise_for_status()
        return response.json()

    def credits(self) -> dict[str, Any]:
        response = self.get('/v1/credits', params={'limit': 100})
        response.raise_for_status()
        return response.json()

    def wait(self, job_id: str, timeout: float = 60.0, statuses: tuple[str, ...] = TERMINAL) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job['status'] in statuses:
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f'job {job_id} still {job["status"]} after {timeout}s')
            time.sleep(0.2)


def ledger_sum(credits: dict[str, Any]) -> int:
    return sum(entry['amount'] for entry in credits['ledger'])
