"""Cold start: each function's handler module imports only what its own events need, and the X-Ray SDK
waits for the first traced invocation. Each check runs in a fresh interpreter, as a new Lambda environment
would, with Lambda's environment variables set. (How long the imports take is measured by `make bench`.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAMBDA_ENV = {'LAMBDA_TASK_ROOT': '/var/task', 'AWS_LAMBDA_FUNCTION_NAME': 'vidgen-test', 'AWS_REGION': 'us-east-1',
              'AWS_DEFAULT_REGION': 'us-east-1', 'POWERTOOLS_SERVICE_NAME': 'vidgen',
              'POWERTOOLS_METRICS_NAMESPACE': 'Vidgen',
              # A trace header as Lambda sets it, and a daemon address on loopback nobody listens on.
              '_X_AMZN_TRACE_ID': 'Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1',
              'AWS_XRAY_DAEMON_ADDRESS': '127.0.0.1:2',
              'AWS_XRAY_CONTEXT_MISSING': 'LOG_ERROR'}

# Imported by no function at import time: each waits for the events that need it.
NEVER_AT_IMPORT = ('aws_xray_sdk', 'aws_lambda_powertools.utilities.parameters', 'standardwebhooks', 'jwt',
                   'vidgen.providers.kling', 'vidgen.providers.kie_veo',
                   'vidgen.providers.kie_market',
                   # FFmpeg (PyAV) is in the media layer, which only the media function carries
                   'av', 'vidgen.media.inspect',
                   # Powertools' pydantic models of the OpenAPI specification: only building the document needs them
                   'aws_lambda_powertools.event_handler.openapi.models',
                   # reads an input image's header: only a request that carries an image does
                   'imagesize')
ROUTERS = {'submit': 'vidgen.api.submit', 'status': 'vidgen.api.status', 'admin': 'vidgen.api.admin',
           'callback': 'vidgen.api.callbacks', 'storyboard submit': 'vidgen.api.storyboards',
           'storyboard reads': 'vidgen.api.storyboard_reads'}
# A function serving two routers' routes: the second one is its own too.
SECOND_ROUTER = {'submit': 'vidgen.api.storyboards', 'status': 'vidgen.api.storyboard_reads'}
# Functions none of whose events download anything with requests (the result copy and the providers do).
WITHOUT_REQUESTS = ('submit', 'status', 'admin')


def run_isolated(code: str, path: list[str], **env: str) -> dict:
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(('AWS_', 'POWERTOOLS_', 'LAMBDA_', '_X_AMZN'))}
    environment.update(LAMBDA_ENV, **env)
    environment['PYTHONPATH'] = os.pathsep.join(path)
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120, env=environment)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def modules_after_import(function: str) -> set[str]:
    code = 'import json, sys\nimport app\nprint(json.dumps(sorted(sys.modules)))'
    return set(run_isolated(code, [str(ROOT / 'functions' / function), str(ROOT / 'layers' / 'vidgen')]))


@pytest.mark.parametrize('function', ['submit', 'status', 'callback', 'admin', 'poller', 'storyboard', 'media'])
def test_a_function_imports_only_what_its_events_need(function):
    loaded = modules_after_import(function)
    assert 'vidgen' in loaded and 'boto3' in loaded  # it did import the layer and its client library

    def present(prefix: str) -> bool:
        return any(name == prefix or name.startswith(prefix + '.') for name in loaded)

    assert [name for name in NEVER_AT_IMPORT if present(name)] == []
    # Other functions' routes and their models stay out (the status function's OpenAPI route imports
    # them when the document is first asked for).
    own = {ROUTERS.get(function), SECOND_ROUTER.get(function)}
    assert [router for router in ROUTERS.values() if router not in own and router in loaded] == []
    if function in WITHOUT_REQUESTS:
        assert 'requests' not in loaded


def test_the_tracer_is_built_on_the_first_traced_invocation():
    code = '''
import json, sys
from vidgen.observability import tracer

@tracer.capture_lambda_handler(capture_response=False)
def handler(event, context):
    return {'echo': event['n']}

before = 'aws_xray_sdk.core' in sys.modules
result = handler({'n': 3}, None)
print(json.dumps({'before': before, 'after': 'aws_xray_sdk.core' in sys.modules, 'result': result,
                  'tracer': type(tracer.tracer()).__name__, 'again': handler({'n': 4}, None)}))
'''
    found = run_isolated(code, [str(ROOT / 'layers' / 'vidgen')])
    assert found == {'before': False, 'after': True, 'result': {'echo': 3}, 'tracer': 'Tracer', 'again': {'echo': 4}}


@pytest.mark.parametrize('env', [{'POWERTOOLS_TRACE_DISABLED': 'true'}, {'LAMBDA_TASK_ROOT': ''}],
                         ids=['disabled', 'outside Lambda'])
def test_without_tracing_the_xray_sdk_is_never_imported(env):
    code = '''
import json, sys
from vidgen.observability import tracer

@tracer.capture_lambda_handler(capture_response=False)
def handler(event, context):
    return event

print(json.dumps({'result': handler({'ok': True}, None), 'xray': any(m.startswith('aws_xray_sdk') for m in sys.modules),
                  'tracer': tracer.tracer()}))
'''
    found = run_isolated(code, [str(ROOT / 'layers' / 'vidgen')], **env)
    assert found == {'result': {'ok': True}, 'xray': False, 'tracer': None}


def test_the_submit_function_leaves_the_storyboard_use_cases_to_the_storyboard_routes():
    """Its environments mostly serve job requests: the storyboard router is registered (its models make the
    routes' validation and documentation), the use cases and the storyboard store wait for its first request."""
    loaded = modules_after_import('submit')
    assert 'vidgen.api.storyboards' in loaded and 'vidgen.models' in loaded
    assert sorted(name for name in loaded if 'storyboard' in name) == ['vidgen.api.storyboards']
    assert not any(name.startswith('aws_xray_sdk') for name in loaded)


@pytest.mark.parametrize('function', ['poller', 'media'])
def test_the_state_machine_steps_start_without_pydantic(function):
    """No step of a job's execution validates an API model at import: the settings are read without pydantic,
    and the one step that builds a model (the webhook's job view) imports it when it runs. The poller's
    scheduled sweep, and the storyboard steps it drives, are imported by the sweep event alone."""
    loaded = modules_after_import(function)
    assert [name for name in loaded if name.split('.')[0] == 'pydantic' or name == 'vidgen.models'] == []
    assert [name for name in loaded if 'storyboard' in name or name == 'vidgen.jobs.sweep'] == []


def test_the_storyboard_steps_start_without_pydantic():
    """The storyboard machine's steps read and write storyboards and jobs through the store: the API's models
    (and the job submit path that validates them) wait for the notify step, which sends the storyboard's view."""
    loaded = modules_after_import('storyboard')
    assert 'vidgen.jobs.storyboards.steps' in loaded
    assert [name for name in loaded if name.split('.')[0] == 'pydantic' or name == 'vidgen.models'] == []
    assert [name for name in ('vidgen.jobs.submit', 'vidgen.jobs.storyboards.submit', 'vidgen.jobs.storyboards.views')
            if name in loaded] == []


def test_a_deferred_import_arrives_with_the_event_that_needs_it():
    """The webhook view is a pydantic model, imported when the notify step builds the message."""
    code = '''
import json, sys
from vidgen.jobs import notifications
from vidgen.store.jobs import Job

before = 'vidgen.models' in sys.modules
job = Job(id='job_1', owner='alice', status='succeeded', model='kling-v2-6', provider='kling',
          provider_model='kling-v2-6', kind='video', prompt='a lighthouse', params={}, credits=10, created_at=1.0,
          updated_at=2.0, deadline_at=3600.0)
webhook_id, body = notifications.notification(job)
print(json.dumps({'before': before, 'after': 'vidgen.models' in sys.modules, 'type': json.loads(body)['type']}))
'''
    found = run_isolated(code, [str(ROOT / 'layers' / 'vidgen')], TABLE_NAME='t', BUCKET_NAME='b',
                         STATE_MACHINE_ARN='arn:aws:states:us-east-1:123456789012:stateMachine:j',
                         STORYBOARD_STATE_MACHINE_ARN='arn:aws:states:us-east-1:123456789012:stateMachine:s')
    assert found == {'before': False, 'after': True, 'type': 'job.succeeded'}
