"""What every provider adapter offers, and the provider-neutral shapes it speaks in.

An adapter turns a validated generation request into the provider's wire protocol and back. It never
touches DynamoDB, S3 or Step Functions: the use cases in `vidgen.jobs` decide what a status means for a job
and its credits. Adapters raise only `vidgen.errors.Provider*Error`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Protocol

TaskState = Literal['pending', 'running', 'succeeded', 'failed']
TERMINAL_TASK_STATES: frozenset[str] = frozenset({'succeeded', 'failed'})


@dataclass(frozen=True)
class ImageInput:
    """An input image as the client gave it: an https URL or a `data:image/...;base64,` URI."""

    value: str

    @property
    def is_data_uri(self) -> bool:
        return self.value.startswith('data:')

    @property
    def base64_payload(self) -> str:
        """The raw base64 after the `data:...;base64,` prefix (what Kling wants)."""
        return self.value.split(',', 1)[1] if self.is_data_uri else ''

    @property
    def mime_type(self) -> str:
        if not self.is_data_uri:
            return ''
        return self.value[5:].split(';', 1)[0]


@dataclass(frozen=True)
class GenerationRequest:
    """A request the catalog has already validated and priced, ready for an adapter.

    `provider_model` is the provider's own model id (from the catalog); `params` holds the catalog
    parameters with defaults filled in (duration, aspect_ratio, mode, sound, ...); `provider_params` is the
    catalog's word on how this provider names and shapes them (Kie Market models), so adapters never read
    the catalog themselves.
    """

    job_id: str
    model: str
    provider_model: str
    kind: str
    prompt: str
    negative_prompt: str | None = None
    image: ImageInput | None = None
    end_image: ImageInput | None = None
    reference_images: tuple[ImageInput, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    provider_params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskOutput:
    url: str
    content_type: str | None = None
    # What the provider itself reports about the file, where it does (Kling: a video's duration; Kie's Veo:
    # its resolution); shown on the job beside what vidgen read from the file.
    duration_seconds: float | None = None
    resolution: str | None = None

    def reported_facts(self) -> dict[str, float | str] | None:
        facts = {'duration_seconds': self.duration_seconds, 'resolution': self.resolution}
        present = {k: v for k, v in facts.items() if v is not None}
        return present or None


@dataclass(frozen=True)
class TaskFailure:
    """Why the provider failed a task, as a job error (code from `vidgen.errors.JOB_ERROR_CODES`)."""

    code: str
    message: str
    provider_code: str | None = None


@dataclass(frozen=True)
class ProviderTask:
    """The provider's view of one task, mapped onto provider-neutral states."""

    task_id: str
    state: TaskState
    outputs: tuple[TaskOutput, ...] = ()
    failure: TaskFailure | None = None
    raw_status: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_TASK_STATES


@dataclass(frozen=True)
class AccountStatus:
    """What the cheapest authenticated call of a provider says about our account."""

    detail: str  # e.g. "2 resource packs online"
    credits_remaining: float | None = None  # where the provider tells it


@dataclass(frozen=True)
class CallbackHint:
    """What a callback claims. Never trusted: the caller re-fetches the task before acting on it."""

    task_id: str | None
    claimed_state: TaskState | None


class VideoProvider(Protocol):
    """One provider (or one API family of a provider)."""

    name: str

    def create_task(self, request: GenerationRequest, callback_url: str | None) -> str:
        """Create the task at the provider; return its task id."""
        ...

    def get_task(self, task_id: str, request: GenerationRequest) -> ProviderTask:
        """Fetch the task's current state: the only source of truth for a job's outcome."""
        ...

    def parse_callback(self, body: Any, headers: Mapping[str, str]) -> CallbackHint:
        """Read a callback body (already JSON-decoded) into a hint; raise `CallbackRejectedError` if it
        is not a callback of this provider at all."""
        ...

    def account_status(self) -> AccountStatus:
        """Prove the credentials with the provider's cheapest authenticated call (it costs nothing and
        creates nothing); raise a `Provider*Error` when they do not work."""
        ...
