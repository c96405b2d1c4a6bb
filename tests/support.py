"""Helpers shared by the integration, e2e and fault tests: an HTTP client for the vidgen API, waits, and the
state and patches that must reach handlers running in their own execution environments."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

import requests
from vidgen_local.images import png

TERMINAL = ('succeeded', 'failed', 'canceled')


PNG_IMAGE = png(320, 320)
PNG_DATA_URI = 'data:image/png;base64,' + base64.b64encode(PNG_IMAGE).decode()


@dataclass
class Api:
    base_url: str
    key: str | None = None
    user_id: str | None = None  # the user this Api acts as, when a test made it

    def request(self, method: str, path: str, *, key: str | None = None, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop('headers', {}) or {})
        token = key if key is not None else self.key
        if token:
            headers['Authorization'] = f'Bearer {token}'
        kwargs.setdefault('timeout', 30)
        return requests.request(method, f'{self.base_url}{path}', headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request('GET', path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request('POST', path, **kwargs)

    def as_user(self, key: str) -> 'Api':
        return Api(self.base_url, key)

    def create_user(self, user_id: str, credits: int) -> 'Api':
        """As the admin: create `user_id` with `credits`; the Api acting as that user."""
        response = self.post('/v1/admin/users', json={'user_id': user_id, 'credits': credits})
        assert response.status_code == 201, response.text
        return Api(self.base_url, response.json()['api_key'], user_id)

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


# --- a job's execution ------------------------------------------------------------------------------------


def execution_arn(cloud: Any, job_id: str) -> str:
    """The ARN of the job's execution: the job machine names each execution by its job id."""
    return cloud.handler_env['STATE_MACHINE_ARN'].replace(':stateMachine:', ':execution:') + f':{job_id}'


def wait_for_execution_end(cloud: Any, job_id: str, timeout: float = 15.0) -> dict[str, Any]:
    """DescribeExecution once the job's execution has ended. A job's status is final before its execution has
    run its last states (Notify, Settled), so a client that saw the job end may still find it running."""
    import boto3

    sfn = boto3.client('stepfunctions')
    deadline = time.monotonic() + timeout
    while (described := sfn.describe_execution(executionArn=execution_arn(cloud, job_id)))['status'] == 'RUNNING':
        assert time.monotonic() < deadline, f'the execution of {job_id} still runs after {timeout}s'
        time.sleep(0.05)
    return described


def execution_events(cloud: Any, job_id: str, *, ended: bool = True, timeout: float = 15.0) -> list[dict[str, Any]]:
    """Every event of the job's execution, page by page; once it has ended unless `ended` is False (a report of
    how far a late job got)."""
    import boto3

    if ended:
        wait_for_execution_end(cloud, job_id, timeout)
    sfn = boto3.client('stepfunctions')
    events: list[dict[str, Any]] = []
    token = None
    while True:
        page = sfn.get_execution_history(executionArn=execution_arn(cloud, job_id), maxResults=1000,
                                         **({'nextToken': token} if token else {}))
        events += page['events']
        token = page.get('nextToken')
        if not token:
            return events


def execution_states(cloud: Any, job_id: str, *, ended: bool = True) -> list[str]:
    """Names of the states the job's execution entered, in order."""
    return [e['stateEnteredEventDetails']['name'] for e in execution_events(cloud, job_id, ended=ended)
            if 'stateEnteredEventDetails' in e]


def ledger_sum(credits: dict[str, Any]) -> int:
    return sum(entry['amount'] for entry in credits['ledger'])


def listed_once_caught_up(read: Any, expected: Any, timeout: float = 10.0) -> Any:
    """`read()` again until it returns `expected` or `timeout` passes, then its last answer (to assert on).

    The job and storyboard listings read a global secondary index, which shows a write only after a lag (on
    AWS, and locally with VIDGEN_LOCAL_INDEX_LAG): a client that wants its last write listed reads again."""
    deadline = time.monotonic() + timeout
    while True:
        found = read()
        if found == expected or time.monotonic() >= deadline:
            return found
        time.sleep(0.05)


class Received(NamedTuple):
    headers: dict[str, str]
    body: Any  # the decoded JSON, or the raw bytes when the receiver was made with decode_json=False
    status: int


class ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True
    # A backlog of 1,024 rather than http.server's 5: the load tests' 200 webhooks arrive together, and a
    # client's endpoint behind a load balancer takes them all (a reset would be our receiver's fault, not
    # the notifier's).
    request_queue_size = 1024


