"""Every change the local cloud makes to moto, in one place (research/local-stack.md has the evidence).

moto 5.2.x runs the real ASL, but gaps would make the local stack behave unlike AWS: five make it act
differently (Lambda dispatch, serialised DynamoDB writes, time-scaled waits, SendTaskFailure's cause,
unnamed executions), three make it accept what AWS refuses or hides (States.ALL catching terminal errors,
transactions over 4 MB, indexes that show a write at once), and two make it slow (the whole-table copy
per TransactWriteItems, the ASL parse per StartExecution). `apply_all()` installs each fix once per
process; calling it again only swaps the dispatcher, the time scale and the index lag, so a second
`LocalCloud` in the same process reuses the installed patches.

Each patch names the moto attribute it replaces in `PATCH_TARGETS`; `tests/integration/test_local_patches.py`
checks that those attributes still exist with the signatures assumed here and that the behaviour each patch
provides is observable, so a moto upgrade that moves them fails a test instead of the demo.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

# (function name, decoded event) -> the handler's JSON-serialisable result; raises like the handler does.
Dispatch = Callable[[str, Any], Any]

# (module, attribute path) of everything replaced, for the upgrade tests.
PATCH_TARGETS: dict[str, tuple[str, str]] = {
    'lambda_dispatch': ('moto.awslambda_simple.models', 'LambdaSimpleBackend.invoke'),
    'dynamodb_lock': ('moto.dynamodb.responses', 'DynamoHandler'),
    'wait_scale': ('moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function',
                   'WaitFunction._wait_interval'),
    'retry_scale': ('moto.stepfunctions.parser.asl.component.common.retry.retrier_decl', 'time'),
    'send_task_failure_cause': ('moto.stepfunctions.responses', 'StepFunctionResponse.send_task_failure'),
    'start_execution_name': ('moto.stepfunctions.parser.models', 'StepFunctionsParserBackend.start_execution'),
    'transact_item_rollback': ('moto.dynamodb.models', 'DynamoDBBackend.transact_write_items'),
    'asl_parse_cache': ('moto.stepfunctions.parser.backend.execution_worker',
                        'ExecutionWorker._get_evaluation_entrypoint'),
    'terminal_errors': ('moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl',
                        'ErrorEqualsDecl._eval_body'),
    'transaction_size': ('moto.dynamodb.responses', 'DynamoHandler.transact_write_items'),
    'index_lag': ('moto.dynamodb.models.table', 'Table.all_items'),
}

# sha256 of the source of moto methods that a patch replaces by a rewritten copy (not a wrapper): a moto
# upgrade that changes one of them fails tests/integration/test_local_patches.py until the copy is reviewed.
REWRITTEN_SOURCES: dict[str, str] = {
    'moto.dynamodb.models.DynamoDBBackend.transact_write_items':
        '81db2cb7d94e39c90b3a2077e1f4bb41a449c558ef9b1b1e2910fdaa39978ad4',
    'moto.stepfunctions.parser.backend.execution_worker.ExecutionWorker._get_evaluation_entrypoint':
        '2b25949ae855da8035b347b28ac72f90d7d6542bf26ef7e1f03a50ce6a981fde',
}

# DynamoDB actions serialised by the lock: every write, and the reads, so no reader sees a transaction half
# applied (moto rolls a cancelled TransactWriteItems back by restoring items it already changed).
DYNAMODB_LOCKED_ACTIONS = (
    'put_item', 'update_item', 'delete_item', 'transact_write_items', 'batch_write_item',
    'execute_statement', 'execute_transaction', 'batch_execute_statement',
    'get_item', 'batch_get_item', 'query', 'scan', 'transact_get_items',
)

_state: dict[str, Any] = {'dispatch': None, 'wait_scale': 1.0, 'index_lag': 0.0}
_installed: set[str] = set()
_install_lock = threading.Lock()
DYNAMODB_LOCK = threading.RLock()


def apply_all(dispatch: Dispatch, wait_scale: float, index_lag: float = 0.0) -> None:
    """Install every patch (once per process) and point them at `dispatch`, `wait_scale` and `index_lag`."""
    if wait_scale <= 0:
        raise ValueError('wait_scale must be positive')
    _state['dispatch'] = dispatch
    _state['wait_scale'] = float(wait_scale)
    set_index_lag(index_lag)
    with _install_lock:
        for name, install in _INSTALLERS.items():
            if name not in _installed:
                install()
                _installed.add(name)


def set_dispatch(dispatch: Dispatch | None) -> None:
    """Point the Lambda patch at another dispatcher; None restores moto's own behaviour (echo the payload)."""
    _state['dispatch'] = dispatch


