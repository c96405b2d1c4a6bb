"""Every change the local cloud makes to moto, in one place (docs/local-cloud.md says why).

moto 5.2.x runs the real ASL, but five gaps would make the local stack behave unlike AWS (Lambda dispatch,
serialised DynamoDB writes, time-scaled waits, SendTaskFailure's cause, unnamed executions), and two make
it slow (the whole-table copy per TransactWriteItems, the ASL parse and program build per StartExecution). `apply_all()`
installs each fix once per process; calling it again only swaps the dispatcher and the time scale, so a
second `LocalCloud` in the same process reuses the installed patches.
(h)-(j) make moto's IAM access control hold for the calls vidgen makes (docs/local-iam.md). (k)-(m) hold the
local cloud to limits AWS enforces and moto does not (docs/local-cloud.md, "Limits"): TransactWriteItems' 100
actions and 4 MB, Step Functions' terminal States.DataLimitExceeded (and States.Runtime), and the lag
of a global secondary index. (n), and the client reuse in (j), take the local cloud's own overhead off
requests under load: moto's server routing each request under a lock, a new boto3 client per Task; (o) parses
each JSONPath of the ASL once instead of building a parser for every evaluation; (p) keeps the server's
connections open between requests instead of closing each one; (q) lets moto's response serializer look each
member's aliases up once and skip the members a result lacks, instead of searching every alias of every member;
(r) parses each DynamoDB update expression once instead of two or three times per write.

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
    'iam_action_resources': ('moto.core.authorization', 'ActionAuthenticatorMixin._authenticate_and_authorize_normal_action'),
    's3_presigned_auth': ('moto.core.authorization', 'ActionAuthenticatorMixin._authenticate_and_authorize_s3_action'),
    'state_machine_role': ('moto.stepfunctions.parser.asl.utils.boto_client', 'boto_client_for'),
    'transaction_limits': ('moto.dynamodb.responses', 'DynamoHandler.transact_write_items'),
    'item_size_limit': ('moto.dynamodb.models.dynamo_type', 'LimitedSizeDict.__setitem__'),
    'data_limit_uncatchable': ('moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl',
                               'ErrorEqualsDecl._eval_body'),
    'index_lag': ('moto.dynamodb.models.table', 'Table.all_items'),
    'server_routing_cache': ('moto.moto_server.werkzeug_app', 'DomainDispatcherApplication.get_backend_for_host'),
    'jsonpath_parse_cache': ('moto.stepfunctions.parser.asl.utils.json_path', 'parse'),
    'server_keep_alive': ('moto.moto_server.werkzeug_app', 'MotoRequestHandler.run_wsgi'),
    'response_serialization': ('moto.core.serialize', 'ResponseSerializer._serialize_structure_member'),
    'response_serialization.aliases': ('moto.core.serialize', 'XFormedAttributePicker.get_possible_keys'),
    'response_serialization.method_names': ('moto.core.responses', 'method_names_from_class'),
    'update_expression_cache': ('moto.dynamodb.parsing.expressions', 'UpdateExpressionParser.make'),
}
# Modules whose `parse` (jsonpath_ng's, bound at import) patch (o) replaces by the cached one.
JSONPATH_PARSE_MODULES = ('moto.stepfunctions.parser.asl.utils.json_path',
                          'moto.stepfunctions.parser.asl.component.common.path.result_path')

# sha256 of the source of moto methods that a patch replaces by a rewritten copy (not a wrapper): a moto
# upgrade that changes one of them fails tests/integration/test_local_patches.py until the copy is reviewed.
REWRITTEN_SOURCES: dict[str, str] = {
    'moto.dynamodb.models.DynamoDBBackend.transact_write_items':
        '81db2cb7d94e39c90b3a2077e1f4bb41a449c558ef9b1b1e2910fdaa39978ad4',
    'moto.stepfunctions.parser.backend.execution_worker.ExecutionWorker._get_evaluation_entrypoint':
        '2b25949ae855da8035b347b28ac72f90d7d6542bf26ef7e1f03a50ce6a981fde',
    'moto.dynamodb.models.dynamo_type.LimitedSizeDict.__setitem__':
        'd979580fdbe14f79f3216564e1385c4b3485db82bc88193326c467a037331e81',
}

# DynamoDB actions serialised by the lock: every write, and the reads, so no reader sees a transaction half
# applied (moto rolls a cancelled TransactWriteItems back by restoring items it already changed).
DYNAMODB_LOCKED_ACTIONS = (
    'put_item', 'update_item', 'delete_item', 'transact_write_items', 'batch_write_item',
    'execute_statement', 'execute_transaction', 'batch_execute_statement',
    'get_item', 'batch_get_item', 'query', 'scan', 'transact_get_items',
)

_state: dict[str, Any] = {'dispatch': None, 'wait_scale': 1.0, 'role_credentials': {}, 'index_lag': None}
_installed: set[str] = set()
_install_lock = threading.Lock()
DYNAMODB_LOCK = threading.RLock()


def apply_all(dispatch: Dispatch, wait_scale: float) -> None:
    """Install every patch (once per process) and point them at `dispatch` and `wait_scale`."""
    if wait_scale <= 0:
        raise ValueError('wait_scale must be positive')
    _state['dispatch'] = dispatch
    _state['wait_scale'] = float(wait_scale)
    index_lag()  # a malformed VIDGEN_LOCAL_INDEX_LAG fails the start, not the first index query
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


def set_role_credentials(credentials: dict[str, tuple[str, str, str]] | None) -> None:
    """Role ARN -> (access key id, secret key, session token) the state machine interpreter signs with."""
    _state['role_credentials'] = dict(credentials or {})


def set_index_lag(seconds: float | None) -> None:
    """How long a global secondary index lags behind the table's writes; None follows VIDGEN_LOCAL_INDEX_LAG."""
    if seconds is not None and seconds < 0:
        raise ValueError('the index lag cannot be negative')
    _state['index_lag'] = None if seconds is None else float(seconds)


