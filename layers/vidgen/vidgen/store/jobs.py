"""Job records in DynamoDB, and the only ways a job's state may change.

Every transition is a conditional write on the job's current status, so two actors racing to settle the
same job (a callback, the poll loop, the sweep, a cancel) cannot both win. Transitions that end a job
also release the owner's active-job slot in the same transaction, and a failure also refunds: see
`vidgen.store.ledger`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from vidgen import ids
from vidgen.errors import NotFoundError, StoreError
from vidgen.store import usage
from vidgen.store.pages import PageKey
from vidgen.store.table import (
    SWEEP_INDEX,
    USER_JOBS_INDEX,
    job_key,
    plain,
    storable,
    table,
)

# A job still holds its credits and a slot of its user's active jobs in these statuses (the API's statuses
# are vidgen.models.JobStatus). Kept here, not with the API models, so the store never imports pydantic.
ACTIVE_STATUSES: tuple[str, ...] = ('queued', 'running')


@dataclass
class StoredOutput:
    key: str
    content_type: str
    bytes: int
    # Set by the media step: the facts it read, the keys of the poster (videos) and thumbnail stored beside
    # the result, and why one of them is missing.
    media: dict[str, Any] | None = None
    poster_key: str | None = None
    thumbnail_key: str | None = None
    note: str | None = None
    provider_facts: dict[str, Any] | None = None  # what the provider reported about the file (TaskOutput)


@dataclass
class Job:
    id: str
    owner: str
    status: str
    model: str
    provider: str
    provider_model: str
    kind: str
    prompt: str
    params: dict[str, Any]
    credits: int
    created_at: float
    updated_at: float
    deadline_at: float
    negative_prompt: str | None = None
    # Input images: 's3://' keys of uploaded data URIs, or the client's https URLs, as given.
    image: str | None = None
    end_image: str | None = None
    reference_images: list[str] = field(default_factory=list)
    webhook_url: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    request_hash: str | None = None
    storyboard_id: str | None = None  # set on a storyboard's scene jobs
    provider_task_id: str | None = None
    task_token: str | None = None
    outputs: list[StoredOutput] = field(default_factory=list)
    error: dict[str, str] | None = None
    refunded: bool = False
    completed_at: float | None = None
    # Usage: the API key that submitted the job, the UTC day it is counted under (a storyboard's scenes count
    # under the storyboard's day, when they were paid for) and what the provider charges for it.
    api_key_id: str | None = None
    usage_day: str | None = None
    provider_cost_micro_usd: int = 0
    # When the provider accepted the task (queued -> running): splits the job's time into queued and processing.
    started_at: float | None = None

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> 'Job':
        data = plain(item)
        known = {name for name in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        values['outputs'] = [StoredOutput(**o) for o in data.get('outputs', [])]
        return cls(**values)

    def to_item(self) -> dict[str, Any]:
        item = {k: v for k, v in asdict(self).items() if v is not None}
        item.update(job_key(self.id))
        item['created_key'] = f'{self.created_at:017.6f}#{self.id}'
        # Active jobs carry the sparse Sweep index's hash key; `sweep_at` is set by whoever knows when the
        # job next needs attention (`put_item_op` at submit, the transitions after that).
        item['sweep_status'] = self.status
        stored: dict[str, Any] = storable(item)
        return stored


def usage_cell(job: Job) -> usage.Cell:
    """The usage cell a job is counted in, from its submit to its end."""
    duration = job.params.get('duration')
    return usage.Cell(day=job.usage_day or ids.day(job.created_at), model=job.model, kind=job.kind,
                      type=usage.type_of(job.kind),
                      duration=duration if isinstance(duration, int) and not isinstance(duration, bool) else None,
                      api_key_id=job.api_key_id)


def usage_ending(job: Job, *, status: str, completed_at: float, refunded: bool,
                 outputs: list[dict[str, Any]]) -> usage.Delta:
    """What ending `job` as `status` adds to its cell: a success its outputs' bytes, its provider cost and
    its processing time (submit to result); a refund its credits."""
    if status != 'succeeded':
        return usage.ended(status, refunded=job.credits if refunded else 0)
    return usage.ended(status, output_bytes=sum(int(o.get('bytes', 0)) for o in outputs),
                       cost_micro_usd=job.provider_cost_micro_usd, seconds=completed_at - job.created_at)


def get_job(job_id: str, *, consistent: bool = True) -> Job:
    response = table().get_item(Key=job_key(job_id), ConsistentRead=consistent)
    item = response.get('Item')
    if item is None:
        raise NotFoundError(f'No job {job_id!r}.')
    return Job.from_item(item)


def find_job(job_id: str) -> Job | None:
    try:
        return get_job(job_id)
    except NotFoundError:
        return None


def put_item_op(job: Job, sweep_at: float) -> dict[str, Any]:
    """The transaction item that creates a job (fails if the id exists)."""
    item = job.to_item()
    item['sweep_at'] = storable(float(int(sweep_at)))
    return {'Put': {'TableName': table().name, 'Item': item, 'ConditionExpression': 'attribute_not_exists(PK)'}}


def _update(job_id: str, *, set_: dict[str, Any], remove: tuple[str, ...] = (), condition: str,
            values: dict[str, Any] | None = None, set_once: dict[str, Any] | None = None) -> Job | None:
    """One conditional update; returns the new job, or None when the condition did not hold. `set_once`
    attributes keep the value they already have."""
    once = set_once or {}
    names = {f'#{k}': k for k in (*set_, *once)} | {f'#{k}': k for k in remove} | {'#status': 'status'}
    expression = 'SET ' + ', '.join([f'#{k} = :{k}' for k in set_] + [f'#{k} = if_not_exists(#{k}, :{k})' for k in once])
    if remove:
        expression += ' REMOVE ' + ', '.join(f'#{k}' for k in remove)
    expr_values = {f':{k}': storable(v) for k, v in {**set_, **once}.items()} | storable(values or {})
    try:
        response = table().update_item(
            Key=job_key(job_id), UpdateExpression=expression, ConditionExpression=condition,
            ExpressionAttributeNames=names, ExpressionAttributeValues=expr_values, ReturnValues='ALL_NEW',
        )
    except ClientError as exc:
        if exc.response['Error']['Code'] == 'ConditionalCheckFailedException':
            return None
        raise StoreError('The database refused a job update; try again.') from exc
    return Job.from_item(response['Attributes'])


def record_task_token(job_id: str, task_token: str, now: float) -> Job | None:
    """Remember where to send the callback's result; only while the job is active."""
    return _update(job_id, set_={'task_token': task_token, 'updated_at': now},
                   condition='#status IN (:queued, :running)', values={':queued': 'queued', ':running': 'running'})