class Receiver:
    """An HTTP endpoint on 127.0.0.1 (callbacks, webhooks) that records every POST and answers `statuses`
    in turn, then 200."""

    def __init__(self, statuses: tuple[int, ...] = (), *, path: str = '/hook', decode_json: bool = True) -> None:
        self.calls: list[Received] = []
        self._statuses = list(statuses)
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                raw = self.rfile.read(int(self.headers.get('Content-Length') or 0))
                with receiver._cond:
                    status = receiver._statuses.pop(0) if receiver._statuses else 200
                    receiver.calls.append(Received(dict(self.headers), json.loads(raw) if decode_json else raw, status))
                    receiver._cond.notify_all()
                self.send_response(status)
                self.send_header('Content-Length', '0')
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ReceiverServer(('127.0.0.1', 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True).start()
        self.url = f'http://127.0.0.1:{self._server.server_address[1]}{path}'

    @property
    def accepted(self) -> list[Received]:
        with self._cond:
            return [call for call in self.calls if 200 <= call.status < 300]

    def wait_for(self, count: int, timeout: float = 30.0, *, accepted_only: bool = False) -> list[Received]:
        """The calls so far once there are `count` (accepted ones only, if asked); fewer if `timeout` passes."""
        def seen() -> list[Received]:
            return [c for c in self.calls if not accepted_only or 200 <= c.status < 300]
        with self._cond:
            self._cond.wait_for(lambda: len(seen()) >= count, timeout=timeout)
            return seen()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# --- state shared with handler code --------------------------------------------------------------------------


class SharedState:
    """State that handler code and the test both see, in files under one directory.

    Handlers run in execution environments forked from the test process: a Python list or a closure's flag
    the handler changes is the environment's own copy, and the test never sees it. These cross processes:
    - `first(name)`: True exactly once across every process (os.open with O_CREAT | O_EXCL is atomic);
    - `append(name, value)` / `items(name)`: an append-only JSON-lines list (one os.write per line on an
      O_APPEND descriptor, so lines from several environments never interleave);
    - `set(name, value)` / `get(name)`: one JSON value, replaced atomically (written aside, then renamed);
    - `flag(name)` / `unflag(name)` / `flagged(name)`: a switch the test flips while handlers run.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, name: str, suffix: str) -> Path:
        if not name or '/' in name or name.startswith('.'):
            raise ValueError(f'not a plain name: {name!r}')
        return self.directory / f'{name}{suffix}'

    def first(self, name: str) -> bool:
        try:
            os.close(os.open(self._path(name, '.first'), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            return False
        return True

    def append(self, name: str, value: Any) -> None:
        line = (json.dumps(value, default=_number) + '\n').encode()
        fd = os.open(self._path(name, '.jsonl'), os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def items(self, name: str) -> list[Any]:
        try:
            text = self._path(name, '.jsonl').read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line]

    def set(self, name: str, value: Any) -> None:
        target = self._path(name, '.json')
        aside = target.with_name(f'.{target.name}.{os.getpid()}.{threading.get_ident()}')
        aside.write_text(json.dumps(value, default=_number))
        os.replace(aside, target)

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return json.loads(self._path(name, '.json').read_text())
        except FileNotFoundError:
            return default

    def flag(self, name: str) -> None:
        self._path(name, '.flag').touch()

    def unflag(self, name: str) -> None:
        self._path(name, '.flag').unlink(missing_ok=True)

    def flagged(self, name: str) -> bool:
        return self._path(name, '.flag').exists()


def _number(value: Any) -> Any:
    """DynamoDB's numbers (Decimal), which handler code passes around, as JSON numbers."""
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f'{type(value).__name__} is not JSON serializable')


class HandlerPatch:
    """pytest's monkeypatch for code that handlers run. Handlers run in execution environments forked from
    this process; a warm one was forked before the patch and never sees it. So every change is followed by
    `cloud.recycle_environments()` (the next event forks afresh and sees the patch), and so is the undo
    (no environment forked meanwhile keeps the patched code for later tests)."""

    def __init__(self, monkeypatch: Any, cloud: Any) -> None:
        self._monkeypatch = monkeypatch
        self._cloud = cloud

    def setattr(self, target: Any, name: str, value: Any) -> None:
        self._monkeypatch.setattr(target, name, value)
        self._cloud.recycle_environments()

    def undo(self) -> None:
        self._monkeypatch.undo()
        self._cloud.recycle_environments()


def admin_client(cloud: Any, service: str) -> Any:
    """A boto3 client acting as the local cloud's admin, explicitly: test scaffolding that runs inside a
    handler's environment (an injected crash stopping its execution, as the lost container's end would) must
    not borrow the function's role, which rightly may lack the permission."""
    import boto3

    keys = cloud.admin_credentials
    return boto3.client(service, aws_access_key_id=keys['AWS_ACCESS_KEY_ID'],
                        aws_secret_access_key=keys['AWS_SECRET_ACCESS_KEY'], aws_session_token=None,
                        endpoint_url=cloud.moto_url, region_name='us-east-1')
