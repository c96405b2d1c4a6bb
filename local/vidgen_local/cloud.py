"""LocalCloud: the real vidgen stack on one machine, with no AWS account and no Docker (docs/local-cloud.md).

    with LocalCloud(port=0) as cloud:          # 0 = an ephemeral port (tests); default VIDGEN_PORT or 3000
        requests.get(f'{cloud.api_url}/v1/health')

start() runs, in order: the moto patches; moto's server on 127.0.0.1 (DynamoDB, S3, Secrets Manager,
Lambda registry, Step Functions executing the real ASL); the provider simulators unless real provider
URLs are configured; the template's secrets, tables, bucket, functions and state machine; the handlers'
environment (the template's, plus local overrides); a pool of execution environments per function
(vidgen_local.environments: forked workers running the real handlers); the HTTP gateway; and a ticker
per Schedule event. stop() undoes all of it, restores os.environ and moto's config, and leaves no server,
thread, process or port behind. One LocalCloud runs per process at a time: moto's backends,
os.environ and the patches are process-wide.

Local settings (argument, then environment): VIDGEN_PORT, VIDGEN_ADMIN_KEY, VIDGEN_WEBHOOK_SECRET, VIDGEN_PUBLIC_URL,
KLING_BASE_URL + KLING_ACCESS_KEY + KLING_SECRET_KEY, KIE_BASE_URL + KIE_UPLOAD_BASE_URL + KIE_API_KEY,
LLM_BASE_URL + LLM_API_KEY (+ LLM_MODEL), VIDGEN_MAX_ACTIVE_JOBS_PER_USER, VIDGEN_LOCAL_IAM (on, or off to stop
enforcing the execution roles), VIDGEN_LOCAL_CONCURRENCY (execution environments per function, default 64).

IAM: every function and the state machine get the execution role SAM would create from the template
(vidgen_local.iam), assumed through STS; moto's access control is turned on once the stack is built, so the
local endpoint refuses what a role does not grant. This process, the bootstrap and the CLI act as an admin
IAM user (`admin_credentials`); `function_env(logical_id)` is a function's environment with its role's
credentials, as Lambda sets them. Time scale: Wait states, Retry intervals and schedules run `time_scale`
times faster, and CALLBACK_WAIT_SECONDS (a TimeoutSecondsPath, not a Wait) is divided by it.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import sys
import threading
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from vidgen_local import patches
from vidgen_local.environments import FunctionPool, OutputPump, PoolStats
from vidgen_local.iam import RoleCredentials, assume_roles
from vidgen_local.providers import Providers, ProviderSettingsError, start_providers
from vidgen_local.resources import CreatedResources, create_all
from vidgen_local.runtime import (
    FunctionRunner,
    Handler,
    LambdaContext,
    ProcessEnv,
    load_handler,
    reset_layer_caches,
    route_metrics_to_log,
    warm_botocore_models,
)
from vidgen_local.template import FunctionSpec, LocalTemplate, ScheduleSpec

logger = logging.getLogger(__name__)

DEFAULT_PORT = 3000
# Environments per function when the template reserves no concurrency for it. Lambda scales to the account's
# limit (1,000 by default). Most of a job step's time is spent waiting on a provider, S3 or a webhook, so a
# cap near the core count would queue steps that Lambda runs side by side (a batch of 96 jobs under injected
# slow providers missed its deadlines at 8); forked environments share their memory, so 64 cost little.
DEFAULT_CONCURRENCY = 64
_AWS_ENV = {'AWS_ACCESS_KEY_ID': 'testing', 'AWS_SECRET_ACCESS_KEY': 'testing', 'AWS_DEFAULT_REGION': 'us-east-1',
            'AWS_REGION': 'us-east-1'}
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
    ({logical id: callable}) replaces functions' handlers (tests); `simulators=False` runs no simulator;
    `sweep=False` starts no schedule ticker; `port=0` picks a free port.

    After start(): api_url, admin_key, moto_url, kling_sim, kie_sim, llm_sim (None when real or absent), template,
    resources (table/bucket/secret/state machine names and ARNs), handler_env; invoke(logical_id, event)
    calls a handler as Lambda would, sweep_now() fires the Schedule events once.
    """

    def __init__(self, root: Path | None = None, *, port: int | None = None, admin_key: str | None = None,
                 public_url: str | None = None, time_scale: float = 10.0, env: Mapping[str, str] | None = None,
                 kling_sim_config: Any = None, kie_sim_config: Any = None, llm_sim_config: Any = None,
                 sweep: bool = True,
                 simulators: bool = True, parameters: Mapping[str, Any] | None = None,
                 handlers: Mapping[str, Handler] | None = None, template_file: str = 'template.yaml',
                 iam: bool | None = None) -> None:
        if time_scale <= 0:
            raise ValueError('time_scale must be positive')
        self.root = (root or find_root()).resolve()
        self.env_overrides = dict(env or {})
        settings = {**os.environ, **self.env_overrides}
        self.port = int(settings.get('VIDGEN_PORT', DEFAULT_PORT)) if port is None else port
        self.admin_key_given = admin_key or settings.get('VIDGEN_ADMIN_KEY') or None
        # whsec_<base64 key>: lets a webhook receiver outside this process (the deployed tier) verify notifications.
        self.webhook_secret_given = settings.get('VIDGEN_WEBHOOK_SECRET') or None
        self.public_url_given = public_url or settings.get('VIDGEN_PUBLIC_URL') or None
        self.time_scale = time_scale
        self.kling_sim_config = kling_sim_config
        self.kie_sim_config = kie_sim_config
        self.llm_sim_config = llm_sim_config
        self.sweep_enabled = sweep
        self.simulators_enabled = simulators
        self.parameters = dict(parameters or {})
        self.handler_overrides = dict(handlers or {})
        self.template_file = template_file
        self._settings = settings
        self.iam_enforced = iam_setting(settings) if iam is None else iam
        self.admin_credentials: dict[str, str] = {}
        self.role_credentials: dict[str, RoleCredentials] = {}  # function / state machine logical id -> keys

        self.api_url = self.moto_url = self.admin_key = ''
        self.kling_sim: Any = None
        self.kie_sim: Any = None
        self.llm_sim: Any = None
        self.template: LocalTemplate | None = None
        self.resources = CreatedResources()
        self.handler_env: dict[str, str] = {}
        self.runner: FunctionRunner | None = None
        self._pump: OutputPump | None = None
        self.concurrency = concurrency_setting(settings)
        self._moto: Any = None
        self._gateway: Any = None
        self._tickers: list[Any] = []
        self._env = ProcessEnv()
        self._providers = Providers()
        self._saved_moto_config: Any = None
        self._modules: list[str] = []
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
                                              kling_sim_config=self.kling_sim_config, kie_sim_config=self.kie_sim_config,
                                              llm_sim_config=self.llm_sim_config)
        except ProviderSettingsError as exc:
            raise LocalCloudError(str(exc)) from exc
        self.kling_sim, self.kie_sim = self._providers.kling_sim, self._providers.kie_sim
        self.llm_sim = self._providers.llm_sim
        self.admin_key = self.admin_key_given or ''
        self.resources = create_all(self.template, self._client, self._local_secret_values())
        if not self.admin_key:
            self.admin_key = self._read_admin_key()
        self._assume_roles()
        self._bind_gateway()
        specs = {spec.logical_id: spec for spec in self.template.functions()}  # env now has the secrets' ARNs
        self.handler_env = self._handler_env()
        self._env.set(self.handler_env)
        reset_layer_caches()
        self.runner = FunctionRunner(self._pools(specs))
        if self.iam_enforced:
            self._set_iam_enforcement(True)
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
            self.runner = None
        if self._pump is not None:
            self._pump.stop()
            self._pump = None
        patches.set_dispatch(None)
        patches.set_wait_scale(1.0)
        patches.set_role_credentials(None)
        if self._moto is not None:
            self._set_iam_enforcement(False)
            self._stop_moto()
        self._providers.stop()
        self.kling_sim = self.kie_sim = self.llm_sim = None
        for name in self._modules:
            sys.modules.pop(name, None)
        self._modules = []
        self._env.restore()
        _forget_boto3_default_session()
        reset_layer_caches()
        self._started = False
        with _active_lock:
            if _active is self:
                _active = None

    # -- calling functions ----------------------------------------------------------------------------------

    def invoke(self, logical_id: str, event: Any) -> Any:
        """Invoke a function as Lambda would: in one of its execution environments. Its result, or a
        FunctionError (error_type: the handler's exception class name, Sandbox.Timedout, ...)."""
        if self.runner is None:
            raise LocalCloudError('The local cloud is not started')
        return self.runner.call(logical_id, event)

    def recycle_environments(self) -> None:
        """Retire every warm execution environment (busy ones when their event ends): the next event of each
        function forks a new one from this process as it is now, as Lambda starts new environments after a
        function's code or configuration changes. Tests call it after they patch handler code."""
        if self.runner is not None:
            self.runner.recycle()

    def update_function_timeout(self, logical_id: str, seconds: int) -> None:
        """Set a function's Timeout, as UpdateFunctionConfiguration does: its later events run in new
        environments under the new limit (tests shorten it to see a timeout handled)."""
        if self.runner is None:
            raise LocalCloudError('The local cloud is not started')
        self.runner.pools[logical_id].update_timeout(seconds)

    def update_function_environment(self, values: Mapping[str, str | None], functions: Iterable[str] | None = None) -> None:
        """Set (None: remove) environment variables of the functions (all by default), as
        UpdateFunctionConfiguration does: their later events run in new environments that read them.
        `handler_env` and this process's environment follow, for code that reads them here."""
        if self.runner is None:
            raise LocalCloudError('The local cloud is not started')
        for logical_id in (self.runner.pools if functions is None else functions):
            self.runner.pools[logical_id].update_environment(values)
        if functions is None:
            for name, value in values.items():
                if value is None:
                    self.handler_env.pop(name, None)
                    os.environ.pop(name, None)
                else:
                    self.handler_env[name] = os.environ[name] = value
            reset_layer_caches()  # layer code that a test runs in this process reads them afresh too

    def environment_stats(self) -> dict[str, PoolStats]:
        """Per function: environments alive, cold starts, invocations, timeouts, crashes."""
        if self.runner is None:
            return {}
        return {logical_id: copy.copy(pool.stats) for logical_id, pool in self.runner.pools.items()}

    def sweep_now(self) -> Any:
        """Fire every Schedule event once, now; returns the (last) handler result."""
        result = None
        for schedule in self._schedules():
            result = self._fire(schedule)
        return result

    def function(self, logical_id: str) -> FunctionSpec:
        assert self.runner is not None
        return self.runner.spec(logical_id)

    def function_env(self, logical_id: str) -> dict[str, str]:
        """A function's whole environment as Lambda gives it: the handler environment, with its execution
        role's credentials when IAM is enforced (else the admin identity's, like this process)."""
        env = {**os.environ, **self.handler_env}
        if self.iam_enforced:
            env.update(self.role_credentials[logical_id].environment())
        return env

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
        # MOTO_PORT: the Step Functions interpreter calls Lambda at localhost:$MOTO_PORT (docs/local-cloud.md).
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
            patches.close_server_connections(server)  # the clients' open connections, and their threads
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
        if self.webhook_secret_given:
            values['WEBHOOK_SECRET_NAME'] = {'key': self.webhook_secret_given.removeprefix('whsec_')}
        return values

    # -- handlers and their environment ---------------------------------------------------------------

    def _template_env(self) -> dict[str, str]:
        """Every function's resolved environment, merged; two functions disagreeing on a variable is an error."""
        assert self.template is not None
        merged: dict[str, str] = {}
        owners: dict[str, str] = {}
        for spec in self.template.functions():
            for name, value in spec.environment.items():
                if name in merged and merged[name] != value:
                    raise LocalCloudError(f'{owners[name]} and {spec.logical_id} set {name} differently; the '
                                          'local cloud runs every handler in one process with one environment')
                merged[name], owners[name] = value, spec.logical_id
        return merged

    def _handler_env(self) -> dict[str, str]:
        env = self._template_env()
        env['PUBLIC_API_URL'] = self.public_url_given or self.api_url
        env['VIDGEN_ALLOW_LOOPBACK_URLS'] = 'true'
        env.update(self._providers.env)
        if 'CALLBACK_WAIT_SECONDS' in env:
            env['CALLBACK_WAIT_SECONDS'] = str(max(1, round(float(env['CALLBACK_WAIT_SECONDS']) / self.time_scale)))
        if self._settings.get('VIDGEN_MAX_ACTIVE_JOBS_PER_USER'):
            env['VIDGEN_MAX_ACTIVE_JOBS_PER_USER'] = self._settings['VIDGEN_MAX_ACTIVE_JOBS_PER_USER']
        env.update(self.env_overrides)
        return env

    def _pools(self, specs: Mapping[str, FunctionSpec]) -> dict[str, FunctionPool]:
        """One pool of execution environments per function. Each handler module is imported here once first:
        it fails the start on a broken handler, and every environment then forks with the layer and the
        libraries already imported, so its init costs milliseconds; the environment still imports its
        handler module anew (vidgen_local.environments)."""
        prefix = f'_vidgen_local_{uuid.uuid4().hex[:8]}'
        for logical_id, spec in specs.items():
            if logical_id not in self.handler_overrides:
                self._modules.append(load_handler(spec, self.root, prefix)[1])
        overrides = dict(self.handler_overrides)

        def load(spec: FunctionSpec) -> Handler:
            if spec.logical_id in overrides:
                return overrides[spec.logical_id]
            return load_handler(spec, self.root, prefix)[0]

        warm_botocore_models()
        self._pump = OutputPump()
        return {logical_id: FunctionPool(spec, self.function_env(logical_id), load, LambdaContext, self._pump,
                                         limit=spec.reserved_concurrency or self.concurrency)
                for logical_id, spec in specs.items()}

    # -- gateway and schedules ------------------------------------------------------------------------

    def _bind_gateway(self) -> None:
        from vidgen_local.gateway import Gateway

        assert self.template is not None
        try:
            self._gateway = Gateway(self.template.routes(), self.invoke, port=self.port,
                                    cors=self.template.http_api_cors())
        except OSError as exc:
            raise LocalCloudError(f'Cannot listen on 127.0.0.1:{self.port} ({exc.strerror}); '
                                  'set VIDGEN_PORT to a free port') from exc
        self.api_url = self._gateway.url

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


