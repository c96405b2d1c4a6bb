"""The fault and crash suites (`make test-faults`). Each module runs its own LocalCloud, so this folder must
never share a process with the session cloud of tests/integration: tests/conftest.py leaves it out of the
default run. The suites' figures are printed at the end of the run (and written as JSON, faults_support.py)."""

from __future__ import annotations

from typing import Any

from faults_support import PRINTED, REPORT_PATH


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not PRINTED:
        return
    terminalreporter.section('fault and crash figures')
    for section, lines in PRINTED.items():
        terminalreporter.write_line(f'[{section}]')
        for line in lines:
            terminalreporter.write_line(f'  {line}')
    terminalreporter.write_line(f'JSON: {REPORT_PATH}')
