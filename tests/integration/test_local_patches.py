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
                                              'transact_item_rollback', 'asl_parse_cache', 'terminal_errors',
                                              'transaction_size', 'index_lag'])
    assert signatures['ErrorEqualsDecl'] == {'_eval_body': ['self', 'env'], 'states_all': True}
    assert signatures['Table'] == {'put_item': ['self', 'item_attrs'], 'delete_item': ['self', 'hash_key', 'range_key'],
                                   'all_items': ['self'], 'has_idx_items': ['self', 'index_name'],
                                   'query index_name': True, 'scan index_name': True}
    assert signatures['DynamoDBBackend.update_item'][:3] == ['self', 'table_name', 'key']


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


# --- (f) States.ALL cannot catch States.DataLimitExceeded ---------------------------------------------


def test_state_data_over_256_kib_fails_the_execution_even_past_a_states_all_catch(observed):
    result = scenario(observed, 'data_limit')
    assert result['small_ok'] == 'SUCCEEDED'
    assert result['all']['status'] == 'FAILED'  # moto's own check; the patch keeps States.ALL from catching it
    assert result['all_failure']['error'] == 'States.DataLimitExceeded'
    assert result['named']['status'] == 'SUCCEEDED'  # an ErrorEquals that names it still catches it


# --- DynamoDB's limits: moto's own (item size, 100 actions) and the patched 4 MB per transaction ----------


def test_dynamodb_refuses_what_dynamodb_refuses(observed):
    found = scenario(observed, 'dynamodb_limits')
    assert found['put 390 KB'] == 'ok' and found['transaction of 100 items'] == 'ok'
    assert found['transaction of 3.9 MB'] == 'ok'
    assert found['put 410 KB'] == 'ValidationException: Item size has exceeded the maximum allowed size'
    assert found['update to 410 KB'] == 'ValidationException: Item size to update has exceeded the maximum allowed size'
    assert found['transaction with a 410 KB item'].startswith(('ValidationException', 'TransactionCanceledException'))
    assert found['transaction of 101 items'].startswith('ValidationException: ') and \
        'Member must have length less than or equal to 100' in found['transaction of 101 items']
    assert found['transaction of 4.3 MB'] == 'ValidationException: Transaction request cannot be larger than 4 MB'
    assert found['nothing of the refused transactions written'] == []


# --- (h) Global secondary indexes lag behind writes -------------------------------------------------------


