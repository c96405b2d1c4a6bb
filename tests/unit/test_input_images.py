"""Input images against their model's rules, read from the header only."""

from __future__ import annotations

import base64
import struct

import pytest
from vidgen import catalog, images
from vidgen.errors import ImageRuleError, InvalidParametersError
from vidgen.models import JobRequest
from vidgen_local.images import png

KLING_RULES = catalog.get_model('kling-v2-6').raw['input_images']


def jpeg(width: int, height: int) -> bytes:
    """The head of a baseline JPEG: SOI, a JFIF APP0 and an SOF0 with the size (enough for a header reader)."""
    app0 = b'\xff\xe0' + struct.pack('>H', 16) + b'JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00'
    sof0 = b'\xff\xc0' + struct.pack('>HBHHB', 17, 8, height, width, 3) + b'\x01\x11\x00\x02\x11\x01\x03\x11\x01'
    return b'\xff\xd8' + app0 + sof0 + b'\xff\xd9'


def webp(width: int, height: int) -> bytes:
    vp8x = b'VP8X' + struct.pack('<I', 10) + b'\x00\x00\x00\x00' + (width - 1).to_bytes(3, 'little') + \
        (height - 1).to_bytes(3, 'little')
    return b'RIFF' + struct.pack('<I', 4 + len(vp8x)) + b'WEBP' + vp8x


def data_uri(raw: bytes, mime: str = 'image/png') -> str:
    return f'data:{mime};base64,' + base64.b64encode(raw).decode()


@pytest.mark.parametrize(('raw', 'fmt', 'size'), [
    (png(320, 200), 'png', (320, 200)), (jpeg(640, 480), 'jpeg', (640, 480)), (webp(1024, 576), 'webp', (1024, 576)),
    (b'GIF89a' + struct.pack('<HH', 30, 20) + b'\x00' * 8, 'gif', (30, 20)), (b'not an image at all', None, None),
])
def test_the_header_gives_the_real_format_and_size(raw, fmt, size):
    facts = images.data_uri_facts(data_uri(raw))
    assert facts.format == fmt and facts.bytes == len(raw)
    assert ((facts.width, facts.height) if size else (facts.width, facts.height)) == (size or (None, None))


def test_only_the_head_of_a_big_image_is_decoded():
    big = png(400, 400) + b'\x00' * (3 * images.HEAD_BYTES)  # trailing bytes are never decoded
    facts = images.data_uri_facts(data_uri(big))
    assert (facts.width, facts.height, facts.bytes) == (400, 400, len(big))


@pytest.mark.parametrize(('raw', 'message'), [
    (png(64, 64), 'is 64×64 px; kling-v2-6 needs a width of at least 300 px'),
    (png(320, 200), 'is 320×200 px; kling-v2-6 needs a height of at least 300 px'),
    (png(1000, 300), 'is 1000×300 px (width/height 3.33); kling-v2-6 takes width/height from 0.4 to 2.5 (1:2.5 to 2.5:1)'),
    (webp(400, 400), 'is a WebP file; kling-v2-6 takes PNG, JPEG'),
    (b'<svg xmlns="http://www.w3.org/2000/svg"/>', 'is not an image we can read; kling-v2-6 takes PNG, JPEG'),
    (png(400, 400) + b'\x00' * (10 * 1024 * 1024), 'is 10.0 MB; kling-v2-6 takes at most 10.0 MB'),
])
def test_each_rule_names_itself_and_the_image(raw, message):
    with pytest.raises(ImageRuleError) as caught:
        images.check_image(images.data_uri_facts(data_uri(raw)), KLING_RULES, 'kling-v2-6')
    assert str(caught.value) == message


def test_images_within_the_rules_pass():
    for raw in (png(300, 300), png(750, 300), jpeg(1920, 1080), png(300, 750)):
        images.check_image(images.data_uri_facts(data_uri(raw)), KLING_RULES, 'kling-v2-6')


def test_submit_refuses_a_bad_inline_image_naming_the_field_and_the_rule():
    request = JobRequest(model='kling-v2-6', prompt='x', image=data_uri(png(320, 320)), end_image=data_uri(png(64, 64)),
                         mode='pro')
    with pytest.raises(InvalidParametersError) as caught:
        catalog.resolve(request)
    assert caught.value.details['field'] == 'end_image'
    assert caught.value.message == 'end_image is 64×64 px; kling-v2-6 needs a width of at least 300 px.'
    refs = JobRequest(model='veo-3-1', prompt='x', reference_images=[data_uri(png(64, 64)), data_uri(b'junk' * 10)])
    with pytest.raises(InvalidParametersError) as caught:
        catalog.resolve(refs)
    assert caught.value.details['field'] == 'reference_images[1]'


def test_every_model_that_takes_images_publishes_its_rules_with_their_source():
    image_modes = {'i2v', 'flf2v', 'ref2v', 'i2i'}
    for spec in catalog.all_models():
        view = spec.public_view()
        if image_modes & set(spec.modes):
            rules = view['input_images']
            assert rules['formats'] and rules['max_bytes'] and len(rules['source']) > 20, spec.id
        else:
            assert 'input_images' not in view, spec.id
    assert catalog.get_model('kling-v2-6').public_view()['input_images']['min_width'] == 300