def set_wait_scale(scale: float) -> None:
    """1.0 restores real-time Waits and Retry intervals."""
    if scale <= 0:
        raise ValueError('wait_scale must be positive')
    _state['wait_scale'] = float(scale)


def set_index_lag(seconds: float) -> None:
    """How long a write stays out of global secondary index reads; 0 shows it at once (moto as shipped)."""
    if seconds < 0:
        raise ValueError('index lag cannot be negative')
    _state['index_lag'] = float(seconds)
    _INDEX_HISTORY.clear()


def installed() -> frozenset[str]:
    return frozenset(_installed)


# --- (a) Lambda invocations run our handlers in their execution environments ---------------------------


def lambda_error_payload(exc: BaseException) -> dict[str, Any]:
    """The body the Lambda runtime returns for an unhandled exception: ASL Retry/Catch match `errorType`
    (a runtime.FunctionError carries the type the execution environment reported, e.g. Sandbox.Timedout)."""
    return {'errorType': getattr(exc, 'error_type', type(exc).__name__), 'errorMessage': str(exc), 'stackTrace': []}


class _MarshalError(Exception):
    pass


_MarshalError.__name__ = 'Runtime.MarshalError'


def _install_lambda_dispatch() -> None:
    # moto's simple Lambda backend (use_docker=false) echoes the payload back. The state machine's Tasks
    # must run the real handler instead, and a raised exception must look like Lambda's "Unhandled" error
    # so the ASL matches on our typed error class names (ProviderThrottledError, ...).
    from moto.awslambda_simple.models import LambdaSimpleBackend

    original = LambdaSimpleBackend.invoke

    @functools.wraps(original)
    def invoke(self: Any, function_name: str, qualifier: str | None, body: Any, headers: Any,
               response_headers: Any) -> str | bytes | None:
        dispatch = _state['dispatch']
        if dispatch is None:  # no local cloud running: moto as shipped
            return original(self, function_name, qualifier, body, headers, response_headers)
        name = function_name.split(':function:')[-1].split(':')[0]
        try:
            result = dispatch(name, json.loads(body) if body else {})
            try:
                return json.dumps(result).encode()
            except (TypeError, ValueError) as exc:  # the Python runtime's name for an unserialisable result
                raise _MarshalError(f'Unable to marshal response: {exc}') from exc
        except Exception as exc:  # noqa: BLE001 - every handler failure becomes a Lambda function error
            # One line, like the [ERROR] line Lambda logs; the traceback only when debugging.
            logger.warning('lambda %s raised %s: %s', name, getattr(exc, 'error_type', type(exc).__name__), exc)
            logger.debug('lambda %s traceback:\n%s', name, traceback.format_exc())
            response_headers['x-amz-function-error'] = 'Unhandled'
            return json.dumps(lambda_error_payload(exc)).encode()

    LambdaSimpleBackend.invoke = invoke


# --- (b) DynamoDB writes are serialised ------------------------------------------------------------------


def _install_dynamodb_lock() -> None:
    # moto's werkzeug app locks only while routing; UpdateItem and TransactWriteItems are an unlocked
    # read-check-write. Under 50 concurrent conditional debits this lost accepted debits and drove balances
    # negative (research §2); DynamoDB itself never does. The handler methods are wrapped (not the backend)
    # so ReturnValues=ALL_OLD, which moto reads before the write, is part of the same critical section.
    from moto.dynamodb.responses import DynamoHandler

    for action in DYNAMODB_LOCKED_ACTIONS:
        original = getattr(DynamoHandler, action)
        setattr(DynamoHandler, action, _serialised(original))


