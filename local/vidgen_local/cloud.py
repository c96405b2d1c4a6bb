"""LocalCloud: the real vidgen stack on one machine, with no AWS account and no Docker (DESIGN §6).

    with LocalCloud(port=0) as cloud:          # 0 = an ephemeral port (tests); default VIDGEN_PORT or 3000
        requests.get(f'{cloud.api_url}/v1/health')

start() runs, in order: the moto patches; moto's server on 127.0.0.1 (DynamoDB, S3, Secrets Manager,
Lambda registry, Step Functions executing the real ASL); the provider simulators unless real provider
URLs are configured; the template's secrets, tables, bucket, functions and state machine; each function's
environment (the template's variables, plus local overrides); a pool of execution environments per
function (worker processes running the real handlers, see runtime.py), one pre-warmed each; the HTTP
gateway; and a ticker per Schedule event. stop() undoes all of it, ends every environment, restores
os.environ and moto's config, and leaves no server, thread, worker or port behind. One LocalCloud runs per
process at a time: moto's backends and the patches are process-wide.

Local settings (argument, then environment): VIDGEN_PORT, VIDGEN_ADMIN_KEY, VIDGEN_PUBLIC_URL,
KLING_BASE_URL + KLING_ACCESS_KEY + KLING_SECRET_KEY, KIE_BASE_URL + KIE_UPLOAD_BASE_URL + KIE_API_KEY,
VIDGEN_MAX_ACTIVE_JOBS_PER_USER, VIDGEN_LOCAL_CONCURRENCY (environments per function when the template
sets no ReservedConcurrentExecutions; default 2), VIDGEN_LOCAL_IAM (on, or off to stop enforcing the
execution roles).

IAM: every function and the state machine get the execution role SAM would create from the template
(vidgen_local.iam), assumed through STS; each function's environments get its role's credentials
(credentials_for), and moto's access control is turned on once the stack is built, so the local
endpoint refuses what a role does not grant. This process, the bootstrap and the CLI act as an admin
IAM user (`admin_credentials`). Time scale: Wait states, Retry intervals and schedules run `time_scale`
times faster, and CALLBACK_WAIT_SECONDS (a TimeoutSecondsPath, not a Wait) is divided by it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import threading
import uuid
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from vidgen_local import patches
from vidgen_local.iam import RoleCredentials, assume_roles
from vidgen_local.providers import Providers, ProviderSettingsError, start_providers
from vidgen_local.resources import CreatedResources, create_all
from vidgen_local.runtime import (
    DEFAULT_CONCURRENCY,
    FunctionConfig,
    FunctionRunner,
    ProcessEnv,
    reset_layer_caches,
    route_metrics_to_log,
)
from vidgen_local.template import FunctionSpec, LocalTemplate, ScheduleSpec

logger = logging.getLogger(__name__)

DEFAULT_PORT = 3000
_AWS_ENV = {'AWS_ACCESS_KEY_ID': 'testing', 'AWS_SECRET_ACCESS_KEY': 'testing', 'AWS_DEFAULT_REGION': 'us-east-1',
            'AWS_REGION': 'us-east-1'}
# What an execution environment inherits from this process: the interpreter's and the network's basics.
# Everything else it sees is the function's own (its variables, its credentials, Lambda's variables).
_INHERITED_ENV = ('PATH', 'HOME', 'LANG', 'LC_ALL', 'LC_CTYPE', 'TZ', 'TMPDIR', 'PYTHONPATH', 'PYTHONHASHSEED',
                  'VIRTUAL_ENV', 'SSL_CERT_FILE', 'SSL_CERT_DIR', 'REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE', 'HTTP_PROXY',
                  'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy', 'COVERAGE_PROCESS_START')
# Credentials: the role credentials of a function, as Lambda's environment has them.
Credentials = Callable[[str], Mapping[str, str]]
# Variables that would send boto3 somewhere else than moto (or fail on a missing profile) while we run.
_AWS_ENV_REMOVED = ('AWS_PROFILE', 'AWS_DEFAULT_PROFILE', 'AWS_SESSION_TOKEN', 'AWS_SECURITY_TOKEN')
ADMIN_USER = 'vidgen-local-admin'
_active_lock = threading.Lock()
_active: LocalCloud | None = None


class LocalCloudError(RuntimeError):
    """The local cloud cannot start as configured."""


def find_root(start: Path | None = None) -> Path:
    """The project root: VIDGEN_ROOT, else the nearest directory above cwd with a template.yaml, else the
    checkout this package was installed from (editable install)."""
    if os.environ.get('VIDGEN_ROOT'):
        return Path(os.environ['VIDGEN_ROOT']).resolve()
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / 'template.yaml').is_file() and (directory / 'functions').is_dir():
            return directory
    source = Path(__file__).resolve().parents[2]
    if (source / 'template.yaml').is_file():
        return source
    raise LocalCloudError('No template.yaml found: run from the vidgen checkout or set VIDGEN_ROOT')


class LocalCloud:
    """The local stack.

    Arguments: `env` is applied last, over the template's environment and every local override;
    `parameters` overrides template parameters (checked against AllowedValues/MinValue); `handlers`
    ({logical id: 'module:attribute'}, importable from sys.path) replaces functions' handlers (tests);
    `simulators=False` runs no simulator; `sweep=False` starts no schedule ticker; `port=0` picks a free port;
    `prewarm=False` creates no environment before the first event; `credentials` ({logical id -> AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY and optionally AWS_SESSION_TOKEN}) gives each function's environments their
    credentials (default: the shared local test credentials; see credentials_for).

    After start(): api_url, admin_key, moto_url, kling_sim, kie_sim (None when real or absent), template,
    resources (table/bucket/secret/state machine names and ARNs), handler_env (every function's variables,
    merged), function_environment(logical_id); invoke(logical_id, event) calls a function as Lambda would,
    sweep_now() fires the Schedule events once, update_function_configuration() changes a function's
    environment, timeout, handler or init hooks and retires its warm environments, environment_stats()
    counts environments, cold starts and timeouts per function.
    """

    def __init__(self, root: Path | None = None, *, port: int | None = None, admin_key: str | None = None,
                 public_url: str | None = None, time_scale: float = 10.0, env: Mapping[str, str] | None = None,
                 kling_sim_config: Any = None, kie_sim_config: Any = None, sweep: bool = True,
                 simulators: bool = True, parameters: Mapping[str, Any] | None = None,
                 handlers: Mapping[str, str] | None = None, template_file: str = 'template.yaml',
                 prewarm: bool = True, credentials: Credentials | None = None, iam: bool | None = None) -> None:
        if time_scale <= 0:
            raise ValueError('time_scale must be positive')
        self.root = (root or find_root()).resolve()
        self.env_overrides = dict(env or {})
        settings = {**os.environ, **self.env_overrides}
        self.port = int(settings.get('VIDGEN_PORT', DEFAULT_PORT)) if port is None else port
        self.admin_key_given = admin_key or settings.get('VIDGEN_ADMIN_KEY') or None
        self.public_url_given = public_url or settings.get('VIDGEN_PUBLIC_URL') or None
        self.time_scale = time_scale
        self.kling_sim_config = kling_sim_config
        self.kie_sim_config = kie_sim_config
        self.sweep_enabled = sweep
        self.simulators_enabled = simulators
        self.parameters = dict(parameters or {})
        self.handler_overrides = {lid: _handler_spec(lid, handler) for lid, handler in (handlers or {}).items()}
        self.template_file = template_file
        self.prewarm = prewarm
        self.credentials_provider = credentials
        self.concurrency = int(settings.get('VIDGEN_LOCAL_CONCURRENCY') or DEFAULT_CONCURRENCY)
        if self.concurrency < 1:
            raise ValueError('VIDGEN_LOCAL_CONCURRENCY must be at least 1')
        self._settings = settings
        self.iam_enforced = iam_setting(settings) if iam is None else iam
        self.admin_credentials: dict[str, str] = {}
        self.role_credentials: dict[str, RoleCredentials] = {}  # function / state machine logical id -> keys

        self.api_url = self.moto_url = self.admin_key = ''
        self.kling_sim: Any = None
        self.kie_sim: Any = None
        self.template: LocalTemplate | None = None
        self.resources = CreatedResources()
        self.handler_env: dict[str, str] = {}
        self.runner: FunctionRunner | None = None
        self._moto: Any = None
        self._gateway: Any = None
        self._tickers: list[Any] = []
        self._env = ProcessEnv()
        self._providers = Providers()
        self._saved_moto_config: Any = None
        self._initial_configs: dict[str, FunctionConfig] = {}
        self._boto_clients: dict[str, Any] = {}
        self._saved_werkzeug_level = logging.NOTSET
        self._started = False

    # -- lifecycle ------------------------------------------------------------------------------------------

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> LocalCloud:
        global _active
        with _active_lock:
            if _active is not None:
                raise LocalCloudError('Another LocalCloud is running in this process; stop it first')
            _active = self
        self._started = True
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        # Powertools warns on every invocation that published no metric: true of most reads, and noise here.
        warnings.filterwarnings('ignore', message='No application metrics to publish', category=UserWarning)
        route_metrics_to_log()
        self.template = LocalTemplate.load(self.root, self.parameters, filename=self.template_file)
        patches.apply_all(self._dispatch, wait_scale=self.time_scale)
        self._start_moto()
        try:
            self._providers = start_providers(self._settings, simulators=self.simulators_enabled,
                                              kling_sim_config=self.kling_sim_config, kie_sim_config=self.kie_sim_config)
        except ProviderSettingsError as exc:
            raise LocalCloudError(str(exc)) from exc
        self.kling_sim, self.kie_sim = self._providers.kling_sim, self._providers.kie_sim
        self.admin_key = self.admin_key_given or ''
        self.resources = create_all(self.template, self._client, self._local_secret_values())
        if not self.admin_key:
            self.admin_key = self._read_admin_key()
        self._assume_roles()
        self._bind_gateway()
        specs = {spec.logical_id: spec for spec in self.template.functions()}  # env now has the secrets' ARNs
        self._initial_configs = {lid: self._function_config(spec) for lid, spec in specs.items()}
        self.handler_env = self._merged_env(self._initial_configs.values())
        # The test process sees the same settings, so a test can call layer code directly; handlers never run here.
        self._env.set(self.handler_env)
        reset_layer_caches()
        self.runner = FunctionRunner(self._initial_configs, self._process_env)
        if self.iam_enforced:
            self._set_iam_enforcement(True)
        if self.prewarm:
            try:
                self.runner.prewarm()
            except Exception as exc:
                raise LocalCloudError(f'A function could not start: {exc}') from exc
        self._gateway.start()
        if self.sweep_enabled:
            self._start_tickers()
        logger.info('local cloud ready: api %s, moto %s, IAM %s', self.api_url, self.moto_url,
                    'enforced' if self.iam_enforced else 'off')

    def _dispatch(self, function_name: str, event: Any) -> Any:
        """Lambda invocations from the state machine (patches.py), by function name."""
        if self.runner is None:
            raise LookupError(f'The local cloud is still starting; {function_name!r} is not loaded yet')
        return self.runner.call_by_name(function_name, event)

    def stop(self) -> None:
        """Stop everything started; safe to call twice, and after a failed start."""
        global _active
        if not self._started:
            return
        for ticker in self._tickers:
            ticker.stop()
        self._tickers = []
        if self._gateway is not None:
            self._gateway.stop()
            self._gateway = None
        if self._moto is not None:
            self._stop_executions()
        if self.runner is not None:
            if not self.runner.drain(timeout=10):
                logger.warning('some handler invocations were still running at shutdown')
            self.runner.close()
        patches.set_dispatch(None)
        patches.set_wait_scale(1.0)
        patches.set_role_credentials(None)
        if self._moto is not None:
            self._set_iam_enforcement(False)
            self._stop_moto()
        self._providers.stop()
        self.kling_sim = self.kie_sim = None
        self._env.restore()
        _forget_boto3_default_session()
        reset_layer_caches()
        self._started = False
        with _active_lock:
            if _active is self:
                _active = None

    # -- calling functions ----------------------------------------------------------------------------------

    def invoke(self, logical_id: str, event: Any, *, give_up_after: float | None = None) -> Any:
        """Invoke a function synchronously, as Lambda would: its result, or runtime.FunctionError carrying
        Lambda's errorType (the handler's exception class name, Sandbox.Timedout, ...)."""
        if self.runner is None:
            raise LocalCloudError('The local cloud is not started')
        return self.runner.call(logical_id, event, give_up_after=give_up_after)

    def sweep_now(self) -> Any:
        """Fire every Schedule event once, now; returns the (last) handler result."""
        result = None
        for schedule in self._schedules():
            result = self._fire(schedule)
        return result

    def function(self, logical_id: str) -> FunctionSpec:
        assert self.runner is not None
        return self.runner.config(logical_id).spec

    def function_environment(self, logical_id: str) -> dict[str, str]:
        """The function's variables as its environments get them now (without credentials or Lambda's own)."""
        assert self.runner is not None
        return dict(self.runner.config(logical_id).environment)

    def credentials_for(self, logical_id: str) -> dict[str, str]:
        """AWS credentials for a new environment of the function: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and,
        for temporary ones, AWS_SESSION_TOKEN. Asked once per environment, when it is created (environments
        keep theirs for their life, as Lambda's do): `credentials` given to the constructor, else the session
        of the function's execution role (what Lambda gives it), or with IAM off the admin identity's.
        Call retire_environments() to make every function ask again."""
        if self.credentials_provider is not None:
            given = dict(self.credentials_provider(logical_id))
            missing = {'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'} - set(given)
            if missing:
                raise LocalCloudError(f'credentials for {logical_id} lack {sorted(missing)}')
            return given
        if self.iam_enforced:
            return self.role_credentials[logical_id].environment()
        return dict(self.admin_credentials)

    def update_function_configuration(self, logical_id: str, *, environment: Mapping[str, str | None] | None = None,
                                      timeout: int | None = None, handler: str | None = None,
                                      init_hooks: tuple[str, ...] | None = None) -> None:
        """Change a function as UpdateFunctionConfiguration does: its warm environments are retired, busy ones
        end after their current event, and the next events get new environments with the new configuration.

        `environment` changes variables (None removes one) rather than replacing them all; `handler` is a
        'module:attribute' override; `init_hooks` ('module:callable', ...) run in each new environment before
        the handler is imported (tests inject faults with them)."""
        assert self.runner is not None
        config = self.runner.config(logical_id)
        changes: dict[str, Any] = {}
        if environment is not None:
            merged = dict(config.environment)
            for name, value in environment.items():
                if value is None:
                    merged.pop(name, None)
                else:
                    merged[name] = str(value)
            changes['environment'] = merged
        if timeout is not None:
            if not 1 <= timeout <= 900:
                raise ValueError('Lambda timeouts are 1 to 900 seconds')
            changes['spec'] = dataclasses.replace(config.spec, timeout=int(timeout))
        if handler is not None:
            changes['handler'] = _handler_spec(logical_id, handler)
        if init_hooks is not None:
            changes['init_hooks'] = tuple(init_hooks)
        self.runner.reconfigure(logical_id, **changes)

    def reset_function_configuration(self, logical_id: str | None = None) -> None:
        """Back to the configuration the cloud started with (one function, or all), retiring environments."""
        assert self.runner is not None
        for lid in [logical_id] if logical_id else list(self._initial_configs):
            if self.runner.config(lid) != self._initial_configs[lid]:
                self.runner.pools[lid].reconfigure(self._initial_configs[lid])

    def retire_environments(self, logical_id: str | None = None) -> None:
        """End the warm environments of one function (or all): the next events start new ones."""
        assert self.runner is not None
        for lid in [logical_id] if logical_id else list(self.runner.pools):
            self.runner.pools[lid].reconfigure(self.runner.config(lid))

    def environment_stats(self) -> dict[str, dict[str, Any]]:
        """Per function: environments alive, warm, inits, cold starts, invocations, timeouts, exits, init seconds."""
        return self.runner.stats() if self.runner is not None else {}

    # -- moto -----------------------------------------------------------------------------------------------

    def _start_moto(self) -> None:
        import requests
        from moto.core import config as moto_config
        from moto.server import ThreadedMotoServer

        werkzeug = logging.getLogger('werkzeug')
        self._saved_werkzeug_level = werkzeug.level
        werkzeug.setLevel(logging.WARNING)  # moto's per-request lines would drown ours
        self._saved_moto_config = copy.deepcopy(moto_config.default_user_config)
        self._moto = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False)
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        self.moto_url = f'http://{host}:{port}'
        # MOTO_PORT: the Step Functions interpreter calls Lambda at localhost:$MOTO_PORT (research §1).
        self._env.set({**_AWS_ENV, 'AWS_ENDPOINT_URL': self.moto_url, 'MOTO_PORT': str(port)},
                      remove=(*_AWS_ENV_REMOVED, *(k for k in os.environ if k.startswith('AWS_ENDPOINT_URL_'))))
        response = requests.post(f'{self.moto_url}/moto-api/config', timeout=10, json={
            'stepfunctions': {'execute_state_machine': True}, 'lambda': {'use_docker': False}})
        response.raise_for_status()
        # AWS's managed policies with their real documents (AWSLambdaBasicExecutionRole, the X-Ray policy):
        # the roles attach them by ARN. moto's config endpoint has no key for this; moto runs in-process.
        moto_config.default_user_config['iam'] = {'load_aws_managed_policies': True}
        self._create_admin()

    def _create_admin(self) -> None:
        """The identity this process, the bootstrap and the CLI use: an IAM user with AdministratorAccess,
        made while access control is still off (moto accepts any key until then)."""
        iam = self._client('iam')
        iam.create_user(UserName=ADMIN_USER)
        # AdministratorAccess's document, inline: moto lists every managed policy (over 1,000 loaded) to find
        # a user's attached ones on each call, which doubled the cost of every call this process makes.
        iam.put_user_policy(UserName=ADMIN_USER, PolicyName='AdministratorAccess', PolicyDocument=json.dumps(
            {'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': '*', 'Resource': '*'}]}))
        key = iam.create_access_key(UserName=ADMIN_USER)['AccessKey']
        self.admin_credentials = {'AWS_ACCESS_KEY_ID': key['AccessKeyId'], 'AWS_SECRET_ACCESS_KEY': key['SecretAccessKey']}
        self._env.set(self.admin_credentials)
        self._boto_clients = {}  # made again with the admin's keys
        _forget_boto3_default_session()

    def _assume_roles(self) -> None:
        """One STS session per function and state machine, as Lambda and Step Functions assume their roles
        (made while access control is off: the service principals in the trust policies do the assuming)."""
        assert self.template is not None
        names = {spec.logical_id: spec.name for spec in (*self.template.functions(), *self.template.state_machines())}
        self.role_credentials = assume_roles(self.resources.roles, self._client('sts'), names)
        machines = {spec.logical_id for spec in self.template.state_machines()}
        patches.set_role_credentials({
            self.resources.roles.role_of(lid).arn: (c.access_key_id, c.secret_access_key, c.session_token)
            for lid, c in self.role_credentials.items() if lid in machines})

    def _set_iam_enforcement(self, on: bool) -> None:
        """moto's access control: 0 unauthenticated calls left (every call checked), or unlimited."""
        import requests

        try:
            requests.post(f'{self.moto_url}/moto-api/reset-auth', data=b'0' if on else b'inf',
                          timeout=10).raise_for_status()
        except requests.RequestException:
            if on:
                raise
            logger.warning('could not turn moto access control off', exc_info=True)

    def _stop_moto(self) -> None:
        import requests
        from moto.core import config as moto_config

        try:
            requests.post(f'{self.moto_url}/moto-api/reset', timeout=10)  # the next cloud starts empty
        except requests.RequestException:
            logger.warning('moto reset failed', exc_info=True)
        self._moto.stop()
        server = getattr(self._moto, '_server', None)
        if server is not None:
            server.server_close()  # ThreadedMotoServer.stop() shuts down but leaves the socket bound
        self._moto = None
        self._boto_clients = {}
        logging.getLogger('werkzeug').setLevel(self._saved_werkzeug_level)
        if self._saved_moto_config is not None:
            moto_config.default_user_config.clear()
            moto_config.default_user_config.update(self._saved_moto_config)

    def _stop_executions(self) -> None:
        try:
            sfn = self._client('stepfunctions')
            for arn in self.resources.state_machines.values():
                for page in sfn.get_paginator('list_executions').paginate(stateMachineArn=arn, statusFilter='RUNNING'):
                    for execution in page['executions']:
                        sfn.stop_execution(executionArn=execution['executionArn'], cause='local cloud stopped')
        except Exception:  # noqa: BLE001 - shutdown goes on; the executions die with the server
            logger.warning('could not stop running executions', exc_info=True)

    def _client(self, service: str) -> Any:
        """A boto3 client bound to this cloud's moto (cached: creating one costs ~50 ms)."""
        if service not in self._boto_clients:
            import boto3

            if 'session' not in self._boto_clients:  # one session: it loads botocore's data once
                keys = self.admin_credentials or {'AWS_ACCESS_KEY_ID': 'testing', 'AWS_SECRET_ACCESS_KEY': 'testing'}
                self._boto_clients['session'] = boto3.session.Session(
                    aws_access_key_id=keys['AWS_ACCESS_KEY_ID'], aws_secret_access_key=keys['AWS_SECRET_ACCESS_KEY'],
                    region_name=_AWS_ENV['AWS_DEFAULT_REGION'])
            self._boto_clients[service] = self._boto_clients['session'].client(service, endpoint_url=self.moto_url)
        return self._boto_clients[service]

    def _read_admin_key(self) -> str:
        for env_var, value in self._template_env().items():
            if env_var == 'ADMIN_SECRET_NAME':
                secret = self._client('secretsmanager').get_secret_value(SecretId=value)['SecretString']
                return json.loads(secret)['api_key']
        raise LocalCloudError('No function has ADMIN_SECRET_NAME in its environment')

    def _local_secret_values(self) -> dict[str, dict[str, str]]:
        """Secret fields set locally, keyed by the env var that names the secret (see resources.secret_values)."""
        values: dict[str, dict[str, str]] = {'CALLBACK_SECRET_NAME': {}, **self._providers.secrets}
        if self.admin_key:
            values['ADMIN_SECRET_NAME'] = {'api_key': self.admin_key}
        return values

    # -- handlers and their environment ---------------------------------------------------------------

    def _template_env(self) -> dict[str, str]:
        """Every function's resolved variables, merged (the first function to set one wins)."""
        assert self.template is not None
        merged: dict[str, str] = {}
        for spec in self.template.functions():
            for name, value in spec.environment.items():
                merged.setdefault(name, value)
        return merged

    def _function_config(self, spec: FunctionSpec) -> FunctionConfig:
        return FunctionConfig(spec=spec, code_dir=str((self.root / spec.code_uri).resolve()),
                              handler=self.handler_overrides.get(spec.logical_id, spec.handler),
                              environment=self._function_env(spec),
                              concurrency=spec.reserved_concurrency or self.concurrency)

    def _function_env(self, spec: FunctionSpec) -> dict[str, str]:
        """The function's variables: the template's, with the local endpoints and settings over them."""
        env = dict(spec.environment)
        env['PUBLIC_API_URL'] = self.public_url_given or self.api_url
        env['VIDGEN_ALLOW_PRIVATE_URLS'] = 'true'
        env.update(self._providers.env)
        if 'CALLBACK_WAIT_SECONDS' in env:
            env['CALLBACK_WAIT_SECONDS'] = str(max(1, round(float(env['CALLBACK_WAIT_SECONDS']) / self.time_scale)))
        if self._settings.get('VIDGEN_MAX_ACTIVE_JOBS_PER_USER'):
            env['VIDGEN_MAX_ACTIVE_JOBS_PER_USER'] = self._settings['VIDGEN_MAX_ACTIVE_JOBS_PER_USER']
        env.update(self.env_overrides)
        return env

    @staticmethod
    def _merged_env(configs: Any) -> dict[str, str]:
        merged: dict[str, str] = {}
        for config in configs:
            for name, value in config.environment.items():
                merged.setdefault(name, value)
        return merged

    def _process_env(self, config: FunctionConfig) -> dict[str, str]:
        """The whole os.environ of a new execution environment of `config`'s function."""
        spec = config.spec
        env = {name: os.environ[name] for name in _INHERITED_ENV if name in os.environ}
        env.update({
            'AWS_ENDPOINT_URL': self.moto_url,
            'AWS_REGION': _AWS_ENV['AWS_REGION'], 'AWS_DEFAULT_REGION': _AWS_ENV['AWS_DEFAULT_REGION'],
            'AWS_LAMBDA_FUNCTION_NAME': spec.name, 'AWS_LAMBDA_FUNCTION_VERSION': '$LATEST',
            'AWS_LAMBDA_FUNCTION_MEMORY_SIZE': str(spec.memory_size),
            'AWS_LAMBDA_LOG_GROUP_NAME': f'/aws/lambda/{spec.name}',
            'AWS_EXECUTION_ENV': f'AWS_Lambda_{spec.runtime}', 'LAMBDA_TASK_ROOT': config.code_dir,
            '_HANDLER': config.handler,
            # As under `sam local`: tracing is not modelled (no X-Ray daemon), and Powertools' Tracer stays off.
            'AWS_SAM_LOCAL': 'true', 'AWS_XRAY_SDK_ENABLED': 'false',
        })
        env.update(self.credentials_for(spec.logical_id))
        env.update(config.environment)
        return env

    # -- gateway and schedules ------------------------------------------------------------------------

    def _bind_gateway(self) -> None:
        from vidgen_local.gateway import Gateway

        assert self.template is not None
        try:
            self._gateway = Gateway(self.template.routes(), self._invoke_from_gateway, port=self.port,
                                    cors=self.template.http_api_cors())
        except OSError as exc:
            raise LocalCloudError(f'Cannot listen on 127.0.0.1:{self.port} ({exc.strerror}); '
                                  'set VIDGEN_PORT to a free port') from exc
        self.api_url = self._gateway.url

    def _invoke_from_gateway(self, logical_id: str, event: dict[str, Any]) -> Any:
        from vidgen_local.gateway import INTEGRATION_TIMEOUT_SECONDS

        return self.invoke(logical_id, event, give_up_after=INTEGRATION_TIMEOUT_SECONDS)

    def _schedules(self) -> list[ScheduleSpec]:
        assert self.template is not None
        return [schedule for schedule in self.template.schedules() if schedule.enabled]

    def _fire(self, schedule: ScheduleSpec) -> Any:
        event = schedule.input if schedule.input is not None else _scheduled_event(schedule)
        return self.invoke(schedule.function, event)

    def _start_tickers(self) -> None:
        from vidgen_local.schedule import Ticker

        for schedule in self._schedules():
            fire: Callable[[], Any] = lambda s=schedule: self._fire(s)  # noqa: E731
            self._tickers.append(Ticker(schedule.expression, fire, time_scale=self.time_scale,
                                        name=f'{schedule.function}.{schedule.event}').start())


def _forget_boto3_default_session() -> None:
    """boto3.client() keeps one default session, which keeps the credentials it first found: after the keys
    in the environment change (each cloud makes a new admin key), clients must come from a new session."""
    import boto3

    boto3.DEFAULT_SESSION = None


def iam_setting(settings: Mapping[str, str]) -> bool:
    """VIDGEN_LOCAL_IAM: on (default) or off."""
    value = str(settings.get('VIDGEN_LOCAL_IAM', 'on')).strip().lower()
    if value not in ('on', 'off'):
        raise LocalCloudError(f'VIDGEN_LOCAL_IAM must be on or off, not {value!r}')
    return value == 'on'


def _handler_spec(logical_id: str, handler: Any) -> str:
    """A handler override as 'module:attribute': environments import it, so it must be importable by name."""
    if isinstance(handler, str):
        return handler
    qualname = getattr(handler, '__qualname__', '')
    if callable(handler) and '<locals>' not in qualname and getattr(handler, '__module__', '') not in ('', '__main__'):
        return f'{handler.__module__}:{qualname}'
    raise TypeError(f'{logical_id}: a handler override must be a module-level function or \'module:attribute\' '
                    '(each execution environment imports it in its own process)')


def _scheduled_event(schedule: ScheduleSpec) -> dict[str, Any]:
    """EventBridge's payload for a schedule without Input."""
    import datetime as dt

    return {'version': '0', 'id': str(uuid.uuid4()), 'detail-type': 'Scheduled Event', 'source': 'aws.events',
            'account': '123456789012', 'time': dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
            'region': _AWS_ENV['AWS_DEFAULT_REGION'], 'detail': {},
            'resources': [f'arn:aws:events:us-east-1:123456789012:rule/{schedule.function}{schedule.event}']}
