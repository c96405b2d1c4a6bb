"""The ASL is checked where cfn-lint cannot look: targets, bounds, substitutions, error names (moto accepting
the definition is checked in tests/integration/test_state_machine_in_moto.py)."""

import json
import re
from pathlib import Path

import yaml
from vidgen import errors

ROOT = Path(__file__).resolve().parents[2]
ASL_TEXT = (ROOT / 'statemachine' / 'job.asl.json').read_text()
ASL = json.loads(ASL_TEXT)


class _CfnLoader(yaml.SafeLoader):
    pass


_CfnLoader.add_multi_constructor('!', lambda loader, suffix, node: None)


def _substitutions() -> dict:
    template = yaml.load((ROOT / 'template.yaml').read_text(), Loader=_CfnLoader)  # noqa: S506 - safe loader subclass
    return template['Resources']['JobStateMachine']['Properties']['DefinitionSubstitutions']


def _targets(state: dict) -> list[str]:
    found = [state[k] for k in ('Next', 'Default') if k in state]
    found += [c['Next'] for c in state.get('Choices', [])]
    found += [c['Next'] for c in state.get('Catch', [])]
    return found


def test_every_transition_target_exists_and_every_state_is_reachable():
    states = ASL['States']
    reachable, frontier = set(), [ASL['StartAt']]
    while frontier:
        name = frontier.pop()
        assert name in states, f'missing state {name}'
        if name not in reachable:
            reachable.add(name)
            frontier.extend(_targets(states[name]))
    assert reachable == set(states)


def test_every_choice_has_a_default_and_every_task_catches_everything():
    for name, state in ASL['States'].items():
        if state['Type'] == 'Choice':
            assert 'Default' in state, name
        if state['Type'] == 'Task':
            assert any('States.ALL' in c['ErrorEquals'] for c in state.get('Catch', [])), name


def test_the_callback_wait_and_the_poll_loop_are_bounded():
    create = ASL['States']['CreateTask']
    assert create['Resource'].endswith('.waitForTaskToken') and 'TimeoutSecondsPath' in create
    assert any('States.Timeout' in c['ErrorEquals'] and c['Next'] == 'StartPolling' for c in create['Catch'])
    poll_choice = ASL['States']['PollOutcome']['Choices']
    assert any(c.get('Variable') == '$.poll.attempt' and 'NumericGreaterThanEquals' in c for c in poll_choice)


def test_every_failure_path_funnels_into_the_refunding_fail_step():
    # Notify runs after the job is settled (succeeded, or failed and refunded): a notification that never
    # lands must not touch the job, so its Catch ends the execution instead. A failed media check first
    # discards the stored copies, then fails the job whatever the discard does.
    states = ASL['States']
    for name, state in states.items():
        for catch in state.get('Catch', []):
            if 'States.Timeout' not in catch['ErrorEquals'] and name not in ('FailJob', 'Notify', 'InspectMedia'):
                assert catch['Next'] == 'FailJob', name
    assert [c['Next'] for c in states['InspectMedia']['Catch']] == ['DiscardResults']
    assert states['DiscardResults']['Next'] == 'FailJob'
    # a job succeeds only through the media check: Finalize -> InspectMedia -> MarkSucceeded -> Notify
    assert states['Finalize']['Next'] == 'InspectMedia' and states['InspectMedia']['Next'] == 'MarkSucceeded'
    assert states['MarkSucceeded']['Next'] == states['FailJob']['Next'] == 'Notify'


def test_retried_and_caught_error_names_exist_in_the_error_tree():
    names = {n for n in dir(errors) if isinstance(getattr(errors, n), type)}
    for state in ASL['States'].values():
        for block in state.get('Retry', []) + state.get('Catch', []):
            for name in block['ErrorEquals']:
                assert name.startswith(('States.', 'Lambda.')) or name in names, name


def test_placeholders_and_substitutions_match_exactly():
    placeholders = set(re.findall(r'\$\{(\w+)\}', ASL_TEXT))
    assert placeholders == set(_substitutions())
