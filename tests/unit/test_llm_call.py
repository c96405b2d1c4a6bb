"""The scene writer's one HTTP call against the LLM simulator (no moto): the total deadline holds against a
server that trickles its answer, retries stay within it, and the simulator speaks the protocol on the base."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests
from vidgen.errors import LlmUnusableError, ProviderUnavailableError
from vidgen.jobs.storyboards.llm import SceneBrief, _post_within_budget, _scenes_from, chat_request
from vidgen.providers.http import DeadlinePassed, ProviderHttp
from vidgen_local.simulators.faults import FaultPlan
from vidgen_local.simulators.llm import LlmSimConfig, LlmSimulator


def body_for(name: str, scenes: int = 2) -> dict:
    brief = SceneBrief(name, 'A brass desk lamp. It dims.', None, scenes, 'Kling 2.6', 'text-to-video', 5, 2500, None)
    return chat_request(brief, 'sim-scene-writer', vision=False)


@pytest.fixture
def sim():
    simulator = LlmSimulator(LlmSimConfig(trickle_seconds=0.2))
    simulator.start()
    yield simulator
    simulator.stop()


def test_an_answer_comes_back_through_the_deadline_path(sim):
    reply = _post_within_budget(sim.base_url, sim.config.api_key, body_for('Lamp'), budget=5)
    assert [s['title'] for s in _scenes_from(reply)] == ['Opening reveal', 'In the details']
    [request] = sim.requests
    assert request.authorized and request.body['model'] == 'sim-scene-writer'


@pytest.mark.parametrize('fault', ['trickle', 'trickle-head'])
def test_a_trickled_answer_is_cut_off_at_the_total_deadline(sim, fault):
    # The trickle defeats a per-read timeout: a plain requests call with a 1 s read timeout is still
    # receiving after 2.5 s (every byte comes within 0.2 s of the last), and would be for minutes.
    url = f'{sim.base_url}/chat/completions'
    headers = {'Authorization': f'Bearer {sim.config.api_key}'}
    outcome: list[object] = []

    def plain() -> None:
        try:
            outcome.append(requests.post(url, json=body_for(f'Lamp [llm:{fault}]'), headers=headers, timeout=(1, 1)))
        except requests.RequestException as exc:
            outcome.append(exc)

    control = threading.Thread(target=plain, daemon=True)
    control.start()
    control.join(2.5)
    assert control.is_alive() and outcome == []

    started = time.monotonic()
    with pytest.raises(LlmUnusableError) as refused:
        _post_within_budget(sim.base_url, sim.config.api_key, body_for(f'Lamp [llm:{fault}]'), budget=1.5)
    elapsed = time.monotonic() - started

    assert refused.value.message == 'The scene-writing model did not answer within 1.5 seconds'
    assert 1.5 <= elapsed < 1.5 + 0.5
    assert len([r for r in sim.requests if f'[llm:{fault}]' in json.dumps(r.body)]) == 2  # control + one attempt
    assert sim.stats[f'faults.{fault}'] == 2


def test_retries_share_the_one_deadline(sim):
    sim.config.faults = FaultPlan(create_timeout=1.0, timeout_sleep_seconds=30)  # every answer stalls
    started = time.monotonic()
    with pytest.raises(LlmUnusableError) as refused:
        _post_within_budget(sim.base_url, sim.config.api_key, body_for('Lamp'), budget=2)
    assert time.monotonic() - started < 2 + 0.5
    assert 'did not answer within 2 seconds' in refused.value.message
    assert sim.stats['faults.create_timeout'] == 1  # no second attempt: no time was left for one


def test_5xx_and_429_are_tried_again_within_the_budget_and_4xx_is_not(sim):
    sim.queue_error(503)
    sim.queue_error(429)
    reply = _post_within_budget(sim.base_url, sim.config.api_key, body_for('Lamp'), budget=10)
    assert len(_scenes_from(reply)) == 2 and len(sim.requests) == 3
    assert sim.stats['injected.503'] == sim.stats['injected.429'] == 1

    sim.clear()
    with pytest.raises(LlmUnusableError) as refused:
        _post_within_budget(sim.base_url, 'sk-wrong-key-0123456789', body_for('Lamp'), budget=10)
    assert refused.value.message == 'The scene-writing model refused the request (HTTP 401)'
    assert len(sim.requests) == 1 and 'sk-wrong' not in refused.value.message


def test_a_deadline_already_passed_sends_nothing(sim):
    http = ProviderHttp('LLM', sim.base_url)
    with pytest.raises(ProviderUnavailableError) as refused:
        http.request('POST', '/chat/completions', json={}, deadline=time.monotonic() - 1)
    assert isinstance(refused.value.__cause__, DeadlinePassed) and sim.requests == []


def test_a_deadline_needs_the_session_that_can_enforce_it(sim):
    http = ProviderHttp('LLM', sim.base_url, session=requests.Session())
    with pytest.raises(TypeError, match='DeadlineAdapter'):
        http.request('POST', '/chat/completions', json={}, deadline=time.monotonic() + 5)
    assert http.request('POST', '/chat/completions', json={}).status == 401  # without a deadline: as before


# --- the simulator, on simulators/base.py --------------------------------------------------------------------


def test_the_simulator_answers_like_the_api(sim):
    url = f'{sim.base_url}/chat/completions'
    good = {'Authorization': f'Bearer {sim.config.api_key}'}
    unknown = requests.post(f'{sim.base_url}/completions', json={}, headers=good, timeout=5)
    assert unknown.status_code == 404 and unknown.json()['error']['code'] == 'unknown_url'
    no_key = requests.post(url, json=body_for('Lamp'), timeout=5)
    assert no_key.status_code == 401 and no_key.json()['error']['code'] == 'invalid_api_key'
    no_schema = requests.post(url, json={**body_for('Lamp'), 'response_format': {'type': 'text'}}, headers=good,
                              timeout=5)
    assert no_schema.status_code == 400 and no_schema.json()['error']['type'] == 'invalid_request_error'
    answer = requests.post(url, json=body_for('Lamp', scenes=4), headers=good, timeout=5).json()
    assert answer['object'] == 'chat.completion' and answer['model'] == 'sim-scene-writer'
    assert len(json.loads(answer['choices'][0]['message']['content'])['scenes']) == 4
    assert sim.stats['auth_failures'] == 1 and sim.stats['errors.401'] == 1


@pytest.mark.parametrize('fault, check', [
    ('wrong-count', lambda content: len(json.loads(content)['scenes']) == 1),
    ('non-json', lambda content: not content.startswith('{')),
    ('long-prompt', lambda content: all(len(s['prompt']) > 5000 for s in json.loads(content)['scenes'])),
])
def test_queued_content_faults(sim, fault, check):
    sim.queue_fault(fault)
    answer = requests.post(f'{sim.base_url}/chat/completions', json=body_for('Lamp'), timeout=5,
                           headers={'Authorization': f'Bearer {sim.config.api_key}'}).json()
    assert check(answer['choices'][0]['message']['content'])
    with pytest.raises(ValueError, match='unknown LLM fault'):
        sim.queue_fault('no-such-fault')


def test_transport_faults_come_from_the_base(sim):
    sim.config.faults = FaultPlan(create_malformed=1.0)
    with pytest.raises(ProviderUnavailableError) as refused:
        ProviderHttp('LLM', sim.base_url).request('POST', '/chat/completions', json=body_for('Lamp'),
                                                  headers={'Authorization': f'Bearer {sim.config.api_key}'})
    assert refused.value.provider_code == 200 and sim.stats['faults.create_malformed'] == 1


# --- the same over TLS (a deployed LLM is https) -------------------------------------------------------------


def _self_signed(tmp_path) -> tuple[str, str]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, '127.0.0.1')])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]), False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / 'cert.pem', tmp_path / 'key.pem'
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_the_deadline_also_ends_a_trickle_over_tls(tmp_path, monkeypatch):
    import socket
    import ssl

    cert, key = _self_signed(tmp_path)
    for name in ('REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE'):  # they would override the session's `verify`
        monkeypatch.delenv(name, raising=False)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(('127.0.0.1', 0))
    listener.settimeout(10)
    stop = threading.Event()
    sent: list[int] = []

    def serve() -> None:  # reads the request head, then answers a byte every 0.2 s
        conn, _ = listener.accept()
        with context.wrap_socket(conn, server_side=True) as tls:
            request = b''
            while b'\r\n\r\n' not in request:
                request += tls.recv(65536)
            answer = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n' + b' ' * 200
            try:
                for byte in answer:
                    if stop.wait(0.2):
                        return
                    tls.sendall(bytes([byte]))
                    sent.append(byte)
            except OSError:
                return

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    http = ProviderHttp('LLM', f'https://127.0.0.1:{listener.getsockname()[1]}', timeout=(1, 1))
    http.session.verify = cert
    started = time.monotonic()
    try:
        with pytest.raises(ProviderUnavailableError) as refused:
            http.request('POST', '/chat/completions', json={}, deadline=time.monotonic() + 1.5)
    finally:
        stop.set()
        listener.close()
    assert isinstance(refused.value.__cause__, DeadlinePassed)
    assert 1.5 <= time.monotonic() - started < 2.0 and 3 < len(sent) < 12  # bytes kept coming: no read timed out