def index_lag() -> float:
    """The lag in seconds: set_index_lag's, else VIDGEN_LOCAL_INDEX_LAG (default 0: indexes are current)."""
    if _state['index_lag'] is not None:
        return float(_state['index_lag'])
    import os

    text = os.environ.get('VIDGEN_LOCAL_INDEX_LAG', '').strip() or '0'
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(f'VIDGEN_LOCAL_INDEX_LAG must be a number of seconds, not {text!r}') from None
    if seconds < 0:
        raise ValueError('VIDGEN_LOCAL_INDEX_LAG cannot be negative')
    return seconds


def installed() -> frozenset[str]:
    return frozenset(_installed)


# --- (a) Lambda invocations run our handlers in their execution environments----------------------------------------


def lambda_error_payload(exc: BaseException) -> dict[str, Any]:
    """The body the Lambda service returns for a failed invocation: ASL Retry/Catch match `errorType`. An
    execution environment's failure (vidgen_local.environments.FunctionError) carries the handler's exception
    class name, or the runtime's own type (Sandbox.Timedout, Runtime.ExitError)."""
    payload = getattr(exc, 'payload', None)
    if callable(payload):
        return dict(payload())
    return {'errorType': type(exc).__name__, 'errorMessage': str(exc), 'stackTrace': []}


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
    # negative (docs/local-cloud.md); DynamoDB itself never does. The handler methods are wrapped (not the backend)
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


# --- (g) StartExecution reuses the program built from the ASL -----------------------------------------------


_asl_program_lock = threading.Lock()


@functools.lru_cache(maxsize=64)
def _asl_program(definition: str) -> Any:
    """The program the interpreter evaluates for a definition (a syntax error raises and is not cached)."""
    # The same steps as moto's AmazonStateLanguageParser.parse: lexer, parser, syntax check, preprocessor.
    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
    from moto.stepfunctions.parser.asl.parse.asl_parser import (
        ASLLexer,
        ASLParser,
        ASLParserException,
        CommonTokenStream,
        InputStream,
        SyntaxErrorListener,
    )
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

    listener = SyntaxErrorListener()
    parser = ASLParser(CommonTokenStream(ASLLexer(InputStream(definition))))
    parser.removeErrorListeners()
    parser.addErrorListener(listener)
    tree = parser.state_machine()
    if listener.errors:
        raise ASLParserException(errors=listener.errors)
    program = Preprocessor().visit(tree)
    # A component names its slot in an execution's heap (Retry's attempt count, its backoff) by a key it draws
    # on first use; drawn here, before any execution runs, two executions cannot draw two keys for one slot.
    for component in _components(program):
        if isinstance(component, EvalComponent):
            component.heap_key  # noqa: B018 - the property draws and keeps the key
    return program


def _components(root: Any) -> list[Any]:
    """Every object reachable from a program through attributes, lists, tuples and dicts."""
    found, pending, seen = [], [root], set()
    while pending:
        each = pending.pop()
        if id(each) in seen or isinstance(each, (str, bytes, int, float, bool, type(None))):
            continue
        seen.add(id(each))
        found.append(each)
        if isinstance(each, dict):
            pending.extend(each.values())
        elif isinstance(each, (list, tuple, set, frozenset)):
            pending.extend(each)
        elif hasattr(each, '__dict__') and type(each).__module__.startswith('moto.stepfunctions.'):
            pending.extend(vars(each).values())
    return found


def _install_asl_parse_cache() -> None:
    # Every execution lexed and parsed its state machine's definition again (ANTLR in pure Python: ~100 ms
    # for job.asl.json, a sixth of the suite's CPU), then built the program from the tree (8 ms; an eleventh
    # of the local cloud's busy time with 200 jobs running, much of it formatting error messages for
    # declarations that are not missing). The definition of a state machine version never changes, so the
    # program is kept per definition text, the key that also covers an updated definition. A program is a
    # tree of declarations: what an execution changes lives in its Environment (its frames, heap, events),
    # and the interpreter already evaluates one program from many threads at once (a Map's iterations, a
    # Parallel's branches); the one exception, each component's lazily drawn heap key, is drawn when the
    # program is built.
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    original = ExecutionWorker._get_evaluation_entrypoint

    def _get_evaluation_entrypoint(self: Any) -> Any:
        # One build per definition: a burst of executions of a new definition would otherwise each miss the
        # cache and parse it (lru_cache does not hold callers back while it computes).
        with _asl_program_lock:
            return _asl_program(self._evaluation_details.state_machine_details.definition)

    _get_evaluation_entrypoint.__wrapped__ = original  # type: ignore[attr-defined]
    ExecutionWorker._get_evaluation_entrypoint = _get_evaluation_entrypoint


# --- (h) IAM: every call is checked against the resource it touches, and a refusal names both ------------
#
# moto's access control (on once the local cloud turns it on, see cloud.py) evaluates S3 calls against the
# object's ARN but every other service against the resource "*": a role granting dynamodb:GetItem on the
# table's ARN is refused, and one granting it on "*" only is allowed, the opposite of AWS. It also checks a
# TransactWriteItems as one action named TransactWriteItems, while AWS checks each item as the action it
# performs (Put -> dynamodb:PutItem, Update -> UpdateItem, Delete -> DeleteItem, ConditionCheck ->
# ConditionCheckItem) on its table; and its refusal ("User: ... is not authorized to perform: X") is an
# XML body that the JSON services' clients cannot parse. Here each request is checked as AWS checks it, and
# refused with AWS's AccessDeniedException naming the action and the resource.

_TRANSACT_ACTIONS = {'Put': 'PutItem', 'Update': 'UpdateItem', 'Delete': 'DeleteItem',
                     'ConditionCheck': 'ConditionCheckItem', 'Get': 'GetItem'}
_LAMBDA_ACTIONS = {'Invoke': 'InvokeFunction'}  # API operation -> IAM action, where the two differ
# HTTP status of an authorization error per JSON service (the JSON protocols answer 400, Lambda's REST API 403).
_ACCESS_DENIED_STATUS = {'dynamodb': 400, 'secretsmanager': 400, 'states': 400, 'lambda': 403}


