"""Creates the template's resources in moto: tables, buckets, secrets, Lambda functions, state machines.

Everything is read from the resolved template. Secrets get their values the way CloudFormation would
make them (SecretString, or GenerateSecretString's template plus a generated key), then `local_values`
overlays fields such as the admin key or provider credentials. An overlay for a field the template's
secret does not declare is an error: it means the layer and the template disagree on the secret's shape.
"""

from __future__ import annotations

import io
import json
import secrets
import string
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vidgen_local.iam import TemplateRoles, create_roles, derive_roles
from vidgen_local.template import LocalTemplate, SecretSpec, TemplateError


@dataclass
class CreatedResources:
    tables: dict[str, str] = field(default_factory=dict)  # logical id -> table name
    buckets: list[str] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)  # logical id -> ARN
    state_machines: dict[str, str] = field(default_factory=dict)  # logical id -> ARN
    roles: TemplateRoles = field(default_factory=lambda: TemplateRoles({}))  # each function's execution role
    log_groups: list[str] = field(default_factory=list)
    alarms: list[str] = field(default_factory=list)  # alarm names


def generate_secret_value(spec: SecretSpec) -> dict[str, Any] | str:
    """The value CloudFormation would store: SecretString, or GenerateSecretString's output."""
    if spec.secret_string is not None:
        try:
            return json.loads(spec.secret_string)
        except json.JSONDecodeError:
            return spec.secret_string
    options = spec.generate or {}
    alphabet = ''
    if not options.get('ExcludeLowercase'):
        alphabet += string.ascii_lowercase
    if not options.get('ExcludeUppercase'):
        alphabet += string.ascii_uppercase
    if not options.get('ExcludeNumbers'):
        alphabet += string.digits
    if not options.get('ExcludePunctuation'):
        alphabet += string.punctuation
    if options.get('IncludeSpace'):
        alphabet += ' '
    alphabet = ''.join(c for c in alphabet if c not in options.get('ExcludeCharacters', ''))
    value = ''.join(secrets.choice(alphabet) for _ in range(int(options.get('PasswordLength', 32))))
    key = options.get('GenerateStringKey')
    if not key:
        return value
    document = json.loads(options.get('SecretStringTemplate') or '{}')
    document[key] = value
    return document


def secret_values(template: LocalTemplate, local_values: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """logical id -> the value to store; `local_values` is keyed by the function env var naming the secret."""
    env_refs: dict[str, str] = {}
    for spec in template.functions():
        env_refs.update({var: value for var, value in spec.environment.items() if var.endswith('_SECRET_NAME')})
    values: dict[str, Any] = {}
    for spec in template.secrets():
        value = generate_secret_value(spec)
        for var, overlay in local_values.items():
            if env_refs.get(var) not in (spec.name, template.ref(spec.logical_id)):
                continue
            if not isinstance(value, dict):
                raise TemplateError(f'{spec.logical_id} is not a JSON secret, but {var} needs fields {sorted(overlay)}')
            missing = set(overlay) - set(value)
            if missing:
                raise TemplateError(f'{spec.logical_id} (named by {var}) has no fields {sorted(missing)}')
            value.update(overlay)
        values[spec.logical_id] = value
    unknown = set(local_values) - set(env_refs)
    if unknown:
        raise TemplateError(f'No function environment variable {sorted(unknown)} names a secret')
    return values


def _stub_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w') as archive:
        archive.writestr('app.py', '# invocations are dispatched in-process by vidgen_local\n')
    return buffer.getvalue()


def create_all(template: LocalTemplate, client: Callable[[str], Any],
               local_secret_values: Mapping[str, Mapping[str, str]]) -> CreatedResources:
    """Create every resource; secrets first, so functions and roles see their real ARNs (Ref of a secret is
    its ARN), then the execution roles SAM would generate, then everything that runs as one of them.
    `client(service)` returns a boto3 client bound to moto."""
    from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader

    created = CreatedResources()
    for logical_id, value in secret_values(template, local_secret_values).items():
        name = template.physical_name(logical_id)
        text = value if isinstance(value, str) else json.dumps(value)
        arn = client('secretsmanager').create_secret(Name=name, SecretString=text)['ARN']
        template.bind(logical_id, Ref=arn, Id=arn)
        created.secrets[logical_id] = arn

    for table in template.tables():
        client('dynamodb').create_table(**table.create_table_kwargs())
        if table.ttl_attribute:
            client('dynamodb').update_time_to_live(
                TableName=table.name, TimeToLiveSpecification={'AttributeName': table.ttl_attribute, 'Enabled': True})
        created.tables[table.logical_id] = table.name

    for bucket in template.buckets():
        client('s3').create_bucket(Bucket=bucket)
        created.buckets.append(bucket)

    # Observability: the log groups with their retention, the failed-sweep queue, the alarm topic and its
    # subscriptions, the alarms and the dashboard, as CloudFormation would create them (moto checks their
    # shapes; nothing local publishes to them, see docs/local-cloud.md).
    for group in template.log_groups():
        client('logs').create_log_group(logGroupName=group.name)
        if group.retention_days is not None:
            client('logs').put_retention_policy(logGroupName=group.name, retentionInDays=group.retention_days)
        created.log_groups.append(group.name)
    for logical_id in template.queues():
        url = client('sqs').create_queue(QueueName=template.physical_name(logical_id))['QueueUrl']
        template.bind(logical_id, Ref=url)
    for logical_id in template.topics():
        arn = client('sns').create_topic(Name=template.physical_name(logical_id))['TopicArn']
        template.bind(logical_id, Ref=arn, TopicArn=arn)
    for subscription in template.subscriptions():
        client('sns').subscribe(TopicArn=subscription['TopicArn'], Protocol=subscription['Protocol'],
                                Endpoint=subscription['Endpoint'])
    for alarm in template.alarms():
        client('cloudwatch').put_metric_alarm(**alarm.kwargs)
        created.alarms.append(alarm.kwargs['AlarmName'])
    for name, body in template.dashboards():
        client('cloudwatch').put_dashboard(DashboardName=name, DashboardBody=body)

    created.roles = derive_roles(template, ManagedPolicyLoader(client('iam')))
    create_roles(created.roles, client('iam'))
    code = _stub_zip()
    for function in template.functions():
        # Registered so that ARNs resolve like in AWS; invocations never run this code (see patches.py).
        client('lambda').create_function(
            FunctionName=function.name, Runtime=function.runtime, Role=created.roles.role_of(function.logical_id).arn,
            Handler=function.handler,
            Code={'ZipFile': code}, Timeout=function.timeout, MemorySize=function.memory_size)

    for machine in template.state_machines():
        arn = client('stepfunctions').create_state_machine(
            name=machine.name, definition=machine.definition(), roleArn=created.roles.role_of(machine.logical_id).arn,
            type=machine.type)['stateMachineArn']
        if arn != machine.arn:
            raise TemplateError(f'{machine.logical_id}: moto created {arn}, the template resolves {machine.arn}')
        created.state_machines[machine.logical_id] = arn
    return created
