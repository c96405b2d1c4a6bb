"""vidgen_local.environments: one process per execution environment, one event at a time, Lambda's timeout,
its error types, and the environment variables a function runs with."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

import pytest
from vidgen_local import environments
from vidgen_local.environments import FunctionError, FunctionPool, OutputPump
from vidgen_local.runtime import LambdaContext
from vidgen_local.template import FunctionSpec


def spec(timeout: int = 3) -> FunctionSpec:
    return FunctionSpec(logical_id='EchoFunction', name='vidgen-test-Echo', arn='arn:aws:lambda:us-east-1:123456789012:'
                        'function:vidgen-test-Echo', code_uri='functions/echo', handler='app.lambda_handler',
                        runtime='python3.13', timeout=timeout, memory_size=128, environment={})


def handler(event: dict[str, Any], context: Any) -> Any:
    """What the tests ask of an environment, by the event's `do`."""
    action = event.get('do')
    if action == 'sleep':
        time.sleep(event['seconds'])
        return {'slept': event['seconds']}
    if action == 'whoami':
        return {'pid': os.getpid(), 'key': os.environ.get('AWS_ACCESS_KEY_ID'), 'marker': os.environ.get('MARKER'),
                'remaining_ms': context.get_remaining_time_in_millis(), 'function': context.function_name}
    if action == 'raise':
        raise KeyError('no such thing')
    if action == 'unserialisable':
        return {'when': object()}
    if action == 'exit':
        os._exit(3)
    if action == 'print':
        print(event['text'], flush=True)
        return None
    if action == 'deadlock':
        lock = threading.Lock()
        lock.acquire()
        lock.acquire()  # never returns: the kind of hang a lock copied held by a fork gives
    return event


@pytest.fixture
def pump():
    pump = OutputPump()
    yield pump
    pump.stop()


def make_pool(pump: OutputPump, *, timeout: int = 3, limit: int = 2, env: dict[str, str] | None = None,
              calls: list[Any] | None = None) -> FunctionPool:
    return FunctionPool(spec(timeout), env or {'AWS_ACCESS_KEY_ID': 'ASIAROLEKEY', 'MARKER': 'echo'},
                        lambda _spec: handler, LambdaContext, pump, limit=limit)


def invoke(pool: FunctionPool, event: dict[str, Any]) -> Any:
    return json.loads(pool.invoke(json.dumps(event)))


def test_an_environment_is_its_own_process_with_the_functions_environment(pump):
    pool = make_pool(pump)
    try:
        first = invoke(pool, {'do': 'whoami'})
        again = invoke(pool, {'do': 'whoami'})
    finally:
        pool.close()
    assert first['pid'] != os.getpid()
    assert first['key'] == 'ASIAROLEKEY' and first['marker'] == 'echo'  # only the function's variables
    assert first['function'] == 'vidgen-test-Echo' and 0 < first['remaining_ms'] <= 3000
    assert again['pid'] == first['pid']  # warm: the same environment serves the next event
    assert (pool.stats.cold_starts, pool.stats.invocations) == (1, 2)


