"""Kie.ai's Veo 3.1 API (docs/providers/kie.md §2): generate, record-info, the 1080p fetch, callbacks."""

from __future__ import annotations

from typing import Any, Mapping

from vidgen.errors import (
    CallbackRejectedError,
    GenerationFailedError,
    ProviderContentPolicyError,
    ProviderNotFoundError,
    ProviderRejectedError,
    ProviderUnavailableError,
)
from vidgen.providers.base import (
    CallbackHint,
    GenerationRequest,
    ImageInput,
    ProviderTask,
    TaskOutput,
    TaskState,
)
from vidgen.providers.kie_client import KieProvider
from vidgen.providers.kie_common import (
    callback_task_id,
    failure_for,
    parse_url_list,
    task_id_from,
    verify_callback,
)

GENERATION_TYPES = {
    't2v': 'TEXT_2_VIDEO',
    'i2v': 'FIRST_AND_LAST_FRAMES_2_VIDEO',
    'flf2v': 'FIRST_AND_LAST_FRAMES_2_VIDEO',
    'ref2v': 'REFERENCE_2_VIDEO',
}
_FAILED_FLAGS = (2, 3)  # 2 failed, 3 created but failed upstream
_CALLBACK_FAILURES = (400, 422, 500, 501)
# Answers of get-1080p-video that mean "not ready yet" rather than a broken call.
_HD_NOT_READY = (ProviderRejectedError, ProviderContentPolicyError, ProviderNotFoundError, GenerationFailedError)


class KieVeoProvider(KieProvider):
    name = 'kie-veo'

    def create_task(self, request: GenerationRequest, callback_url: str | None) -> str:
        urls = [self._kie.image_url(request, image, slot) for slot, image in input_images(request)]
        body = generate_body(request, urls, callback_url)
        return task_id_from(self._kie.call('POST', '/api/v1/veo/generate', json_body=body))

    def get_task(self, task_id: str, request: GenerationRequest) -> ProviderTask:
        data = self._kie.call('GET', '/api/v1/veo/record-info', params={'taskId': task_id}, operation='status')
        if not isinstance(data, dict):
            raise ProviderUnavailableError('Kie.ai answered a Veo status query without a record; will retry.')
        flag = _as_flag(data.get('successFlag'))
        raw_status = f'successFlag={flag}'
        if flag in _FAILED_FLAGS:
            failure = failure_for(data.get('errorCode'), data.get('errorMessage'))
            return ProviderTask(task_id, 'failed', failure=failure, raw_status=raw_status)
        if flag != 1:
            return ProviderTask(task_id, 'running', raw_status=raw_status)
        response = data['response'] if isinstance(data.get('response'), dict) else {}
        urls = parse_url_list(response.get('resultUrls'))
        if not urls:
            raise ProviderUnavailableError('Kie.ai reported a finished Veo video without its URL; will retry.')
        if request.params.get('resolution') == '1080p' and response.get('resolution') != '1080p':
            hd_url = self._hd_url(task_id)
            if hd_url is None:
                # The 1080p render takes a minute or two more; the poll loop comes back later.
                return ProviderTask(task_id, 'running', raw_status='1080p-pending')
            urls = [hd_url]
            response = {**response, 'resolution': '1080p'}
        resolution = response.get('resolution')
        outputs = tuple(TaskOutput(url, 'video/mp4', resolution=resolution if isinstance(resolution, str) else None)
                        for url in urls)
        return ProviderTask(task_id, 'succeeded', outputs=outputs, raw_status=raw_status)

    def parse_callback(self, body: Any, headers: Mapping[str, str]) -> CallbackHint:
        task_id = callback_task_id(body)
        if task_id is None or not isinstance(body, dict):
            raise CallbackRejectedError('The callback could not be verified.')
        verify_callback(body, headers, self._webhook_key)
        code = body.get('code')
        claimed: TaskState | None = 'succeeded' if code == 200 else 'failed' if code in _CALLBACK_FAILURES else None
        return CallbackHint(task_id=task_id, claimed_state=claimed)

    def _hd_url(self, task_id: str) -> str | None:
        try:
            data = self._kie.call('GET', '/api/v1/veo/get-1080p-video', params={'taskId': task_id, 'index': 0},
                                  operation='status')
        except _HD_NOT_READY:
            return None
        url = data.get('resultUrl') if isinstance(data, dict) else None
        return url if isinstance(url, str) and url else None


def input_images(request: GenerationRequest) -> list[tuple[str, ImageInput]]:
    """The images this mode sends, in Veo's order: start then end frame, or the reference images.

    Checked before anything is uploaded, so a wrong request costs no upload.
    """
    if request.kind == 'ref2v':
        slots: list[tuple[str, ImageInput | None]] = [(f'ref{index}', image)
                                                      for index, image in enumerate(request.reference_images)]
    else:
        slots = [('start', request.image), ('end', request.end_image if request.kind == 'flf2v' else None)]
    images = [(slot, image) for slot, image in slots if image is not None]
    if request.kind in GENERATION_TYPES:
        _check_image_count(request.kind, [image.value for _, image in images])
    return images


def generate_body(request: GenerationRequest, image_urls: list[str], callback_url: str | None) -> dict[str, Any]:
    """The JSON of POST /api/v1/veo/generate for an already validated request."""
    generation_type = GENERATION_TYPES.get(request.kind)
    if generation_type is None:
        raise ProviderRejectedError(f'Veo does not do {request.kind!r} jobs.')
    _check_image_count(request.kind, image_urls)
    params = request.params
    body: dict[str, Any] = {
        'prompt': request.prompt,
        'model': request.provider_model,
        'generationType': generation_type,
        'enableTranslation': bool(params.get('enable_translation', True)),
    }
    if image_urls:
        body['imageUrls'] = image_urls
    if params.get('aspect_ratio'):
        # The current OpenAPI spells it aspect_ratio, older docs and clients aspectRatio: send both.
        body['aspect_ratio'] = body['aspectRatio'] = params['aspect_ratio']
    if params.get('seeds') is not None:
        body['seeds'] = int(params['seeds'])
    if params.get('watermark'):
        body['watermark'] = params['watermark']
    if callback_url:
        body['callBackUrl'] = callback_url
    return body


def _check_image_count(kind: str, image_urls: list[str]) -> None:
    allowed = {'t2v': (0, 0), 'i2v': (1, 1), 'flf2v': (2, 2), 'ref2v': (1, 3)}[kind]
    if not allowed[0] <= len(image_urls) <= allowed[1] or not all(image_urls):
        raise ProviderRejectedError(f'A {kind} Veo job needs {allowed[0]} to {allowed[1]} images; '
                                    f'{len(image_urls)} were given.')


def _as_flag(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
