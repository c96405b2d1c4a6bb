"""Execution roles for the local stack: derived from template.yaml by SAM's own translator, created in moto's
IAM, and assumed through STS, so each function's AWS calls carry its own role's credentials.

`derive_roles()` runs `samtranslator` (the library `sam validate` and `sam deploy` run) over the template and
reads the `AWS::IAM::Role` resources it generates: the inline `Statement`s, the expanded SAM policy
templates and the managed policy ARNs it adds (AWSLambdaBasicExecutionRole, the X-Ray policy for
`Tracing: Active`). Which role a function or state machine runs as is read from the generated resource's
`Role`/`RoleArn`, never from a naming convention. Intrinsics in the policies are then resolved against the
local stack (the same `LocalTemplate` that names the table, bucket and secrets), so a role grants exactly
the ARNs the local resources have.

`create_roles()` puts them into moto's IAM (managed policies keep their real AWS documents: moto ships them)
and `assume_roles()` hands out one set of STS credentials per role, as the Lambda service and Step Functions
do when they assume an execution role. The local endpoint then refuses what a role does not grant
(`vidgen_local.patches`, the IAM patches).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vidgen_local.template import LocalTemplate, TemplateError

# Properties that point at local code. SAM CLI's validator replaces them with an S3 URI before translating,
# because the translator accepts only S3 locations; they play no part in the roles.
_LOCAL_URI_PROPERTIES = {'AWS::Serverless::Function': 'CodeUri', 'AWS::Serverless::LayerVersion': 'ContentUri',
                         'AWS::Serverless::StateMachine': 'DefinitionUri', 'AWS::Serverless::Api': 'DefinitionUri',
                         'AWS::Serverless::HttpApi': 'DefinitionUri'}
# The service principal each kind of resource assumes its role as.
_SERVICE_PRINCIPALS = {'AWS::Lambda::Function': 'lambda.amazonaws.com',
                       'AWS::StepFunctions::StateMachine': 'states.amazonaws.com'}
_ROLE_PROPERTY = {'AWS::Lambda::Function': 'Role', 'AWS::StepFunctions::StateMachine': 'RoleArn'}
ROLE_NAME_LIMIT = 64  # IAM's limit on a role name


@dataclass(frozen=True)
class RoleSpec:
    """One role as CloudFormation would create it from the translated template, intrinsics resolved."""

    logical_id: str  # in the translated template, e.g. SubmitFunctionRole
    name: str
    path: str
    trust_policy: dict[str, Any]
    inline_policies: dict[str, dict[str, Any]]  # PolicyName -> PolicyDocument
    managed_policy_arns: tuple[str, ...]
    account_id: str

    @property
    def arn(self) -> str:
        return f'arn:aws:iam::{self.account_id}:role{self.path}{self.name}'

    def trusts(self, service: str) -> bool:
        """Whether the trust policy lets `service` (e.g. lambda.amazonaws.com) assume the role."""
        for statement in _as_list(self.trust_policy.get('Statement')):
            actions = _as_list(statement.get('Action'))
            principal = statement.get('Principal') or {}
            services = _as_list(principal.get('Service')) if isinstance(principal, dict) else []
            if statement.get('Effect') == 'Allow' and {'sts:AssumeRole', 'sts:*', '*'} & set(actions) \
                    and (service in services or principal == '*'):
                return True
        return False


@dataclass(frozen=True)
class TemplateRoles:
    roles: dict[str, RoleSpec]  # role logical id -> role
    assignments: dict[str, str] = field(default_factory=dict)  # function / state machine logical id -> role id

    def role_of(self, logical_id: str) -> RoleSpec:
        try:
            return self.roles[self.assignments[logical_id]]
        except KeyError:
            raise TemplateError(f'{logical_id} has no execution role in the translated template') from None


def sam_transform(template: LocalTemplate, policy_loader: Any) -> dict[str, Any]:
    """The CloudFormation template SAM would deploy, intrinsics left in place.

    `policy_loader.load()` maps AWS managed policy names to ARNs, asked only when the template names a managed
    policy by name; SAM's own `ManagedPolicyLoader(iam_client)` is what `sam deploy` passes."""
    import boto3
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.arn_generator import ArnGenerator
    from samtranslator.translator.translator import Translator
    from samtranslator.utils.py27hash_fix import to_py27_compatible_template, undo_mark_unicode_str_in_template

    document = copy.deepcopy(template.document)
    for resource in (document.get('Resources') or {}).values():
        key = _LOCAL_URI_PROPERTIES.get(resource.get('Type', ''))
        props = resource.get('Properties') or {}
        if key and isinstance(props.get(key), str) and not props[key].startswith('s3://'):
            props[key] = f's3://vidgen-local-code/{props[key]}'
    parameters = {**template.parameters, 'AWS::Region': template.region, 'AWS::AccountId': template.account_id,
                  'AWS::StackName': template.stack_name, 'AWS::Partition': 'aws', 'AWS::URLSuffix': 'amazonaws.com'}
    saved_region = ArnGenerator.BOTO_SESSION_REGION_NAME
    ArnGenerator.BOTO_SESSION_REGION_NAME = template.region  # else the translator asks boto3's session for one
    try:
        # What samtranslator's transform() does, with a session in the stack's region: SAM CLI passes one too,
        # and without it the translator asks boto3's default session, which may have no region here.
        to_py27_compatible_template(document, parameters)
        translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=template.region))
        translated = translator.translate(document, parameter_values=parameters,
                                          get_managed_policy_map=policy_loader.load)
        return undo_mark_unicode_str_in_template(translated)
    except InvalidDocumentException as exc:
        causes = '; '.join(str(cause) for cause in exc.causes)
        raise TemplateError(f'SAM cannot translate the template: {causes}') from exc
    finally:
        ArnGenerator.BOTO_SESSION_REGION_NAME = saved_region


