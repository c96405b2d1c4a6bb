"""The project's own files: the license it promises, what git tracks, what `make help` lists, the packaging metadata."""

from __future__ import annotations

import re
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_license_file_is_the_apache_license_pyproject_names():
    text = (ROOT / 'LICENSE').read_text(encoding='utf-8')
    assert 'Apache License' in text and 'Version 2.0, January 2004' in text
    assert 'TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION' in text


def test_packaging_metadata_reads_without_deprecation_warnings():
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    with warnings.catch_warnings():
        warnings.simplefilter('error')  # the old `license = {text = ...}` table raised a deprecation warning here
        dist = apply_configuration(Distribution(), str(ROOT / 'pyproject.toml'))
    assert dist.metadata.license_expression == 'Apache-2.0'
    assert 'LICENSE' in dist.metadata.license_files


@pytest.mark.skipif(shutil.which('git') is None or not (ROOT / '.git').exists(), reason='needs a git checkout')
def test_install_logs_are_not_tracked():
    tracked = subprocess.run(['git', 'ls-files', '*.log'], cwd=ROOT, capture_output=True, text=True, check=True)
    assert tracked.stdout.strip() == ''
    ignored = subprocess.run(['git', 'check-ignore', 'saminstall.log'], cwd=ROOT, capture_output=True, text=True)
    assert ignored.returncode == 0


@pytest.mark.skipif(shutil.which('make') is None, reason='needs make')
def test_make_help_lists_every_target():
    makefile = (ROOT / 'Makefile').read_text(encoding='utf-8')
    targets = set(re.findall(r'^([a-z][a-z-]*):', makefile, flags=re.MULTILINE))
    phony = set(re.search(r'^\.PHONY:(.*)$', makefile, flags=re.MULTILINE).group(1).split())
    assert phony == targets  # every target is phony and declared as such
    shown = subprocess.run(['make', '--no-print-directory', 'help'], cwd=ROOT, capture_output=True, text=True, check=True)
    listed = {line.split()[1] for line in shown.stdout.splitlines() if line.startswith('make ')}
    assert listed == targets
    assert all(len(line.split(None, 2)) == 3 for line in shown.stdout.splitlines())  # each has its description


def test_the_layer_knows_the_version_pyproject_builds():
    import tomllib

    from vidgen.version import VERSION

    assert tomllib.loads((ROOT / 'pyproject.toml').read_text(encoding='utf-8'))['project']['version'] == VERSION
