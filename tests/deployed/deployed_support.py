"""What the deployed tier's tests share: the API as a client calls it, a user, waiting for a job."""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

TIMEOUT = (5, 30)


@dataclass
class Api:
    base: str
    session: requests.Session

    def call(self, method: str, path: str, *, key: str | None = None, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop('headers', {}))
        if key:
            headers['Authorization'] = f'Bearer {key}'
        return self.session.request(method, self.base + path, headers=headers, timeout=TIMEOUT, **kwargs)

    @property
    def is_local(self) -> bool:
        host = urlsplit(self.base).hostname or ''
        try:
            return host == 'localhost' or ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


@dataclass
class User:
    user_id: str
    key: str



def wait_for_job(api: Api, user: User, job_id: str, timeout: float) -> dict[str, Any]:
    """The job once it has ended; fails the test if it has not ended within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        job = api.call('GET', f'/v1/jobs/{job_id}', key=user.key).json()
        if job['status'] not in ('queued', 'running'):
            return job
        assert time.monotonic() < deadline, f'job {job_id} still {job["status"]} after {timeout:.0f} s'
        time.sleep(1.0)
