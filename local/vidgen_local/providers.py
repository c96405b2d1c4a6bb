"""Which Kling and Kie the local cloud talks to: the real ones when their settings are given, else the simulators.

Real:      KLING_BASE_URL + KLING_ACCESS_KEY + KLING_SECRET_KEY; KIE_BASE_URL + KIE_API_KEY (+ KIE_UPLOAD_BASE_URL,
           KIE_WEBHOOK_HMAC_KEY). A base URL without its keys is an error, not a silent fallback.
LLM:       LLM_BASE_URL + LLM_API_KEY (+ LLM_MODEL): any OpenAI-compatible Chat Completions endpoint.
Simulated: `vidgen_local.simulators.{kling,kie,llm}` on 127.0.0.1, with their own fake keys; one Kie server
           answers both KIE_BASE_URL and KIE_UPLOAD_BASE_URL. Imported lazily: a simulator module that does
           not exist yet leaves its provider on the template's default URL, with a warning.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


class ProviderSettingsError(ValueError):
    """A provider's base URL was given without its credentials."""


@dataclass
class Providers:
    env: dict[str, str] = field(default_factory=dict)  # base URLs for the handlers' environment
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)  # env var naming the secret -> its fields
    kling_sim: Any = None
    kie_sim: Any = None
    llm_sim: Any = None

    def stop(self) -> None:
        for simulator in (self.kling_sim, self.kie_sim, self.llm_sim):
            if simulator is not None:
                simulator.stop()
        self.kling_sim = self.kie_sim = self.llm_sim = None


def start_providers(settings: Mapping[str, str], *, simulators: bool = True, kling_sim_config: Any = None,
                    kie_sim_config: Any = None, llm_sim_config: Any = None) -> Providers:
    providers = Providers()
    try:
        _kling(providers, settings, simulators, kling_sim_config)
        _kie(providers, settings, simulators, kie_sim_config)
        _llm(providers, settings, simulators, llm_sim_config)
    except BaseException:
        providers.stop()
        raise
    return providers


def _kling(providers: Providers, s: Mapping[str, str], simulators: bool, config: Any) -> None:
    if s.get('KLING_BASE_URL'):
        if not (s.get('KLING_ACCESS_KEY') and s.get('KLING_SECRET_KEY')):
            raise ProviderSettingsError('KLING_BASE_URL is set: set KLING_ACCESS_KEY and KLING_SECRET_KEY too')
        providers.env['KLING_BASE_URL'] = s['KLING_BASE_URL']
        providers.secrets['KLING_SECRET_NAME'] = {'access_key': s['KLING_ACCESS_KEY'],
                                                  'secret_key': s['KLING_SECRET_KEY']}
    elif simulators and (simulator := _simulator('kling', 'KlingSimulator', 'KlingSimConfig', config)):
        providers.kling_sim = simulator
        providers.env['KLING_BASE_URL'] = simulator.start()
        providers.secrets['KLING_SECRET_NAME'] = {'access_key': simulator.config.access_key,
                                                  'secret_key': simulator.config.secret_key}


def _kie(providers: Providers, s: Mapping[str, str], simulators: bool, config: Any) -> None:
    if s.get('KIE_BASE_URL'):
        if not s.get('KIE_API_KEY'):
            raise ProviderSettingsError('KIE_BASE_URL is set: set KIE_API_KEY too')
        providers.env['KIE_BASE_URL'] = s['KIE_BASE_URL']
        if s.get('KIE_UPLOAD_BASE_URL'):
            providers.env['KIE_UPLOAD_BASE_URL'] = s['KIE_UPLOAD_BASE_URL']
        providers.secrets['KIE_SECRET_NAME'] = {'api_key': s['KIE_API_KEY'],
                                                'webhook_hmac_key': s.get('KIE_WEBHOOK_HMAC_KEY', '')}
    elif simulators and (simulator := _simulator('kie', 'KieSimulator', 'KieSimConfig', config)):
        providers.kie_sim = simulator
        url = simulator.start()
        providers.env.update(KIE_BASE_URL=url, KIE_UPLOAD_BASE_URL=url)
        providers.secrets['KIE_SECRET_NAME'] = {'api_key': simulator.config.api_key,
                                                'webhook_hmac_key': getattr(simulator.config, 'webhook_hmac_key',
                                                                            None) or ''}


def _llm(providers: Providers, s: Mapping[str, str], simulators: bool, config: Any) -> None:
    if s.get('LLM_MODEL'):
        providers.env['LLM_MODEL'] = s['LLM_MODEL']
    if s.get('LLM_BASE_URL'):
        if not s.get('LLM_API_KEY'):
            raise ProviderSettingsError('LLM_BASE_URL is set: set LLM_API_KEY too (any value for an LLM without keys)')
        providers.env['LLM_BASE_URL'] = s['LLM_BASE_URL']
        providers.secrets['LLM_SECRET_NAME'] = {'api_key': s['LLM_API_KEY']}
    elif simulators and (simulator := _simulator('llm', 'LlmSimulator', 'LlmSimConfig', config)):
        providers.llm_sim = simulator
        providers.env['LLM_BASE_URL'] = simulator.start()
        providers.secrets['LLM_SECRET_NAME'] = {'api_key': simulator.config.api_key}


def _simulator(module: str, cls_name: str, config_name: str, config: Any) -> Any:
    name = f'vidgen_local.simulators.{module}'
    try:
        mod = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        logger.warning('the %s simulator is not available; its provider keeps the template default URL', module)
        return None
    return getattr(mod, cls_name)(config if config is not None else getattr(mod, config_name)())