def access_denied_message(principal: str, action: str, resource: str) -> str:
    """AWS's sentence for an identity-based refusal."""
    return (f'User: {principal} is not authorized to perform: {action} on resource: {resource} '
            f'because no identity-based policy allows the {action} action')


def _request_param(response: Any, name: str) -> Any:
    body = response.body
    if isinstance(body, dict):  # DynamoDB's handler holds the parsed parameters here
        return body.get(name)
    try:
        return response._get_param(name)
    except Exception:  # noqa: BLE001 - a body that is not JSON has no such parameter
        return None


def iam_targets(response: Any, service: str, action: str) -> list[tuple[str, str]]:
    """The (IAM action, resource ARN) pairs AWS authorizes for one request; resource "*" where the action
    has no resource type."""
    region, account = response.region, response.current_account
    if service == 'dynamodb':
        def table_arn(name: str | None, index: str | None = None) -> str:
            if not name:
                return '*'
            arn = name if name.startswith('arn:') else f'arn:aws:dynamodb:{region}:{account}:table/{name}'
            return f'{arn}/index/{index}' if index else arn

        if action in ('TransactWriteItems', 'TransactGetItems'):
            targets = []
            for item in _request_param(response, 'TransactItems') or []:
                for kind, operation in item.items():
                    targets.append((_TRANSACT_ACTIONS.get(kind, kind), table_arn(operation.get('TableName'))))
            return targets or [(action, '*')]
        if action in ('BatchGetItem', 'BatchWriteItem'):
            return [(action, table_arn(name)) for name in (_request_param(response, 'RequestItems') or {})] \
                or [(action, '*')]
        index = _request_param(response, 'IndexName') if action in ('Query', 'Scan') else None
        return [(action, table_arn(_request_param(response, 'TableName'), index))]
    if service == 'secretsmanager':
        secret_id = _request_param(response, 'SecretId')
        if not secret_id:
            return [(action, '*')]
        secret = response.backend.secrets.get(secret_id)
        arn = secret.arn if secret is not None else (
            secret_id if secret_id.startswith('arn:') else f'arn:aws:secretsmanager:{region}:{account}:secret:{secret_id}')
        return [(action, arn)]
    if service == 'states':
        arn = _request_param(response, 'executionArn') or _request_param(response, 'stateMachineArn')
        return [(action, arn or '*')]  # SendTask*: no resource type, so only "*" matches
    if service == 'lambda':
        from urllib.parse import unquote

        iam_action = _LAMBDA_ACTIONS.get(action, action)
        if action != 'Invoke':
            return [(iam_action, '*')]
        name = unquote(response.path.rsplit('/', 2)[-2])
        arn = name if name.startswith('arn:') else f'arn:aws:lambda:{region}:{account}:function:{name}'
        qualifier = response.querystring.get('Qualifier', [None])[0]
        return [(iam_action, f'{arn}:{qualifier}' if qualifier and arn.count(':') == 6 else arn)]
    return [(action, '*')]


def _iam_request_classes() -> tuple[type, type, type]:
    """IAMRequest and S3IAMRequest subclasses whose refusals name the action and the resource, and one that
    authenticates S3's query-string signatures (presigned URLs)."""
    cached = _state.get('iam_request_classes')
    if cached:
        return cached
    from botocore.auth import S3SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from moto.core.exceptions import JsonRESTError
    from moto.iam.access_control import IAMRequest, S3IAMRequest
    from moto.s3.exceptions import S3AccessDeniedError

    def json_error(service: str, code: str, message: str) -> Exception:
        error = JsonRESTError(code, message)
        error.code = _ACCESS_DENIED_STATUS[service]
        return error

    class NamingIAMRequest(IAMRequest):
        # The JSON services answer in JSON, with their own codes; query/XML services keep moto's errors.
        def check_action_permitted(self, resource: str) -> None:
            self._vidgen_resource = resource
            super().check_action_permitted(resource)

        def _raise_access_denied(self) -> None:
            if self._service not in _ACCESS_DENIED_STATUS:
                super()._raise_access_denied()
            raise json_error(self._service, 'AccessDeniedException',
                             access_denied_message(self._access_key.arn, self._action, self._vidgen_resource))

        def _raise_invalid_access_key(self, reason: str) -> None:
            if self._service not in _ACCESS_DENIED_STATUS:
                super()._raise_invalid_access_key(reason)
            raise json_error(self._service, 'UnrecognizedClientException',
                             'The security token included in the request is invalid.')

        def _raise_signature_does_not_match(self) -> None:
            if self._service not in _ACCESS_DENIED_STATUS:
                super()._raise_signature_does_not_match()
            raise json_error(self._service, 'InvalidSignatureException',
                             'The request signature we calculated does not match the signature you provided.')

    class S3AccessDenied(S3AccessDeniedError):
        def __init__(self, message: str) -> None:
            super().__init__()
            self.message = message

    class NamingS3IAMRequest(S3IAMRequest):
        def check_action_permitted(self, resource: str) -> None:
            self._vidgen_resource = resource
            super().check_action_permitted(resource)

        def _raise_access_denied(self) -> None:
            raise S3AccessDenied(access_denied_message(self._access_key.arn, self._action, f'"{self._vidgen_resource}"'))

    class PresignedS3IAMRequest(NamingS3IAMRequest):
        # moto reads the credential, signed headers and signature from the Authorization header only; a
        # presigned URL carries them in its query string (SigV4 query auth), so moto answered every
        # presigned GET with a 500. The same checks are made from the query: who signed, whether the
        # signature matches, whether the URL expired, and then what that identity may do.
        def __init__(self, account_id: str, method: str, path: str, data: Any, body: bytes, headers: Any,
                     action: str, query: dict[str, str]) -> None:
            self._query = query
            scope = query['X-Amz-Credential']
            signed = query.get('X-Amz-SignedHeaders', 'host')
            # The base class parses the Authorization header; give it the same facts in that form.
            synthetic = dict(headers.items()) if hasattr(headers, 'items') else dict(headers)
            synthetic['Authorization'] = (f'AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders={signed}, '
                                          f'Signature={query.get("X-Amz-Signature", "")}')
            if 'X-Amz-Security-Token' in query:
                synthetic['X-Amz-Security-Token'] = query['X-Amz-Security-Token']
            super().__init__(account_id=account_id, method=method, path=path, data=data, body=body,
                             headers=synthetic, action=action)

        def check_signature(self) -> None:
            import datetime as dt
            from urllib.parse import urlencode

            signed_at = dt.datetime.strptime(self._query.get('X-Amz-Date', ''), '%Y%m%dT%H%M%SZ').replace(
                tzinfo=dt.timezone.utc)
            expires = int(self._query.get('X-Amz-Expires', '0'))
            if dt.datetime.now(dt.timezone.utc) > signed_at + dt.timedelta(seconds=expires):
                raise S3AccessDenied('Request has expired')
            path, _, _ = self._path.partition('?')
            unsigned = [(k, v) for k, v in self._query.items() if k != 'X-Amz-Signature']
            received = {key.lower(): value for key, value in self._headers.items()}
            headers = {name: received.get(name, '') for name in self._query.get('X-Amz-SignedHeaders', 'host').split(';')}
            request = AWSRequest(method=self._method, url=f'http://{headers.get("host", "")}{path}?{urlencode(unsigned)}',
                                 headers=headers)
            request.context['timestamp'] = self._query['X-Amz-Date']
            auth = S3SigV4QueryAuth(self._access_key.create_credentials(), self._service, self._region, expires)
            canonical = auth.canonical_request(request)
            if auth.signature(auth.string_to_sign(request, canonical), request) != self._query.get('X-Amz-Signature'):
                self._raise_signature_does_not_match()

    _state['iam_request_classes'] = (NamingIAMRequest, NamingS3IAMRequest, PresignedS3IAMRequest)
    return _state['iam_request_classes']


