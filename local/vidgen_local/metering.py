"""What a run of the local cloud used, counted from its own calls, in the units AWS bills (for `make bench`).

A `Meter` attached to a running LocalCloud observes:

- every request moto's server answers (one WSGI hook, classified by the service in its SigV4 credential
  scope and its action): DynamoDB requests with the read and write request units they would consume, S3
  requests by pricing tier, Secrets Manager and Step Functions API calls;
- every Lambda invocation (the cloud's FunctionRunner): count, the handler's measured duration (not the
  time the event waited for an environment) and the function's MemorySize, hence GB-seconds; invocations
  carrying an API Gateway event are the API's requests;
- state transitions, read afterwards from the executions' own histories (`state_transitions`).

DynamoDB units follow the published sizing rules: a read is 1 unit per 4 KB strongly consistent (half that
eventually consistent, twice that in a transaction; at least one 4 KB step per request); a write is 1 unit
per 1 KB of the larger of the item before and after (twice in a transaction, a ConditionCheck included),
plus one write per global secondary index whose entry the write adds, changes or removes (two when the
index key changes). Sizes are DynamoDB's: attribute names plus values, as moto computes them.

Nothing here changes what moto or the handlers do; `detach()` removes every hook.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)
_SERVICE = re.compile(r'Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request')
_QUERY_SERVICE = re.compile(r'X-Amz-Credential=[^&]*%2F([a-z0-9-]+)%2Faws4_request', re.IGNORECASE)
_TRANSACTIONAL = ('TransactWriteItems', 'TransactGetItems')


@dataclass
class Usage:
    """Counts over one window of a run (see Meter.window)."""

    seconds: float = 0.0
    requests: Counter = field(default_factory=Counter)  # (service, action) -> calls
    read_units: float = 0.0
    write_units: float = 0.0
    invocations: Counter = field(default_factory=Counter)  # logical id -> invocations
    gb_seconds: Counter = field(default_factory=Counter)  # logical id -> memory GB x billed seconds
    api_requests: int = 0
    state_transitions: int = 0
    steps: Counter = field(default_factory=Counter)  # (logical id, poller action or API route) -> invocations
    step_seconds: Counter = field(default_factory=Counter)  # the same keys -> billed seconds
    polled_jobs: set = field(default_factory=set)  # jobs that reached the poll loop
    table_units: Counter = field(default_factory=Counter)  # (table, 'read' | 'write') -> request units

    def add(self, other: Usage) -> None:
        self.seconds += other.seconds
        self.requests.update(other.requests)
        self.read_units += other.read_units
        self.write_units += other.write_units
        self.invocations.update(other.invocations)
        self.gb_seconds.update(other.gb_seconds)
        self.api_requests += other.api_requests
        self.state_transitions += other.state_transitions
        self.steps.update(other.steps)
        self.step_seconds.update(other.step_seconds)
        self.polled_jobs |= other.polled_jobs
        self.table_units.update(other.table_units)

    def service_calls(self, service: str) -> int:
        return sum(count for (svc, _), count in self.requests.items() if svc == service)

    @property
    def s3_tier1(self) -> int:  # PUT, COPY, POST, LIST
        return sum(count for (svc, action), count in self.requests.items() if svc == 's3' and action.startswith('tier1'))

    @property
    def s3_tier2(self) -> int:  # GET, HEAD and the rest (DELETE is free)
        return sum(count for (svc, action), count in self.requests.items() if svc == 's3' and action.startswith('tier2'))

    def per(self, jobs: int) -> dict[str, float]:
        """The figures per job."""
        n = max(jobs, 1)
        return {
            'state_transitions': self.state_transitions / n,
            'lambda_invocations': sum(self.invocations.values()) / n,
            'lambda_gb_seconds': sum(self.gb_seconds.values()) / n,
            'dynamodb_read_units': self.read_units / n,
            'dynamodb_write_units': self.write_units / n,
            's3_tier1_requests': self.s3_tier1 / n,
            's3_tier2_requests': self.s3_tier2 / n,
            'api_requests': self.api_requests / n,
            'secrets_manager_calls': self.service_calls('secretsmanager') / n,
        }


class Meter:
    """Hooks into one running LocalCloud; `window()` gives the usage between two points of the run."""

    def __init__(self, cloud: Any) -> None:
        self.cloud = cloud
        self._lock = threading.Lock()
        self._usage = Usage()
        self._undo: list[Callable[[], None]] = []
        self.failures = 0

    # -- attaching ------------------------------------------------------------------------------------------

    def attach(self) -> Meter:
        self._hook_moto()
        self._hook_runner()
        return self

    def detach(self) -> None:
        while self._undo:
            self._undo.pop()()

    def __enter__(self) -> Meter:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def snapshot(self) -> Usage:
        with self._lock:
            copy = Usage()
            copy.add(self._usage)
            copy.seconds = time.monotonic()
            return copy

    @staticmethod
    def between(start: Usage, end: Usage) -> Usage:
        window = Usage(seconds=end.seconds - start.seconds)
        window.requests = end.requests - start.requests
        window.read_units = end.read_units - start.read_units
        window.write_units = end.write_units - start.write_units
        window.invocations = end.invocations - start.invocations
        window.gb_seconds = end.gb_seconds - start.gb_seconds
        window.api_requests = end.api_requests - start.api_requests
        window.steps = end.steps - start.steps
        window.step_seconds = end.step_seconds - start.step_seconds
        window.polled_jobs = end.polled_jobs - start.polled_jobs
        window.table_units = end.table_units - start.table_units
        return window

    def mean_seconds(self, usage: Usage, logical_id: str, step: str) -> float | None:
        calls = usage.steps[(logical_id, step)]
        return usage.step_seconds[(logical_id, step)] / calls if calls else None

    # -- Lambda ---------------------------------------------------------------------------------------------

    def _hook_runner(self) -> None:
        # Lambda bills the time the handler runs, not the time an event waits for an environment. The call
        # is timed whole, and the time spent acquiring an environment from its pool is taken out.
        runner = self.cloud.runner
        timing = threading.local()
        for pool in runner.pools.values():
            acquire = pool.acquire

            def timed_acquire(*args: Any, _acquire: Callable[..., Any] = acquire, **kwargs: Any) -> Any:
                began = time.perf_counter()
                try:
                    return _acquire(*args, **kwargs)
                finally:
                    timing.waited = getattr(timing, 'waited', 0.0) + time.perf_counter() - began

            pool.acquire = timed_acquire
            self._undo.append(lambda pool=pool: vars(pool).pop('acquire', None))
        original = runner.call

        def call(logical_id: str, event: Any, *args: Any, **kwargs: Any) -> Any:
            timing.waited = 0.0
            began = time.perf_counter()
            try:
                return original(logical_id, event, *args, **kwargs)
            finally:
                total = time.perf_counter() - began
                ran = max(0.0, total - timing.waited)
                billed = math.ceil(ran * 1000) / 1000  # Lambda bills per 1 ms
                memory_gb = self.cloud.function(logical_id).memory_size / 1024
                is_http = isinstance(event, dict) and 'requestContext' in event and 'routeKey' in event
                step = (event.get('routeKey') if is_http else event.get('action')) if isinstance(event, dict) else None
                with self._lock:
                    self._usage.invocations[logical_id] += 1
                    self._usage.gb_seconds[logical_id] += memory_gb * billed
                    self._usage.steps[(logical_id, step or '')] += 1
                    self._usage.step_seconds[(logical_id, step or '')] += billed
                    if is_http:
                        self._usage.api_requests += 1
                    if step == 'poll':
                        self._usage.polled_jobs.add(event.get('job_id'))

        runner.call = call
        self._undo.append(lambda: vars(runner).pop('call', None))

    # -- moto -----------------------------------------------------------------------------------------------

    def _hook_moto(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication

        from vidgen_local import patches

        original = DomainDispatcherApplication.__call__
        meter = self

        def __call__(app: Any, environ: dict[str, Any], start_response: Any) -> Any:
            service = _service(environ)
            if service != 'dynamodb':
                result = original(app, environ, start_response)
                meter._safely(meter._count_request, service, environ)
                return result
            body = _read_body(environ)
            target = environ.get('HTTP_X_AMZ_TARGET', '')
            action = target.rsplit('.', 1)[-1]
            request = json.loads(body or b'{}')
            # Serialised with moto's own DynamoDB lock (re-entrant), so the items seen before and after
            # are the ones this request changed.
            with patches.DYNAMODB_LOCK:
                before = meter._safely(meter._write_targets, action, request) or []
                chunks = list(original(app, environ, start_response))
                after = meter._safely(meter._write_targets, action, request, [key for key, _ in before]) or []
            meter._safely(meter._count_dynamodb, action, request, b''.join(chunks), before, after)
            return chunks

        DomainDispatcherApplication.__call__ = __call__

        def undo() -> None:
            DomainDispatcherApplication.__call__ = original

        self._undo.append(undo)

    def _safely(self, count: Callable[..., Any], *args: Any) -> Any:
        # Counting must never change what the request gets: a failure here is a lost figure, not a 500.
        try:
            return count(*args)
        except Exception:  # noqa: BLE001
            logger.warning('meter: could not count a request', exc_info=True)
            self.failures += 1
            return None

    def _count_request(self, service: str, environ: dict[str, Any]) -> None:
        if service == 's3':
            action = _s3_tier(environ)
        else:
            action = environ.get('HTTP_X_AMZ_TARGET', '').rsplit('.', 1)[-1] or environ.get('REQUEST_METHOD', '')
        with self._lock:
            self._usage.requests[(service, action)] += 1

    # DynamoDB sizing

    def _table(self, name: str) -> Any:
        from moto.backends import get_backend

        backend = get_backend('dynamodb')['123456789012']['us-east-1']
        return backend.get_table(name)

    def _write_targets(self, action: str, request: dict[str, Any],
                       keys: list[tuple[str, dict[str, Any]]] | None = None) -> list[tuple[tuple[str, Any], Any]]:
        """[((table, key), stored Item or None)] for every item the request writes."""
        if keys is None:
            keys = list(_written_keys(action, request, self._table))
        found = []
        for table_name, key in keys:
            try:
                table = self._table(table_name)
                hash_value, range_value = _key_values(table, key)
                item = table.get_item(hash_value, range_value)
            except Exception:  # noqa: BLE001 - a request moto refuses writes nothing; nothing to size
                item = None
            found.append(((table_name, key), _ItemView.of(item)))
        return found

    def _count_dynamodb(self, action: str, request: dict[str, Any], body: bytes, before: list, after: list) -> None:
        reads = writes = 0.0
        try:
            response = json.loads(body or b'{}')
        except ValueError:
            response = {}
        factor = 2 if action in _TRANSACTIONAL else 1
        if action == 'GetItem':
            reads = _read_units([response.get('Item')], request.get('ConsistentRead', False))
        elif action in ('Query', 'Scan'):
            consistent = request.get('ConsistentRead', False) and not request.get('IndexName')
            reads = _read_units(response.get('Items', []), consistent)
        elif action == 'BatchGetItem':
            for table_items in response.get('Responses', {}).values():
                reads += sum(_read_units([item], False) for item in table_items)
        elif action == 'TransactGetItems':
            reads = 2 * sum(_read_units([r.get('Item')], True) for r in response.get('Responses', []))
        after_by_key = {json.dumps(key, sort_keys=True): item for key, item in after}
        for key, old in before:
            new = after_by_key.get(json.dumps(key, sort_keys=True))
            table = self._table(key[0])
            size = max(old.size if old else 0, new.size if new else 0)
            writes += factor * max(1, math.ceil(size / 1024))
            writes += _index_writes(table, old, new)
        if action == 'TransactWriteItems':  # condition checks write nothing but are billed as writes
            checks = [op for op in request.get('TransactItems', []) if 'ConditionCheck' in op]
            writes += 2 * len(checks)
        tables = _tables_named(action, request)
        with self._lock:
            self._usage.requests[('dynamodb', action)] += 1
            self._usage.read_units += reads
            self._usage.write_units += writes
            if len(tables) == 1:  # per-table figures only where they are unambiguous
                self._usage.table_units[(tables[0], 'read')] += reads
                self._usage.table_units[(tables[0], 'write')] += writes

    # -- Step Functions -------------------------------------------------------------------------------------

    def state_transitions(self, execution_arns: Iterable[str]) -> int:
        """Billed transitions of these executions: every state entered, and every retried attempt."""
        sfn = self.cloud._client('stepfunctions')
        total = 0
        for arn in execution_arns:
            events: list[dict[str, Any]] = []
            token = None
            while True:
                page = sfn.get_execution_history(executionArn=arn, maxResults=1000,
                                                 **({'nextToken': token} if token else {}))
                events.extend(page['events'])
                token = page.get('nextToken')
                if not token:
                    break
            entered = sum(1 for e in events if e['type'].endswith('StateEntered'))
            scheduled = sum(1 for e in events if e['type'] in ('LambdaFunctionScheduled', 'TaskScheduled'))
            tasks = sum(1 for e in events if e['type'] == 'TaskStateEntered')
            total += entered + max(0, scheduled - tasks)
        return total


class _ItemView:
    """What the meter needs of a stored item: its size and its attributes (for index membership)."""

    __slots__ = ('size', 'attrs')

    def __init__(self, size: int, attrs: dict[str, Any]) -> None:
        self.size, self.attrs = size, attrs

    @classmethod
    def of(cls, item: Any) -> _ItemView | None:
        if item is None:
            return None
        return cls(item.size(), {name: value.value for name, value in item.attrs.items()})


def _service(environ: dict[str, Any]) -> str:
    found = _SERVICE.search(environ.get('HTTP_AUTHORIZATION', ''))
    if found:
        return found.group(1)
    found = _QUERY_SERVICE.search(environ.get('QUERY_STRING', ''))
    return found.group(1) if found else 'other'


def _s3_tier(environ: dict[str, Any]) -> str:
    method = environ.get('REQUEST_METHOD', 'GET')
    path = environ.get('PATH_INFO', '/').strip('/')
    if method in ('PUT', 'POST'):
        return f'tier1:{method}'
    if method == 'DELETE':
        return 'free:DELETE'
    if method == 'GET' and '/' not in path:  # a bucket, not an object: a LIST
        return 'tier1:LIST'
    return f'tier2:{method}'


def _read_body(environ: dict[str, Any]) -> bytes:
    import io

    length = int(environ.get('CONTENT_LENGTH') or 0)
    body = environ['wsgi.input'].read(length) if length else b''
    environ['wsgi.input'] = io.BytesIO(body)
    return body


def _written_keys(action: str, request: dict[str, Any], table_of: Callable[[str], Any]) -> Iterable[tuple[str, dict]]:
    def key_of(table_name: str, op: dict[str, Any]) -> dict[str, Any]:
        if 'Key' in op:
            return op['Key']
        table = table_of(table_name)
        names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
        return {name: op['Item'][name] for name in names if name in op['Item']}

    if action in ('PutItem', 'UpdateItem', 'DeleteItem'):
        yield request['TableName'], key_of(request['TableName'], request)
    elif action == 'TransactWriteItems':
        for entry in request.get('TransactItems', []):
            kind, op = next(iter(entry.items()))
            if kind != 'ConditionCheck':
                yield op['TableName'], key_of(op['TableName'], op)
    elif action == 'BatchWriteItem':
        for table_name, requests in request.get('RequestItems', {}).items():
            for entry in requests:
                op = entry.get('PutRequest') or entry.get('DeleteRequest') or {}
                yield table_name, key_of(table_name, op)


def _tables_named(action: str, request: dict[str, Any]) -> list[str]:
    if 'TableName' in request:
        return [request['TableName']]
    ops = [next(iter(entry.values())) for entry in request.get('TransactItems', [])]
    names = {op.get('TableName') for op in ops} | set(request.get('RequestItems', {}))
    return sorted(name for name in names if name)


def _key_values(table: Any, key: dict[str, Any]) -> tuple[Any, Any]:
    from moto.dynamodb.models.dynamo_type import DynamoType

    hash_value = DynamoType(key[table.hash_key_attr])
    range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
    return hash_value, range_value


def _item_size(item: dict[str, Any] | None) -> int:
    if not item:
        return 0
    from moto.dynamodb.models.dynamo_type import DynamoType

    return sum(len(name.encode()) + DynamoType(value).size() for name, value in item.items())


def _read_units(items: Iterable[dict[str, Any] | None], consistent: bool) -> float:
    size = sum(_item_size(item) for item in items)
    return max(1, math.ceil(size / 4096)) * (1.0 if consistent else 0.5)


def _projected(view: _ItemView | None, index: Any, table_keys: list[str]) -> dict[str, Any] | None:
    """The index entry of an item: None when the item is not in this (sparse) index."""
    key_names = index.schema_key_attrs
    if view is None or not all(name in view.attrs for name in key_names):
        return None
    projection = index.projection or {}
    kind = projection.get('ProjectionType', 'ALL')
    if kind == 'ALL':
        return view.attrs
    names = {*key_names, *table_keys, *(projection.get('NonKeyAttributes', []) if kind == 'INCLUDE' else [])}
    return {name: view.attrs[name] for name in names if name in view.attrs}


def _index_writes(table: Any, old: _ItemView | None, new: _ItemView | None) -> float:
    units = 0.0
    table_keys = [name for name in (table.hash_key_attr, table.range_key_attr) if name]
    for index in table.global_indexes:
        was, now = _projected(old, index, table_keys), _projected(new, index, table_keys)
        if was == now:
            continue  # not in the index, or its entry did not change
        size = max(old.size if was is not None and old else 0, new.size if now is not None and new else 0)
        keys_only = (index.projection or {}).get('ProjectionType') == 'KEYS_ONLY'
        per_write = 1 if keys_only else max(1, math.ceil(size / 1024))
        moved = was is not None and now is not None and any(was.get(n) != now.get(n) for n in index.schema_key_attrs)
        units += per_write * (2 if moved else 1)
    return units
