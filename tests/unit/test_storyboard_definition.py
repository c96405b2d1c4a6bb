"""The storyboard machine's ASL, checked where cfn-lint cannot look (moto parses it when every local cloud
starts): targets, bounds, the writer's fallback, error names and substitutions."""

import json
import re
from pathlib import Path

import yaml
from vidgen import errors

ROOT = Path(__file__).resolve().parents[2]
ASL_TEXT = (ROOT / 'statemachine' / 'storyboard.asl.json').read_text()
ASL = json.loads(ASL_TEXT)
STATES = ASL['States']


class _CfnLoader(yaml.SafeLoader):
    pass


_CfnLoader.add_multi_constructor('!', lambda loader, suffix, node: None)


def _targets(state: dict) -> list[str]:
    found = [state[k] for k in ('Next', 'Default') if k in state]
    return found + [c['Next'] for c in state.get('Choices', []) + state.get('Catch', [])]


def test_every_state_is_reachable_and_every_target_exists():
    reachable, frontier = set(), [ASL['StartAt']]
    while frontier:
        name = frontier.pop()
        assert name in STATES, name
        if name not in reachable:
            reachable.add(name)
            frontier.extend(_targets(STATES[name]))
    assert reachable == set(STATES)


def test_every_choice_has_a_default_and_every_task_catches_everything():
    for name, state in STATES.items():
        if state['Type'] == 'Choice':
            assert 'Default' in state, name
        if state['Type'] == 'Task':
            assert any(c['ErrorEquals'] == ['States.ALL'] for c in state['Catch']), name


def test_writing_the_scenes_ends_in_the_fallback_never_in_failure():
    write = STATES['WriteScenes']
    assert [c['Next'] for c in write['Catch']] == ['WriteFallbackScenes']
    assert STATES['WriteScenes']['Next'] == STATES['WriteFallbackScenes']['Next'] == 'CreateSceneJobs'
    # The only Fail state hands the storyboard to the sweep; no state refunds or debits anything.
    assert [n for n, s in STATES.items() if s['Type'] == 'Fail'] == ['SweepTakesOver']
    actions = {s['Parameters']['Payload']['action'] for s in STATES.values() if s['Type'] == 'Task'}
    assert actions == {'write_scenes', 'write_fallback', 'create_jobs', 'start_jobs', 'check', 'settle', 'notify'}


def test_the_check_loop_is_bounded():
    outcome = STATES['CheckOutcome']['Choices']
    assert any(c.get('Variable') == '$.check.attempt' and c.get('NumericGreaterThanEquals') for c in outcome)
    assert STATES['WaitForScenes']['SecondsPath'] == '$.check.wait_seconds'
    assert STATES['CheckOutcome']['Default'] == 'WaitForScenes'


def test_error_names_exist_and_placeholders_match_the_template():
    names = {n for n in dir(errors) if isinstance(getattr(errors, n), type)}
    for state in STATES.values():
        for block in state.get('Retry', []) + state.get('Catch', []):
            for name in block['ErrorEquals']:
                assert name.startswith(('States.', 'Lambda.')) or name in names, name
    template = yaml.load((ROOT / 'template.yaml').read_text(), Loader=_CfnLoader)  # noqa: S506 - safe loader subclass
    substitutions = template['Resources']['StoryboardStateMachine']['Properties']['DefinitionSubstitutions']
    assert set(re.findall(r'\$\{(\w+)\}', ASL_TEXT)) == set(substitutions)
