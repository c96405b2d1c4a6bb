"""template.yaml, read and resolved for the local stack: the one source of tables, routes and wiring.

`LocalTemplate.load()` parses the SAM template (CloudFormation short tags included) and resolves its
intrinsics against a local stack (see `vidgen_local.cfn`). The accessors return what the local cloud
builds from it; nothing here is a hand-written copy of the template.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidgen_local.cfn import PLACEHOLDER, CfnStack, TemplateError, env_string, load_yaml, truthy

# --- what the local cloud builds -----------------------------------------------------------------------


@dataclass(frozen=True)
class TableSpec:
    logical_id: str
    name: str
    properties: dict[str, Any]

    @property
    def ttl_attribute(self) -> str | None:
        ttl = self.properties.get('TimeToLiveSpecification') or {}
        return ttl.get('AttributeName') if truthy(ttl.get('Enabled')) else None

    def create_table_kwargs(self) -> dict[str, Any]:
        """Arguments for `dynamodb.create_table`, taken verbatim from the template."""
        props = self.properties
        kwargs: dict[str, Any] = {
            'TableName': self.name,
            'AttributeDefinitions': props['AttributeDefinitions'],
            'KeySchema': props['KeySchema'],
            'BillingMode': props.get('BillingMode', 'PROVISIONED'),
        }
        for key in ('GlobalSecondaryIndexes', 'LocalSecondaryIndexes', 'ProvisionedThroughput', 'StreamSpecification'):
            if props.get(key):
                kwargs[key] = props[key]
        return kwargs


@dataclass(frozen=True)
class SecretSpec:
    logical_id: str
    name: str
    secret_string: str | None
    generate: dict[str, Any] | None


@dataclass(frozen=True)
class HttpRoute:
    function: str  # logical id
    event: str
    method: str  # upper case; ANY matches every method
    path: str  # /v1/jobs/{job_id}, or $default

    @property
    def route_key(self) -> str:
        return '$default' if self.path == '$default' else f'{self.method} {self.path}'


@dataclass(frozen=True)
class ScheduleSpec:
    function: str
    event: str
    expression: str  # rate(...) or cron(...)
    input: Any  # the decoded Input, or None for EventBridge's own scheduled-event payload
    enabled: bool = True


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    arn: str
    code_uri: str
    handler: str
    runtime: str
    timeout: int
    memory_size: int
    environment: dict[str, str]
    routes: tuple[HttpRoute, ...] = ()
    schedules: tuple[ScheduleSpec, ...] = ()
    reserved_concurrency: int | None = None  # ReservedConcurrentExecutions, when the template sets one

    def handler_path(self, root: Path) -> tuple[Path, str]:
        """(file, attribute) of the handler: `app.lambda_handler` in CodeUri -> (<root>/<CodeUri>/app.py, ...)."""
        module, _, attribute = self.handler.rpartition('.')
        return root / self.code_uri / (module.replace('.', '/') + '.py'), attribute


@dataclass(frozen=True)
class StateMachineSpec:
    logical_id: str
    name: str
    arn: str
    type: str
    definition_path: Path
    substitutions: dict[str, str] = field(default_factory=dict)

    def definition(self) -> str:
        """The ASL with DefinitionSubstitutions applied; any `${...}` left is an error (moto fails silently)."""
        text = self.definition_path.read_text(encoding='utf-8')
        text = PLACEHOLDER.sub(lambda m: self.substitutions.get(m.group(1), m.group(0)), text)
        left = sorted(set(PLACEHOLDER.findall(text)))
        if left:
            raise TemplateError(f'{self.definition_path.name}: no DefinitionSubstitutions for {left}')
        json.loads(text)
        return text


@dataclass(frozen=True)
class LogGroupSpec:
    logical_id: str
    name: str
    retention_days: int | None


@dataclass(frozen=True)
class AlarmSpec:
    logical_id: str
    kwargs: dict[str, Any]  # for `cloudwatch.put_metric_alarm`, taken verbatim from the template


# Every resource type the template may use and what the local cloud does with it. A type in neither table is
# refused when the template is loaded: the local stack must not run a template part of which it ignores.
CREATED_LOCALLY = frozenset({
    'AWS::DynamoDB::Table', 'AWS::S3::Bucket', 'AWS::SecretsManager::Secret', 'AWS::Serverless::Function',
    'AWS::Serverless::StateMachine', 'AWS::Serverless::HttpApi', 'AWS::Logs::LogGroup', 'AWS::SQS::Queue',
    'AWS::SNS::Topic', 'AWS::SNS::Subscription', 'AWS::CloudWatch::Alarm', 'AWS::CloudWatch::Dashboard',
    'AWS::IAM::Role',  # a role the template defines itself is created with its policies (vidgen_local.iam)
})
NOT_MODELLED_LOCALLY: dict[str, str] = {
    'AWS::Serverless::LayerVersion': 'the layer packages are imported from the source tree',
    'AWS::S3::BucketPolicy': "moto's endpoint is plain http on loopback, where a TLS-only policy would refuse every "
                             'call; AWS enforces it',
}


# --- the template -----------------------------------------------------------------------------------------


class LocalTemplate(CfnStack):
    """A SAM template resolved for the local stack."""

    @classmethod
    def load(cls, root: Path, parameters: Mapping[str, Any] | None = None, *, filename: str = 'template.yaml',
             **kwargs: Any) -> LocalTemplate:
        template = cls(root, load_yaml(root / filename), parameters, **kwargs)
        template.check_resource_types()
        return template

    def check_resource_types(self) -> None:
        unknown = sorted({str(r.get('Type')) for r in self.resources.values()}
                         - CREATED_LOCALLY - set(NOT_MODELLED_LOCALLY))
        if unknown:
            raise TemplateError(f'The local stack does not know the resource types {unknown}: add each to '
                                'CREATED_LOCALLY (and create it) or to NOT_MODELLED_LOCALLY with the reason')

    def log_groups(self) -> list[LogGroupSpec]:
        specs = []
        for lid in self._of_type('AWS::Logs::LogGroup'):
            days = self.resolve(self._properties(lid)).get('RetentionInDays')
            specs.append(LogGroupSpec(lid, self.physical_name(lid), int(days) if days is not None else None))
        return specs

    def queues(self) -> list[str]:
        return [lid for lid in self._of_type('AWS::SQS::Queue')]

    def topics(self) -> list[str]:
        return [lid for lid in self._of_type('AWS::SNS::Topic')]

    def subscriptions(self) -> list[dict[str, Any]]:
        """Resolve after the topics exist: TopicArn is the Ref of a topic, which moto assigns."""
        return [self.resolve(self._properties(lid)) for lid in self._of_type('AWS::SNS::Subscription')]

    def alarms(self) -> list[AlarmSpec]:
        """Resolve after the topics and queues exist (their ARNs and names are moto's)."""
        specs = []
        for lid in self._of_type('AWS::CloudWatch::Alarm'):
            props = self.resolve(self._properties(lid))
            props.setdefault('AlarmName', self.physical_name(lid))
            specs.append(AlarmSpec(lid, props))
        return specs

    def dashboards(self) -> list[tuple[str, str]]:
        """(name, body) of each dashboard; the body must be JSON, as CloudWatch requires."""
        boards = []
        for lid in self._of_type('AWS::CloudWatch::Dashboard'):
            props = self.resolve(self._properties(lid))
            try:
                json.loads(props['DashboardBody'])
            except ValueError as exc:
                raise TemplateError(f'{lid}: DashboardBody is not JSON ({exc})') from None
            boards.append((self.physical_name(lid), props['DashboardBody']))
        return boards

    def tables(self) -> list[TableSpec]:
        return [TableSpec(lid, self.ref(lid), self.resolve(self._properties(lid)))
                for lid in self._of_type('AWS::DynamoDB::Table')]

    def buckets(self) -> list[str]:
        return [self.ref(lid) for lid in self._of_type('AWS::S3::Bucket')]

    def secrets(self) -> list[SecretSpec]:
        specs = []
        for lid in self._of_type('AWS::SecretsManager::Secret'):
            props = self.resolve(self._properties(lid))
            specs.append(SecretSpec(lid, self.physical_name(lid), props.get('SecretString'),
                                    props.get('GenerateSecretString')))
        return specs

    def functions(self) -> list[FunctionSpec]:
        return [self.function(lid) for lid in self._of_type('AWS::Serverless::Function')]

    def function(self, logical_id: str) -> FunctionSpec:
        merged = self._with_globals(logical_id)
        env = self.resolve(merged.get('Environment', {}).get('Variables', {}))
        routes, schedules = [], []
        for event_name, event in (merged.get('Events') or {}).items():
            props = self.resolve(event.get('Properties') or {})
            if event['Type'] == 'HttpApi':
                routes.append(HttpRoute(logical_id, event_name, str(props.get('Method', 'ANY')).upper(),
                                        props.get('Path', '$default')))
            elif event['Type'] in ('Schedule', 'ScheduleV2'):
                expression = props.get('Schedule') or props.get('ScheduleExpression')
                enabled = truthy(props.get('Enabled', True)) and props.get('State', 'ENABLED') == 'ENABLED'
                raw_input = props.get('Input')
                schedules.append(ScheduleSpec(logical_id, event_name, expression,
                                              json.loads(raw_input) if raw_input else None, enabled))
        return FunctionSpec(
            logical_id=logical_id, name=self.ref(logical_id), arn=self.get_att(logical_id, 'Arn'),
            code_uri=str(self.resolve(merged['CodeUri'])), handler=str(self.resolve(merged['Handler'])),
            runtime=str(self.resolve(merged.get('Runtime', 'python3.13'))),
            timeout=int(self.resolve(merged.get('Timeout', 3))), memory_size=int(self.resolve(merged.get('MemorySize', 128))),
            environment={k: env_string(v) for k, v in env.items()}, routes=tuple(routes), schedules=tuple(schedules),
            reserved_concurrency=_optional_int(self.resolve({'value': merged.get('ReservedConcurrentExecutions')})))

    def routes(self) -> list[HttpRoute]:
        return [route for spec in self.functions() for route in spec.routes]

    def schedules(self) -> list[ScheduleSpec]:
        return [schedule for spec in self.functions() for schedule in spec.schedules]

    def http_api_cors(self) -> dict[str, Any] | None:
        """CorsConfiguration of the (first) HttpApi, which API Gateway answers preflights from."""
        for lid in self._of_type('AWS::Serverless::HttpApi'):
            cors = self.resolve(self._properties(lid)).get('CorsConfiguration')
            if cors:
                return cors if isinstance(cors, dict) else {'AllowOrigins': ['*']}
        return None

    def state_machines(self) -> list[StateMachineSpec]:
        specs = []
        for lid in self._of_type('AWS::Serverless::StateMachine'):
            props = self._properties(lid)
            if 'DefinitionUri' not in props:
                raise TemplateError(f'{lid}: the local stack needs DefinitionUri (an inline Definition is not used)')
            substitutions = {k: env_string(v) for k, v in self.resolve(props.get('DefinitionSubstitutions', {})).items()}
            specs.append(StateMachineSpec(lid, self.physical_name(lid), self.ref(lid),
                                          str(self.resolve(props.get('Type', 'STANDARD'))),
                                          self.root / str(self.resolve(props['DefinitionUri'])), substitutions))
        return specs

    # -- helpers ----------------------------------------------------------------------------------------

    def _with_globals(self, logical_id: str) -> dict[str, Any]:
        # SAM's Globals rules: scalars are overridden, maps (Environment.Variables) merged, lists appended.
        globals_ = dict((self.document.get('Globals') or {}).get('Function') or {})
        own = self._properties(logical_id)
        merged = {**globals_, **own}
        global_vars = (globals_.get('Environment') or {}).get('Variables') or {}
        own_vars = (own.get('Environment') or {}).get('Variables') or {}
        merged['Environment'] = {'Variables': {**global_vars, **own_vars}}
        for key in ('Layers',):
            if key in globals_ and key in own:
                merged[key] = list(globals_[key]) + list(own[key])
        return merged


def _optional_int(resolved: dict[str, Any]) -> int | None:
    """A resolved optional property (an `!If` may give AWS::NoValue, which drops the key)."""
    value = resolved.get('value')
    return None if value is None else int(value)
