"""The media step: each stored result checked, measured and given its poster and thumbnail.

It runs in the media function, the only one that carries the media layer (FFmpeg) and may read, write and
delete under `results/`; it touches neither the table nor the providers. The state machine runs it between
the copy (Finalize) and MarkSucceeded; the sweep calls it through `vidgen.jobs.media_calls`.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import IO, Any, cast

from vidgen.observability import MetricUnit, logger, metrics
from vidgen.store import jobs as job_store
from vidgen.store import media as media_store
from vidgen.store.jobs import StoredOutput


def inspect_outputs(job_id: str, kind: str, outputs: list[dict[str, Any]]) -> dict[str, Any]:
    """{'outputs': [...]} with each output's media facts and picture keys. Raises `UnplayableResultError`
    (the job fails; the DiscardResults step then deletes what was stored) or `MediaStorageError` (retried)."""
    from vidgen.media.inspect import inspect  # PyAV: imported by this step only

    inspected = []
    for index, stored in enumerate(StoredOutput(**o) for o in outputs):
        reader = media_store.result_reader(stored.key, stored.bytes)
        result = inspect(cast(IO[bytes], reader), kind)  # a seekable file-like reader: all PyAV calls
        poster_key, thumbnail_key = media_store.picture_keys(stored.key)
        inspected.append(replace(
            stored, media=result.media, note=result.note,
            poster_key=media_store.put_picture(poster_key, result.poster) if result.poster else None,
            thumbnail_key=media_store.put_picture(thumbnail_key, result.thumbnail) if result.thumbnail else None,
        ))
        if result.note:
            metrics.add_metric(name='PosterMissing', unit=MetricUnit.Count, value=1)
        logger.info('result inspected', job_id=job_id, index=index, media=result.media, note=result.note,
                    range_requests=reader.requests, bytes_read=reader.bytes_fetched, bytes=stored.bytes)
    return {'outputs': [asdict(o) for o in inspected]}


def discard_outputs(job_id: str, outputs: list[dict[str, Any]]) -> None:
    """Delete a failed job's stored results and their pictures (deleting a missing key is not an error)."""
    job = job_store.find_job(job_id)
    if job is not None and job.status == 'succeeded':  # the sweep finished it meanwhile: its results stay
        logger.info('results kept: the job succeeded meanwhile', job_id=job_id)
        return
    keys = [key for o in outputs for key in (o['key'], *media_store.picture_keys(o['key']))]
    media_store.discard_results(keys)
    logger.info('results discarded', job_id=job_id, keys=len(keys))
