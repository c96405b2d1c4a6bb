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
        assert entry['prices'] and all(int(p.get('credits') or p['credits_per_second']) > 0 for p in entry['prices'])


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


@pytest.mark.parametrize(('fields', 'credits'), [
    ({'duration': 3}, 12), ({'duration': 15}, 60), ({'duration': 10, 'mode': 'pro'}, 60),
    ({'duration': 10, 'options': {'sound': True}}, 60), ({'duration': 15, 'mode': 'pro', 'options': {'sound': True}}, 120),
])
def test_kling_v3_is_priced_per_second(fields, credits):
    assert resolve(model='kling-v3', prompt='x', **fields).credits == credits


def test_kling_v3_takes_3_to_15_seconds_and_the_turbo_5_or_10():
    assert 'allowed: 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15' in invalid(model='kling-v3', prompt='x', duration=2).message
    assert invalid(model='kling-v2-5-turbo', prompt='x', duration=3).details['field'] == 'duration'
    assert invalid(model='kling-v2-5-turbo', prompt='x', options={'sound': True}).details['field'] == 'sound'
    assert resolve(model='kling-v2-5-turbo', prompt='x', duration=10, mode='pro').credits == 50


def test_multi_shot_replaces_the_prompt_and_must_fill_the_duration():
    shots = [{'prompt': 'a fox wakes', 'duration': 4}, {'prompt': 'it runs', 'duration': 6}]
    job = resolve(model='kling-v3', prompt='', duration=10, options={'multi_shot': shots})
    assert job.params['multi_shot'] == shots and job.credits == 40
    error = invalid(model='kling-v3', prompt='', duration=12, options={'multi_shot': shots})
    assert error.details['field'] == 'multi_shot'
    assert error.message == ('The shots of multi_shot last 10 s in all; they must add up to the duration (12 s) '
                             'on kling-v3.')


@pytest.mark.parametrize(('shots', 'field'), [
    ([{'prompt': 'one', 'duration': 5}], 'multi_shot'),  # a single shot is not multi-shot
    ([{'prompt': 'x', 'duration': 1}] * 7, 'multi_shot'),
    ('two shots please', 'multi_shot'),
    ([{'prompt': 'a', 'duration': 2}, {'prompt': '', 'duration': 3}], 'multi_shot[1].prompt'),
    ([{'prompt': 'a', 'duration': 2}, {'prompt': 'b', 'duration': 13}], 'multi_shot[1].duration'),
    ([{'prompt': 'a', 'duration': 2}, {'prompt': 'b', 'duration': '3'}], 'multi_shot[1].duration'),
    ([{'prompt': 'a', 'duration': 2}, {'prompt': 'b', 'duration': 3, 'camera': 'pan'}], 'multi_shot[1]'),
])
def test_multi_shot_shots_are_checked_one_by_one(shots, field):
    assert invalid(model='kling-v3', prompt='', duration=5, options={'multi_shot': shots}).details['field'] == field


def test_multi_shot_is_kling_v3_only_and_not_with_an_end_frame():
    shots = [{'prompt': 'a', 'duration': 2}, {'prompt': 'b', 'duration': 3}]
    assert invalid(model='kling-v2-6', prompt='x', options={'multi_shot': shots}).details['field'] == 'multi_shot'
    assert invalid(model='kling-v3', prompt='x', image=IMG, end_image=IMG, options={'multi_shot': shots}
                   ).details['field'] == 'multi_shot'


def test_seed_004_prices_and_shapes():
    assert resolve(model='flux-2-pro', prompt='x', aspect_ratio='16:9', options={'resolution': '2K'}).credits == 12
    assert resolve(model='seedream-4-5', prompt='x', aspect_ratio='16:9').credits == 8
    assert invalid(model='seedream-4-5', prompt='x', options={'steps': 30}).details['field'] == 'steps'
    assert invalid(model='bytedance-v1-pro', prompt='x', image=IMG, aspect_ratio='16:9').details['field'] == 'aspect_ratio'
    for model_id in ('flux-2-pro', 'seedream-4-5', 'bytedance-v1-pro', 'veo-3-1'):
        assert 'seed' in catalog.get_model(model_id).raw['source'].lower(), model_id
    refs = [IMG] * 3
    assert resolve(model='veo-3-1-fast', prompt='x', reference_images=refs).mode == 'ref2v'
    assert invalid(model='veo-3-1-fast', prompt='x', reference_images=[IMG] * 4).details['field'] == 'reference_images'
