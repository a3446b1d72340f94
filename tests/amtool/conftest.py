"""Make tests/amtool/render.py importable as `render`, and the repository root (tests.support),
however pytest is started."""

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for _path in (str(_HERE), str(_HERE.parents[1])):
    if _path not in sys.path:
        sys.path.insert(0, _path)