def _auth_active() -> bool:
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    if ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT:
        return True
    ActionAuthenticatorMixin.request_count += 1
    return False


def _install_iam_action_resources() -> None:
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.core.exceptions import JsonRESTError

    def authorize(self: Any, resource: str = '*') -> None:
        if not _auth_active():
            return
        if self.headers.get('X-Amz-Target') in ActionAuthenticatorMixin.PUBLIC_OPERATIONS:
            return
        if 'Authorization' not in self.headers:  # moto raised a KeyError here: a 500 instead of AWS's 403
            error = JsonRESTError('MissingAuthenticationTokenException', 'Missing Authentication Token')
            error.code = 403
            raise error
        naming_request, _, _ = _iam_request_classes()
        from urllib.parse import urlparse

        query = urlparse(self.uri).query
        path = self.raw_path + (f'?{query}' if query else '')
        action = self._get_action()
        request = naming_request(account_id=self.current_account, method=self.method, path=path, data=self.data,
                                 body=self.raw_body, headers=self.headers, action=action)
        request.check_signature()
        service = request._service
        if resource != '*':  # moto named the resource itself (IAM, STS, SQS): keep its view
            request.check_action_permitted(resource)
            return
        for iam_action, arn in iam_targets(self, service, action):
            request._action = f'{service}:{iam_action}'
            request.check_action_permitted(arn)

    ActionAuthenticatorMixin._authenticate_and_authorize_normal_action = authorize


# --- (i) S3: presigned URLs are checked against the signer's role when fetched ---------------------------


def _install_s3_presigned_auth() -> None:
    from urllib.parse import parse_qsl, urlparse

    from moto.core.authorization import ActionAuthenticatorMixin

    def authorize(self: Any, bucket_name: str | None = None, key_name: str | None = None) -> None:
        if not _auth_active():
            return
        arn = f'{bucket_name or "*"}/{key_name}' if key_name else (bucket_name or '*')
        resource = f'arn:aws:s3:::{arn}'
        _, naming_request, presigned_request = _iam_request_classes()
        parsed = urlparse(self.uri)
        path = self.raw_path + (f'?{parsed.query}' if parsed.query else '')
        query = dict(parse_qsl(parsed.query, keep_blank_values=True))
        common = {'account_id': self.current_account, 'method': self.method, 'path': path, 'data': self.data,
                  'body': self.raw_body, 'headers': self.headers, 'action': self._get_action()}
        if 'Authorization' in self.headers:
            request = naming_request(**common)
        elif 'X-Amz-Credential' in query:
            request = presigned_request(**common, query=query)
        else:  # an anonymous request: the bucket grants nothing to the public
            from moto.s3.exceptions import S3AccessDeniedError

            raise S3AccessDeniedError()
        request.check_signature()
        keys = _multi_delete_keys(self, key_name, query)
        if keys is None:
            request.check_action_permitted(resource)
            return
        # DeleteObjects (POST ?delete) is authorized as s3:DeleteObject on each object it names, so a grant
        # on a key prefix covers it; moto checked the bucket's ARN, which no prefix grant matches. AWS reports
        # a refused key among the response's per-key Errors; here the whole request is refused, naming it.
        for key in keys:
            request.check_action_permitted(f'arn:aws:s3:::{bucket_name}/{key}')

    ActionAuthenticatorMixin._authenticate_and_authorize_s3_action = authorize


def _multi_delete_keys(handler: Any, key_name: str | None, query: dict[str, str]) -> list[str] | None:
    """The keys of a DeleteObjects request's body, or None for any other request."""
    if key_name or handler.method != 'POST' or 'delete' not in query:
        return None
    import xml.etree.ElementTree as ET  # noqa: S405 - the body of a request signed by a known identity

    body = handler.raw_body if isinstance(handler.raw_body, bytes) else str(handler.raw_body or '').encode()
    root = ET.fromstring(body)  # noqa: S314
    return [element.text or '' for element in root.iter() if element.tag.rsplit('}', 1)[-1] == 'Key']


# --- (j) The state machine calls Lambda as its own role -----------------------------------------------------

