"""Client notifications: when a job (or a storyboard) ends, POST it to its `webhook_url`, signed per Standard Webhooks.

Headers `webhook-id` (stable per job and outcome, so a receiver can drop repeats), `webhook-timestamp` and
`webhook-signature` (`v1,<base64 HMAC-SHA256>` of `id.timestamp.body` under the deployment's `whsec_`
secret). Only 2xx counts as delivered; 410 means the receiver wants no more; anything else raises
`WebhookDeliveryError`, which the state machine's Notify step retries with backoff for about a day.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from vidgen import ids
from vidgen.config import get_settings
from vidgen.errors import UnsafeUrlError, WebhookDeliveryError
from vidgen.netguard import check_url, pinned_session
from vidgen.observability import MetricUnit, logger, metrics
from vidgen.secrets import get_secret_field
from vidgen.store.jobs import Job

_TIMEOUT = (3.0, 10.0)


def signing_secret() -> str:
    return get_secret_field(get_settings().webhook_secret_name, 'key')


def notification(job: Job) -> tuple[str, str]:
    """The (webhook id, body) sent for a job that ended."""
    # The view is a pydantic model: imported by the one step that sends it, so the poller's other steps (and
    # its cold start) never import pydantic.
    from vidgen.jobs.views import job_view

    return message(job.id, f'job.{job.status}', job_view(job).model_dump(mode='json'))


def message(resource_id: str, type_: str, data: dict[str, Any]) -> tuple[str, str]:
    """A notification's (webhook id, body): the id is stable per resource and outcome, so repeats can be dropped."""
    body = {'type': type_, 'timestamp': ids.now_iso(), 'data': data}
    return f'{resource_id}.{type_.rsplit(".", 1)[-1]}', json.dumps(body, separators=(',', ':'))


def deliver(job: Job) -> bool:
    """Send the job's notification once. Returns False when there is nothing to send or the receiver asked
    for no more (410); raises `WebhookDeliveryError` when it should be tried again."""
    if not job.webhook_url or job.is_active:
        return False
    message_id, body = notification(job)
    return send(job.webhook_url, message_id, body)


def send(url: str, message_id: str, body: str) -> bool:
    """POST one signed notification (see the module docstring for the answers and what they mean)."""
    # Imported here: only jobs with a webhook_url need them, and the poller's other steps start without.
    import requests
    from standardwebhooks import Webhook

    local_mode = get_settings().allow_loopback_urls
    try:
        check_url(url, allow_loopback=local_mode, https_only=not local_mode)
    except UnsafeUrlError:
        logger.warning('webhook URL refused', message_id=message_id)
        return False
    sent_at = datetime.now(tz=timezone.utc)
    headers = {
        'content-type': 'application/json',
        'webhook-id': message_id,
        'webhook-timestamp': str(int(sent_at.timestamp())),
        'webhook-signature': Webhook(signing_secret()).sign(message_id, sent_at, body),
    }
    try:
        with pinned_session(allow_loopback=local_mode) as session:
            response = session.post(url, data=body.encode(), headers=headers, timeout=_TIMEOUT, allow_redirects=False)
    except UnsafeUrlError:
        # The name resolved somewhere else at connect time (rebinding): refused, and never worth retrying.
        logger.warning('webhook URL refused at connect time', message_id=message_id)
        return False
    except requests.RequestException as exc:
        raise WebhookDeliveryError('The webhook receiver could not be reached; it will be retried.') from exc
    if response.status_code == 410:
        logger.info('webhook receiver is gone', message_id=message_id)
        return False
    if not 200 <= response.status_code < 300:
        raise WebhookDeliveryError(f'The webhook receiver answered HTTP {response.status_code}; it will be retried.')
    metrics.add_metric(name='WebhookDelivered', unit=MetricUnit.Count, value=1)
    return True
