"""The moto patches (vidgen_local/patches.py): each one still targets what it replaces, and its effect shows.

moto's backends, MOTO_PORT and the patches are process-wide, and the session's local cloud owns them, so
the scenarios run once in a fresh interpreter (this file, run as a script) against their own moto server
and report what they observed as JSON. Each test then checks one observation: a moto upgrade that moves a
patched method or changes the behaviour a patch relies on fails here, not in the demo.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCALE = 100.0  # Wait and Retry time scale used by the scenarios


@pytest.fixture(scope='module')
def observed() -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__], capture_output=True, text=True, timeout=240,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def scenario(observed: dict[str, Any], name: str) -> dict[str, Any]:
    result = observed[name]
    assert 'error' not in result, result.get('error')
    return result


# --- the patched attributes are still there, with the signatures the patches assume -------------------


def test_patched_moto_attributes_keep_their_signatures(observed):
    signatures = scenario(observed, 'signatures')
    assert signatures['targets missing'] == []
    assert signatures['LambdaSimpleBackend.invoke'] == ['self', 'function_name', 'qualifier', 'body', 'headers',
                                                        'response_headers']
    assert signatures['WaitFunction._wait_interval'] == ['self', 'env', 'wait_seconds']
    assert signatures['Environment'] == {'program_state_event': True, 'is_running': True}
    assert signatures['retrier sleeps with time.sleep'] is True
    assert signatures['StepFunctionsParserBackend.start_execution'][:3] == ['self', 'state_machine_arn', 'name']
    assert 'cause' in signatures['StepFunctionsParserBackend.send_task_failure']
    assert signatures['StepFunctionResponse.send_task_failure'] == ['self']
    assert signatures['DynamoHandler actions missing'] == []
    assert signatures['installed'] == sorted(['lambda_dispatch', 'dynamodb_lock', 'wait_scale', 'retry_scale',
                                              'send_task_failure_cause', 'start_execution_name',
                                              'transact_item_rollback', 'asl_parse_cache',
                                              'iam_action_resources', 's3_presigned_auth', 'state_machine_role',
                                              'transaction_limits', 'item_size_limit', 'data_limit_uncatchable',
                                              'index_lag', 'server_routing_cache', 'jsonpath_parse_cache',
                                              'server_keep_alive', 'response_serialization',
                                              'update_expression_cache'])
    assert signatures['DomainDispatcherApplication.get_backend_for_host'] == ['self', 'host']
    assert signatures['werkzeug serves the body from rfile and closes every connection'] is True
    assert signatures['ActionAuthenticatorMixin._authenticate_and_authorize_normal_action'] == ['self', 'resource']
    assert signatures['ActionAuthenticatorMixin._authenticate_and_authorize_s3_action'] == ['self', 'bucket_name',
                                                                                           'key_name']
    assert signatures['IAMRequestBase.__init__'] == ['self', 'account_id', 'method', 'path', 'data', 'body',
                                                     'headers', 'action']
    assert signatures['moto reads only the Authorization header'] is True
    assert signatures['boto_client_for'] == ['region', 'service', 'state_credentials']
    assert signatures['the task credentials default to the execution role'] is True
    # (l) relies on moto failing oversized state data itself, and on ErrorEquals popping the error name
    assert signatures['moto checks state data against 256 KiB'] == {'quota': 262144, 'state output': True,
                                                                     'lambda result': True}
    assert signatures['ErrorEqualsDecl._eval_body'] == ['self', 'env']
    # (m) wraps the table's writes and its index reads
    assert signatures['Table.put_item'][:2] == ['self', 'item_attrs']
    assert signatures['Table.delete_item'] == ['self', 'hash_key', 'range_key']
    assert signatures['DynamoDBBackend.update_item'][:3] == ['self', 'table_name', 'key']
    assert 'index_name' in signatures['Table.query'] and 'index_name' in signatures['Table.scan']
    assert signatures['GSI reads go through all_items / has_idx_items'] is True


def test_rewritten_moto_methods_are_the_versions_the_patches_copied(observed):
    # A patch that replaces a method by an edited copy is only right for the moto source it was copied from.
    signatures = scenario(observed, 'signatures')
    assert signatures['rewritten sources changed'] == [], (
        'moto changed a method patches.py rewrites: compare the new source with the patch, then update '
        'REWRITTEN_SOURCES')
    assert signatures['ASL parse steps'] == {'lexer': True, 'parser': True, 'listener': True, 'preprocessor': True}


# --- (a) Lambda dispatch: a Catch matches our exception's class name -----------------------------------


def test_lambda_errors_reach_catch_as_their_error_type(observed):
    result = scenario(observed, 'dispatch')
    for via in ('lambda:invoke', 'function arn'):
        run = result[via]
        assert run['status'] == 'SUCCEEDED', run
        assert run['output']['failure']['Error'] == 'ProviderContentPolicyError'
        cause = json.loads(run['output']['failure']['Cause'])
        assert cause['errorType'] == 'ProviderContentPolicyError' and cause['errorMessage'] == 'refused: fox'
    assert result['ok']['output']['Payload'] == {'echo': {'mode': 'ok', 'n': 7}, 'function': 'fn'}


# --- (b) DynamoDB lock: concurrent conditional debits never lose an update or overdraw ---------------------


def test_concurrent_conditional_debits_never_overdraw(observed):
    result = scenario(observed, 'dynamodb')
    for kind in ('update_item', 'transact_write_items'):
        rounds = result[kind]
        assert len(rounds) == result['rounds']
        for accepted, final in rounds:
            assert accepted == 10, rounds  # 100 credits / 10 per debit: exactly ten of the 40 threads win
            assert final == 0, rounds


# --- (f) TransactWriteItems backs up only the items it touches, and stays all-or-nothing ----------------


def test_a_transaction_copies_no_table(observed):
    result = scenario(observed, 'transactions')
    assert result['tables deep-copied'] == 0
    assert result['committed']['reasons'] is None  # it went through, and every write shows
    assert result['committed']['changed'] == result['committed']['expected']


@pytest.mark.parametrize('case', ['condition fails mid-transaction', 'update fails mid-transaction',
                                  'duplicate item'])
def test_a_failed_transaction_changes_nothing(observed, case):
    result = scenario(observed, 'transactions')[case]
    # Items written before the failing one (an in-place Update, a Put, a Delete) are all put back, the item
    # whose condition failed comes back as ALL_OLD, and every other item, the index and the stream are as
    # they were. A validation error mid-transaction fails the whole request, and is rolled back too.
    assert result['before'] == result['after']
    assert result['stream before'] == result['stream after']
    assert result['error'] == result['expected error']
    if 'reasons' in result:
        assert result['reasons'] == result['expected reasons']


# --- (g) StartExecution reuses the parsed definition ----------------------------------------------------


def test_executions_of_a_definition_share_its_program_and_keep_their_own_state(observed):
    result = scenario(observed, 'asl_cache')
    assert result['parses during executions'] == 0  # moto's full parser ran only for create/update
    assert result['programs built'] == 3  # one per definition text: the original, the updated one, the retried
    assert result['outputs'] == [{'n': n, 'seen': 'v1'} for n in range(4)]  # each its own input
    assert result['after update'] == {'n': 9, 'seen': 'v2'}  # the new definition, not a stale program
    assert result['one program per definition'] == [1, True]
    side_by_side = result['retried side by side']
    assert side_by_side['programs'] == 1
    assert side_by_side['statuses'] == ['FAILED'] * 8
    assert side_by_side['attempts'] == [3] * 8  # the first try and MaxAttempts 2 retries, each execution's own
    assert result['components without a heap key'] == 0


def test_each_jsonpath_is_parsed_once_and_matches_as_before(observed):
    result = scenario(observed, 'jsonpath')
    assert result['parsers built'] == {'first round': 6, 'second round': 0}
    assert result['same matches as uncached'] is True
    assert result['answers']['$.probe.outputs[0]'] == {'url': 'u0'}  # a singleton array access unpacked, as AWS does
    assert result['answers']['$.probe.outputs[*].url'] == ['u0', 'u1']
    assert result['result_path cached'] is True


def test_the_server_keeps_a_connection_open_between_requests(observed):
    result = scenario(observed, 'keep_alive')
    # a table made, 5 writes, 5 reads, an error answer and one more call: one connection (moto alone opened 13)
    assert result['dynamodb'] == {'accepted': 1, 'lengths read back': [0, 1000, 2000, 3000, 4000],
                                  'error then next call': 'ResourceNotFoundException', 'no delay': True}
    # the bucket made on one connection, which the PutObject reuses; it asks `Expect: 100-continue`, is served
    # as before and closes it; the GetObject opens another
    assert result['s3'] == {'accepted': 2, 'body': 'abc'}


def test_the_server_routes_a_host_as_moto_does_and_lists_its_package_once(observed):
    result = scenario(observed, 'routing')
    assert result['patched == moto'] is True, result['answers']
    assert result['answers']['dynamodb.us-east-1.amazonaws.com'] == 'dynamodb'
    assert result['answers']['nothing.example'] is None  # no backend: moto goes on to infer one
    assert result['package listings'] == {'first round': 6, 'second round': 0}


def test_answers_are_serialised_as_moto_does_without_searching_aliases_again(observed):
    result = scenario(observed, 'serialization')
    assert result['answers'] == 9  # DynamoDB reads, a write, a table description, an error; S3 XML answers
    assert result['same bytes as moto'] is True, result['differing']
    assert result['GetItem alias searches']['patched'] == 0  # every alias came from the cache
    assert result['GetItem alias searches']['moto'] > 50  # ten members tried for each of the item's values
    item = result['a body']['Item']
    assert item['m'] == {'M': {'l': {'L': [{'N': '1'}, {'S': 'two'}, {'M': {}}]}, 'e': {'S': ''}}}
    assert item['none'] == {'NULL': True} and item['yes'] == {'BOOL': False} and item['b'] == {'B': 'AP8='}
    assert result['a body']['ConsumedCapacity']['TableName'] == 'serialize'


def test_each_update_expression_is_parsed_once_and_applied_every_time(observed):
    result = scenario(observed, 'update_expressions')
    assert result['cached'] is True
    first = result['tokenised']['first call']
    assert first >= 1  # moto's tokenizer ran for the new text...
    assert result['tokenised']['second call'] == result['tokenised']['third call'] == 0  # ...and never again
    assert result['transaction tokenised'] == 0  # a transaction's Update with the same text too
    assert result['errors'] == ['ValidationException', 'ValidationException']  # a bad text fails every time
    assert result['malformed tokenised'] == 2  # (not cached: each call parses it and raises)
    assert result['hits'] == ['1', '2', '3']  # each call applied, to its own copy of the tree
    assert result['final'] == {'hits': '4', 'seen': ['a', 'b', 'c', 'd']}


# --- (c) Wait and Retry scaling -------------------------------------------------------------------------


def test_scaled_wait_and_retry_finish_fast_and_stop_still_interrupts(observed):
    result = scenario(observed, 'scaling')
    assert result['wait']['status'] == 'SUCCEEDED'
    assert 0.35 <= result['wait']['seconds'] < 2.5  # Wait 20 s + SecondsPath 20 s at scale 100 = 0.4 s
    assert result['retry']['status'] == 'SUCCEEDED' and result['retry']['calls'] == 3
    assert 0.25 <= result['retry']['seconds'] < 2.5  # 10 s + 20 s of retry intervals at scale 100
    assert result['stop']['status'] == 'ABORTED' and result['stop']['seconds'] < 2.0  # a 1000 s wait


# --- (d) SendTaskFailure keeps its cause ----------------------------------------------------------------


def test_send_task_failure_cause_reaches_the_catch_result_path(observed):
    result = scenario(observed, 'send_task_failure')
    assert result['status'] == 'SUCCEEDED'
    assert result['output']['failure'] == {'Error': 'ProviderRejectedError', 'Cause': 'the provider said no'}


# --- (e) StartExecution without a name -----------------------------------------------------------------


def test_unnamed_executions_get_distinct_names(observed):
    result = scenario(observed, 'unnamed')
    assert len(set(result['arns'])) == 2 and not any(arn.endswith(':None') for arn in result['arns'])
    assert result['statuses'] == ['SUCCEEDED', 'SUCCEEDED']


# --- (h) IAM: each call is checked against its resource, refusals name the action and the resource -------


def test_iam_checks_each_call_against_the_resource_it_touches(observed):
    result = scenario(observed, 'iam')
    denied = 'User: arn:aws:sts::123456789012:assumed-role/fn-role/fn is not authorized to perform: {} on resource: {} ' \
             'because no identity-based policy allows the {} action'
    table = 'arn:aws:dynamodb:us-east-1:123456789012:table/guarded'
    assert result['GetItem on the granted table'] == 'allowed'
    assert result['UpdateItem, not granted'] == ['AccessDeniedException', denied.format('dynamodb:UpdateItem', table,
                                                                                         'dynamodb:UpdateItem')]
    # A transaction is checked item by item, as the action each item performs.
    assert result['TransactWriteItems: granted Put'] == 'allowed'
    assert result['TransactWriteItems: granted Put + Update'] == [
        'AccessDeniedException', denied.format('dynamodb:UpdateItem', table, 'dynamodb:UpdateItem')]
    assert result['GetSecretValue by name of the granted ARN'] == 'allowed'
    other = result['other secret arn']
    assert result['GetSecretValue, another secret'] == ['AccessDeniedException', denied.format(
        'secretsmanager:GetSecretValue', other, 'secretsmanager:GetSecretValue')]
    # SendTaskSuccess has no resource type: a grant on the state machine's ARN does not cover it.
    assert result['SendTaskSuccess granted on a state machine ARN'] == [
        'AccessDeniedException', denied.format('states:SendTaskSuccess', '*', 'states:SendTaskSuccess')]
    assert result['S3 PutObject, not granted'] == ['AccessDenied', denied.format(
        's3:PutObject', '"arn:aws:s3:::guarded-bucket/results/new"', 's3:PutObject')]
    assert result['unknown keys'] == ['UnrecognizedClientException', 'The security token included in the request is invalid.']
    # DeleteObjects is s3:DeleteObject on each key it names: a prefix grant covers it, a key outside refuses it.
    assert result['DeleteObjects, keys under the granted prefix'] == 'allowed'
    assert result['DeleteObjects, one key outside it'] == ['AccessDenied', denied.format(
        's3:DeleteObject', '"arn:aws:s3:::guarded-bucket/inputs/x"', 's3:DeleteObject')]


# --- (i) presigned URLs ---------------------------------------------------------------------------------


def test_presigned_urls_are_checked_against_the_signer_when_fetched(observed):
    result = scenario(observed, 'iam')
    assert result['presigned GET, granted'] == [200, 'stored bytes']
    status, code, message = result['presigned GET, key not granted']
    assert (status, code) == (403, 'AccessDenied')
    assert 's3:GetObject on resource: "arn:aws:s3:::guarded-bucket/inputs/x"' in message
    assert result['presigned GET, signature altered'][:2] == [403, 'SignatureDoesNotMatch']
    assert result['presigned GET, expired'] == [403, 'AccessDenied', 'Request has expired']
    assert result['anonymous GET'][0] == 403


# --- (j) the state machine's role ------------------------------------------------------------------------


def test_the_state_machine_invokes_lambda_as_its_own_role(observed):
    result = scenario(observed, 'iam')
    assert result['execution, role may invoke'] == {'status': 'SUCCEEDED', 'function': 'fn'}
    assert result['execution, role may invoke, again'] == {'status': 'SUCCEEDED', 'function': 'fn'}
    assert result['role clients'] == {'made': 2, 'reused': 1}  # one per role; the second run reused its client
    refused = result['execution, role may not invoke']
    assert refused['status'] == 'FAILED' and refused['error'] == 'Lambda.AccessDeniedException', refused
    assert 'lambda:InvokeFunction on resource: arn:aws:lambda:us-east-1:123456789012:function:fn' in refused['cause']


# --- (k) DynamoDB's limits: items of 400 KB (moto's own check), transactions of 100 actions and 4 MB --------


def test_dynamodb_refuses_an_item_over_400_kb(observed):
    result = scenario(observed, 'limits')
    too_large = ['ValidationException', 'Item size has exceeded the maximum allowed size']
    assert result['PutItem 410 KB'] == too_large
    assert result['PutItem 399 KB'] == 'accepted'  # moto alone refused it (its bound is 405,000 bytes)
    assert result['PutItem at 400 KB exactly'] == 'accepted'
    assert result['UpdateItem past 400 KB'] == ['ValidationException',
                                                'Item size to update has exceeded the maximum allowed size']
    assert result['TransactWriteItems Put 410 KB'] == too_large


def test_dynamodb_refuses_a_transaction_over_100_actions(observed):
    result = scenario(observed, 'limits')
    code, message = result['101 actions']
    assert code == 'ValidationException'
    assert message.startswith("1 validation error detected: Value '[{")
    assert message.endswith("' at 'transactItems' failed to satisfy constraint: "
                            'Member must have length less than or equal to 100')
    assert result['100 actions'] == 'accepted'


def test_dynamodb_refuses_a_transaction_over_4_mb(observed):
    result = scenario(observed, 'limits')
    assert result['11 x 390 KB'] == ['ValidationException', 'Transaction request cannot be larger than 4 MB']
    assert result['after the refusals'] == ['fits']  # nothing of a refused transaction was written
    assert result['10 x 390 KB'] == 'accepted'
    assert result['stored at the end'] == 1 + 100 + 10


# --- (l) Step Functions' 256 KiB: States.DataLimitExceeded is terminal, like States.Runtime -------------


def test_state_data_over_256_kib_fails_the_execution_past_states_all(observed):
    result = scenario(observed, 'limits')
    # A task result over the limit: no retry, no catch, the execution fails with the error
    assert result['task result over 256 KiB'] == {'status': 'FAILED', 'error': 'States.DataLimitExceeded', 'calls': 1}
    assert result['state output over 256 KiB'] == {'status': 'FAILED', 'error': 'States.DataLimitExceeded'}
    # Named explicitly it is caught, and States.ALL still catches everything else
    assert result['caught by name'] == {'status': 'SUCCEEDED', 'error': 'States.DataLimitExceeded'}
    assert result['other errors, States.ALL'] == {'status': 'SUCCEEDED', 'error': 'ProviderContentPolicyError'}
    # States.Runtime (here a JSONPath that selects nothing) is terminal in the same way
    assert result['States.Runtime, States.ALL'] == {'status': 'FAILED', 'error': 'States.Runtime'}


# --- (m) global secondary indexes lag behind the table ----------------------------------------------------


def test_a_global_index_shows_writes_only_after_the_lag(observed):
    result = scenario(observed, 'index_lag')
    right_after = result['right after']
    # The index still shows the table as it was: no new item, the updated one under its old key, the deleted one
    assert right_after['queued'] == ['gone', 'old'] and right_after['running'] == []
    assert right_after['scan'] == ['gone:queued', 'old:queued']
    # ... while the table itself, read consistently, is current
    assert right_after['table'] == ['queued', 'running', None]
    after = result['after the lag']
    assert after['queued'] == ['new'] and after['running'] == ['old']
    assert after['scan'] == ['new:queued', 'old:running']
    assert 'later' in result['no lag']  # lag 0: the index is current at once


# --- moto features our ASL relies on, unpatched: TimeoutSecondsPath, MaxDelaySeconds, JitterStrategy ----


def test_timeout_seconds_path_bounds_a_wait_for_task_token(observed):
    result = scenario(observed, 'timeout_seconds_path')
    timed_out = result['no_callback']
    assert timed_out['status'] == 'SUCCEEDED' and timed_out['output']['outcome'] == 'timed out'
    assert 0.9 <= timed_out['seconds'] < 3.0  # TimeoutSecondsPath = 1: not scaled, it is not a Wait
    answered = result['callback']
    assert answered['status'] == 'SUCCEEDED' and answered['output']['outcome'] == {'state': 'succeeded'}
    assert answered['seconds'] < 3.0  # the 30 s bound did not hold it


def test_retry_honours_max_delay_seconds_and_full_jitter(observed):
    result = scenario(observed, 'jitter')
    # IntervalSeconds 10, BackoffRate 3, MaxDelaySeconds 12: 10, 30 -> 12, 90 -> 12.
    assert result['NONE'] == [10, 12, 12]
    full = result['FULL']
    assert len(full) == 3 and all(0 <= got <= cap for got, cap in zip(full, [10, 12, 12], strict=True))
    assert full != [10, 12, 12]  # FULL jitter draws from [0, interval]


# --- the scenarios (run in a fresh interpreter) ---------------------------------------------------------


def _main() -> None:  # noqa: C901 - one script, one scenario per block
    import hashlib
    import importlib
    import inspect
    import logging
    import os
    import threading
    import time
    import traceback

    import boto3
    import requests
    from moto.server import ThreadedMotoServer
    from vidgen_local import patches

    logging.getLogger('werkzeug').setLevel(logging.WARNING)  # moto's request lines
    out: dict[str, Any] = {}

    def record(name: str, run: Any) -> None:
        started = time.monotonic()
        try:
            out[name] = run()
        except Exception:  # noqa: BLE001 - reported to the test that reads this scenario
            out[name] = {'error': traceback.format_exc()}
        out.setdefault('timings', {})[name] = round(time.monotonic() - started, 2)

    def signatures() -> dict[str, Any]:
        from moto.awslambda_simple.models import LambdaSimpleBackend
        from moto.dynamodb.responses import DynamoHandler
        from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
        from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
        from moto.stepfunctions.parser.asl.eval.environment import Environment
        from moto.stepfunctions.parser.models import StepFunctionsParserBackend
        from moto.stepfunctions.responses import StepFunctionResponse

        def params(fn: Any) -> list[str]:
            return list(inspect.signature(fn).parameters)

        def missing_targets() -> list[str]:
            missing = []
            for module_name, path in patches.PATCH_TARGETS.values():
                target: Any = importlib.import_module(module_name)
                for part in path.split('.'):
                    target = getattr(target, part, None)
                if target is None:
                    missing.append(f'{module_name}.{path}')
            return missing

        from moto.core.authorization import ActionAuthenticatorMixin
        from moto.iam.access_control import IAMRequestBase
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task import StateTask
        from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for

        env_source = inspect.getsource(Environment)

        def rewritten_changed() -> list[str]:
            changed = []
            for dotted, digest in patches.REWRITTEN_SOURCES.items():
                module_name, owner, method = dotted.rsplit('.', 2)
                source = inspect.getsource(getattr(getattr(importlib.import_module(module_name), owner), method))
                if hashlib.sha256(source.encode()).hexdigest() != digest:
                    changed.append(dotted)
            return changed

        from moto.dynamodb.models import DynamoDBBackend
        from moto.dynamodb.models.table import Table
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication
        from moto.stepfunctions.parser import quotas
        from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import ErrorEqualsDecl
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_lambda import StateTaskLambda
        from moto.stepfunctions.parser.asl.component.state.state import CommonStateField
        from moto.stepfunctions.parser.asl.parse import asl_parser
        from werkzeug.serving import WSGIRequestHandler
        parse_source = inspect.getsource(asl_parser.AmazonStateLanguageParser.parse)
        return {
            'rewritten sources changed': rewritten_changed(),
            'ASL parse steps': {'lexer': 'ASLLexer(input_stream)' in parse_source,
                                'parser': 'parser.state_machine()' in parse_source,
                                'listener': 'syntax_error_listener.errors' in parse_source,
                                'preprocessor': 'Preprocessor()' in parse_source},
            'ActionAuthenticatorMixin._authenticate_and_authorize_normal_action':
                params(ActionAuthenticatorMixin._authenticate_and_authorize_normal_action),
            'ActionAuthenticatorMixin._authenticate_and_authorize_s3_action':
                params(ActionAuthenticatorMixin._authenticate_and_authorize_s3_action),
            'IAMRequestBase.__init__': params(IAMRequestBase.__init__),
            'DomainDispatcherApplication.get_backend_for_host': params(DomainDispatcherApplication.get_backend_for_host),
            'werkzeug serves the body from rfile and closes every connection': (
                '"wsgi.input": self.rfile' in inspect.getsource(WSGIRequestHandler.make_environ)
                and 'self.send_header("Connection", "close")' in inspect.getsource(WSGIRequestHandler.run_wsgi)
                and 'data = self.rfile.read(' in inspect.getsource(WSGIRequestHandler.run_wsgi)),
            'moto reads only the Authorization header': 'self._headers["Authorization"]' in inspect.getsource(
                IAMRequestBase.__init__) and 'X-Amz-Credential' not in inspect.getsource(IAMRequestBase),
            'boto_client_for': params(boto_client_for),
            'the task credentials default to the execution role': 'env.aws_execution_details.role_arn' in
                inspect.getsource(StateTask._eval_state_credentials),
            'targets missing': missing_targets(),
            'LambdaSimpleBackend.invoke': params(LambdaSimpleBackend.invoke),
            'WaitFunction._wait_interval': params(WaitFunction._wait_interval),
            'Environment': {'program_state_event': 'self.program_state_event' in env_source,
                            'is_running': hasattr(Environment, 'is_running')},
            'retrier sleeps with time.sleep': 'time.sleep(' in inspect.getsource(retrier_decl.RetrierDecl._eval_body)
            and retrier_decl.time is time,
            'StepFunctionsParserBackend.start_execution': params(StepFunctionsParserBackend.start_execution),
            'StepFunctionsParserBackend.send_task_failure': params(StepFunctionsParserBackend.send_task_failure),
            'StepFunctionResponse.send_task_failure': params(StepFunctionResponse.send_task_failure),
            'DynamoHandler actions missing': [a for a in patches.DYNAMODB_LOCKED_ACTIONS
                                              if not inspect.isfunction(getattr(DynamoHandler, a, None))],
            'moto checks state data against 256 KiB': {
                'quota': quotas.MAX_STATE_SIZE_UTF8_BYTES,
                'state output': '_verify_size_quota(env=env, value=env.states.get_input())' in inspect.getsource(
                    CommonStateField._eval_body),
                'lambda result': '_verify_size_quota(env=env, value=output)' in inspect.getsource(StateTaskLambda)},
            'ErrorEqualsDecl._eval_body': params(ErrorEqualsDecl._eval_body),
            'Table.put_item': params(Table.put_item),
            'Table.delete_item': params(Table.delete_item),
            'DynamoDBBackend.update_item': params(DynamoDBBackend.update_item),
            'Table.query': params(Table.query),
            'Table.scan': params(Table.scan),
            'GSI reads go through all_items / has_idx_items': 'self.all_items()' in inspect.getsource(Table.query)
            and 'self.has_idx_items(index_name)' in inspect.getsource(Table.scan),
        }

    record('signatures', signatures)  # before the patches replace them

    tokens: list[str] = []
    calls: list[dict[str, Any]] = []

    class ProviderContentPolicyError(Exception):
        pass

    class Flaky(Exception):
        pass

    def dispatch(name: str, event: dict[str, Any]) -> Any:
        calls.append(event)
        mode = event.get('mode')
        if mode == 'raise':
            raise ProviderContentPolicyError('refused: fox')
        if mode == 'flaky' and sum(1 for c in calls if c.get('mode') == 'flaky') < 3:
            raise Flaky('try again')
        if mode == 'always':
            raise Flaky('never works')
        if 'token' in event:
            tokens.append(event['token'])
            return {}
        if mode == 'big':
            return {'blob': 'b' * (300 * 1024)}
        return {'echo': event, 'function': name}

    patches.set_index_lag(0)  # current indexes (whatever the environment says) but in the lag scenario
    patches.apply_all(dispatch, wait_scale=SCALE)
    if 'error' not in out['signatures']:
        out['signatures']['installed'] = sorted(patches.installed())

    server = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False)
    server.start()
    port = server.get_host_and_port()[1]
    url = f'http://127.0.0.1:{port}'
    os.environ.update({'AWS_ENDPOINT_URL': url, 'MOTO_PORT': str(port), 'AWS_ACCESS_KEY_ID': 'testing',
                       'AWS_SECRET_ACCESS_KEY': 'testing', 'AWS_DEFAULT_REGION': 'us-east-1'})
    requests.post(f'{url}/moto-api/config', json={'stepfunctions': {'execute_state_machine': True},
                                                  'lambda': {'use_docker': False}}, timeout=10).raise_for_status()
    iam, lam, sfn, ddb = (boto3.client(s) for s in ('iam', 'lambda', 'stepfunctions', 'dynamodb'))
    role = iam.create_role(RoleName='r', AssumeRolePolicyDocument='{}')['Role']['Arn']
    fn_arn = lam.create_function(FunctionName='fn', Runtime='python3.12', Role=role, Handler='app.h',
                                 Code={'ZipFile': b'PK\x05\x06' + b'\x00' * 18})['FunctionArn']

    def machine(name: str, states: dict[str, Any], start: str) -> str:
        definition = json.dumps({'StartAt': start, 'States': states})
        return sfn.create_state_machine(name=name, definition=definition, roleArn=role)['stateMachineArn']

    def run(arn: str, payload: dict[str, Any], *, name: str | None = None, during: Any = None) -> dict[str, Any]:
        started = time.monotonic()
        kwargs = {'name': name} if name else {}
        execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps(payload), **kwargs)['executionArn']
        if during:
            during(execution)
        while True:
            described = sfn.describe_execution(executionArn=execution)
            if described['status'] != 'RUNNING':
                break
            if time.monotonic() - started > 60:
                raise TimeoutError(f'{arn} still running')
            time.sleep(0.02)
        return {'status': described['status'], 'seconds': time.monotonic() - started, 'arn': execution,
                'output': json.loads(described.get('output') or 'null')}

    catch = [{'ErrorEquals': ['ProviderContentPolicyError'], 'ResultPath': '$.failure', 'Next': 'Done'}]

    def dispatch_scenario() -> dict[str, Any]:
        invoke = machine('dispatch-invoke', {
            'Call': {'Type': 'Task', 'Resource': 'arn:aws:states:::lambda:invoke', 'Catch': catch,
                     'Parameters': {'FunctionName': fn_arn, 'Payload': {'mode.$': '$.mode', 'n': 7}}, 'End': True},
            'Done': {'Type': 'Succeed'}}, 'Call')
        direct = machine('dispatch-arn', {
            'Call': {'Type': 'Task', 'Resource': fn_arn, 'Catch': catch, 'End': True},
            'Done': {'Type': 'Succeed'}}, 'Call')
        return {'lambda:invoke': run(invoke, {'mode': 'raise'}), 'function arn': run(direct, {'mode': 'raise'}),
                'ok': run(invoke, {'mode': 'ok'})}

    def dynamodb_scenario() -> dict[str, Any]:
        ddb.create_table(TableName='credits', BillingMode='PAY_PER_REQUEST',
                         AttributeDefinitions=[{'AttributeName': 'PK', 'AttributeType': 'S'}],
                         KeySchema=[{'AttributeName': 'PK', 'KeyType': 'HASH'}])
        clients = [boto3.client('dynamodb') for _ in range(8)]
        rounds = 8  # without the lock about half the rounds go wrong (docs/local-cloud.md, patch (b); 6 of 12 here)

        def debit(kind: str, client: Any, user: str) -> bool:
            update = {'TableName': 'credits', 'Key': {'PK': {'S': user}}, 'UpdateExpression': 'SET balance = balance - :c',
                      'ConditionExpression': 'balance >= :c', 'ExpressionAttributeValues': {':c': {'N': '10'}}}
            try:
                if kind == 'update_item':
                    client.update_item(**update)
                else:
                    client.transact_write_items(TransactItems=[
                        {'Put': {'TableName': 'credits', 'Item': {'PK': {'S': f'{user}#{threading.get_ident()}'}},
                                 'ConditionExpression': 'attribute_not_exists(PK)'}},
                        {'Update': update}])
                return True
            except (client.exceptions.ConditionalCheckFailedException,
                    client.exceptions.TransactionCanceledException):
                return False

        results: dict[str, Any] = {'rounds': rounds}
        previous = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # the interleaving that lost updates without the lock (docs/local-cloud.md, patch (b))
        try:
            for kind in ('update_item', 'transact_write_items'):
                results[kind] = []
                for number in range(rounds):
                    user = f'{kind}-{number}'
                    ddb.put_item(TableName='credits', Item={'PK': {'S': user}, 'balance': {'N': '100'}})
                    accepted: list[bool] = []

                    def attempt(client: Any, kind: str = kind, user: str = user, accepted: list = accepted) -> None:
                        accepted.append(debit(kind, client, user))

                    threads = [threading.Thread(target=attempt, args=(clients[i % 8],)) for i in range(40)]
                    for thread in threads:
                        thread.start()
                    for thread in threads:
                        thread.join()
                    final = int(ddb.get_item(TableName='credits', Key={'PK': {'S': user}})['Item']['balance']['N'])
                    results[kind].append([sum(accepted), final])
        finally:
            sys.setswitchinterval(previous)
        return results

    def scaling_scenario() -> dict[str, Any]:
        waits = machine('scaled-wait', {
            'Fixed': {'Type': 'Wait', 'Seconds': 20, 'Next': 'FromPath'},
            'FromPath': {'Type': 'Wait', 'SecondsPath': '$.w', 'End': True}}, 'Fixed')
        retry = machine('scaled-retry', {
            'Call': {'Type': 'Task', 'Resource': 'arn:aws:states:::lambda:invoke', 'End': True,
                     'Parameters': {'FunctionName': fn_arn, 'Payload': {'mode': 'flaky'}},
                     'Retry': [{'ErrorEquals': ['Flaky'], 'IntervalSeconds': 10, 'BackoffRate': 2, 'MaxAttempts': 3}]}},
            'Call')
        long_wait = machine('long-wait', {'Sleep': {'Type': 'Wait', 'Seconds': 1000, 'End': True}}, 'Sleep')
        before = len(calls)
        retried = run(retry, {})
        retried['calls'] = len(calls) - before

        def stop_soon(execution: str) -> None:
            time.sleep(0.3)
            sfn.stop_execution(executionArn=execution)

        return {'wait': run(waits, {'w': 20}), 'retry': retried, 'stop': run(long_wait, {}, during=stop_soon)}

    def callback_machine(name: str, timeout_path: bool) -> str:
        task: dict[str, Any] = {
            'Type': 'Task', 'Resource': 'arn:aws:states:::lambda:invoke.waitForTaskToken', 'ResultPath': '$.outcome',
            'Parameters': {'FunctionName': fn_arn, 'Payload': {'token.$': '$$.Task.Token'}}, 'Next': 'Done',
            'Catch': [{'ErrorEquals': ['States.Timeout'], 'ResultPath': None, 'Next': 'TimedOut'},
                      {'ErrorEquals': ['States.ALL'], 'ResultPath': '$.failure', 'Next': 'Done'}]}
        if timeout_path:
            task['TimeoutSecondsPath'] = '$.wait'
        return machine(name, {'Create': task, 'Done': {'Type': 'Succeed'},
                              'TimedOut': {'Type': 'Pass', 'Result': 'timed out', 'ResultPath': '$.outcome',
                                           'End': True}}, 'Create')

    def answer(send: Any) -> Any:
        # Counted before the execution starts (answer(...) is evaluated before run()): its Task may record
        # the token before `during` runs, and a count taken then would wait for a token that never comes.
        count = len(tokens)

        def during(_: str) -> None:
            deadline = time.monotonic() + 10
            while len(tokens) == count and time.monotonic() < deadline:
                time.sleep(0.01)
            send(tokens[-1])
        return during

    def send_task_failure_scenario() -> dict[str, Any]:
        arn = callback_machine('callback-failure', timeout_path=False)
        tokens.clear()
        return run(arn, {}, during=answer(lambda token: sfn.send_task_failure(
            taskToken=token, error='ProviderRejectedError', cause='the provider said no')))

    def unnamed_scenario() -> dict[str, Any]:
        arn = machine('unnamed', {'Pass': {'Type': 'Pass', 'End': True}}, 'Pass')
        first, second = run(arn, {}), run(arn, {})
        return {'arns': [first['arn'], second['arn']], 'statuses': [first['status'], second['status']]}

    def timeout_path_scenario() -> dict[str, Any]:
        arn = callback_machine('callback-timeout', timeout_path=True)
        tokens.clear()
        no_callback = run(arn, {'wait': 1})
        callback = run(arn, {'wait': 30}, during=answer(lambda token: sfn.send_task_success(
            taskToken=token, output=json.dumps({'state': 'succeeded'}))))
        return {'no_callback': no_callback, 'callback': callback}

    def jitter_scenario() -> dict[str, Any]:
        from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

        slept: list[float] = []
        scaled = retrier_decl.time

        class Recorder:
            def sleep(self, seconds: float) -> None:
                slept.append(seconds)
                scaled.sleep(seconds)

        retrier_decl.time = Recorder()
        found: dict[str, Any] = {}
        try:
            for strategy in ('NONE', 'FULL'):
                arn = machine(f'jitter-{strategy}', {
                    'Call': {'Type': 'Task', 'Resource': 'arn:aws:states:::lambda:invoke', 'End': True,
                             'Parameters': {'FunctionName': fn_arn, 'Payload': {'mode': 'always'}},
                             'Retry': [{'ErrorEquals': ['Flaky'], 'IntervalSeconds': 10, 'BackoffRate': 3,
                                        'MaxAttempts': 3, 'MaxDelaySeconds': 12, 'JitterStrategy': strategy}]}},
                    'Call')
                slept.clear()
                if run(arn, {})['status'] != 'FAILED':
                    raise AssertionError('the retried task should fail after its attempts')
                found[strategy] = list(slept)
        finally:
            retrier_decl.time = scaled
        return found

    def transactions_scenario() -> dict[str, Any]:
        from moto.dynamodb.models.table import Table

        ddb.create_table(
            TableName='ledger', BillingMode='PAY_PER_REQUEST',
            AttributeDefinitions=[{'AttributeName': n, 'AttributeType': 'S'} for n in ('PK', 'SK', 'owner')],
            KeySchema=[{'AttributeName': 'PK', 'KeyType': 'HASH'}, {'AttributeName': 'SK', 'KeyType': 'RANGE'}],
            GlobalSecondaryIndexes=[{'IndexName': 'ByOwner', 'KeySchema': [{'AttributeName': 'owner', 'KeyType': 'HASH'}],
                                     'Projection': {'ProjectionType': 'ALL'}}],
            StreamSpecification={'StreamEnabled': True, 'StreamViewType': 'NEW_AND_OLD_IMAGES'})
        streams = boto3.client('dynamodbstreams')
        stream_arn = ddb.describe_table(TableName='ledger')['Table']['LatestStreamArn']

        def s(value: str) -> dict[str, str]:
            return {'S': value}

        def seed(prefix: str, count: int) -> None:
            for n in range(count):
                ddb.put_item(TableName='ledger', Item={'PK': s(f'{prefix}#{n}'), 'SK': s('X'), 'owner': s(prefix)})

        def snapshot() -> list[Any]:
            items = ddb.scan(TableName='ledger', ConsistentRead=True)['Items']
            by_owner = ddb.query(TableName='ledger', IndexName='ByOwner', KeyConditionExpression='#o = :o',
                                 ExpressionAttributeNames={'#o': 'owner'}, ExpressionAttributeValues={':o': s('alice')})
            return [sorted(json.dumps(i, sort_keys=True) for i in items), by_owner['Count']]

        def stream_records() -> int:
            shard = streams.describe_stream(StreamArn=stream_arn)['StreamDescription']['Shards'][0]['ShardId']
            iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard,
                                                  ShardIteratorType='TRIM_HORIZON')['ShardIterator']
            return len(streams.get_records(ShardIterator=iterator, Limit=1000)['Records'])

        ddb.put_item(TableName='ledger', Item={'PK': s('USER#alice'), 'SK': s('PROFILE'), 'owner': s('alice'),
                                               'balance': {'N': '100'}, 'name': s('Alice')})
        ddb.put_item(TableName='ledger', Item={'PK': s('JOB#old'), 'SK': s('JOB'), 'owner': s('alice')})
        ddb.put_item(TableName='ledger', Item={'PK': s('JOB#taken'), 'SK': s('JOB'), 'owner': s('bob'), 'v': s('1')})
        seed('filler', 40)
        debit = {'Update': {'TableName': 'ledger', 'Key': {'PK': s('USER#alice'), 'SK': s('PROFILE')},
                            'UpdateExpression': 'SET balance = balance - :c REMOVE #n',
                            'ExpressionAttributeNames': {'#n': 'name'},
                            'ConditionExpression': 'balance >= :c', 'ExpressionAttributeValues': {':c': {'N': '10'}}}}
        new_job = {'Put': {'TableName': 'ledger', 'Item': {'PK': s('JOB#new'), 'SK': s('JOB'), 'owner': s('alice')},
                           'ConditionExpression': 'attribute_not_exists(PK)'}}
        drop_old = {'Delete': {'TableName': 'ledger', 'Key': {'PK': s('JOB#old'), 'SK': s('JOB')}}}
        taken = {'Put': {'TableName': 'ledger', 'Item': {'PK': s('JOB#taken'), 'SK': s('JOB'), 'owner': s('alice')},
                         'ConditionExpression': 'attribute_not_exists(PK)',
                         'ReturnValuesOnConditionCheckFailure': 'ALL_OLD'}}
        bad_update = {'Update': {'TableName': 'ledger', 'Key': {'PK': s('filler#3'), 'SK': s('X')},
                                 'UpdateExpression': 'SET total = #o + :one', 'ExpressionAttributeNames': {'#o': 'owner'},
                                 'ExpressionAttributeValues': {':one': {'N': '1'}}}}
        check = {'ConditionCheck': {'TableName': 'ledger', 'Key': {'PK': s('filler#0'), 'SK': s('X')},
                                    'ConditionExpression': 'attribute_exists(PK)'}}
        copies: list[str] = []

        def no_table_copies(self: Any, memo: Any) -> Any:
            copies.append(self.name)
            raise AssertionError('a transaction deep-copied a whole table')

        Table.__deepcopy__ = no_table_copies  # moto's original backup would call this once per item
        out: dict[str, Any] = {}
        try:
            def failing(items: list[dict[str, Any]], expected_error: str, expected_reasons: list[Any] | None) -> dict:
                before, stream_before = snapshot(), stream_records()
                found: dict[str, Any] = {'expected error': expected_error}
                try:
                    ddb.transact_write_items(TransactItems=items)
                    found['error'] = None
                except ddb.exceptions.ClientError as exc:
                    found['error'] = exc.response['Error']['Code']
                    reasons = exc.response.get('CancellationReasons')
                    if expected_reasons is not None:
                        found['reasons'] = [[r.get('Code'), r.get('Item')] for r in reasons or []]
                        found['expected reasons'] = expected_reasons
                found.update({'after': snapshot(), 'before': before, 'stream before': stream_before,
                              'stream after': stream_records()})
                return found

            taken_old = {'PK': s('JOB#taken'), 'SK': s('JOB'), 'owner': s('bob'), 'v': s('1')}
            out['condition fails mid-transaction'] = failing(
                [debit, new_job, taken, drop_old, check], 'TransactionCanceledException',
                [['None', None], ['None', None], ['ConditionalCheckFailed', taken_old], ['None', None], ['None', None]])
            out['update fails mid-transaction'] = failing(
                [debit, new_job, drop_old, bad_update], 'ValidationException', None)  # owner is a string
            out['duplicate item'] = failing([debit, new_job, {**new_job}], 'ValidationException', None)

            before = snapshot()
            ddb.transact_write_items(TransactItems=[debit, new_job, drop_old, check])
            profile = ddb.get_item(TableName='ledger', Key={'PK': s('USER#alice'), 'SK': s('PROFILE')},
                                   ConsistentRead=True)['Item']
            jobs = {pk: 'Item' in ddb.get_item(TableName='ledger', Key={'PK': s(pk), 'SK': s('JOB')}, ConsistentRead=True)
                    for pk in ('JOB#new', 'JOB#old')}
            out['committed'] = {'reasons': None, 'changed': [profile['balance']['N'], 'name' in profile, jobs,
                                                             snapshot()[1] == before[1]],
                                'expected': ['90', False, {'JOB#new': True, 'JOB#old': False}, True]}

        finally:
            del Table.__deepcopy__
        out['tables deep-copied'] = len(copies)
        return out

    def asl_cache_scenario() -> dict[str, Any]:
        from concurrent.futures import ThreadPoolExecutor

        from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
        from moto.stepfunctions.parser.asl.parse import asl_parser
        from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

        parses = {'n': 0}
        original_parse = asl_parser.AmazonStateLanguageParser.parse
        programs: list[Any] = []
        entrypoint = ExecutionWorker._get_evaluation_entrypoint

        def counting_parse(definition: str) -> Any:
            parses['n'] += 1
            return original_parse(definition)

        def recording_entrypoint(self: Any) -> Any:
            program = entrypoint(self)
            programs.append(program)
            return program

        def states(tag: str) -> dict[str, Any]:
            return {'Tag': {'Type': 'Pass', 'Parameters': {'n.$': '$.n', 'seen': tag}, 'End': True}}

        patches._asl_program.cache_clear()
        arn = machine('cached-parse', states('v1'), 'Tag')
        # Executions of one program side by side, each failing and retried: every one must get its own count
        # of attempts (kept in its own heap under the component's key), however they interleave.
        retried = machine('cached-retries', {'Call': {
            'Type': 'Task', 'Resource': 'arn:aws:states:::lambda:invoke', 'End': True,
            'Parameters': {'FunctionName': fn_arn, 'Payload': {'mode': 'always', 'probe': 'heap', 'n.$': '$.n'}},
            'Retry': [{'ErrorEquals': ['Flaky'], 'IntervalSeconds': 1, 'MaxAttempts': 2, 'BackoffRate': 1}]}},
            'Call')
        asl_parser.AmazonStateLanguageParser.parse = staticmethod(counting_parse)
        ExecutionWorker._get_evaluation_entrypoint = recording_entrypoint
        try:
            parses_before = parses['n']
            outputs = [run(arn, {'n': n})['output'] for n in range(4)]
            during = parses['n'] - parses_before
            sfn.update_state_machine(stateMachineArn=arn, definition=json.dumps({'StartAt': 'Tag', 'States': states('v2')}))
            updated = run(arn, {'n': 9})['output']
            with ThreadPoolExecutor(8) as pool:
                statuses = list(pool.map(lambda n: run(retried, {'n': n})['status'], range(8)))
        finally:
            asl_parser.AmazonStateLanguageParser.parse = original_parse
            ExecutionWorker._get_evaluation_entrypoint = entrypoint
        attempts: dict[int, int] = {}
        for call in calls:
            if call.get('probe') == 'heap':
                attempts[call['n']] = attempts.get(call['n'], 0) + 1
        unkeyed = [c for c in patches._components(programs[0])
                   if isinstance(c, EvalComponent) and c._EvalComponent__heap_key is None]
        return {'parses during executions': during, 'programs built': patches._asl_program.cache_info().misses,
                'outputs': outputs, 'after update': updated,
                'one program per definition': [len({id(p) for p in programs[:4]}), programs[4] is not programs[0]],
                'retried side by side': {'statuses': statuses, 'attempts': [attempts.get(n) for n in range(8)],
                                         'programs': len({id(p) for p in programs[5:]})},
                'components without a heap key': len(unkeyed)}

    def iam_scenario() -> dict[str, Any]:
        import botocore

        found: dict[str, Any] = {}
        s3 = boto3.client('s3', config=botocore.config.Config(signature_version='s3v4'))
        s3.create_bucket(Bucket='guarded-bucket')
        s3.put_object(Bucket='guarded-bucket', Key='results/x', Body=b'stored bytes')
        ddb.create_table(TableName='guarded', BillingMode='PAY_PER_REQUEST',
                         AttributeDefinitions=[{'AttributeName': 'PK', 'AttributeType': 'S'}],
                         KeySchema=[{'AttributeName': 'PK', 'KeyType': 'HASH'}])
        secrets = boto3.client('secretsmanager')
        granted = secrets.create_secret(Name='granted', SecretString='{}')['ARN']
        found['other secret arn'] = secrets.create_secret(Name='other', SecretString='{}')['ARN']
        table = 'arn:aws:dynamodb:us-east-1:123456789012:table/guarded'

        def role(name: str, service: str, statements: list[dict[str, Any]]) -> str:
            trust = {'Version': '2012-10-17', 'Statement': [
                {'Effect': 'Allow', 'Principal': {'Service': service}, 'Action': 'sts:AssumeRole'}]}
            arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))['Role']['Arn']
            if statements:
                iam.put_role_policy(RoleName=name, PolicyName='p', PolicyDocument=json.dumps(
                    {'Version': '2012-10-17', 'Statement': statements}))
            return arn

        fn_role = role('fn-role', 'lambda.amazonaws.com', [
            {'Effect': 'Allow', 'Action': ['dynamodb:GetItem', 'dynamodb:PutItem'], 'Resource': table},
            {'Effect': 'Allow', 'Action': ['s3:GetObject', 's3:DeleteObject'],
             'Resource': 'arn:aws:s3:::guarded-bucket/results/*'},
            {'Effect': 'Allow', 'Action': 'secretsmanager:GetSecretValue', 'Resource': granted},
            {'Effect': 'Allow', 'Action': 'states:SendTaskSuccess',
             'Resource': 'arn:aws:states:us-east-1:123456789012:stateMachine:x'}])
        may_invoke = role('sm-invokes', 'states.amazonaws.com', [
            {'Effect': 'Allow', 'Action': 'lambda:InvokeFunction', 'Resource': f'{fn_arn}*'}])
        may_not = role('sm-cannot', 'states.amazonaws.com', [])
        sts = boto3.client('sts')
        keys = {arn: sts.assume_role(RoleArn=arn, RoleSessionName=session)['Credentials']
                for arn, session in ((fn_role, 'fn'), (may_invoke, 'sm'), (may_not, 'sm'))}
        patches.set_role_credentials({arn: (k['AccessKeyId'], k['SecretAccessKey'], k['SessionToken'])
                                      for arn, k in keys.items() if arn != fn_role})
        definition = json.dumps({'StartAt': 'Call', 'States': {'Call': {
            'Type': 'Task', 'Resource': 'arn:aws:states:::lambda:invoke', 'OutputPath': '$.Payload', 'End': True,
            'Parameters': {'FunctionName': fn_arn, 'Payload': {'n': 1}}}}})
        machines = {arn: sfn.create_state_machine(name=f'iam-{arn.rsplit("/", 1)[1]}', definition=definition,
                                                  roleArn=arn)['stateMachineArn'] for arn in (may_invoke, may_not)}
        admin_user = iam.create_user(UserName='admin')['User']['UserName']
        iam.put_user_policy(UserName=admin_user, PolicyName='all', PolicyDocument=json.dumps(
            {'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': '*', 'Resource': '*'}]}))
        admin_key = iam.create_access_key(UserName=admin_user)['AccessKey']
        requests.post(f'{url}/moto-api/reset-auth', data=b'0', timeout=10).raise_for_status()
        try:
            k = keys[fn_role]
            as_fn = boto3.session.Session(aws_access_key_id=k['AccessKeyId'], aws_secret_access_key=k['SecretAccessKey'],
                                          aws_session_token=k['SessionToken'], region_name='us-east-1')
            admin = boto3.session.Session(aws_access_key_id=admin_key['AccessKeyId'],
                                          aws_secret_access_key=admin_key['SecretAccessKey'], region_name='us-east-1')

            def outcome(call: Any) -> Any:
                try:
                    call()
                    return 'allowed'
                except botocore.exceptions.ClientError as exc:
                    error = exc.response['Error']
                    return [error['Code'], error.get('Message')]

            fn_ddb, fn_s3 = as_fn.client('dynamodb'), as_fn.client('s3', config=botocore.config.Config(signature_version='s3v4'))
            put = {'Put': {'TableName': 'guarded', 'Item': {'PK': {'S': 'p'}}}}
            update = {'Update': {'TableName': 'guarded', 'Key': {'PK': {'S': 'p'}}, 'UpdateExpression': 'SET n = :n',
                                 'ExpressionAttributeValues': {':n': {'N': '1'}}}}
            found['GetItem on the granted table'] = outcome(lambda: fn_ddb.get_item(TableName='guarded', Key={'PK': {'S': 'p'}}))
            found['UpdateItem, not granted'] = outcome(lambda: fn_ddb.update_item(TableName='guarded', **{
                k: v for k, v in update['Update'].items() if k != 'TableName'}))
            found['TransactWriteItems: granted Put'] = outcome(lambda: fn_ddb.transact_write_items(TransactItems=[put]))
            found['TransactWriteItems: granted Put + Update'] = outcome(lambda: fn_ddb.transact_write_items(
                TransactItems=[{'Put': {'TableName': 'guarded', 'Item': {'PK': {'S': 'q'}}}}, update]))
            found['GetSecretValue by name of the granted ARN'] = outcome(
                lambda: as_fn.client('secretsmanager').get_secret_value(SecretId='granted'))
            found['GetSecretValue, another secret'] = outcome(
                lambda: as_fn.client('secretsmanager').get_secret_value(SecretId=found['other secret arn']))
            found['SendTaskSuccess granted on a state machine ARN'] = outcome(
                lambda: as_fn.client('stepfunctions').send_task_success(taskToken='t', output='{}'))
            found['S3 PutObject, not granted'] = outcome(
                lambda: fn_s3.put_object(Bucket='guarded-bucket', Key='results/new', Body=b'x'))
            found['unknown keys'] = outcome(lambda: boto3.client('dynamodb').list_tables())

            def delete_objects(*keys: str) -> Any:
                return fn_s3.delete_objects(Bucket='guarded-bucket', Delete={'Objects': [{'Key': k} for k in keys],
                                                                            'Quiet': True})

            found['DeleteObjects, keys under the granted prefix'] = outcome(lambda: delete_objects('results/a', 'results/b'))
            found['DeleteObjects, one key outside it'] = outcome(lambda: delete_objects('results/a', 'inputs/x'))

            def fetch(signed: str) -> list[Any]:
                response = requests.get(signed, timeout=10)
                if response.status_code == 200:
                    return [200, response.text]
                import xml.etree.ElementTree as ET

                root = ET.fromstring(response.text) if response.text else None
                return [response.status_code, root.findtext('Code') if root is not None else None,
                        root.findtext('Message') if root is not None else None]

            sign = fn_s3.generate_presigned_url
            found['presigned GET, granted'] = fetch(sign('get_object', Params={'Bucket': 'guarded-bucket', 'Key': 'results/x'}))
            found['presigned GET, key not granted'] = fetch(sign('get_object', Params={'Bucket': 'guarded-bucket',
                                                                                      'Key': 'inputs/x'}))
            good = sign('get_object', Params={'Bucket': 'guarded-bucket', 'Key': 'results/x'})
            found['presigned GET, signature altered'] = fetch(good[:-4] + ('0000' if not good.endswith('0000') else '1111'))
            short = sign('get_object', Params={'Bucket': 'guarded-bucket', 'Key': 'results/x'}, ExpiresIn=1)
            time.sleep(1.5)
            found['presigned GET, expired'] = fetch(short)
            found['anonymous GET'] = [requests.get(f'{url}/guarded-bucket/results/x', timeout=10).status_code]

            admin_sfn = admin.client('stepfunctions')
            patches._make_role_client.cache_clear()
            for label, arn in (('may invoke', may_invoke), ('may not invoke', may_not), ('may invoke, again', may_invoke)):
                execution = admin_sfn.start_execution(stateMachineArn=machines[arn], input='{}')['executionArn']
                deadline = time.monotonic() + 30
                while (described := admin_sfn.describe_execution(executionArn=execution))['status'] == 'RUNNING':
                    if time.monotonic() > deadline:
                        raise TimeoutError(label)
                    time.sleep(0.05)
                entry: dict[str, Any] = {'status': described['status']}
                if described['status'] == 'SUCCEEDED':
                    entry['function'] = json.loads(described['output'])['function']
                else:
                    entry['error'], entry['cause'] = described.get('error'), described.get('cause', '')
                found[f'execution, role {label}'] = entry
            info = patches._make_role_client.cache_info()
            found['role clients'] = {'made': info.misses, 'reused': info.hits}
        finally:
            requests.post(f'{url}/moto-api/reset-auth', data=b'inf', timeout=10)
            patches.set_role_credentials(None)
        return found

    def limits_scenario() -> dict[str, Any]:
        found: dict[str, Any] = {}
        ddb.create_table(TableName='limits', BillingMode='PAY_PER_REQUEST',
                         AttributeDefinitions=[{'AttributeName': 'PK', 'AttributeType': 'S'}],
                         KeySchema=[{'AttributeName': 'PK', 'KeyType': 'HASH'}])

        def attempt(call: Any) -> Any:
            try:
                call()
            except ddb.exceptions.ClientError as exc:
                return [exc.response['Error']['Code'], exc.response['Error']['Message']]
            return 'accepted'

        def put(pk: str, size: int) -> dict[str, Any]:
            return {'Put': {'TableName': 'limits', 'Item': {'PK': {'S': pk}, 'pad': {'S': 'p' * size}}}}

        def stored() -> list[str]:
            pages = ddb.get_paginator('scan').paginate(TableName='limits', ConsistentRead=True)
            return sorted(i['PK']['S'] for page in pages for i in page['Items'])

        # Items: 400 KB (AWS: 409,600 bytes of names and values)
        found['PutItem 410 KB'] = attempt(lambda: ddb.put_item(**put('big', 410 * 1024)['Put']))
        found['PutItem 399 KB'] = attempt(lambda: ddb.put_item(**put('fits', 399 * 1024)['Put']))
        found['PutItem at 400 KB exactly'] = attempt(lambda: ddb.put_item(  # PK, 'fits2', 'pad' and the padding
            **put('fits2', 400 * 1024 - len('PK') - len('fits2') - len('pad'))['Put']))
        ddb.delete_item(TableName='limits', Key={'PK': {'S': 'fits2'}})
        found['UpdateItem past 400 KB'] = attempt(lambda: ddb.update_item(
            TableName='limits', Key={'PK': {'S': 'fits'}}, UpdateExpression='SET more = :m',
            ExpressionAttributeValues={':m': {'S': 'm' * (20 * 1024)}}))
        found['TransactWriteItems Put 410 KB'] = attempt(lambda: ddb.transact_write_items(
            TransactItems=[put('t-small', 10), put('t-big', 410 * 1024)]))
        # Transactions: 100 actions, 4 MB
        found['101 actions'] = attempt(lambda: ddb.transact_write_items(
            TransactItems=[put(f'n{i}', 1) for i in range(101)]))
        found['100 actions'] = attempt(lambda: ddb.transact_write_items(
            TransactItems=[put(f'n{i}', 1) for i in range(100)]))
        found['11 x 390 KB'] = attempt(lambda: ddb.transact_write_items(
            TransactItems=[put(f'm{i}', 390 * 1024) for i in range(11)]))
        found['after the refusals'] = [pk for pk in stored() if not pk.startswith('n')]
        found['10 x 390 KB'] = attempt(lambda: ddb.transact_write_items(
            TransactItems=[put(f'm{i}', 390 * 1024) for i in range(10)]))
        found['stored at the end'] = len(stored())

        # Step Functions: over 256 KiB of state data fails the execution; States.ALL neither retries nor catches it
        before = len(calls)
        big_task = machine('data-limit-task', {
            'Call': {'Type': 'Task', 'Resource': 'arn:aws:states:::lambda:invoke', 'ResultPath': '$.r', 'End': True,
                     'Parameters': {'FunctionName': fn_arn, 'Payload': {'mode': 'big'}},
                     'Retry': [{'ErrorEquals': ['States.ALL'], 'IntervalSeconds': 1, 'MaxAttempts': 2}],
                     'Catch': [{'ErrorEquals': ['States.ALL'], 'ResultPath': '$.failure', 'Next': 'Caught'}]},
            'Caught': {'Type': 'Succeed'}}, 'Call')
        ran = run(big_task, {})
        described = sfn.describe_execution(executionArn=ran['arn'])
        found['task result over 256 KiB'] = {'status': ran['status'], 'error': described.get('error'),
                                             'calls': len(calls) - before}
        big_pass = machine('data-limit-pass', {
            'Grow': {'Type': 'Pass', 'Parameters': {'blob.$': '$.blob'}, 'Next': 'Double',
                     },
            'Double': {'Type': 'Pass', 'Parameters': {'a.$': '$.blob', 'b.$': '$.blob'}, 'End': True}}, 'Grow')
        ran = run(big_pass, {'blob': 'x' * (200 * 1024)})
        found['state output over 256 KiB'] = {'status': ran['status'],
                                              'error': sfn.describe_execution(executionArn=ran['arn']).get('error')}
        named = machine('data-limit-named', {
            'Call': {'Type': 'Task', 'Resource': 'arn:aws:states:::lambda:invoke', 'ResultPath': '$.r', 'End': True,
                     'Parameters': {'FunctionName': fn_arn, 'Payload': {'mode': 'big'}},
                     'Catch': [{'ErrorEquals': ['States.DataLimitExceeded'], 'ResultPath': '$.failure',
                                'Next': 'Caught'}]},
            'Caught': {'Type': 'Succeed'}}, 'Call')
        ran = run(named, {})
        found['caught by name'] = {'status': ran['status'], 'error': (ran['output'] or {}).get('failure', {}).get('Error')}
        other = run(machine('other-errors-still-caught', {
            'Call': {'Type': 'Task', 'Resource': 'arn:aws:states:::lambda:invoke', 'End': True,
                     'Parameters': {'FunctionName': fn_arn, 'Payload': {'mode': 'raise'}},
                     'Catch': [{'ErrorEquals': ['States.ALL'], 'ResultPath': '$.failure', 'Next': 'Caught'}]},
            'Caught': {'Type': 'Succeed'}}, 'Call'), {})
        found['other errors, States.ALL'] = {'status': other['status'], 'error': other['output']['failure']['Error']}
        runtime = run(machine('runtime-error', {
            'Pick': {'Type': 'Task', 'Resource': 'arn:aws:states:::lambda:invoke', 'End': True,
                     'Parameters': {'FunctionName': fn_arn, 'Payload': {'x.$': '$.missing'}},
                     'Catch': [{'ErrorEquals': ['States.ALL'], 'ResultPath': '$.failure', 'Next': 'Caught'}]},
            'Caught': {'Type': 'Succeed'}}, 'Pick'), {})
        found['States.Runtime, States.ALL'] = {
            'status': runtime['status'], 'error': sfn.describe_execution(executionArn=runtime['arn']).get('error')}
        return found

    def index_lag_scenario() -> dict[str, Any]:
        ddb.create_table(
            TableName='lagged', BillingMode='PAY_PER_REQUEST',
            AttributeDefinitions=[{'AttributeName': n, 'AttributeType': 'S'} for n in ('PK', 'status')],
            KeySchema=[{'AttributeName': 'PK', 'KeyType': 'HASH'}],
            GlobalSecondaryIndexes=[{'IndexName': 'ByStatus', 'KeySchema': [{'AttributeName': 'status', 'KeyType': 'HASH'}],
                                     'Projection': {'ProjectionType': 'ALL'}}])

        def by_status(status: str) -> list[str]:
            found = ddb.query(TableName='lagged', IndexName='ByStatus', KeyConditionExpression='#s = :s',
                              ExpressionAttributeNames={'#s': 'status'}, ExpressionAttributeValues={':s': {'S': status}})
            return sorted(i['PK']['S'] for i in found['Items'])

        def index_scan() -> list[str]:
            items = ddb.scan(TableName='lagged', IndexName='ByStatus')['Items']
            return sorted(f"{i['PK']['S']}:{i['status']['S']}" for i in items)

        def table_item(pk: str) -> Any:
            item = ddb.get_item(TableName='lagged', Key={'PK': {'S': pk}}, ConsistentRead=True).get('Item')
            return item and item['status']['S']

        lag = 0.5
        found: dict[str, Any] = {'lag': lag}
        ddb.put_item(TableName='lagged', Item={'PK': {'S': 'old'}, 'status': {'S': 'queued'}})
        ddb.put_item(TableName='lagged', Item={'PK': {'S': 'gone'}, 'status': {'S': 'queued'}})
        patches.set_index_lag(lag)
        try:
            ddb.put_item(TableName='lagged', Item={'PK': {'S': 'new'}, 'status': {'S': 'queued'}})
            ddb.update_item(TableName='lagged', Key={'PK': {'S': 'old'}}, UpdateExpression='SET #s = :s',
                            ExpressionAttributeNames={'#s': 'status'}, ExpressionAttributeValues={':s': {'S': 'running'}})
            ddb.delete_item(TableName='lagged', Key={'PK': {'S': 'gone'}})
            found['right after'] = {'queued': by_status('queued'), 'running': by_status('running'), 'scan': index_scan(),
                                    'table': [table_item('new'), table_item('old'), table_item('gone')]}
            time.sleep(lag + 0.2)  # a client that waits as long as the index lags
            found['after the lag'] = {'queued': by_status('queued'), 'running': by_status('running'),
                                      'scan': index_scan()}
        finally:
            patches.set_index_lag(0)
        ddb.put_item(TableName='lagged', Item={'PK': {'S': 'later'}, 'status': {'S': 'queued'}})
        found['no lag'] = by_status('queued')
        return found

    record('dispatch', dispatch_scenario)
    record('dynamodb', dynamodb_scenario)
    record('scaling', scaling_scenario)
    record('send_task_failure', send_task_failure_scenario)
    record('unnamed', unnamed_scenario)
    record('timeout_seconds_path', timeout_path_scenario)
    record('jitter', jitter_scenario)
    record('transactions', transactions_scenario)
    record('asl_cache', asl_cache_scenario)
    record('limits', limits_scenario)
    record('index_lag', index_lag_scenario)
    def routing_scenario() -> dict[str, Any]:
        from moto import backends
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        app = DomainDispatcherApplication(create_backend_app)
        hosts = ['dynamodb.us-east-1.amazonaws.com', 's3.us-east-1.amazonaws.com', 'states.us-east-1.amazonaws.com',
                 'sts.amazonaws.com', 'moto_api', None, 'nothing.example', 'dynamodb']
        moto_answers = {str(h): DomainDispatcherApplication.get_backend_for_host.__wrapped__(app, h) for h in hosts}
        listed = {'n': 0}
        original_listing = backends.list_of_moto_modules

        def counting_listing() -> Any:
            listed['n'] += 1
            return original_listing()

        backends.list_of_moto_modules = counting_listing
        try:
            rounds = {}
            for name in ('first round', 'second round'):
                listed['n'] = 0
                answers = {str(h): app.get_backend_for_host(h) for h in hosts}
                rounds[name] = listed['n']
        finally:
            backends.list_of_moto_modules = original_listing
        return {'answers': answers, 'patched == moto': answers == moto_answers, 'package listings': rounds}

    record('routing', routing_scenario)

    def jsonpath_scenario() -> dict[str, Any]:
        import jsonpath_ng.ext.parser as ext_parser
        from moto.stepfunctions.parser.asl.component.common.path import result_path
        from moto.stepfunctions.parser.asl.utils import json_path

        data = {'probe': {'id': 'j1', 'outputs': [{'url': 'u0'}, {'url': 'u1'}]}, 'probe_n': 3}
        # Paths no other scenario's ASL uses, so the first round is the first parse of each.
        paths = ['$.probe.id', '$.probe.outputs[1].url', '$.probe.outputs[*].url', '$.probe_n', '$.probe',
                 '$.probe.outputs[0]']
        uncached = {p: [m.value for m in json_path.parse.__wrapped__(p).find(data)] for p in paths}
        built = {'n': 0}
        original_parser = ext_parser.ExtendedJsonPathParser

        class CountingParser(original_parser):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                built['n'] += 1
                super().__init__(*args, **kwargs)

        ext_parser.ExtendedJsonPathParser = CountingParser
        try:
            rounds, answers = {}, {}
            for name in ('first round', 'second round'):
                built['n'] = 0
                answers = {p: json_path.extract_json(p, data) for p in paths}
                rounds[name] = built['n']
        finally:
            ext_parser.ExtendedJsonPathParser = original_parser
        found = {p: [m.value for m in json_path.parse(p).find(data)] for p in paths}
        return {'parsers built': rounds, 'same matches as uncached': found == uncached, 'answers': answers,
                'result_path cached': hasattr(result_path.parse, 'cache_info')}

    record('jsonpath', jsonpath_scenario)

    def keep_alive_scenario() -> dict[str, Any]:
        import botocore.config

        wsgi_server = server._server
        accepted = {'n': 0}
        original_get_request = wsgi_server.get_request

        sockets: list[Any] = []

        def counting_get_request() -> Any:
            accepted['n'] += 1
            connection = original_get_request()
            sockets.append(connection[0])
            return connection

        wsgi_server.get_request = counting_get_request
        try:
            # One connection in the pool, so every call of a client goes over the same one if it stays open.
            one = botocore.config.Config(max_pool_connections=1)
            client = boto3.client('dynamodb', config=one)
            accepted['n'] = 0
            client.create_table(TableName='keepalive', BillingMode='PAY_PER_REQUEST',
                                KeySchema=[{'AttributeName': 'PK', 'KeyType': 'HASH'}],
                                AttributeDefinitions=[{'AttributeName': 'PK', 'AttributeType': 'S'}])
            for n in range(5):  # requests with bodies, each followed at once by the next on the connection
                client.put_item(TableName='keepalive', Item={'PK': {'S': f'k{n}'}, 'v': {'S': 'x' * (n * 1000)}})
            read = [len(client.get_item(TableName='keepalive', Key={'PK': {'S': f'k{n}'}})['Item']['v']['S'])
                    for n in range(5)]
            try:
                client.describe_table(TableName='no-such-table')
                error = None
            except client.exceptions.ResourceNotFoundException:
                error = 'ResourceNotFoundException'
            client.list_tables()
            import socket

            # Nagle's algorithm off: on an open connection it held each response body for the client's delayed ACK
            no_delay = bool(sockets[-1].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            dynamodb_calls = {'accepted': accepted['n'], 'lengths read back': read, 'error then next call': error,
                              'no delay': no_delay}
            s3 = boto3.client('s3', config=one)
            accepted['n'] = 0
            s3.create_bucket(Bucket='keepalive')
            s3.put_object(Bucket='keepalive', Key='a', Body=b'abc')  # Expect: 100-continue: served as before
            body = s3.get_object(Bucket='keepalive', Key='a')['Body'].read()
            return {'dynamodb': dynamodb_calls,
                    's3': {'accepted': accepted['n'], 'body': body.decode()}}
        finally:
            wsgi_server.get_request = original_get_request

    record('keep_alive', keep_alive_scenario)

    def serialization_scenario() -> dict[str, Any]:
        from collections.abc import Callable

        from moto.core import responses, serialize

        dynamodb, s3 = boto3.client('dynamodb'), boto3.client('s3')
        bodies: list[bytes] = []

        def keep_body(response_dict: dict[str, Any], **_: Any) -> None:
            bodies.append(response_dict['body'])

        for client in (dynamodb, s3):
            client.meta.events.register('before-parse', keep_body)
        dynamodb.create_table(TableName='serialize', BillingMode='PAY_PER_REQUEST',
                              KeySchema=[{'AttributeName': 'PK', 'KeyType': 'HASH'}],
                              AttributeDefinitions=[{'AttributeName': 'PK', 'AttributeType': 'S'}])
        # Every AttributeValue member, nested in maps and lists.
        item = {'PK': {'S': 'job#1'}, 'n': {'N': '5'}, 'b': {'B': b'\x00\xff'}, 'yes': {'BOOL': False},
                'none': {'NULL': True}, 'ss': {'SS': ['a', 'b']}, 'ns': {'NS': ['1', '2.5']}, 'bs': {'BS': [b'x']},
                'm': {'M': {'l': {'L': [{'N': '1'}, {'S': 'two'}, {'M': {}}]}, 'e': {'S': ''}}}}
        dynamodb.put_item(TableName='serialize', Item=item)
        s3.create_bucket(Bucket='serialize')
        s3.put_object(Bucket='serialize', Key='a/b.mp4', Body=b'abc', Metadata={'job': 'j1'})
        key = {'PK': {'S': 'job#1'}}
        calls: list[Callable[[], Any]] = [
            lambda: dynamodb.get_item(TableName='serialize', Key=key, ReturnConsumedCapacity='TOTAL'),
            lambda: dynamodb.query(TableName='serialize', KeyConditionExpression='PK = :k',
                                   ExpressionAttributeValues={':k': {'S': 'job#1'}}),
            lambda: dynamodb.update_item(TableName='serialize', Key=key, UpdateExpression='SET n = :n',
                                         ExpressionAttributeValues={':n': {'N': '5'}}, ReturnValues='ALL_NEW'),
            lambda: dynamodb.batch_get_item(RequestItems={'serialize': {'Keys': [key]}}),
            lambda: dynamodb.describe_table(TableName='serialize'),
            lambda: dynamodb.list_tables(),
            lambda: s3.list_objects_v2(Bucket='serialize'),
            lambda: s3.get_object_tagging(Bucket='serialize', Key='a/b.mp4'),
        ]

        def cancelled() -> Any:  # an error answer with the old item in its cancellation reason
            try:
                dynamodb.transact_write_items(TransactItems=[{'ConditionCheck': {
                    'TableName': 'serialize', 'Key': key, 'ConditionExpression': 'attribute_not_exists(PK)',
                    'ReturnValuesOnConditionCheckFailure': 'ALL_OLD'}}])
            except dynamodb.exceptions.TransactionCanceledException as error:
                return error.response['CancellationReasons']
            return None

        calls.append(cancelled)
        searched = {'n': 0}
        original_has_alias = serialize.NoAlias.has_alias

        def counting_has_alias(self: Any, key: str) -> bool:
            searched['n'] += 1
            return original_has_alias(self, key)

        def answers() -> tuple[list[bytes], list[int]]:
            del bodies[:]
            searches = []
            for call in calls:
                searched['n'] = 0
                call()
                searches.append(searched['n'])
            return list(bodies), searches

        serialize.NoAlias.has_alias = counting_has_alias  # type: ignore[method-assign]
        try:
            answers()  # the first answers fill the alias cache
            patched, patched_searches = answers()
            replaced = [(serialize.XFormedAttributePicker, 'get_possible_keys'),
                        (serialize.ResponseSerializer, '_serialize_structure_member'),
                        (responses, 'method_names_from_class')]
            installed = [getattr(owner, name) for owner, name in replaced]
            for (owner, name), patch in zip(replaced, installed, strict=True):
                setattr(owner, name, patch.__wrapped__)
            try:
                unpatched, unpatched_searches = answers()
            finally:
                for (owner, name), patch in zip(replaced, installed, strict=True):
                    setattr(owner, name, patch)
        finally:
            serialize.NoAlias.has_alias = original_has_alias  # type: ignore[method-assign]
        return {'answers': len(patched), 'same bytes as moto': patched == unpatched,
                'differing': [n for n, (a, b) in enumerate(zip(patched, unpatched, strict=True)) if a != b],
                'GetItem alias searches': {'patched': patched_searches[0], 'moto': unpatched_searches[0]},
                'a body': json.loads(patched[0])}

    record('serialization', serialization_scenario)

    def update_expression_scenario() -> dict[str, Any]:
        from moto.dynamodb.parsing import expressions
        from moto.dynamodb.parsing.expressions import UpdateExpressionParser

        ddb.create_table(TableName='counters', BillingMode='PAY_PER_REQUEST',
                         KeySchema=[{'AttributeName': 'PK', 'KeyType': 'HASH'}],
                         AttributeDefinitions=[{'AttributeName': 'PK', 'AttributeType': 'S'}])
        tokenised = {'n': 0}
        original_make_list = expressions.ExpressionTokenizer.make_list

        def counting_make_list(expression: str) -> Any:
            tokenised['n'] += 1
            return original_make_list(expression)

        # A text no other scenario uses, so the first round is its first parse.
        expression = 'SET hits = if_not_exists(hits, :zero) + :one, seen = list_append(if_not_exists(seen, :e), :who)'

        def bump(who: str) -> Any:
            return ddb.update_item(
                TableName='counters', Key={'PK': {'S': 'c'}}, UpdateExpression=expression, ReturnValues='ALL_NEW',
                ExpressionAttributeValues={':zero': {'N': '0'}, ':one': {'N': '1'}, ':e': {'L': []},
                                           ':who': {'L': [{'S': who}]}})['Attributes']

        def refused() -> str:
            try:
                ddb.update_item(TableName='counters', Key={'PK': {'S': 'c'}}, UpdateExpression='SET = :one',
                                ExpressionAttributeValues={':one': {'N': '1'}})
            except ddb.exceptions.ClientError as error:
                return error.response['Error']['Code']
            return 'accepted'

        expressions.ExpressionTokenizer.make_list = staticmethod(counting_make_list)  # type: ignore[method-assign]
        try:
            rounds, answers = {}, []
            for name, who in (('first call', 'a'), ('second call', 'b'), ('third call', 'c')):
                tokenised['n'] = 0
                answers.append(bump(who))
                rounds[name] = tokenised['n']
            tokenised['n'] = 0
            errors = [refused(), refused()]
            malformed = tokenised['n']
            transact_before = tokenised['n']
            ddb.transact_write_items(TransactItems=[{'Update': {
                'TableName': 'counters', 'Key': {'PK': {'S': 'c'}}, 'UpdateExpression': expression,
                'ExpressionAttributeValues': {':zero': {'N': '0'}, ':one': {'N': '1'}, ':e': {'L': []},
                                              ':who': {'L': [{'S': 'd'}]}}}}])
            transact = tokenised['n'] - transact_before
        finally:
            expressions.ExpressionTokenizer.make_list = original_make_list  # type: ignore[method-assign]
        final = ddb.get_item(TableName='counters', Key={'PK': {'S': 'c'}})['Item']
        return {'tokenised': rounds, 'malformed tokenised': malformed, 'errors': errors,
                'transaction tokenised': transact,
                'hits': [a['hits']['N'] for a in answers], 'final': {'hits': final['hits']['N'],
                                                                    'seen': [v['S'] for v in final['seen']['L']]},
                'cached': hasattr(UpdateExpressionParser.make, 'cache_info')}

    record('update_expressions', update_expression_scenario)
    record('iam', iam_scenario)  # last: it turns moto's access control on for a while
    server.stop()
    print(json.dumps(out, default=str))


if __name__ == '__main__':
    _main()