# Every module of moto's interpreter that makes AWS calls imports boto_client_for by name.
_SFN_CLIENT_MODULES = (
    'moto.stepfunctions.parser.asl.utils.boto_client',
    'moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils',
    'moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk',
    'moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_dynamodb',
    'moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn',
    'moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sns',
    'moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sqs',
    'moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_events',
)


_role_client_lock = threading.Lock()


def _role_client(region: str, service: str, keys: tuple[str, str, str], port: int) -> Any:
    """One client per role, service and server, made once: moto makes a new boto3 client for every Task
    (20-130 ms of the local cloud's process each, a tenth of its CPU under load). A client's calls are
    thread-safe; its pool holds as many connections as a function has environments.

    Made under a lock, by one thread: an lru_cache alone lets every caller that misses make its own client.
    When 96 executions reached their first Task at once, 178 threads were making the same client side by
    side, each at 1/178 of the speed, so none finished for a minute, every new Task joined them, and all 96
    jobs of the fault batch outlived their deadline."""
    with _role_client_lock:
        return _make_role_client(region, service, keys, port)


@functools.lru_cache(maxsize=64)
def _make_role_client(region: str, service: str, keys: tuple[str, str, str], port: int) -> Any:
    import boto3
    from botocore.config import Config
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds

    access_key, secret_key, token = keys
    return boto3.client(
        service_name=service, region_name=region, aws_access_key_id=access_key, aws_secret_access_key=secret_key,
        aws_session_token=token, endpoint_url=f'http://localhost:{port}',
        config=Config(parameter_validation=False, retries={'max_attempts': 0, 'total_max_attempts': 1},
                      connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                      read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS, max_pool_connections=64))


def _install_state_machine_role() -> None:
    # moto's interpreter signs its Task calls with fixed keys ("ak"/"sk"), which IAM enforcement refuses as
    # unknown. Step Functions calls as the execution's role (the Task's state credentials default to it), so
    # the calls are signed with that role's assumed credentials and its policy decides: a state machine
    # whose role lacks lambda:InvokeFunction on the poller fails its Task with AccessDeniedException.
    import importlib

    from moto.stepfunctions.parser.asl.utils import boto_client

    original = boto_client.boto_client_for

    @functools.wraps(original)
    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        role_arn = getattr(state_credentials, 'role_arn', None)
        keys = _state['role_credentials'].get(role_arn) if role_arn else None
        if keys is None:
            return original(region, service, state_credentials)
        from moto.settings import moto_server_port

        return _role_client(region, service, keys, moto_server_port())

    for name in _SFN_CLIENT_MODULES:
        module = importlib.import_module(name)
        if getattr(module, 'boto_client_for', None) is original:
            module.boto_client_for = boto_client_for


# --- (k) TransactWriteItems: at most 100 actions and 4 MB, refused as DynamoDB refuses them -------------------

TRANSACTION_MAX_ACTIONS = 100
TRANSACTION_MAX_BYTES = 4 * 1024 * 1024


def transaction_bytes(transact_items: list[dict[str, Any]]) -> int:
    """The aggregate size of the items a transaction writes, by DynamoDB's item-size rules (attribute names'
    UTF-8 bytes plus their values): a Put counts its item, an Update its key and the values it sets, a Delete
    or ConditionCheck its key."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    def size(attributes: dict[str, Any] | None) -> int:
        return sum(len(name.encode()) + DynamoType(value).size() for name, value in (attributes or {}).items())

    total = 0
    for action in transact_items:
        for kind, operation in action.items():
            if kind == 'Put':
                total += size(operation.get('Item'))
            else:
                total += size(operation.get('Key'))
                if kind == 'Update':
                    total += size(operation.get('ExpressionAttributeValues'))
    return total


def _install_transaction_limits() -> None:
    # TransactWriteItems groups at most 100 actions whose items add up to at most 4 MB (API reference,
    # TransactWriteItems). moto refuses 101 actions with its own wording and takes any size; DynamoDB refuses both
    # before it evaluates a single condition, with a ValidationException. The wording below is the service's:
    # a Value '[...]' constraint message for the count, "Transaction request cannot be larger than 4 MB" for the
    # size (what DynamoDB answers, as reported by clients that hit it).
    from moto.dynamodb.exceptions import MockValidationException
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.transact_write_items

    @functools.wraps(original)
    def transact_write_items(self: Any) -> Any:
        items = self.body.get('TransactItems') or []
        if len(items) > TRANSACTION_MAX_ACTIONS:
            value = ', '.join(json.dumps(item, separators=(',', ':')) for item in items)
            raise MockValidationException(
                f"1 validation error detected: Value '[{value}]' at 'transactItems' failed to satisfy constraint: "
                f'Member must have length less than or equal to {TRANSACTION_MAX_ACTIONS}')
        if transaction_bytes(items) > TRANSACTION_MAX_BYTES:
            raise MockValidationException('Transaction request cannot be larger than 4 MB')
        return original(self)

    DynamoHandler.transact_write_items = transact_write_items


ITEM_MAX_BYTES = 400 * 1024


def _install_item_size_limit() -> None:
    # An item may hold 400 KB of attribute names and values (DynamoDB Developer Guide, "Service, account, and
    # table quotas": items). moto refuses past 405,000 bytes, a guess it admits in a comment, so an item of
    # 396-400 KB that DynamoDB stores failed locally. Same measure, DynamoDB's bound; moto's messages stay.
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict
    from moto.dynamodb.models.utilities import bytesize

    def measure(value: Any) -> int:
        return value.size() if type(value) is DynamoType else bytesize(str(value))

    def __setitem__(self: Any, key: str, value: Any) -> None:  # noqa: N807 - the method it replaces
        current = sum(measure(item) for item in (list(self.keys()) + list(self.values())))
        if current + bytesize(key) + measure(value) > ITEM_MAX_BYTES:
            raise ItemSizeTooLarge
        dict.__setitem__(self, key, value)

    __setitem__.__wrapped__ = LimitedSizeDict.__setitem__  # type: ignore[attr-defined]
    LimitedSizeDict.__setitem__ = __setitem__


# --- (l) States.DataLimitExceeded and States.Runtime are terminal: States.ALL neither retries nor catches them --


def _install_data_limit_uncatchable() -> None:
    # moto already fails a state whose output, or a task whose result, is over Step Functions' 256 KiB
    # (moto.stepfunctions.parser.quotas) with States.DataLimitExceeded, but its ErrorEquals lets States.ALL
    # match that error like any other, so a Catch-all swallows it and the execution goes on. On AWS the
    # States.ALL wildcard "can't catch the States.DataLimitExceeded terminal error or Runtime error types"
    # (Step Functions Developer Guide, "Error handling in Step Functions", error names), so the execution
    # fails, and whatever the Catch would have done (fail the job, refund it) is left to the sweep. A Retrier
    # or Catcher that names either error explicitly still matches it.
    from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import ErrorEqualsDecl
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )

    terminal = (StatesErrorName(typ=StatesErrorNameType.StatesStatesDataLimitExceeded),
                StatesErrorName(typ=StatesErrorNameType.StatesRuntime))
    every_error = StatesErrorName(typ=StatesErrorNameType.StatesALL)
    original = ErrorEqualsDecl._eval_body

    @functools.wraps(original)
    def _eval_body(self: Any, env: Any) -> None:
        error_name = env.stack[-1] if env.stack else None
        if error_name in terminal and every_error in self.error_names:
            env.stack.pop()
            env.stack.append(False)
            return
        original(self, env)

    ErrorEqualsDecl._eval_body = _eval_body


# --- (m) Global secondary indexes lag behind the table ---------------------------------------------------------


class _IndexHistory:
    """Per table, each write's time and the item as it was before it: enough to show an index as of `lag`
    seconds ago. Only writes made while the lag is on are kept, and only for as long as the lag."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._writes: dict[int, list[tuple[float, Any, Any, Any]]] = {}  # id(table) -> (time, hash, range, before)

    def record(self, table: Any, hash_value: Any, range_value: Any, before: Any) -> None:
        lag = index_lag()
        if lag <= 0 or not table.global_indexes:
            return
        now = time.monotonic()
        with self._lock:
            writes = self._writes.setdefault(id(table), [])
            writes.append((now, hash_value, range_value, before))
            while writes and writes[0][0] <= now - lag:
                writes.pop(0)

    def pending(self, table: Any) -> dict[tuple[Any, Any], Any]:
        """(hash, range) -> the item the index still shows (None: not there yet) for items written within the lag."""
        cutoff = time.monotonic() - index_lag()
        with self._lock:
            writes = [w for w in self._writes.get(id(table), ()) if w[0] > cutoff]
            self._writes[id(table)] = writes
        shown: dict[tuple[Any, Any], Any] = {}
        for _, hash_value, range_value, before in writes:  # the oldest write in the window decides
            shown.setdefault((hash_value, range_value), before)
        return shown

    def clear(self) -> None:
        with self._lock:
            self._writes.clear()


