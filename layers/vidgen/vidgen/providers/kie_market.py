"""Kie.ai's Market API (docs/providers/kie.md §3): one createTask / recordInfo pair for many models.

Which Market model a job runs and what its `input` looks like is catalog data, not code:
- `provider_modes` maps a mode to the Market model id (`{"t2v": "kling-2.6/text-to-video", ...}`); the catalog
  resolves it when the job is submitted, so `request.provider_model` is already the model that runs.
- `provider_params` maps our names to the Market's `input` fields. A value is either the field name, or
  `{"name": field, "format": "string" | "list"}` (Kling's duration is the string "5"; one model takes
  `image_urls: [url]`, another `image_url: url`), or null to keep a parameter out of the input. Catalog
  parameters not listed are sent under their own name; the images (`image`, `end_image`,
  `reference_images`) are sent only where the map says.
"""

from __future__ import annotations

from typing import Any, Mapping

from vidgen.errors import CallbackRejectedError, ProviderRejectedError, ProviderUnavailableError
from vidgen.providers.base import CallbackHint, GenerationRequest, ProviderTask, TaskOutput, TaskState
from vidgen.providers.kie_client import KieProvider
from vidgen.providers.kie_common import (
    callback_record,
    callback_task_id,
    content_type_for,
    failure_for,
    parse_json_field,
    parse_url_list,
    task_id_from,
    verify_callback,
)

STATES: dict[str, TaskState] = {
    'waiting': 'pending',
    'queuing': 'pending',
    'generating': 'running',
    'success': 'succeeded',
    'fail': 'failed',
}
_VIDEO_MODES = ('t2v', 'i2v', 'flf2v', 'ref2v')
# A callback's code when its record carries no state: 200 is a success, 501 a failure.
_CALLBACK_CODE_STATES: dict[object, TaskState] = {200: 'succeeded', 501: 'failed'}


class KieMarketProvider(KieProvider):
    name = 'kie-market'

    def create_task(self, request: GenerationRequest, callback_url: str | None) -> str:
        renames = request.provider_params
        images = _images(request, renames)
        urls = {slot: [self._kie.image_url(request, image, f'{slot}{index}') for index, image in enumerate(group)]
                for slot, group in images.items()}
        body: dict[str, Any] = {'model': request.provider_model, 'input': market_input(request, renames, urls)}
        if callback_url:
            body['callBackUrl'] = callback_url
        return task_id_from(self._kie.call('POST', '/api/v1/jobs/createTask', json_body=body))

    def get_task(self, task_id: str, request: GenerationRequest) -> ProviderTask:
        data = self._kie.call('GET', '/api/v1/jobs/recordInfo', params={'taskId': task_id}, operation='status')
        if not isinstance(data, dict):
            raise ProviderUnavailableError('Kie.ai answered a Market status query without a record; will retry.')
        return task_from_record(task_id, data, request)

    def parse_callback(self, body: Any, headers: Mapping[str, str]) -> CallbackHint:
        task_id = callback_task_id(body)
        if task_id is None or not isinstance(body, dict):
            raise CallbackRejectedError('The callback could not be verified.')
        verify_callback(body, headers, self._webhook_key)
        state: TaskState | None = STATES.get(str((callback_record(body) or {}).get('state')))
        if state is None:
            state = _CALLBACK_CODE_STATES.get(body.get('code'))
        return CallbackHint(task_id=task_id, claimed_state=state)


def task_from_record(task_id: str, data: dict[str, Any], request: GenerationRequest) -> ProviderTask:
    """Map a recordInfo `data` (also the body of a callback) onto a provider-neutral task."""
    raw_state = str(data.get('state'))
    # A state we have never seen is treated as still working: the poll loop's deadline bounds it.
    state = STATES.get(raw_state, 'running')
    if state == 'failed':
        return ProviderTask(task_id, 'failed', failure=failure_for(data.get('failCode'), data.get('failMsg')),
                            raw_status=raw_state)
    if state != 'succeeded':
        return ProviderTask(task_id, state, raw_status=raw_state)
    urls = parse_url_list(parse_json_field(data.get('resultJson')).get('resultUrls'))
    if not urls:
        raise ProviderUnavailableError('Kie.ai reported a finished Market task without result URLs; will retry.')
    default_type = 'video/mp4' if request.kind in _VIDEO_MODES else None
    outputs = tuple(TaskOutput(url, content_type_for(url, default_type)) for url in urls)
    return ProviderTask(task_id, 'succeeded', outputs=outputs, raw_status=raw_state)


def market_input(request: GenerationRequest, renames: Mapping[str, Any],
                 image_urls: Mapping[str, list[str]]) -> dict[str, Any]:
    """The createTask `input` for a validated request, shaped by the catalog's `provider_params`."""
    values: dict[str, Any] = {'prompt': request.prompt, **request.params}
    if request.negative_prompt:
        values['negative_prompt'] = request.negative_prompt
    result: dict[str, Any] = {}
    for name, value in values.items():
        _put(result, name, value, renames.get(name, name))
    for slot, urls in image_urls.items():
        _put(result, slot, urls if slot == 'reference_images' else urls[0], renames[slot])
    return result


def _images(request: GenerationRequest, renames: Mapping[str, Any]) -> dict[str, list[Any]]:
    given = {'image': [request.image] if request.image else [],
             'end_image': [request.end_image] if request.end_image else [],
             'reference_images': list(request.reference_images)}
    images = {slot: group for slot, group in given.items() if group}
    for slot in images:
        if not renames.get(slot):
            # A catalog entry that lets an image through without saying where it goes is our bug.
            raise ProviderRejectedError(f'{request.model} has no Market field for {slot}; it cannot be sent.')
    return images


def _put(target: dict[str, Any], name: str, value: Any, rule: Any) -> None:
    if rule is None:
        return
    if isinstance(rule, str):
        target[rule] = value
        return
    field, fmt = rule.get('name', name), rule.get('format')
    if fmt == 'string':
        value = str(value)
    elif fmt == 'list':
        value = value if isinstance(value, list) else [value]
    target[field] = value