def _serialised(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(self: Any) -> Any:
        with DYNAMODB_LOCK:
            return method(self)

    locked.__vidgen_locked__ = True  # type: ignore[attr-defined]
    return locked


# --- (c) Wait states and Retry intervals run time-scaled --------------------------------------------------


def _install_wait_scale() -> None:
    # A local job should not take the minutes its real Wait states take. Stop must still interrupt a wait,
    # and an unrelated wake-up of the event must not end it early, so wait on the event until the deadline.
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

    def _wait_interval(self: Any, env: Any, wait_seconds: float) -> None:  # keyword must stay `wait_seconds`
        deadline = time.monotonic() + max(0.0, float(wait_seconds)) / _state['wait_scale']
        while env.is_running():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            env.program_state_event.wait(remaining)

    WaitFunction._wait_interval = _wait_interval


class _ScaledTime:
    """Stands in for the `time` module inside moto's retrier: only `sleep` is scaled."""

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds) / _state['wait_scale'])

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def _install_retry_scale() -> None:
    # The retrier sleeps with a bare time.sleep(interval) between attempts (IntervalSeconds, BackoffRate,
    # MaxDelaySeconds and JitterStrategy already applied); scale that sleep like the Wait states.
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    retrier_decl.time = _ScaledTime()


# --- (d) SendTaskFailure keeps its cause ------------------------------------------------------------------


def _install_send_task_failure_cause() -> None:
    # moto's response handler forwards only `error`; the Catch's ResultPath then gets Cause = null and the
    # fail step loses the provider's explanation. The backend already accepts `cause`.
    from moto.core.responses import EmptyResult
    from moto.stepfunctions.responses import StepFunctionResponse

    def send_task_failure(self: Any) -> Any:
        self.stepfunction_backend.send_task_failure(
            self._get_param('taskToken'), error=self._get_param('error'), cause=self._get_param('cause'))
        return EmptyResult()

    StepFunctionResponse.send_task_failure = send_task_failure


# --- (e) StartExecution without a name gets a unique one ------------------------------------------------


def _install_start_execution_name() -> None:
    # moto names every unnamed execution "None", so the second unnamed start fails with
    # ExecutionAlreadyExists. AWS generates a UUID; so do we. (vidgen itself always names executions.)
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original = StepFunctionsParserBackend.start_execution

    @functools.wraps(original)
    def start_execution(self: Any, state_machine_arn: str, name: str | None = None, *args: Any,
                        **kwargs: Any) -> Any:
        return original(self, state_machine_arn, name or str(uuid.uuid4()), *args, **kwargs)

    StepFunctionsParserBackend.start_execution = start_execution


# --- (f) TransactWriteItems backs up the items it touches, not whole tables -------------------------------


def _install_transact_item_rollback() -> None:
    # moto deep-copies every table a transaction names, once per item, so it can put the table back if an
    # item fails: three copies of the whole service table per submit, growing with every job (a third of the
    # test suite's CPU). Copying just the items the transaction touches gives the same all-or-nothing result:
    # one transaction may name an item only once, and only those items can change. Everything else below is
    # moto's method as it stands (REWRITTEN_SOURCES pins the version it was copied from).
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )
    from moto.dynamodb.models import DynamoDBBackend

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        if len(transact_items) > 100:
            raise TooManyTransactionsException()
        backup = _TouchedItems(self)
        target_items: set[tuple[str, str]] = set()

        def check_unicity(table_name: str, key: dict[str, Any]) -> None:
            item = (str(table_name), str(dict(sorted(key.items()))))
            if item in target_items:
                raise MultipleTransactionsException()
            target_items.add(item)

        errors: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
        for item in transact_items:
            original_item: dict[str, Any] | None = None
            if len(list(item.keys())) > 1:
                raise TransactWriteSingleOpException
            try:
                op_type, op = next(iter(item.items()))
                if op_type not in {'ConditionCheck', 'Put', 'Delete', 'Update'}:
                    raise ValueError('Unsupported transaction operation')
                table_name = op['TableName']
                condition_expression = op.get('ConditionExpression')
                expression_attribute_names = op.get('ExpressionAttributeNames')
                expression_attribute_values = op.get('ExpressionAttributeValues')
                if op_type == 'Put':
                    attrs = op['Item']
                    table = self.get_table(table_name)
                    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                    if table.range_key_attr is not None:
                        key[table.range_key_attr] = attrs[table.range_key_attr]
                else:
                    key = op['Key']
                check_unicity(table_name, key)
                current = self.get_item(table_name, key)
                if condition_expression is not None:
                    condition_op = get_filter_expression(condition_expression, expression_attribute_names,
                                                         expression_attribute_values)
                    if not condition_op.expr(current):
                        if op.get('ReturnValuesOnConditionCheckFailure') == 'ALL_OLD' and current:
                            original_item = current.to_json()['Attributes']
                        raise ConditionalCheckFailed(item=original_item)
                if op_type != 'ConditionCheck':
                    backup.save(table_name, key, current)
                if op_type == 'Put':
                    self.put_item(table_name, op['Item'], condition_expression=condition_expression,
                                  expression_attribute_names=expression_attribute_names,
                                  expression_attribute_values=expression_attribute_values)
                elif op_type == 'Delete':
                    self.delete_item(table_name, key, condition_expression=condition_expression,
                                     expression_attribute_names=expression_attribute_names,
                                     expression_attribute_values=expression_attribute_values)
                elif op_type == 'Update':
                    self.update_item(table_name, key, update_expression=op['UpdateExpression'],
                                     condition_expression=condition_expression,
                                     expression_attribute_names=expression_attribute_names,
                                     expression_attribute_values=expression_attribute_values)
                errors.append((None, None, None))
            except (MultipleTransactionsException, MockValidationException):
                backup.restore()
                raise
            except ConditionalCheckFailed as exc:
                errors.append(('ConditionalCheckFailed', str(exc.message), original_item))
            except Exception as exc:  # noqa: BLE001 - as moto: any other failure cancels the transaction
                errors.append((type(exc).__name__, str(exc), original_item))
        if any(code is not None for code, _, _ in errors):
            backup.restore()
            raise TransactionCanceledException(errors)

    transact_write_items.__wrapped__ = DynamoDBBackend.transact_write_items  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = transact_write_items


