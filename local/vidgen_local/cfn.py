"""CloudFormation semantics for the local stack: the YAML short tags, and intrinsic functions resolved
against local values (parameters, pseudo parameters, Mappings, Conditions, deterministic physical names).

`CfnStack` knows nothing about what vidgen builds; `vidgen_local.template.LocalTemplate` adds that.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

STACK_NAME = 'vidgen-local'
REGION = 'us-east-1'
ACCOUNT_ID = '123456789012'  # moto's default account: ARNs built here match the ones moto returns
PLACEHOLDER = re.compile(r'\$\{([^}]*)\}')


class TemplateError(ValueError):
    """The template uses something the local stack cannot resolve."""


# --- YAML: CloudFormation short tags become their long (JSON) form -------------------------------------


class _CfnLoader(yaml.SafeLoader):
    pass


def _construct(tag: str, node: yaml.Node, loader: yaml.SafeLoader) -> dict[str, Any]:
    name = 'Ref' if tag == 'Ref' else f'Fn::{tag}'
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag == 'GetAtt':  # !GetAtt Resource.Attribute
            value = value.split('.', 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag == 'Condition':
        return {'Condition': value}
    return {name: value}


for _tag in ('Ref', 'GetAtt', 'Sub', 'FindInMap', 'If', 'Equals', 'Join', 'Select', 'Split', 'Base64',
             'Not', 'And', 'Or', 'Condition', 'GetAZs', 'ImportValue', 'Cidr', 'Transform', 'Length', 'ToJsonString'):
    _CfnLoader.add_constructor(f'!{_tag}', lambda loader, node, tag=_tag: _construct(tag, node, loader))


def load_yaml(path: Path) -> dict[str, Any]:
    with path.open(encoding='utf-8') as handle:
        return yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass


class CfnStack:
    """A CloudFormation/SAM template document and the local values its intrinsics resolve to."""

    def __init__(self, root: Path, document: dict[str, Any], parameters: Mapping[str, Any] | None = None,
                 *, stack_name: str = STACK_NAME, region: str = REGION, account_id: str = ACCOUNT_ID) -> None:
        self.root = root
        self.document = document
        self.stack_name = stack_name
        self.region = region
        self.account_id = account_id
        self.resources: dict[str, dict[str, Any]] = document.get('Resources') or {}
        self.parameters = self._parameter_values(parameters or {})
        self._bound: dict[str, dict[str, str]] = {}
        self._conditions: dict[str, bool] = {}

    # -- physical ids -----------------------------------------------------------------------------------

    def bind(self, logical_id: str, **values: str) -> None:
        """Record a physical value moto assigned (e.g. a secret's ARN): `bind('X', Ref=arn, Arn=arn)`."""
        self._resource(logical_id)
        self._bound.setdefault(logical_id, {}).update(values)

    def physical_name(self, logical_id: str) -> str:
        resource = self._resource(logical_id)
        props = resource.get('Properties') or {}
        kind = resource['Type']
        explicit = {'AWS::DynamoDB::Table': 'TableName', 'AWS::S3::Bucket': 'BucketName',
                    'AWS::SecretsManager::Secret': 'Name', 'AWS::Serverless::Function': 'FunctionName',
                    'AWS::Lambda::Function': 'FunctionName', 'AWS::Serverless::StateMachine': 'Name',
                    'AWS::StepFunctions::StateMachine': 'StateMachineName', 'AWS::Logs::LogGroup': 'LogGroupName',
                    'AWS::Serverless::LayerVersion': 'LayerName', 'AWS::SQS::Queue': 'QueueName',
                    'AWS::SNS::Topic': 'TopicName', 'AWS::CloudWatch::Alarm': 'AlarmName',
                    'AWS::CloudWatch::Dashboard': 'DashboardName'}.get(kind)
        if explicit and props.get(explicit) is not None:
            return str(self.resolve(props[explicit]))
        # CloudFormation appends a random suffix; a fixed name keeps local runs reproducible.
        name = f'{self.stack_name}-{logical_id}'
        return name.lower() if kind == 'AWS::S3::Bucket' else name

    def ref(self, logical_id: str) -> str:
        if logical_id in self._bound and 'Ref' in self._bound[logical_id]:
            return self._bound[logical_id]['Ref']
        kind = self._resource(logical_id)['Type']
        if kind in ('AWS::Serverless::StateMachine', 'AWS::StepFunctions::StateMachine',
                    'AWS::Serverless::LayerVersion', 'AWS::Lambda::LayerVersion'):
            return self.get_att(logical_id, 'Arn')
        if kind in ('AWS::Serverless::HttpApi', 'AWS::ApiGatewayV2::Api'):
            return 'local'
        if kind == 'AWS::SNS::Topic':
            return self.get_att(logical_id, 'Arn')  # Ref of a topic is its ARN
        if kind == 'AWS::SQS::Queue':
            return f'https://sqs.{self.region}.amazonaws.com/{self.account_id}/{self.physical_name(logical_id)}'
        return self.physical_name(logical_id)  # tables, buckets, functions, log groups; secrets: name (AWS: ARN)

    def get_att(self, logical_id: str, attribute: str) -> str:
        if attribute in self._bound.get(logical_id, {}):
            return self._bound[logical_id][attribute]
        kind = self._resource(logical_id)['Type']
        name = self.physical_name(logical_id)
        region, account = self.region, self.account_id
        arns = {
            'AWS::DynamoDB::Table': f'arn:aws:dynamodb:{region}:{account}:table/{name}',
            'AWS::S3::Bucket': f'arn:aws:s3:::{name}',
            'AWS::SecretsManager::Secret': f'arn:aws:secretsmanager:{region}:{account}:secret:{name}',
            'AWS::Serverless::Function': f'arn:aws:lambda:{region}:{account}:function:{name}',
            'AWS::Lambda::Function': f'arn:aws:lambda:{region}:{account}:function:{name}',
            'AWS::Serverless::StateMachine': f'arn:aws:states:{region}:{account}:stateMachine:{name}',
            'AWS::StepFunctions::StateMachine': f'arn:aws:states:{region}:{account}:stateMachine:{name}',
            'AWS::Logs::LogGroup': f'arn:aws:logs:{region}:{account}:log-group:{name}:*',
            'AWS::Serverless::LayerVersion': f'arn:aws:lambda:{region}:{account}:layer:{name}:1',
            'AWS::SQS::Queue': f'arn:aws:sqs:{region}:{account}:{name}',
            'AWS::SNS::Topic': f'arn:aws:sns:{region}:{account}:{name}',
            'AWS::CloudWatch::Alarm': f'arn:aws:cloudwatch:{region}:{account}:alarm:{name}',
        }
        if attribute == 'Arn' and kind in arns:
            return arns[kind]
        if attribute == 'Name' and kind in ('AWS::Serverless::StateMachine', 'AWS::StepFunctions::StateMachine'):
            return name
        if attribute == 'QueueName' and kind == 'AWS::SQS::Queue':
            return name
        if attribute == 'TopicName' and kind == 'AWS::SNS::Topic':
            return name
        if attribute == 'ApiEndpoint' and kind == 'AWS::Serverless::HttpApi':
            return f'https://local.execute-api.{region}.amazonaws.com'
        raise TemplateError(f'!GetAtt {logical_id}.{attribute} ({kind}) has no local value')

    # -- intrinsic functions ----------------------------------------------------------------------------

    _NO_VALUE = object()

    def resolve(self, node: Any) -> Any:
        """Resolve every intrinsic in `node` (dicts, lists, scalars); `AWS::NoValue` removes its key."""
        if isinstance(node, list):
            return [v for v in (self.resolve(item) for item in node) if v is not self._NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, value), = node.items()
            if key == 'Ref' or key.startswith('Fn::') or key == 'Condition' and isinstance(value, str):
                return self._intrinsic(key, value)
        resolved = {k: self.resolve(v) for k, v in node.items()}
        return {k: v for k, v in resolved.items() if v is not self._NO_VALUE}

    def _intrinsic(self, key: str, value: Any) -> Any:
        if key == 'Ref':
            return self._ref(value)
        if key == 'Condition':
            return self.condition(value)
        fn = key[4:]
        if fn == 'GetAtt':
            logical_id, attribute = value if isinstance(value, list) else str(value).split('.', 1)
            return self.get_att(logical_id, self.resolve(attribute))
        if fn == 'Sub':
            return self._sub(value)
        if fn == 'FindInMap':
            name, top, second = (self.resolve(v) for v in value)
            try:
                return self.resolve(self.document['Mappings'][name][top][second])
            except KeyError as exc:
                raise TemplateError(f'!FindInMap [{name}, {top}, {second}] is not in Mappings') from exc
        if fn == 'If':
            name, when_true, when_false = value
            return self.resolve(when_true if self.condition(name) else when_false)
        if fn == 'Equals':
            left, right = (self.resolve(v) for v in value)
            return str(left) == str(right)
        if fn == 'Not':
            return not truthy(self.resolve(value[0]))
        if fn == 'And':
            return all(truthy(self.resolve(v)) for v in value)
        if fn == 'Or':
            return any(truthy(self.resolve(v)) for v in value)
        if fn == 'Join':
            separator, items = value
            return str(separator).join(str(v) for v in self.resolve(items))
        if fn == 'Select':
            index, items = value
            return self.resolve(items)[int(self.resolve(index))]
        if fn == 'Split':
            separator, text = value
            return str(self.resolve(text)).split(separator)
        if fn == 'Base64':
            return base64.b64encode(str(self.resolve(value)).encode()).decode()
        if fn == 'GetAZs':
            return [f'{self.region}{zone}' for zone in 'abc']
        if fn == 'Length':
            return len(self.resolve(value))
        if fn == 'ToJsonString':
            return json.dumps(self.resolve(value), separators=(',', ':'))
        raise TemplateError(f'Fn::{fn} is not supported by the local stack')

    def _ref(self, name: str) -> Any:
        pseudo = {'AWS::Region': self.region, 'AWS::AccountId': self.account_id, 'AWS::StackName': self.stack_name,
                  'AWS::Partition': 'aws', 'AWS::URLSuffix': 'amazonaws.com', 'AWS::NotificationARNs': [],
                  'AWS::StackId': f'arn:aws:cloudformation:{self.region}:{self.account_id}:stack/{self.stack_name}/local'}
        if name == 'AWS::NoValue':
            return self._NO_VALUE
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self.ref(name)

    def _sub(self, value: Any) -> str:
        text, variables = (value, {}) if isinstance(value, str) else (value[0], value[1] if len(value) > 1 else {})
        variables = {k: self.resolve(v) for k, v in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith('!'):  # ${!Literal} stays as ${Literal}
                return '${' + name[1:] + '}'
            if name in variables:
                return str(variables[name])
            if '.' in name and not name.startswith('AWS::'):
                logical_id, attribute = name.split('.', 1)
                return self.get_att(logical_id, attribute)
            return str(self._ref(name))

        return PLACEHOLDER.sub(replace, text)

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conditions = self.document.get('Conditions') or {}
            if name not in conditions:
                raise TemplateError(f'Condition {name!r} is not defined')
            self._conditions[name] = truthy(self.resolve(conditions[name]))
        return self._conditions[name]

    def _resource(self, logical_id: str) -> dict[str, Any]:
        try:
            return self.resources[logical_id]
        except KeyError:
            raise TemplateError(f'{logical_id!r} is neither a parameter nor a resource of the template') from None

    def _properties(self, logical_id: str) -> dict[str, Any]:
        return self._resource(logical_id).get('Properties') or {}

    def _of_type(self, kind: str) -> Iterator[str]:
        for logical_id, resource in self.resources.items():
            if resource.get('Type') == kind and self._included(resource):
                yield logical_id

    def _included(self, resource: dict[str, Any]) -> bool:
        return 'Condition' not in resource or self.condition(resource['Condition'])

    def _parameter_values(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        declared = self.document.get('Parameters') or {}
        unknown = set(overrides) - set(declared)
        if unknown:
            raise TemplateError(f'Unknown template parameters: {sorted(unknown)}')
        values: dict[str, Any] = {}
        for name, spec in declared.items():
            if name in overrides:
                value = overrides[name]
            elif 'Default' in spec:
                value = spec['Default']
            else:
                raise TemplateError(f'Template parameter {name!r} has no default; pass it as a parameter')
            values[name] = _parameter_value(name, spec, value)
        return values


def _parameter_value(name: str, spec: Mapping[str, Any], value: Any) -> Any:
    kind = spec.get('Type', 'String')
    if kind in ('CommaDelimitedList', 'List<Number>') or kind.startswith('List<'):
        items = value if isinstance(value, list) else [v.strip() for v in str(value).split(',')]
        return [str(v) for v in items]
    text = env_string(value)  # CloudFormation parameters are strings, Numbers included
    allowed = spec.get('AllowedValues')
    if allowed is not None and text not in [env_string(v) for v in allowed]:
        raise TemplateError(f'Parameter {name}={text!r} is not one of {allowed}')
    if kind == 'Number':
        number = float(text)
        if 'MinValue' in spec and number < float(spec['MinValue']):
            raise TemplateError(f'Parameter {name}={text} is below its MinValue {spec["MinValue"]}')
        if 'MaxValue' in spec and number > float(spec['MaxValue']):
            raise TemplateError(f'Parameter {name}={text} is above its MaxValue {spec["MaxValue"]}')
    return text


def env_string(value: Any) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() == 'true'
    return bool(value)
