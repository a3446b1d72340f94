"""App source variants for the rolling-upgrade test, made from a copy of app/ on the controller.

- `next`: the same code with the patch version bumped (a real new release: new wheel, new venv).
- `broken`: a further bump whose WSGI module raises at import, so gunicorn cannot boot and the
  health gate fails: what a bad build looks like to the deploy.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
APP = ROOT / "app"
IGNORE = shutil.ignore_patterns(
    "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "tests", "bench"
)


def app_version(source: Path = APP) -> str:
    match = re.search(r'^version\s*=\s*"([^"]+)"', (source / "pyproject.toml").read_text(), re.M)
    if not match:
        raise ValueError(f"no static version in {source / 'pyproject.toml'}")
    return match.group(1)


def bumped(version: str, by: int) -> str:
    major, minor, patch = (int(p) for p in version.split(".")[:3])
    return f"{major}.{minor}.{patch + by}"


def make_variant(dest: Path, version: str, broken: bool = False) -> Path:
    """Copy app/ to dest/app with `version`; with broken=True the WSGI entry point fails."""
    target = dest / "app"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(APP, target, ignore=IGNORE)
    pyproject = target / "pyproject.toml"
    text = pyproject.read_text()
    text = re.sub(r'^version\s*=\s*"[^"]+"', f'version = "{version}"', text, count=1, flags=re.M)
    pyproject.write_text(text)
    if broken:
        wsgi = target / "src" / "autodealgenie" / "wsgi.py"
        wsgi.write_text(
            'raise RuntimeError("deliberately broken build (rolling-upgrade test)")\n' + wsgi.read_text()
        )
    return target