class _TouchedItems:
    """The items a transaction is about to write, as they were before it, and how to put them back.

    Put and Delete replace or remove the stored Item; Update changes it in place, hence the deep copy of
    that one item. A table with a stream also gets its stream records back to where they were."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self._items: list[tuple[Any, Any, Any, Any]] = []  # (table, hash value, range value, Item or None)
        self._streams: dict[int, tuple[Any, list[Any], int]] = {}

    def save(self, table_name: str, key: dict[str, Any], current: Any) -> None:
        table = self._backend.get_table(table_name)
        hash_value, range_value = self._backend.get_keys_value(table, key)
        self._items.append((table, hash_value, range_value, copy.deepcopy(current)))
        shard = table.stream_shard
        if shard is not None and id(table) not in self._streams:
            self._streams[id(table)] = (shard, shard.items, len(shard.items))

    def restore(self) -> None:
        for table, hash_value, range_value, item in reversed(self._items):
            if range_value is None:
                if item is None:
                    table.items.pop(hash_value, None)
                else:
                    table.items[hash_value] = item
                continue
            ranges = table.items[hash_value]
            if item is None:
                ranges.pop(range_value, None)
                if not ranges:
                    table.items.pop(hash_value, None)
            else:
                ranges[range_value] = item
        for shard, records, length in self._streams.values():
            del records[length:]
            shard.items = records
        self._items, self._streams = [], {}


# --- (g) StartExecution reuses the parsed ASL ------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _asl_parse_tree(definition: str) -> Any:
    """The ANTLR parse tree of a definition (a syntax error raises and is not cached)."""
    # The same steps as moto's AmazonStateLanguageParser.parse, up to (not including) the preprocessor.
    from moto.stepfunctions.parser.asl.parse.asl_parser import (
        ASLLexer,
        ASLParser,
        ASLParserException,
        CommonTokenStream,
        InputStream,
        SyntaxErrorListener,
    )

    listener = SyntaxErrorListener()
    parser = ASLParser(CommonTokenStream(ASLLexer(InputStream(definition))))
    parser.removeErrorListeners()
    parser.addErrorListener(listener)
    tree = parser.state_machine()
    if listener.errors:
        raise ASLParserException(errors=listener.errors)
    return tree


def _install_asl_parse_cache() -> None:
    # Every execution lexes and parses its state machine's definition again (ANTLR in pure Python: ~100 ms
    # for job.asl.json, a sixth of the suite's CPU). The definition of a state machine version never
    # changes, so the parse tree is kept per definition text, the cache key that also covers an updated
    # definition. The tree is only read by the preprocessor, which still builds each execution its own
    # program (~5 ms), so no state is shared between executions.
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    original = ExecutionWorker._get_evaluation_entrypoint

    def _get_evaluation_entrypoint(self: Any) -> Any:
        definition = self._evaluation_details.state_machine_details.definition
        return Preprocessor().visit(_asl_parse_tree(definition))

    _get_evaluation_entrypoint.__wrapped__ = original  # type: ignore[attr-defined]
    ExecutionWorker._get_evaluation_entrypoint = _get_evaluation_entrypoint


# --- (h) States.ALL does not catch the terminal errors -----------------------------------------------------


# AWS: "States.ALL ... can't catch the States.DataLimitExceeded terminal error or States.Runtime errors". moto's
# matcher lets States.ALL match anything, so a state output over 256 KiB (which moto does detect) was caught
# by our Catch into FailJob instead of failing the execution as on AWS.
TERMINAL_ERRORS = ('States.DataLimitExceeded', 'States.Runtime')


def _install_terminal_errors() -> None:
    from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import ErrorEqualsDecl

    original = ErrorEqualsDecl._eval_body

    @functools.wraps(original)
    def _eval_body(self: Any, env: Any) -> None:
        error_name = env.stack[-1]
        named = getattr(error_name, 'error_name', None)
        if named in TERMINAL_ERRORS and ErrorEqualsDecl._STATE_ALL_ERROR in self.error_names:
            env.stack.pop()
            env.stack.append(False)  # only an ErrorEquals naming the error itself catches it
            return
        original(self, env)

    ErrorEqualsDecl._eval_body = _eval_body


# --- (i) TransactWriteItems refuses more than 4 MB ---------------------------------------------------------


TRANSACTION_MAX_BYTES = 4 * 1024 * 1024
TRANSACTION_TOO_LARGE = 'Transaction request cannot be larger than 4 MB'


def transaction_bytes(transact_items: list[dict[str, Any]]) -> int:
    """The aggregate size of a TransactWriteItems request's items, by DynamoDB's item-size rules: attribute
    names plus values (moto's DynamoType.size), over every Put's item and every other action's key and values."""
    from moto.dynamodb.models.dynamo_type import DynamoType, bytesize

    def size(attributes: dict[str, Any]) -> int:
        return sum(bytesize(name) + DynamoType(value).size() for name, value in (attributes or {}).items())

    total = 0
    for entry in transact_items:
        for action, op in entry.items():
            total += size(op.get('Item') if action == 'Put' else op.get('Key'))
            total += size(op.get('ExpressionAttributeValues'))
    return total


def _install_transaction_size() -> None:
    # moto checks the count of actions (100) and each item's 400 KB, but not the transaction's 4 MB. Wrapped at
    # the response handler, after the serialising lock, so it composes with any patch of the backend.
    from moto.dynamodb.exceptions import MockValidationException
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.transact_write_items

    @functools.wraps(original)
    def transact_write_items(self: Any) -> Any:
        if transaction_bytes(self.body.get('TransactItems') or []) > TRANSACTION_MAX_BYTES:
            raise MockValidationException(TRANSACTION_TOO_LARGE)
        return original(self)

    DynamoHandler.transact_write_items = transact_write_items


# --- (j) Global secondary indexes lag behind writes ---------------------------------------------------------


# (table name, hash key, range key) -> [(monotonic time of a write, the item as it was before it, or None)].
# Only writes younger than the lag are kept.
_INDEX_HISTORY: dict[tuple[str, Any, Any], list[tuple[float, Any]]] = {}
_LAGGED_READ = threading.local()


def _install_index_lag() -> None:
    # DynamoDB propagates a write to a global secondary index asynchronously: a Query or Scan on the index right
    # after a write may miss it, or still show the item as it was. moto's indexes are read straight from the
    # table. With a lag set, every write remembers the item it replaced, and an index read sees, for an item
    # written less than `lag` seconds ago, the version from before that window (or nothing, for a new item).
    # Base-table reads are unaffected. Writes from transactions and batches go through the same Table methods.
    import copy
    import inspect

    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import GlobalSecondaryIndex, Table

    def remember(table: Any, hash_key: Any, range_key: Any, before: Any) -> None:
        if _state['index_lag'] <= 0:
            return
        now = time.monotonic()
        key = (table.name, hash_key, range_key)
        with DYNAMODB_LOCK:
            _INDEX_HISTORY.setdefault(key, []).append((now, before))

    original_put = Table.put_item

    @functools.wraps(original_put)
    def put_item(self: Any, item_attrs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if _state['index_lag'] <= 0:
            return original_put(self, item_attrs, *args, **kwargs)
        from moto.dynamodb.models.dynamo_type import DynamoType

        hash_key = DynamoType(item_attrs[self.hash_key_attr])
        range_key = DynamoType(item_attrs[self.range_key_attr]) if self.range_key_attr else None
        before = self.get_item(hash_key, range_key)
        result = original_put(self, item_attrs, *args, **kwargs)
        remember(self, hash_key, range_key, before)  # put replaces the Item object: `before` stays as it was
        return result

    original_delete = Table.delete_item

    @functools.wraps(original_delete)
    def delete_item(self: Any, hash_key: Any, range_key: Any) -> Any:
        removed = original_delete(self, hash_key, range_key)
        if removed is not None:
            remember(self, hash_key, range_key, removed)
        return removed

    original_update = DynamoDBBackend.update_item

    @functools.wraps(original_update)
    def update_item(self: Any, table_name: str, key: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if _state['index_lag'] <= 0:
            return original_update(self, table_name, key, *args, **kwargs)
        table = self.get_table(table_name)
        hash_key, range_key = self.get_keys_value(table, key)
        existing = table.get_item(hash_key, range_key)
        before = copy.deepcopy(existing)  # UpdateItem changes the Item in place
        result = original_update(self, table_name, key, *args, **kwargs)
        if existing is not None:  # a new item was put by update_item itself, and remembered there
            remember(table, hash_key, range_key, before)
        return result

    def lagged(table: Any, current: list[Any]) -> list[Any]:
        cutoff = time.monotonic() - _state['index_lag']
        visible: dict[tuple[Any, Any], Any] = {}
        for (name, hash_key, range_key), writes in list(_INDEX_HISTORY.items()):
            fresh = [(at, before) for at, before in writes if at > cutoff]
            if not fresh:
                del _INDEX_HISTORY[(name, hash_key, range_key)]
                continue
            _INDEX_HISTORY[(name, hash_key, range_key)] = fresh
            if name == table.name:
                visible[(hash_key, range_key)] = fresh[0][1]  # the item before the first write in the window
        if not visible:
            return current
        shown = [item for item in current if (item.hash_key, item.range_key) not in visible]
        shown += [before for before in visible.values() if before is not None]
        return sorted(shown, key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key)

    original_query, original_scan = Table.query, Table.scan
    original_all_items, original_has_idx_items = Table.all_items, Table.has_idx_items

    def lag_index_reads(method: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(method)  # moto's backend passes index_name by position

        @functools.wraps(method)
        def read(self: Any, *args: Any, **kwargs: Any) -> Any:
            index_name = signature.bind(self, *args, **kwargs).arguments.get('index_name')
            on_gsi = bool(index_name) and _state['index_lag'] > 0 and isinstance(
                self.get_index(index_name), GlobalSecondaryIndex)
            previous = getattr(_LAGGED_READ, 'table', None)
            _LAGGED_READ.table = self if on_gsi else None
            try:
                return method(self, *args, **kwargs)
            finally:
                _LAGGED_READ.table = previous
        return read

    def all_items(self: Any) -> list[Any]:
        items = original_all_items(self)
        return lagged(self, items) if getattr(_LAGGED_READ, 'table', None) is self else items

    def has_idx_items(self: Any, index_name: str) -> list[Any]:
        if getattr(_LAGGED_READ, 'table', None) is not self:
            return original_has_idx_items(self, index_name)
        columns = {i['AttributeName'] for i in self.get_index(index_name).schema}
        return [item for item in all_items(self) if columns.issubset(set(item.attrs))]

    Table.put_item, Table.delete_item, DynamoDBBackend.update_item = put_item, delete_item, update_item
    Table.query, Table.scan = lag_index_reads(original_query), lag_index_reads(original_scan)
    Table.all_items, Table.has_idx_items = all_items, has_idx_items


_INSTALLERS: dict[str, Callable[[], None]] = {
    'lambda_dispatch': _install_lambda_dispatch,
    'dynamodb_lock': _install_dynamodb_lock,
    'wait_scale': _install_wait_scale,
    'retry_scale': _install_retry_scale,
    'send_task_failure_cause': _install_send_task_failure_cause,
    'start_execution_name': _install_start_execution_name,
    'transact_item_rollback': _install_transact_item_rollback,
    'asl_parse_cache': _install_asl_parse_cache,
    'terminal_errors': _install_terminal_errors,
    'transaction_size': _install_transaction_size,
    'index_lag': _install_index_lag,
}
