"""Unit tests of the project's modules and module_utils: HTTP is faked below the retry logic."""

from __future__ import annotations

from pathlib import Path

from tests.unit.plugins.ansible_module_runner import enable_project_module_utils

REPO = Path(__file__).resolve().parents[3]

enable_project_module_utils()
