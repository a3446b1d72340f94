"""Unit tests of the project's modules and module_utils: HTTP is faked below the retry logic."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.unit.plugins.ansible_module_runner import enable_project_module_utils  # noqa: E402

enable_project_module_utils()