INDEX_HISTORY = _IndexHistory()


def _install_index_lag() -> None:
    # DynamoDB propagates a write to a global secondary index asynchronously ("usually within a fraction of a
    # second"; a GSI query cannot ask for ConsistentRead), and moto's indexes are the table itself. With a lag
    # (VIDGEN_LOCAL_INDEX_LAG seconds), a Query or Scan on a GSI sees each item as it was `lag` seconds ago:
    # a new item is missing, a changed one shows its old attributes (and so sits under its old index key), a
    # deleted one is still there. Reads of the table itself stay current, as consistent reads are.
    import contextvars
    import inspect

    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    lagging: contextvars.ContextVar[Any] = contextvars.ContextVar('vidgen_lagging_table', default=None)
    original_put, original_delete = Table.put_item, Table.delete_item
    original_update = DynamoDBBackend.update_item
    original_all, original_has_idx = Table.all_items, Table.has_idx_items
    original_query, original_scan = Table.query, Table.scan

    @functools.wraps(original_put)
    def put_item(self: Any, item_attrs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if index_lag() <= 0 or not self.global_indexes:
            return original_put(self, item_attrs, *args, **kwargs)
        from moto.dynamodb.models.dynamo_type import DynamoType

        try:  # an item without its keys is refused by moto's put_item below, with its own message
            hash_value = DynamoType(item_attrs[self.hash_key_attr])
            range_value = DynamoType(item_attrs[self.range_key_attr]) if self.range_key_attr else None
            before = self.get_item(hash_value, range_value)
        except Exception:  # noqa: BLE001
            before = None
        item = original_put(self, item_attrs, *args, **kwargs)
        INDEX_HISTORY.record(self, item.hash_key, item.range_key, before)  # the old Item is replaced, not changed
        return item

    @functools.wraps(original_delete)
    def delete_item(self: Any, hash_key: Any, range_key: Any) -> Any:
        item = original_delete(self, hash_key, range_key)
        if item is not None:
            INDEX_HISTORY.record(self, item.hash_key, item.range_key, item)
        return item

    @functools.wraps(original_update)
    def update_item(self: Any, table_name: str, key: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if index_lag() <= 0:
            return original_update(self, table_name, key, *args, **kwargs)
        # UpdateItem changes the stored Item in place: keep a copy of it as it was.
        table = self.get_table(table_name)
        hash_value, range_value = self.get_keys_value(table, key)
        before = copy.deepcopy(table.get_item(hash_value, range_value))
        item = original_update(self, table_name, key, *args, **kwargs)
        INDEX_HISTORY.record(table, hash_value, range_value, before)
        return item

    def lagged_items(table: Any) -> list[Any]:
        shown = INDEX_HISTORY.pending(table)
        items = original_all(table)
        if not shown:
            return items
        view = []
        for item in items:
            key = (item.hash_key, item.range_key)
            if key in shown:
                before = shown.pop(key)
                if before is not None:
                    view.append(before)
            else:
                view.append(item)
        view.extend(before for before in shown.values() if before is not None)  # deleted within the lag
        return sorted(view, key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key)

    @functools.wraps(original_all)
    def all_items(self: Any) -> list[Any]:
        return lagged_items(self) if lagging.get() is self else original_all(self)

    @functools.wraps(original_has_idx)
    def has_idx_items(self: Any, index_name: str) -> list[Any]:
        if lagging.get() is not self:
            return original_has_idx(self, index_name)
        columns = {key['AttributeName'] for key in self.get_index(index_name).schema}
        return [item for item in lagged_items(self) if columns.issubset(item.attrs)]

    def on_index(method: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(method)  # moto's backend passes index_name by position

        @functools.wraps(method)
        def read(self: Any, *args: Any, **kwargs: Any) -> Any:
            index_name = signature.bind(self, *args, **kwargs).arguments.get('index_name')
            global_names = {index.name for index in self.global_indexes or ()}
            if index_name not in global_names or index_lag() <= 0:
                return method(self, *args, **kwargs)
            token = lagging.set(self)
            try:
                return method(self, *args, **kwargs)
            finally:
                lagging.reset(token)

        return read

    Table.put_item, Table.delete_item, DynamoDBBackend.update_item = put_item, delete_item, update_item
    Table.all_items, Table.has_idx_items = all_items, has_idx_items
    Table.query, Table.scan = on_index(original_query), on_index(original_scan)


# --- (n) moto's server routes each request by its host without listing its own package every time ----------


def _install_server_routing_cache() -> None:
    # moto's server picks the backend for every request under one lock, and finding it lists moto's package
    # directory (a stat per service, ~190) and tries each service's URL patterns: under load, requests queue
    # on that lock (a fifth of the local cloud's busy time in a 150-submit burst). The answer for a host never
    # changes while the server runs, so it is kept per host (None: no backend, moto then looks further).
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.get_backend_for_host

    @functools.wraps(original)
    def get_backend_for_host(self: Any, host: str | None) -> Any:
        cache = self.__dict__.setdefault('_vidgen_backend_for_host', {})
        if host not in cache:
            cache[host] = original(self, host)
        return cache[host]

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host


# --- (o) each JSONPath is parsed once, not by a new parser per evaluation --------------------------------------


def _install_jsonpath_parse_cache() -> None:
    # The interpreter evaluates every `$.x` of InputPath, Parameters, ResultSelector, ResultPath and Choice by
    # calling jsonpath_ng's parse(), which builds a new parser, and so its ply LALR tables, each time: an eighth
    # of the local cloud's busy time with 200 jobs running. A parsed path is an immutable tree whose find()
    # and update() only read it, so one parse per path text serves every evaluation, from any thread.
    import importlib

    for module_name in JSONPATH_PARSE_MODULES:
        module = importlib.import_module(module_name)
        module.parse = functools.lru_cache(maxsize=4096)(module.parse)  # type: ignore[attr-defined]


# --- (p) moto's server keeps a connection open between requests ------------------------------------------------


def _install_server_keep_alive() -> None:
    # werkzeug's development server, which moto's runs on, ends every response with `Connection: close`:
    # http.server cannot skip a request body the application left unread, so the next request line would be
    # lost. Every AWS call of every environment then opened a TCP connection, and the server a thread for it:
    # a fifth of the local cloud's busy time in a 200-job bench went to accepting and starting them. Here the
    # body is read whole, by its Content-Length, before werkzeug sees the request, so the stream is at the next
    # request whatever the application reads, and the connection stays open as HTTP/1.1 lets it. A request
    # this cannot frame (no HTTP/1.1, `Connection: close`, `Expect: 100-continue`, a chunked body) is served
    # as before and closes its connection.
    import io

    from moto.moto_server.werkzeug_app import MotoRequestHandler

    original_run_wsgi = MotoRequestHandler.run_wsgi
    original_send_header = MotoRequestHandler.send_header

    @functools.wraps(original_run_wsgi)
    def run_wsgi(self: Any) -> None:
        headers = self.headers
        length = (headers.get('Content-Length') or '0').strip()
        if (self.request_version != 'HTTP/1.1' or headers.get('Connection', '').lower() == 'close'
                or headers.get('Expect') or headers.get('Transfer-Encoding') or not length.isdigit()):
            original_run_wsgi(self)
            return
        body = self.rfile.read(int(length)) if int(length) else b''
        if len(body) < int(length):  # the client went away mid-body
            self.close_connection = True
            return
        stream = self.rfile
        self.rfile = io.BytesIO(body)  # what werkzeug hands the application, and drains after it
        self._vidgen_keep_alive = True
        try:
            original_run_wsgi(self)
        finally:
            self.rfile = stream
            self._vidgen_keep_alive = False

    def send_header(self: Any, keyword: str, value: str) -> None:
        if getattr(self, '_vidgen_keep_alive', False) and (keyword.lower(), value.lower()) == ('connection', 'close'):
            return
        original_send_header(self, keyword, value)

    original_setup = MotoRequestHandler.setup
    original_finish = MotoRequestHandler.finish

    # An open connection keeps its handler thread waiting for the next request: each is registered with its
    # server, so that stopping the local cloud can close them (close_server_connections) and leave no thread.
    def setup(self: Any) -> None:
        original_setup(self)
        with _install_lock:
            self.server.__dict__.setdefault('_vidgen_open', {})[self.connection] = threading.current_thread()

    def finish(self: Any) -> None:
        try:
            original_finish(self)
        finally:
            with _install_lock:
                self.server.__dict__.get('_vidgen_open', {}).pop(self.connection, None)

    MotoRequestHandler.run_wsgi = run_wsgi
    MotoRequestHandler.send_header = send_header
    MotoRequestHandler.setup = setup
    MotoRequestHandler.finish = finish
    # werkzeug writes a response's headers and its body in two sends. On a connection that stays open the
    # body then waits for the client's delayed ACK of the headers (Nagle's algorithm): 46 ms per call against
    # 2.9 ms with a connection per call. Without Nagle on the server's sockets: 2.4 ms.
    MotoRequestHandler.disable_nagle_algorithm = True


def close_server_connections(server: Any, timeout: float = 5.0) -> None:
    """Close the connections a stopped moto server still keeps open for its clients (patch (p)) and wait for
    their handler threads to end."""
    import socket

    with _install_lock:
        still_open = dict(server.__dict__.get('_vidgen_open', {}))
    for connection in still_open:
        try:
            connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # the client closed it meanwhile
    deadline = time.monotonic() + timeout
    for thread in still_open.values():
        thread.join(timeout=max(0.0, deadline - time.monotonic()))


# --- (q) moto's response serializer looks a member's aliases up once, and skips a member a dict lacks --------


def _install_response_serialization() -> None:
    # moto 5.2 turns every action's result into its wire form by walking the output shape: for each member of
    # each structure it asks an attribute picker for the value, and the picker instantiates six alias providers
    # and tries every alias they offer. A DynamoDB item is a map of AttributeValue structures of ten members
    # (S, N, M, L, ...) of which one is set, so each attribute costs ten such searches: serialising answers was
    # a seventh of the local cloud's busy time with 200 jobs running, and a third of a GetItem's. The aliases
    # of a member depend only on the member's name, its shape, the shape's parent and, for a plain dict value,
    # nothing of the value (no dict has the Meta an explicit alias reads, and every dict's class name is
    # 'dict'), so for dict values they are computed once per (member, shape, parent) and kept. A member none of
    # whose aliases is a key of the dict is skipped: moto's picker would find no value, and the serializer
    # writes nothing for a None. Objects other than plain dicts, dotted aliases (a path moto walks) and pickers
    # with response transformers (which may turn a missing value into one) still take moto's own path.
    from moto.core.serialize import AttributePickerContext, ResponseSerializer, XFormedAttributePicker

    original_keys = XFormedAttributePicker.get_possible_keys
    original_member = ResponseSerializer._serialize_structure_member
    aliases: dict[tuple[Any, ...], tuple[str, ...]] = {}

    def dict_aliases(picker: Any, obj: dict[str, Any], key: str, shape: Any) -> tuple[str, ...]:
        # Shapes hash by identity; holding them in the key keeps each alive, so no identity is reused.
        cache_key = (type(picker), tuple(picker.alias_providers), key, shape, getattr(shape, 'parent', None))
        found = aliases.get(cache_key)
        if found is None:
            context = AttributePickerContext(obj=obj, key=key, shape=shape)
            found = aliases[cache_key] = tuple(original_keys(picker, context))
        return found

    def get_possible_keys(self: Any, context: Any) -> Any:
        if type(context.obj) is not dict:
            return original_keys(self, context)
        return iter(dict_aliases(self, context.obj, context.key, context.shape))

    def _serialize_structure_member(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        picker = self._value_picker
        if type(value) is dict and type(picker) is XFormedAttributePicker and not picker.response_transformers:
            keys = dict_aliases(picker, value, key, shape)
            if not any(alias in value or '.' in alias for alias in keys):
                return
        original_member(self, serialized, value, shape, key)

    get_possible_keys.__wrapped__ = original_keys  # type: ignore[attr-defined]
    _serialize_structure_member.__wrapped__ = original_member  # type: ignore[attr-defined]
    XFormedAttributePicker.get_possible_keys = get_possible_keys  # type: ignore[method-assign]
    ResponseSerializer._serialize_structure_member = _serialize_structure_member  # type: ignore[method-assign]

    # Every action also lists the handler class's methods with inspect.getmembers (to check that the action is
    # one); a class's functions do not change while the server runs, so the list is made once per class.
    from moto.core import responses, utils

    original_names = utils.method_names_from_class
    names = functools.cache(lambda clazz: tuple(original_names(clazz)))

    def method_names_from_class(clazz: Any) -> list[str]:
        return list(names(clazz))  # a list of its own for each caller, as moto returns

    method_names_from_class.__wrapped__ = original_names  # type: ignore[attr-defined]
    responses.method_names_from_class = method_names_from_class  # type: ignore[assignment]


# --- (r) each DynamoDB update expression is parsed once -----------------------------------------------------------


def _install_update_expression_cache() -> None:
    # moto tokenises and parses an UpdateExpression twice per UpdateItem (once to list the names and values it
    # uses, once to apply it) and once more per Update of a TransactWriteItems: every debit, refund, status
    # change and lease of vidgen, with the same few expression texts. The tree is only read: the validator that
    # applies it works on its own deep copy (moto makes one before it replaces any node), and the listing walks
    # it. So one parse per text serves every call; a text that does not parse raises each time, not cached.
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    original = UpdateExpressionParser.make
    cached = functools.lru_cache(maxsize=1024)(original)
    cached.__wrapped__ = original
    UpdateExpressionParser.make = staticmethod(cached)  # type: ignore[assignment, method-assign]


_INSTALLERS: dict[str, Callable[[], None]] = {
    'lambda_dispatch': _install_lambda_dispatch,
    'dynamodb_lock': _install_dynamodb_lock,
    'wait_scale': _install_wait_scale,
    'retry_scale': _install_retry_scale,
    'send_task_failure_cause': _install_send_task_failure_cause,
    'start_execution_name': _install_start_execution_name,
    'transact_item_rollback': _install_transact_item_rollback,
    'asl_parse_cache': _install_asl_parse_cache,
    'iam_action_resources': _install_iam_action_resources,
    's3_presigned_auth': _install_s3_presigned_auth,
    'state_machine_role': _install_state_machine_role,
    'transaction_limits': _install_transaction_limits,
    'item_size_limit': _install_item_size_limit,
    'data_limit_uncatchable': _install_data_limit_uncatchable,
    'index_lag': _install_index_lag,
    'server_routing_cache': _install_server_routing_cache,
    'jsonpath_parse_cache': _install_jsonpath_parse_cache,
    'server_keep_alive': _install_server_keep_alive,
    'response_serialization': _install_response_serialization,
    'update_expression_cache': _install_update_expression_cache,
}