def derive_roles(template: LocalTemplate, policy_loader: Any) -> TemplateRoles:
    """Every execution role of the template's functions and state machines, resolved for the local stack.

    Resolve after the secrets exist: `!Ref` of a secret is its ARN, which moto assigns."""
    translated = sam_transform(template, policy_loader)
    resources: dict[str, dict[str, Any]] = translated.get('Resources') or {}
    roles: dict[str, RoleSpec] = {}
    assignments: dict[str, str] = {}
    for logical_id, resource in resources.items():
        kind = resource.get('Type')
        if kind not in _ROLE_PROPERTY:
            continue
        role_ref = (resource.get('Properties') or {}).get(_ROLE_PROPERTY[kind])
        role_id = _role_logical_id(role_ref, resources)
        if role_id is None:
            raise TemplateError(f'{logical_id}: its role {role_ref!r} is not a role of this template; '
                                'the local stack can enforce only roles the template defines')
        if role_id not in roles:
            roles[role_id] = _role_spec(template, role_id, resources[role_id])
        if not roles[role_id].trusts(_SERVICE_PRINCIPALS[kind]):
            raise TemplateError(f'{logical_id}: role {role_id} does not trust {_SERVICE_PRINCIPALS[kind]}, so '
                                'AWS could not assume it for this resource')
        assignments[logical_id] = role_id
    return TemplateRoles(roles, assignments)


def _role_logical_id(reference: Any, resources: Mapping[str, Any]) -> str | None:
    if isinstance(reference, dict) and 'Fn::GetAtt' in reference:
        target = reference['Fn::GetAtt']
        logical_id, attribute = target if isinstance(target, list) else str(target).split('.', 1)
        if attribute == 'Arn' and resources.get(logical_id, {}).get('Type') == 'AWS::IAM::Role':
            return logical_id
    return None


def _role_spec(template: LocalTemplate, logical_id: str, resource: dict[str, Any]) -> RoleSpec:
    props = template.resolve(resource.get('Properties') or {})
    unsupported = sorted(set(props) & {'PermissionsBoundary'})
    if unsupported:
        raise TemplateError(f'{logical_id}: {unsupported} is not enforced by the local stack')
    name = str(props.get('RoleName') or f'{template.stack_name}-{logical_id}')[:ROLE_NAME_LIMIT]
    inline = {str(policy['PolicyName']): policy['PolicyDocument'] for policy in props.get('Policies') or []}
    return RoleSpec(logical_id=logical_id, name=name, path=str(props.get('Path', '/')),
                    trust_policy=props['AssumeRolePolicyDocument'], inline_policies=inline,
                    managed_policy_arns=tuple(str(arn) for arn in props.get('ManagedPolicyArns') or ()),
                    account_id=template.account_id)


def create_roles(roles: TemplateRoles, iam: Any) -> None:
    """Create each role in moto's IAM with its inline policies and managed policy attachments."""
    for role in roles.roles.values():
        iam.create_role(RoleName=role.name, Path=role.path, AssumeRolePolicyDocument=json.dumps(role.trust_policy))
        for policy_name, document in role.inline_policies.items():
            iam.put_role_policy(RoleName=role.name, PolicyName=policy_name,
                                PolicyDocument=json.dumps(_versioned(role, policy_name, document)))
        for arn in role.managed_policy_arns:
            try:
                iam.attach_role_policy(RoleName=role.name, PolicyArn=arn)
            except iam.exceptions.NoSuchEntityException as exc:
                raise TemplateError(f'{role.logical_id}: managed policy {arn} is unknown to the local IAM') from exc


@dataclass(frozen=True)
class RoleCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str

    def environment(self) -> dict[str, str]:
        """The variables the Lambda runtime sets for a function's role (what boto3 reads)."""
        return {'AWS_ACCESS_KEY_ID': self.access_key_id, 'AWS_SECRET_ACCESS_KEY': self.secret_access_key,
                'AWS_SESSION_TOKEN': self.session_token}


def assume_roles(roles: TemplateRoles, sts: Any, session_names: Mapping[str, str]) -> dict[str, RoleCredentials]:
    """Function / state machine logical id -> credentials of a session of its role, named as Lambda names it
    (the function's name), so a refusal says which function was refused."""
    credentials = {}
    for logical_id, role_id in roles.assignments.items():
        session = session_names.get(logical_id, logical_id)[:64]
        issued = sts.assume_role(RoleArn=roles.roles[role_id].arn, RoleSessionName=session)['Credentials']
        credentials[logical_id] = RoleCredentials(issued['AccessKeyId'], issued['SecretAccessKey'],
                                                  issued['SessionToken'])
    return credentials


def _versioned(role: RoleSpec, policy_name: str, document: dict[str, Any]) -> dict[str, Any]:
    """The document with a Version, which moto requires. SAM writes the policies of a `Statement` list
    without one, and IAM then reads them as version 2008-10-17, whose only difference is that `${...}`
    policy variables stay literal text: a document without a Version that contains one is refused here
    rather than evaluated differently from AWS."""
    if 'Version' in document:
        return document
    if '${' in json.dumps(document):
        raise TemplateError(f'{role.logical_id}.{policy_name} has no Version, so AWS reads its ${{...}} literally; '
                            'add Version: 2012-10-17')
    return {'Version': '2012-10-17', **document}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
