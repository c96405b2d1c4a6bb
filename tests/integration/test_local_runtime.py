"""The local Lambda service (vidgen_local.runtime): execution environments as worker processes, one event
at a time each, created on demand up to a function's concurrency, reused while warm, retired on a
configuration change, and Lambda's limits applied (timeout, payload sizes, a dying runtime).

No cloud is needed: the runner is driven directly with stub handlers (runtime_stubs.py), each imported by
the environments in their own processes."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from pathlib import Path

import pytest
from vidgen_local.runtime import (
    REQUEST_LIMIT_BYTES,
    RESPONSE_LIMIT_BYTES,
    FunctionConfig,
    FunctionError,
    FunctionRunner,
    IntegrationTimeout,
    RequestTooLargeError,
)
from vidgen_local.template import FunctionSpec

HERE = Path(__file__).resolve().parent


def make_runner(handler: str, *, concurrency: int = 2, timeout: int = 30, env: dict[str, str] | None = None,
                hooks: tuple[str, ...] = ()) -> FunctionRunner:
    spec = FunctionSpec(logical_id='F', name='local-F', arn='arn:aws:lambda:us-east-1:123456789012:function:local-F',
                        code_uri='.', handler='app.handler', runtime='python3.13', timeout=timeout, memory_size=256,
                        environment={})
    config = FunctionConfig(spec=spec, code_dir=str(HERE), handler=f'runtime_stubs:{handler}',
                            environment=dict(env or {}), concurrency=concurrency, init_hooks=hooks)
    return FunctionRunner({'F': config}, lambda c: {'PATH': os.environ.get('PATH', ''), **c.environment,
                                                   'AWS_ACCESS_KEY_ID': 'key-of-F', 'AWS_LAMBDA_FUNCTION_NAME': c.spec.name})


@pytest.fixture
def runners():
    made: list[FunctionRunner] = []

    def make(*args, **kwargs) -> FunctionRunner:
        made.append(make_runner(*args, **kwargs))
        return made[-1]
    yield make
    for runner in made:
        runner.drain(10)
        runner.close()


def test_an_environment_is_its_own_process_with_the_functions_environment_and_is_reused(runners):
    runner = runners('whoami', env={'STUB_SETTING': 'one'})
    first, second = runner.call('F', {}), runner.call('F', {})
    assert first['pid'] != os.getpid() and first['pid'] == second['pid'] and second['served'] == 2
    assert first['env'] == 'one' and first['key'] == 'key-of-F' and first['function'] == 'local-F'
    assert first['cwd'] == str(HERE) and 0 < first['remaining_ms'] <= 30_000
    stats = runner.stats()['F']
    assert stats['inits'] == 1 and stats['cold_starts'] == 1 and stats['invocations'] == 2


def test_events_at_the_same_time_get_environments_of_their_own_and_run_in_parallel(runners, tmp_path):
    runner = runners('rendezvous', concurrency=3)
    event = {'folder': str(tmp_path), 'expected': 3, 'wait_seconds': 60}
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: runner.call('F', event), range(3)))
    assert all(answer['met'] for answer in answers)  # all three were inside a handler at once
    assert len({answer['pid'] for answer in answers}) == 3
    assert runner.stats()['F']['environments'] == 3


def test_no_more_environments_than_the_concurrency_and_events_beyond_it_wait(runners, tmp_path):
    runner = runners('rendezvous', concurrency=2)
    event = {'folder': str(tmp_path), 'expected': 3, 'wait_seconds': 2}
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: runner.call('F', event), range(3)))
    # Two environments: two events met at most two arrivals and gave up; the third ran after one of them.
    assert len({answer['pid'] for answer in answers}) == 2
    assert runner.stats()['F']['environments'] == 2 and runner.stats()['F']['inits'] == 2


def test_a_handler_past_its_timeout_is_stopped_and_the_next_event_gets_a_new_environment(runners):
    runner = runners('sleep', timeout=1)
    with pytest.raises(FunctionError) as failed:
        runner.call('F', {'seconds': 30})
    assert failed.value.error_type == 'Sandbox.Timedout'
    assert 'Task timed out after 1.00 seconds' in str(failed.value)
    assert runner.stats()['F']['timeouts'] == 1 and runner.stats()['F']['environments'] == 0
    assert runner.call('F', {'seconds': 0}) == {'slept': 0}
    assert runner.stats()['F']['inits'] == 2


def test_a_caller_that_gives_up_gets_integration_timeout_while_the_event_runs_to_its_end(runners):
    runner = runners('sleep', timeout=30)
    with pytest.raises(IntegrationTimeout):
        runner.call('F', {'seconds': 1.5}, give_up_after=0.2)
    assert runner.drain(30)  # the event finished in its environment, which is warm again
    assert runner.stats()['F']['warm'] == 1 and runner.stats()['F']['timeouts'] == 0


def test_a_runtime_that_exits_fails_the_event_with_runtime_exit_error(runners):
    runner = runners('exit_now')
    with pytest.raises(FunctionError) as failed:
        runner.call('F', {})
    assert failed.value.error_type == 'Runtime.ExitError' and 'exit status 3' in str(failed.value)
    assert runner.stats()['F']['exits'] == 1 and runner.stats()['F']['environments'] == 0


def test_handler_errors_keep_their_type_and_the_environment(runners):
    runner = runners('fail')
    for _ in range(2):
        with pytest.raises(FunctionError) as failed:
            runner.call('F', {})
        assert failed.value.error_type == 'ValueError' and str(failed.value) == 'a handler error'
    assert runner.stats()['F']['inits'] == 1
    with pytest.raises(FunctionError) as marshal:
        runners('unserialisable').call('F', {})
    assert marshal.value.error_type == 'Runtime.MarshalError'


def test_a_failing_init_is_an_import_module_error(runners):
    runner = runners('whoami', hooks=('runtime_stubs:broken_init',))
    with pytest.raises(FunctionError) as failed:
        runner.call('F', {})
    assert failed.value.error_type == 'Runtime.ImportModuleError' and 'init hook failed' in str(failed.value)


def test_payloads_over_lambdas_synchronous_limits_are_refused(runners):
    runner = runners('echo_size')
    with pytest.raises(RequestTooLargeError):
        runner.call('F', {'padding': 'x' * REQUEST_LIMIT_BYTES, 'bytes': 1})
    assert runner.stats()['F']['invocations'] == 0  # refused before any environment saw it
    assert len(runner.call('F', {'bytes': RESPONSE_LIMIT_BYTES - 2})) == RESPONSE_LIMIT_BYTES - 2  # 2 quotes
    with pytest.raises(FunctionError) as failed:
        runner.call('F', {'bytes': RESPONSE_LIMIT_BYTES - 1})
    assert failed.value.error_type == 'Function.ResponseSizeTooLarge'


def test_a_configuration_change_retires_warm_environments(runners):
    runner = runners('whoami', env={'STUB_SETTING': 'old'})
    before = runner.call('F', {})
    runner.reconfigure('F', environment={'STUB_SETTING': 'new'})
    after = runner.call('F', {})
    assert before['env'] == 'old' and after['env'] == 'new' and after['pid'] != before['pid']


def test_close_ends_every_environment(tmp_path):
    runner = make_runner('whoami', concurrency=2)
    runner.call('F', {})
    runner.close()
    assert not [p for p in multiprocessing.active_children() if p.name == 'lambda-F']