def concurrency_setting(settings: Mapping[str, str]) -> int:
    """VIDGEN_LOCAL_CONCURRENCY: execution environments per function without reserved concurrency."""
    raw = str(settings.get('VIDGEN_LOCAL_CONCURRENCY', DEFAULT_CONCURRENCY)).strip()
    if not raw.isdigit() or int(raw) < 1:
        raise LocalCloudError(f'VIDGEN_LOCAL_CONCURRENCY must be a whole number of at least 1, not {raw!r}')
    return int(raw)


def iam_setting(settings: Mapping[str, str]) -> bool:
    """VIDGEN_LOCAL_IAM: on (default) or off."""
    value = str(settings.get('VIDGEN_LOCAL_IAM', 'on')).strip().lower()
    if value not in ('on', 'off'):
        raise LocalCloudError(f'VIDGEN_LOCAL_IAM must be on or off, not {value!r}')
    return value == 'on'


def _scheduled_event(schedule: ScheduleSpec) -> dict[str, Any]:
    """EventBridge's payload for a schedule without Input."""
    import datetime as dt

    return {'version': '0', 'id': str(uuid.uuid4()), 'detail-type': 'Scheduled Event', 'source': 'aws.events',
            'account': '123456789012', 'time': dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
            'region': _AWS_ENV['AWS_DEFAULT_REGION'], 'detail': {},
            'resources': [f'arn:aws:events:us-east-1:123456789012:rule/{schedule.function}{schedule.event}']}
