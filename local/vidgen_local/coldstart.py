"""Cold-start figures for `make bench`: the layer as `sam build` makes it, and each function's import time.

- `build_layer()` runs the layer's own Makefile target (what `sam build` runs) into a temporary folder and
  reports its size unzipped and zipped, and its bytecode: how many modules carry a .pyc, and for which
  CPython (the magic number in the header) with which invalidation mode.
- `import_times()` imports each function's handler module in a fresh interpreter, as a new execution
  environment does (the layer and the function folder on sys.path, Lambda's variables set), and a bare
  `import boto3` the same way, interleaved round by round so both see the same machine load; the median of
  each is reported. The X-Ray SDK, which the tracer imports on the first traced invocation in Lambda, is
  timed separately in the same interpreters.
- The same rounds also time the floor of an HTTP function: boto3 and Powertools' API Gateway resolver with
  validation (what every route's request and response checks need), and nothing of vidgen. An HTTP
  function cannot start faster than that with the chosen libraries; the figure shows how much of a
  function's import is its own.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

FUNCTIONS = ('submit', 'status', 'callback', 'admin', 'poller', 'storyboard', 'media')
# The floor of an HTTP function: its client library and the validating resolver, built as vidgen builds it.
HTTP_FLOOR = ('import boto3; from aws_lambda_powertools import Logger, Metrics; '
              'from aws_lambda_powertools.event_handler import APIGatewayHttpResolver; '
              'APIGatewayHttpResolver(enable_validation=True)')
_TIMER = '''
import sys, time
began = time.perf_counter()
{statement}
took = time.perf_counter() - began
began = time.perf_counter()
import aws_xray_sdk.core
print(took, time.perf_counter() - began)
'''


@dataclass
class LayerFigures:
    unzipped_bytes: int
    zipped_bytes: int
    modules: int
    compiled: int
    pyc_tag: str
    invalidation: str
    note: str = ''


@dataclass
class ImportFigures:
    rounds: int
    boto3_seconds: float
    functions: dict[str, float]
    xray_seconds: float
    http_floor_seconds: float | None = None

    def ratio(self, function: str) -> float:
        return self.against_boto3(self.functions[function])

    def against_boto3(self, seconds: float) -> float:
        return seconds / self.boto3_seconds if self.boto3_seconds > 0 else float('inf')


def build_layer(root: Path) -> LayerFigures:
    with tempfile.TemporaryDirectory(prefix='vidgen-layer-') as folder:
        target = Path(folder) / 'artifacts'
        proc = subprocess.run(['make', '-s', '-C', str(root / 'layers' / 'vidgen'), 'build-VidgenLayer',
                               f'ARTIFACTS_DIR={target}'], capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f'building the layer failed: {proc.stderr[-2000:]}')
        files = [path for path in target.rglob('*') if path.is_file()]
        archive = Path(folder) / 'layer.zip'
        with zipfile.ZipFile(archive, 'w', zipfile.ZIP_DEFLATED) as zipped:
            for path in files:
                zipped.write(path, path.relative_to(target))
        sources = [path for path in files if path.suffix == '.py']
        compiled = [path for path in files if path.suffix == '.pyc']
        tag, mode = _pyc_kind(compiled[0]) if compiled else ('none', 'none')
        note = '' if compiled else proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ''
        return LayerFigures(unzipped_bytes=sum(path.stat().st_size for path in files),
                            zipped_bytes=archive.stat().st_size, modules=len(sources), compiled=len(compiled),
                            pyc_tag=tag, invalidation=mode, note=note)


def _pyc_kind(path: Path) -> tuple[str, str]:
    """(the interpreter tag in the file name, the invalidation mode in the header's flags word)."""
    tag = path.name.split('.')[-2]  # module.cpython-313.pyc
    flags = int.from_bytes(path.read_bytes()[4:8], 'little')
    mode = {0: 'timestamp', 1: 'unchecked-hash', 3: 'checked-hash'}.get(flags, f'flags {flags}')
    return tag, mode


def deployment_settings(name: str) -> dict[str, str]:
    """The settings the template gives every function, for a process that runs layer code outside a local
    cloud (a benchmark): a cold start refuses to go on without them. Nothing is created under these names."""
    machine = f'arn:aws:states:us-east-1:123456789012:stateMachine:{name}'
    return {'TABLE_NAME': name, 'BUCKET_NAME': f'{name}-results', 'STATE_MACHINE_ARN': f'{machine}-job',
            'STORYBOARD_STATE_MACHINE_ARN': f'{machine}-storyboard'}


def _lambda_env(root: Path, function: str | None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(('AWS_', 'POWERTOOLS_', 'VIDGEN_'))}
    path = [str(root / 'layers' / 'vidgen')]
    if function:
        path.insert(0, str(root / 'functions' / function))
    env.update({'PYTHONPATH': os.pathsep.join(path), 'LAMBDA_TASK_ROOT': str(root / 'functions' / (function or '')),
                'AWS_LAMBDA_FUNCTION_NAME': f'vidgen-{function or "bare"}', 'AWS_REGION': 'us-east-1',
                'AWS_DEFAULT_REGION': 'us-east-1', 'POWERTOOLS_SERVICE_NAME': 'vidgen',
                'POWERTOOLS_METRICS_NAMESPACE': 'Vidgen', 'PYTHONDONTWRITEBYTECODE': '1',
                **deployment_settings('vidgen-bench')})
    return env


def _time_once(root: Path, function: str | None, statement: str | None = None) -> tuple[float, float]:
    statement = statement or ('import app' if function else 'import boto3')
    proc = subprocess.run([sys.executable, '-c', _TIMER.format(statement=statement)], capture_output=True, text=True,
                          timeout=120, env=_lambda_env(root, function), cwd=str(root))
    if proc.returncode != 0:
        raise RuntimeError(f'importing {function or "boto3"} failed: {proc.stderr[-2000:]}')
    took, xray = proc.stdout.split()
    return float(took), float(xray)


def import_times(root: Path, rounds: int = 7) -> ImportFigures:
    for function in (None, *FUNCTIONS):  # one untimed round writes the bytecode caches, as a built layer has them
        subprocess.run([sys.executable, '-c', 'import app' if function else 'import boto3'], capture_output=True,
                       timeout=120, env={**_lambda_env(root, function), 'PYTHONDONTWRITEBYTECODE': ''}, cwd=str(root))
    bare: list[float] = []
    floor: list[float] = []
    xray: list[float] = []
    per_function: dict[str, list[float]] = {name: [] for name in FUNCTIONS}
    for _ in range(rounds):
        took, _x = _time_once(root, None)
        bare.append(took)
        took, _x = _time_once(root, None, HTTP_FLOOR)
        floor.append(took)
        for name in FUNCTIONS:
            took, x = _time_once(root, name)
            per_function[name].append(took)
            xray.append(x)
    return ImportFigures(rounds=rounds, boto3_seconds=statistics.median(bare),
                         functions={name: statistics.median(values) for name, values in per_function.items()},
                         xray_seconds=statistics.median(xray), http_floor_seconds=statistics.median(floor))
