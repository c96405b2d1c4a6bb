"""How a stored job is shown to its owner."""

from __future__ import annotations

from vidgen import ids
from vidgen.models import JobErrorView, JobOutput, JobTiming, JobView, ProviderOutputFacts, ProviderRef
from vidgen.store.jobs import Job, StoredOutput
from vidgen.store.media import bucket_origin, presigned_url


def job_view(job: Job) -> JobView:
    return JobView(
        id=job.id,
        status=job.status,
        model=job.model,
        kind=job.kind,
        prompt=job.prompt,
        params=job.params,
        credits=job.credits,
        refunded=job.refunded,
        outputs=[_output(o) for o in job.outputs],
        error=JobErrorView(**job.error) if job.error else None,
        provider=ProviderRef(name=job.provider, task_id=job.provider_task_id),
        created_at=ids.iso(job.created_at),
        updated_at=ids.iso(job.updated_at),
        completed_at=ids.iso(job.completed_at) if job.completed_at else None,
        metadata=job.metadata,
        storyboard_id=job.storyboard_id,
        api_key_id=job.api_key_id,
        timing=job_timing(job),
        started_at=ids.iso(job.started_at) if job.started_at else None,
    )


def job_timing(job: Job) -> JobTiming:
    """Where a job's time went: waiting for the provider to take it, then until it ended."""
    def span(start: float | None, end: float | None) -> float | None:
        return round(end - start, 3) if start is not None and end is not None else None

    return JobTiming(queued_seconds=span(job.created_at, job.started_at),
                     processing_seconds=span(job.started_at, job.completed_at),
                     total_seconds=span(job.created_at, job.completed_at))


def results_origin() -> str:
    """Where the URLs of job outputs point (scheme://host[:port]): pages allow media from there."""
    return bucket_origin()


def _output(stored: StoredOutput) -> JobOutput:
    return JobOutput(
        url=presigned_url(stored.key), content_type=stored.content_type, bytes=stored.bytes, media=stored.media,
        poster_url=presigned_url(stored.poster_key) if stored.poster_key else None,
        thumbnail_url=presigned_url(stored.thumbnail_key) if stored.thumbnail_key else None,
        note=stored.note,
        provider_facts=ProviderOutputFacts(**stored.provider_facts) if stored.provider_facts else None,
    )