def claim_task_token(job_id: str) -> str | None:
    """Take the job's task token away so that exactly one caller sends it; None if already taken."""
    try:
        response = table().update_item(
            Key=job_key(job_id), UpdateExpression='REMOVE #task_token',
            ConditionExpression='attribute_exists(#task_token) AND #status IN (:queued, :running)',
            ExpressionAttributeNames={'#task_token': 'task_token', '#status': 'status'},
            ExpressionAttributeValues={':queued': 'queued', ':running': 'running'}, ReturnValues='UPDATED_OLD',
        )
    except ClientError as exc:
        if exc.response['Error']['Code'] == 'ConditionalCheckFailedException':
            return None
        raise StoreError('The database refused a job update; try again.') from exc
    token = response['Attributes'].get('task_token')
    return str(token) if token is not None else None


def mark_running(job_id: str, task_id: str, now: float, sweep_at: float) -> Job | None:
    """queued -> running with the provider's task id. Idempotent for a retried create of the same task."""
    return _update(
        job_id,
        set_={'status': 'running', 'provider_task_id': task_id, 'updated_at': now,
              'sweep_status': 'running', 'sweep_at': float(int(sweep_at))},
        set_once={'started_at': now},
        condition='#status = :queued OR (#status = :running AND #provider_task_id = :task_id)',
        values={':queued': 'queued', ':running': 'running', ':task_id': task_id},
    )


