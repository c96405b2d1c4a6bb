"""How a storyboard is shown to its owner, and the owner's reads."""

from __future__ import annotations

from vidgen import ids
from vidgen.errors import NotFoundError
from vidgen.jobs.queries import decode_cursor, encode_cursor
from vidgen.jobs.views import job_view
from vidgen.models import SceneView, StoryboardList, StoryboardProductView, StoryboardView
from vidgen.store import storyboards as store
from vidgen.store.jobs import Job
from vidgen.store.media import presigned_url


def storyboard_view(storyboard: store.Storyboard, jobs: dict[str, Job] | None = None) -> StoryboardView:
    sb = storyboard
    jobs = store.scene_jobs(sb) if jobs is None else jobs
    image = sb.product.get('image')
    scenes = [SceneView(index=s.index, title=s.title, description=s.description, prompt=s.prompt,
                        job_id=sb.job_ids[s.index],
                        job=job_view(jobs[sb.job_ids[s.index]]) if sb.job_ids[s.index] in jobs else None)
              for s in sb.scenes]
    refunded = sb.refunded_credits + sum(job.credits for job in jobs.values() if job.refunded)
    return StoryboardView(
        id=sb.id, status=sb.status,
        product=StoryboardProductView(
            name=sb.product['name'], description=sb.product['description'],
            image_url=(presigned_url(image[5:]) if image.startswith('s3://') else image) if image else None),
        model=sb.model, scene_count=sb.scene_count,
        scenes_source=sb.scenes_source,
        scenes_note=sb.scenes_note, scenes=scenes, credits=sb.credits, refunded_credits=refunded,
        created_at=ids.iso(sb.created_at), updated_at=ids.iso(sb.updated_at),
        completed_at=ids.iso(sb.completed_at) if sb.completed_at else None, metadata=sb.metadata,
    )


def get_storyboard(owner: str, storyboard_id: str) -> StoryboardView:
    storyboard = store.find(storyboard_id)
    if storyboard is None or storyboard.owner != owner:
        # Another user's storyboard is as invisible as one that does not exist.
        raise NotFoundError(f'No storyboard {storyboard_id!r}.')
    return storyboard_view(storyboard)


def list_storyboards(owner: str, *, limit: int, cursor: str | None) -> StoryboardList:
    found, last_key = store.list_for_owner(owner, limit=limit,
                                           cursor=decode_cursor(cursor, owner, ('storyboard_owner',)))
    return StoryboardList(storyboards=[storyboard_view(sb) for sb in found], next_cursor=encode_cursor(last_key))
