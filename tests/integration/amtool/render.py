"""Render roles/alertmanager/templates/alertmanager.yml.j2 the way the role does: with Ansible's
template module, the role's routing defaults, and test variables layered on top."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
TEMPLATE = REPO / "roles/alertmanager/templates/alertmanager.yml.j2"
DEFAULTS = REPO / "roles/alertmanager/defaults/main/routing.yml"


class RenderError(RuntimeError):
    """The template refused to render (its output is in the message)."""


def _ansible() -> str:
    beside = Path(sys.executable).with_name("ansible")
    if beside.exists():
        return str(beside)
    found = shutil.which("ansible")
    if not found:
        raise RenderError("ansible is not installed (neither next to this Python nor on PATH)")
    return found


def render(dest: Path, variables: dict) -> Path:
    """Render the template to ``dest`` with the routing defaults plus ``variables``."""
    extra = dest.with_suffix(".vars.json")
    extra.write_text(json.dumps(variables))
    run = subprocess.run(
        [
            _ansible(),
            "localhost",
            "-c",
            "local",
            "-m",
            "ansible.builtin.template",
            "-a",
            f"src={TEMPLATE} dest={dest} mode=0600",
            "-e",
            f"@{DEFAULTS}",
            "-e",
            f"@{extra}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"ANSIBLE_NOCOLOR": "1", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
    )
    if run.returncode != 0:
        raise RenderError(run.stdout + run.stderr)
    return dest


if __name__ == "__main__":
    # python tests/integration/amtool/render.py OUT [VARS.json]: render for a manual look or amtool session
    out = Path(sys.argv[1]).resolve()
    given = json.loads(Path(sys.argv[2]).read_text()) if len(sys.argv) > 2 else {}
    print(render(out, given))