def test_index_reads_lag_behind_writes_while_the_table_does_not(observed):
    result = scenario(observed, 'index_lag')
    assert result['right_after'] == {'query': [], 'scan': [], 'get': True}  # the table has it, the index not yet
    assert result['settled'] == {'query': ['job-1'], 'scan': ['job-1']}
    assert result['moved'] == {'ann': ['job-1'], 'bob': []}  # the index still shows the item as it was
    assert result['after_delete'] == {'ann': [], 'bob': []}
    assert result['in_transaction'] == []  # transactions write through the same path
    assert result['lag_off'] == ['job-3']  # lag 0: moto as shipped


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

        from moto.dynamodb.models import DynamoDBBackend
        from moto.dynamodb.models.table import Table
        from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import ErrorEqualsDecl

        env_source = inspect.getsource(Environment)
        return {
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
            'ErrorEqualsDecl': {'_eval_body': params(ErrorEqualsDecl._eval_body),
                                'states_all': hasattr(ErrorEqualsDecl, '_STATE_ALL_ERROR')},
            'Table': {'put_item': params(Table.put_item)[:2], 'delete_item': params(Table.delete_item),
                      'all_items': params(Table.all_items), 'has_idx_items': params(Table.has_idx_items),
                      'query index_name': 'index_name' in params(Table.query),
                      'scan index_name': 'index_name' in params(Table.scan)},
            'DynamoDBBackend.update_item': params(DynamoDBBackend.update_item),
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
        if mode == 'big':
            return {'blob': 'x' * event['bytes']}
        if 'token' in event:
            tokens.append(event['token'])
            return {}
        return {'echo': event, 'function': name}

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
        rounds = 8  # without the lock about half the rounds go wrong (research §2; 6 of 12 here)

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
        sys.setswitchinterval(1e-6)  # the interleaving that lost updates without the lock (research §2)
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
        def during(_: str) -> None:
            deadline = time.monotonic() + 10
            count = len(tokens)
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

    def data_limit_scenario() -> dict[str, Any]:
        # A task result over 256 KiB: moto detects it (States.DataLimitExceeded); AWS's States.ALL cannot catch it.
        caught_by_all = machine('data-limit-all', {
            'Call': {'Type': 'Task', 'Resource': 'arn:aws:states:::lambda:invoke', 'ResultPath': '$.r',
                     'Parameters': {'FunctionName': fn_arn, 'Payload': {'mode': 'big', 'bytes.$': '$.bytes'}},
                     'Catch': [{'ErrorEquals': ['States.ALL'], 'ResultPath': '$.failure', 'Next': 'Caught'}],
                     'End': True},
            'Caught': {'Type': 'Succeed'}}, 'Call')
        caught_by_name = machine('data-limit-named', {
            'Call': {'Type': 'Task', 'Resource': 'arn:aws:states:::lambda:invoke', 'ResultPath': '$.r',
                     'Parameters': {'FunctionName': fn_arn, 'Payload': {'mode': 'big', 'bytes.$': '$.bytes'}},
                     'Catch': [{'ErrorEquals': ['States.DataLimitExceeded'], 'ResultPath': '$.failure',
                                'Next': 'Caught'}], 'End': True},
            'Caught': {'Type': 'Succeed'}}, 'Call')
        small = run(caught_by_all, {'bytes': 1000})
        failed = run(caught_by_all, {'bytes': 300_000})
        history = sfn.get_execution_history(executionArn=failed['arn'], reverseOrder=True, maxResults=5)['events']
        failure = next(e['executionFailedEventDetails'] for e in history if 'executionFailedEventDetails' in e)
        return {'all': failed, 'all_failure': failure, 'named': run(caught_by_name, {'bytes': 300_000}),
                'small_ok': small['status']}

    def dynamodb_limits_scenario() -> dict[str, Any]:
        ddb.create_table(TableName='limits', BillingMode='PAY_PER_REQUEST',
                         AttributeDefinitions=[{'AttributeName': 'PK', 'AttributeType': 'S'}],
                         KeySchema=[{'AttributeName': 'PK', 'KeyType': 'HASH'}])

        def attempt(call: Any) -> str:
            try:
                call()
                return 'ok'
            except ddb.exceptions.ClientError as exc:
                return f"{exc.response['Error']['Code']}: {exc.response['Error']['Message']}"

        def put(pk: str, size: int) -> dict[str, Any]:
            return {'Put': {'TableName': 'limits', 'Item': {'PK': {'S': pk}, 'blob': {'B': b'x' * size}}}}

        found = {
            'put 390 KB': attempt(lambda: ddb.put_item(TableName='limits', Item=put('a', 390_000)['Put']['Item'])),
            'put 410 KB': attempt(lambda: ddb.put_item(TableName='limits', Item=put('b', 410_000)['Put']['Item'])),
            'update to 410 KB': attempt(lambda: ddb.update_item(
                TableName='limits', Key={'PK': {'S': 'a'}}, UpdateExpression='SET more = :m',
                ExpressionAttributeValues={':m': {'B': b'y' * 20_000}})),
            'transaction with a 410 KB item': attempt(lambda: ddb.transact_write_items(TransactItems=[put('c', 410_000)])),
            'transaction of 100 items': attempt(lambda: ddb.transact_write_items(
                TransactItems=[put(f'n{i}', 10) for i in range(100)])),
            'transaction of 101 items': attempt(lambda: ddb.transact_write_items(
                TransactItems=[put(f'm{i}', 10) for i in range(101)])),
            'transaction of 3.9 MB': attempt(lambda: ddb.transact_write_items(
                TransactItems=[put(f's{i}', 390_000) for i in range(10)])),
            'transaction of 4.3 MB': attempt(lambda: ddb.transact_write_items(
                TransactItems=[put(f't{i}', 390_000) for i in range(11)])),
        }
        found['nothing of the refused transactions written'] = [
            pk for pk in ('c', 'm0', 't0') if 'Item' in ddb.get_item(TableName='limits', Key={'PK': {'S': pk}})]
        return found

    def index_lag_scenario() -> dict[str, Any]:
        ddb.create_table(TableName='lagged', BillingMode='PAY_PER_REQUEST',
                         AttributeDefinitions=[{'AttributeName': a, 'AttributeType': 'S'} for a in ('PK', 'owner')],
                         KeySchema=[{'AttributeName': 'PK', 'KeyType': 'HASH'}],
                         GlobalSecondaryIndexes=[{'IndexName': 'ByOwner', 'Projection': {'ProjectionType': 'ALL'},
                                                  'KeySchema': [{'AttributeName': 'owner', 'KeyType': 'HASH'}]}])

        def listed(owner: str) -> list[str]:
            items = ddb.query(TableName='lagged', IndexName='ByOwner', KeyConditionExpression='#o = :o',
                              ExpressionAttributeNames={'#o': 'owner'},
                              ExpressionAttributeValues={':o': {'S': owner}})['Items']
            return sorted(i['PK']['S'] for i in items)

        def scanned() -> list[str]:
            return sorted(i['PK']['S'] for i in ddb.scan(TableName='lagged', IndexName='ByOwner')['Items'])

        lag = 0.6
        patches.set_index_lag(lag)
        try:
            ddb.put_item(TableName='lagged', Item={'PK': {'S': 'job-1'}, 'owner': {'S': 'ann'}})
            right_after = {'query': listed('ann'), 'scan': scanned(),
                           'get': 'Item' in ddb.get_item(TableName='lagged', Key={'PK': {'S': 'job-1'}})}
            time.sleep(lag + 0.3)
            settled = {'query': listed('ann'), 'scan': scanned()}
            ddb.update_item(TableName='lagged', Key={'PK': {'S': 'job-1'}}, UpdateExpression='SET #o = :b',
                            ExpressionAttributeNames={'#o': 'owner'}, ExpressionAttributeValues={':b': {'S': 'bob'}})
            moved = {'ann': listed('ann'), 'bob': listed('bob')}
            ddb.delete_item(TableName='lagged', Key={'PK': {'S': 'job-1'}})
            time.sleep(lag + 0.3)
            after_delete = {'ann': listed('ann'), 'bob': listed('bob')}
            ddb.transact_write_items(TransactItems=[
                {'Put': {'TableName': 'lagged', 'Item': {'PK': {'S': 'job-2'}, 'owner': {'S': 'cy'}}}}])
            in_transaction = listed('cy')
        finally:
            patches.set_index_lag(0)
        ddb.put_item(TableName='lagged', Item={'PK': {'S': 'job-3'}, 'owner': {'S': 'dee'}})
        return {'right_after': right_after, 'settled': settled, 'moved': moved, 'after_delete': after_delete,
                'in_transaction': in_transaction, 'lag_off': listed('dee')}

    record('dispatch', dispatch_scenario)
    record('dynamodb', dynamodb_scenario)
    record('scaling', scaling_scenario)
    record('send_task_failure', send_task_failure_scenario)
    record('unnamed', unnamed_scenario)
    record('timeout_seconds_path', timeout_path_scenario)
    record('jitter', jitter_scenario)
    record('data_limit', data_limit_scenario)
    record('dynamodb_limits', dynamodb_limits_scenario)
    record('index_lag', index_lag_scenario)
    server.stop()
    print(json.dumps(out, default=str))


if __name__ == '__main__':
    _main()
