"""The vidgen version a stack runs (the same as pyproject.toml's, checked by tests/unit/test_project_files.py)."""

VERSION = '0.1.0'
