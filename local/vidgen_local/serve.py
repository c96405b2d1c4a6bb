"""`vidgen serve`: the local cloud in the foreground, with a ready user, until Ctrl-C or SIGTERM.

It prints the playground's and the API's URLs, the admin key and one user's key (created through the real admin route), waits for
GET /v1/health to answer 200, then blocks. A signal stops everything started (servers, threads, simulators)
and the exit code is 0. Only those two keys are ever printed; provider credentials never are.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Any

from vidgen_local.client import ApiError, VidgenClient
from vidgen_local.cloud import LocalCloud, LocalCloudError


def serve(*, port: int | None = None, admin_key: str | None = None, time_scale: float = 10.0,
          credits: int = 1000) -> int:
    """Start the local cloud, print how to use it, block until Ctrl-C or SIGTERM, stop it. Returns the exit code."""
    _configure_logging()
    stop, started = threading.Event(), threading.Event()
    _on_signals(stop, started)
    cloud = LocalCloud(port=port, admin_key=admin_key, time_scale=time_scale)
    try:
        cloud.start()
    except (LocalCloudError, FileNotFoundError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    started.set()  # from now on a signal only sets `stop`, and the finally below cleans up
    try:
        client = VidgenClient(cloud.api_url, admin_key=cloud.admin_key)
        _wait_healthy(client, stop)
        if not stop.is_set():
            user = client.create_user(credits=credits)
            _banner(cloud, user, _example_model(client))
            stop.wait()
    finally:
        print('\nstopping...', flush=True)
        cloud.stop()
    print('stopped', flush=True)
    return 0


def _configure_logging() -> None:
    import logging
    import warnings

    fmt = logging.Formatter('%(asctime)s %(levelname)s %(name)s: %(message)s')
    logging.basicConfig(level=logging.WARNING)  # botocore & co: warnings only
    for handler in logging.getLogger().handlers:
        handler.setFormatter(fmt)
    # Our own handler: Powertools puts a filter on the root handlers that drops every record whose logger name
    # contains its service name ("vidgen"), which would silence the gateway's access log.
    local = logging.getLogger('vidgen_local')
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(fmt)
    local.addHandler(handler)
    local.setLevel(logging.INFO)
    local.propagate = False
    # Powertools warns on every invocation that published no metric (health, reads): noise locally.
    warnings.filterwarnings('ignore', message='No application metrics to publish')


def _on_signals(stop: threading.Event, started: threading.Event) -> None:
    def handle(signum: int, frame: Any) -> None:
        if stop.is_set():
            return
        stop.set()
        if not started.is_set():
            raise KeyboardInterrupt  # still starting: unwind start(), which cleans up after itself

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


def _wait_healthy(client: VidgenClient, stop: threading.Event, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not stop.is_set():
        try:
            client.health()
            return
        except ApiError as exc:
            if time.monotonic() > deadline:
                raise ApiError(f'GET /v1/health did not answer 200 within {timeout:.0f}s: {exc}') from exc
        stop.wait(0.1)


def _example_model(client: VidgenClient) -> str | None:
    try:
        models = client.models().get('models', [])
    except (ApiError, AttributeError):
        return None
    return next((m['id'] for m in models if 't2v' in m.get('modes', [])), None)


def _banner(cloud: Any, user: dict[str, Any], model: str | None) -> None:
    sims = [f'{name} simulator at {sim.base_url}' for name, sim in (('kling', cloud.kling_sim), ('kie', cloud.kie_sim))
            if sim is not None]
    print(f"""
vidgen is running on this machine (moto + {', '.join(sims) or 'real providers'})

  playground {cloud.api_url}/   (sign in with the user key below)
  API docs   {cloud.api_url}/docs
  API        {cloud.api_url}
  admin key  {cloud.admin_key}
  user       {user['user_id']} ({user['balance']} credits)
  user key   {user['api_key']}

Try it:
  export VIDGEN_API_URL={cloud.api_url} VIDGEN_API_KEY={user['api_key']} VIDGEN_ADMIN_KEY={cloud.admin_key}
  vidgen models
  vidgen submit --model {model or 'MODEL'} --prompt 'a red fox running through snow' --wait

Ctrl-C stops everything.
""", flush=True)
