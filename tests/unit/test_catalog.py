"""The catalog is the one authority on what a model accepts and costs."""

import json
from pathlib import Path

import pytest
from vidgen import catalog
from vidgen.errors import InvalidParametersError
from vidgen.models import JobRequest

IMG = 'https://example.com/a.png'
CATALOG_FILE = Path(catalog.__file__).with_name('catalog.json')


def resolve(**fields):
    return catalog.resolve(JobRequest(**fields))


def invalid(**fields) -> InvalidParametersError:
    with pytest.raises(InvalidParametersError) as caught:
        resolve(**fields)
    return caught.value


def test_text_to_video_gets_defaults_and_the_matching_price():
    job = resolve(model='kling-v2-6', prompt='a cat')
    assert job.mode == 't2v'
    assert job.params == {'duration': 5, 'mode': 'std', 'aspect_ratio': '16:9', 'sound': False}
    assert job.credits == 20


@pytest.mark.parametrize(('mode', 'duration', 'credits'), [('std', 5, 20), ('std', 10, 40), ('pro', 5, 35), ('pro', 10, 70)])
def test_price_depends_on_mode_and_duration(mode, duration, credits):
    assert resolve(model='kling-v2-6', prompt='x', mode=mode, duration=duration).credits == credits


def test_mode_follows_from_the_inputs():
    assert resolve(model='kling-v2-6', prompt='x', image=IMG).mode == 'i2v'
    assert resolve(model='kling-v2-6', prompt='x', image=IMG, end_image=IMG).mode == 'flf2v'


def test_text_to_video_on_an_image_only_model_is_refused_naming_the_field():
    error = invalid(model='kling-v2-1', prompt='a cat')
    assert error.details['field'] == 'image'
    assert 'kling-v2-1 does not do text-to-video' in error.message
    assert 'i2v' in error.message


def test_first_and_last_frames_force_pro_mode_and_refuse_std():
    job = resolve(model='kling-v2-6', prompt='x', image=IMG, end_image=IMG)
    assert job.params['mode'] == 'pro' and job.credits == 35
    error = invalid(model='kling-v2-6', prompt='x', image=IMG, end_image=IMG, mode='std')
    assert error.details['field'] == 'mode' and 'pro' in error.message


def test_an_unknown_value_lists_the_allowed_ones():
    error = invalid(model='kling-v2-6', prompt='x', duration=7)
    assert error.details['field'] == 'duration'
    assert 'allowed: 5, 10' in error.message


def test_aspect_ratio_only_for_text_to_video_on_kling():
    assert resolve(model='kling-v2-6', prompt='x', aspect_ratio='9:16').params['aspect_ratio'] == '9:16'
    assert invalid(model='kling-v2-6', prompt='x', image=IMG, aspect_ratio='16:9').details['field'] == 'aspect_ratio'
    assert invalid(model='kling-v2-6', prompt='x', aspect_ratio='wide').details['field'] == 'aspect_ratio'


def test_unknown_options_and_models_are_named():
    error = invalid(model='kling-v2-6', prompt='x', options={'cfg_scale': 0.5})
    assert error.details['field'] == 'cfg_scale' and 'Its parameters' in error.message
    error = invalid(model='nope', prompt='x')
    assert error.details['field'] == 'model' and 'kling-v2-6' in error.message


def test_options_are_checked_by_type_and_range():
    assert resolve(model='kling-v1-6', prompt='x', options={'cfg_scale': 0.2}).params['cfg_scale'] == 0.2
    assert invalid(model='kling-v1-6', prompt='x', options={'cfg_scale': 2}).details['field'] == 'cfg_scale'
    assert invalid(model='kling-v2-6', prompt='x', options={'sound': 'yes'}).details['field'] == 'sound'


def test_a_parameter_given_twice_is_refused():
    assert invalid(model='kling-v2-6', prompt='x', duration=5, options={'duration': 10}).details['field'] == 'options.duration'


def test_prompt_rules():
    assert invalid(model='kling-v2-6', prompt='   ').details['field'] == 'prompt'
    assert invalid(model='kling-v2-6', prompt='x' * 2501).details['field'] == 'prompt'
    assert resolve(model='kling-v2-1', image=IMG).mode == 'i2v'  # prompt optional for image-to-video


def test_end_image_needs_a_start_image():
    assert invalid(model='kling-v2-6', prompt='x', end_image=IMG).details['field'] == 'end_image'


def test_every_catalog_entry_is_well_formed():
    """Adding a model is a data change: this keeps the data honest (prices reachable, defaults valid)."""
    data = json.loads(CATALOG_FILE.read_text())
    ids = [m['id'] for m in data['models']]
    assert len(ids) == len(set(ids))
    for entry in data['models']:
        assert entry['kind'] in ('video', 'image')
        assert set(entry['modes']) <= set(catalog.MODE_NAMES)
        for name, rule in entry['parameters'].items():
            if 'default' in rule and 'values' in rule:
                assert rule['default'] in rule['values'], (entry['id'], name)
        assert entry['prices'] and all(int(p['credits']) > 0 for p in entry['prices'])


def test_public_view_hides_provider_internals():
    view = catalog.get_model('kling-v2-6').public_view()
    assert 'provider_model' not in view
    assert view['provider'] == 'kling' and view['modes'] == ['t2v', 'i2v', 'flf2v']


def _ratio_models():
    return [(spec.id, rule) for spec in catalog.all_models()
            for name, rule in spec.parameters.items() if name == 'aspect_ratio']


@pytest.mark.parametrize(('model_id', 'rule'), _ratio_models(), ids=[m for m, _ in _ratio_models()])
def test_one_aspect_ratio_rule_everywhere_a_ratio_is_sent_as_given_or_refused_with_the_list(model_id, rule):
    # A listed ratio is kept exactly as given (nothing maps it to something else)...
    for value in rule['values']:
        fields = {'prompt': 'x', 'aspect_ratio': value}
        fields.update({'options': {'resolution': '1K'}} if model_id == 'flux-2-pro' else {})
        assert resolve(model=model_id, **fields).params['aspect_ratio'] == value
    # ...and any other one, such as 4:7 or a pixel size, is refused with the allowed list.
    for value in ('4:7', '1920:1080'):
        error = invalid(model=model_id, prompt='x', aspect_ratio=value)
        assert error.details['field'] == 'aspect_ratio'
        assert 'allowed: ' + ', '.join(rule['values']) in error.message