def defer_sweep(job_id: str, status: str, sweep_at: float) -> Job | None:
    """Push an active job's next sweep check later (after the sweep restarted or checked it)."""
    return _update(job_id, set_={'sweep_at': float(int(sweep_at))}, condition='#status = :status',
                   values={':status': status})


def settle_op(job: Job, *, status: str, now: float, extra: dict[str, Any]) -> dict[str, Any]:
    """The transaction item that ends an active job (succeeded, failed or canceled).

    The condition on the active statuses is what makes settling happen once: the ledger and the
    owner's active-job count change in the same transaction, or not at all.
    """
    set_ = {'status': status, 'updated_at': now, 'completed_at': now, **extra}
    names = {f'#{k}': k for k in set_} | {'#sweep_status': 'sweep_status', '#sweep_at': 'sweep_at',
                                          '#task_token': 'task_token'}
    return {'Update': {
        'TableName': table().name,
        'Key': job_key(job.id),
        'UpdateExpression': 'SET ' + ', '.join(f'#{k} = :{k}' for k in set_)
                            + ' REMOVE #sweep_status, #sweep_at, #task_token',
        'ConditionExpression': '#status IN (:queued, :running)',
        'ExpressionAttributeNames': names,
        'ExpressionAttributeValues': {f':{k}': storable(v) for k, v in set_.items()}
                                     | {':queued': 'queued', ':running': 'running'},
    }}


def outputs_value(outputs: list[StoredOutput]) -> list[dict[str, Any]]:
    return [asdict(o) for o in outputs]


def list_user_jobs(owner: str, *, status: str | None, limit: int, cursor: PageKey | None) -> tuple[list[Job], PageKey | None]:
    """The owner's jobs, newest first, from the UserJobs index; a status filter keeps reading pages
    until `limit` jobs match or the index ends."""
    jobs: list[Job] = []
    start_key = cursor
    while len(jobs) < limit:
        kwargs: dict[str, Any] = {
            'IndexName': USER_JOBS_INDEX, 'KeyConditionExpression': Key('owner').eq(owner),
            'ScanIndexForward': False, 'Limit': limit - len(jobs),
        }
        if status:
            kwargs['FilterExpression'] = '#status = :status'
            kwargs['ExpressionAttributeNames'] = {'#status': 'status'}
            kwargs['ExpressionAttributeValues'] = {':status': status}
        if start_key:
            kwargs['ExclusiveStartKey'] = start_key
        response = table().query(**kwargs)
        jobs.extend(Job.from_item(item) for item in response.get('Items', []))
        start_key = response.get('LastEvaluatedKey')
        if not start_key:
            break
    return jobs, start_key


def all_job_ids_of(owner: str) -> list[str]:
    """Every job id of the owner, from the UserJobs index (reconciliation; read each job again for its
    current state, the index may lag)."""
    kwargs: dict[str, Any] = {'IndexName': USER_JOBS_INDEX, 'KeyConditionExpression': Key('owner').eq(owner),
                              'ProjectionExpression': 'PK'}
    found: list[str] = []
    while True:
        response = table().query(**kwargs)
        found.extend(str(item['PK']).removeprefix('JOB#') for item in response.get('Items', []))
        if 'LastEvaluatedKey' not in response:
            return found
        kwargs['ExclusiveStartKey'] = response['LastEvaluatedKey']


def jobs_needing_attention(status: str, now: float, limit: int) -> list[str]:
    """Ids of active jobs in `status` whose `sweep_at` has passed, from the sparse Sweep index."""
    response = table().query(
        IndexName=SWEEP_INDEX,
        KeyConditionExpression=Key('sweep_status').eq(status) & Key('sweep_at').lte(storable(float(int(now)))),
        Limit=limit,
    )
    return [str(item['PK']).removeprefix('JOB#') for item in response.get('Items', [])]
