"""Make the repository root importable (tests.support, tests.monitoring) however pytest is started."""

import sys
from pathlib import Path

_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)