def test_concurrent_events_get_environments_of_their_own_up_to_the_limit(pump):
    pool = make_pool(pump, limit=2)
    results: list[Any] = []

    def run() -> None:
        results.append(invoke(pool, {'do': 'sleep', 'seconds': 0.5}))

    threads = [threading.Thread(target=run) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        pids = {invoke(pool, {'do': 'whoami'})['pid'] for _ in range(4)}
    finally:
        pool.close()
    assert len(results) == 4
    assert pool.stats.cold_starts == 2  # never more than the limit: the other two waited for a free one
    assert len(pids) <= 2


def test_an_event_past_the_timeout_is_stopped_and_its_environment_replaced(pump):
    pool = make_pool(pump, timeout=1)
    try:
        pid = invoke(pool, {'do': 'whoami'})['pid']
        with pytest.raises(FunctionError) as raised:
            invoke(pool, {'do': 'sleep', 'seconds': 30})
        after = invoke(pool, {'do': 'whoami'})['pid']
    finally:
        pool.close()
    assert raised.value.error_type == 'Sandbox.Timedout'
    assert raised.value.payload()['errorMessage'] == 'Task timed out after 1.00 seconds'
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped
    assert after != pid and pool.stats.timeouts == 1 and pool.stats.cold_starts == 2


def test_failures_carry_lambdas_error_types(pump):
    pool = make_pool(pump)
    try:
        with pytest.raises(FunctionError) as handler_error:
            invoke(pool, {'do': 'raise'})
        with pytest.raises(FunctionError) as marshal_error:
            invoke(pool, {'do': 'unserialisable'})
        with pytest.raises(FunctionError) as exit_error:
            invoke(pool, {'do': 'exit'})
        assert invoke(pool, {'echo': 1}) == {'echo': 1}  # a new environment took over
    finally:
        pool.close()
    assert handler_error.value.error_type == 'KeyError' and 'no such thing' in str(handler_error.value)
    assert marshal_error.value.error_type == 'Runtime.MarshalError'
    assert exit_error.value.error_type == 'Runtime.ExitError' and pool.stats.crashes == 1


def test_an_environment_keeps_no_pipe_it_inherited(pump):
    """A pipe this process holds while an environment forks (the one `subprocess` waits on until its child
    has exec'd, or another environment's) is not held open by the environment: its reader still sees the end
    when this process closes its write end. (Kept open, a chromedriver start waited for ever.)"""
    import select

    read_end, write_end = os.pipe()  # non-inheritable, as subprocess' own and every pipe Python makes
    pool = make_pool(pump)
    try:
        pid = invoke(pool, {'do': 'whoami'})['pid']  # forked while the pipe is open
        os.close(write_end)
        ready, _, _ = select.select([read_end], [], [], 5)
        at_end = bool(ready) and os.read(read_end, 1) == b''
        assert invoke(pool, {'do': 'whoami'})['pid'] == pid  # the same environment, still serving
    finally:
        pool.close()
        os.close(read_end)
    assert at_end


def test_recycled_environments_are_replaced_by_new_ones(pump):
    pool = make_pool(pump)
    try:
        before = invoke(pool, {'do': 'whoami'})['pid']
        pool.recycle()
        after = invoke(pool, {'do': 'whoami'})['pid']
    finally:
        pool.close()
    assert before != after and pool.stats.cold_starts == 2


def test_what_an_environment_prints_becomes_its_functions_log(pump, caplog):
    caplog.set_level(logging.INFO, logger='vidgen_local.lambda')
    pool = make_pool(pump)
    try:
        invoke(pool, {'do': 'print', 'text': 'hello from the environment'})
        with pytest.raises(FunctionError):
            invoke(pool, {'do': 'raise'})
    finally:
        pool.close()
    deadline = time.monotonic() + 5
    while len(caplog.records) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = {(r.name, r.levelname, r.getMessage()) for r in caplog.records}
    assert ('vidgen_local.lambda.EchoFunction', 'INFO', 'hello from the environment') in lines
    assert ('vidgen_local.lambda.EchoFunction', 'WARNING', "[ERROR] KeyError: 'no such thing'") in lines


def test_a_timed_out_environment_writes_its_threads_stacks_to_the_functions_log(pump, caplog):
    caplog.set_level(logging.WARNING, logger='vidgen_local.lambda')
    pool = make_pool(pump, timeout=1)
    try:
        with pytest.raises(FunctionError) as raised:
            invoke(pool, {'do': 'deadlock'})
    finally:
        pool.close()
    assert raised.value.error_type == 'Sandbox.Timedout'  # what the caller sees is unchanged

    def stack_lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == 'vidgen_local.lambda.EchoFunction']

    deadline = time.monotonic() + 5
    while not any(' in handler' in line for line in stack_lines()) and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = stack_lines()
    # faulthandler's dump: the thread, then its frames, the hung line of the handler first
    assert any(line.startswith('Current thread') or line.startswith('Thread 0x') for line in lines), lines
    hung = next(line for line in lines if ' in handler' in line)
    assert 'test_local_environments.py' in hung


def test_an_environment_stuck_right_after_its_fork_is_replaced_before_it_gets_an_event(pump, monkeypatch, tmp_path,
                                                                                        caplog):
    # Given a first fork that hangs in the fork check, as one that copied a lock held by another thread does
    marker = tmp_path / 'stuck once'

    def stuck_the_first_time() -> None:
        if not marker.exists():
            marker.write_text('stuck')
            threading.Event().wait()

    monkeypatch.setattr(environments, '_check_fork', stuck_the_first_time)
    monkeypatch.setattr(environments, 'FORK_CHECK_SECONDS', 1.0)
    caplog.set_level(logging.WARNING, logger='vidgen_local.environments')
    pool = make_pool(pump)
    try:
        # When an event needs an environment
        result = invoke(pool, {'do': 'whoami'})
    finally:
        pool.close()
    # Then a second fork serves it: the event never met the stuck one, and one environment was made
    assert marker.exists() and result['marker'] == 'echo'
    assert (pool.stats.cold_starts, pool.stats.invocations) == (1, 1)
    assert any('stuck right after its fork (attempt 1 of 3)' in r.getMessage() for r in caplog.records)


def test_the_fork_check_goes_through_openssl_as_a_first_aws_call_does():
    calls: list[str] = []
    real_context, real_hmac = environments.ssl.SSLContext, environments.hmac.new

    def context(protocol: Any) -> Any:
        calls.append('tls context')
        return real_context(protocol)

    def mac(key: bytes, message: bytes, digest: Any) -> Any:
        calls.append('hmac ' + digest().name)
        return real_hmac(key, message, digest)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(environments.ssl, 'SSLContext', context)
        patch.setattr(environments.hmac, 'new', mac)
        environments._check_fork()
    assert calls == ['tls context', 'hmac sha256']


def test_a_closed_pool_refuses_events(pump):
    pool = make_pool(pump)
    pool.close()
    with pytest.raises(FunctionError):
        invoke(pool, {'echo': 1})


def test_a_managers_shared_state_reaches_the_environments(pump):
    """What handler stubs in tests record crosses the process boundary through a multiprocessing Manager."""
    import multiprocessing

    with multiprocessing.Manager() as manager:
        seen = manager.list()

        def recording(event: dict[str, Any], context: Any) -> Any:
            seen.append(event['n'])
            return os.getpid()

        pool = FunctionPool(spec(), {}, lambda _spec: recording, LambdaContext, pump, limit=2)
        try:
            pids = {invoke(pool, {'n': n}) for n in range(3)}
        finally:
            pool.close()
        assert sorted(seen) == [0, 1, 2] and os.getpid() not in pids
