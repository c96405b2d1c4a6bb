"""Secret values, fetched from Secrets Manager by name and cached for five minutes.

Values never leave this module in a log line or an error message: callers get the value, and a missing
or malformed secret is reported by its name only.
"""

from __future__ import annotations

from typing import Any

from vidgen.errors import SecretUnavailableError

_MAX_AGE_SECONDS = 300


def get_secret_json(name: str) -> dict[str, Any]:
    # Imported on first use: the parameters utility brings its AppConfig, SSM and DynamoDB providers along,
    # and most requests are served from the five-minute cache of a warm environment anyway.
    from aws_lambda_powertools.utilities import parameters

    try:
        value = parameters.get_secret(name, transform='json', max_age=_MAX_AGE_SECONDS)
    except (parameters.exceptions.GetParameterError, parameters.exceptions.TransformParameterError) as exc:
        # Why it could not be read (an AccessDenied names the role, the action and the secret's ARN; AWS's
        # errors carry no secret value): callers that fall back quietly (the scene writer) would hide it.
        from vidgen.observability import logger

        reading = isinstance(exc, parameters.exceptions.GetParameterError)  # a decode error may quote the value
        logger.warning('secret not readable', secret=name, reason=str(exc) if reading else 'not valid JSON')
        raise SecretUnavailableError(f'The secret {name!r} is missing or is not a JSON object.') from exc
    if not isinstance(value, dict):
        raise SecretUnavailableError(f'The secret {name!r} is not a JSON object.')
    return value


def get_secret_field(name: str, field: str) -> str:
    value = get_secret_json(name).get(field)
    if not isinstance(value, str) or not value:
        raise SecretUnavailableError(f'The secret {name!r} has no {field!r} field.')
    return value
