"""Run the collection's modules the way Ansible does, for tests.

* ``run_in_process(name, args, check_mode=False, diff=False)``: import
  ``ansible_collections.autodealgenie.ops.plugins.modules.<name>`` (the collection path pytest.ini puts
  on sys.path, so the module and the tests share one copy of each module_utils) and call ``main()`` with
  JSON arguments, the way ansible-test's unit tests do (fast; patchable).
* ``run_with_ansible(fqcn, args, check_mode=False, diff=False)``: ``ansible localhost -m <fqcn>`` with the
  repository's ansible.cfg, executed by /usr/bin/python3 (no third-party packages), so resolution by
  FQCN from the collections path, AnsiballZ packaging of module_utils (ours and
  ansible.module_utils.urls) and the target's plain Python are all exercised.

Both return the module's result dict; a failed module has ``failed: True`` and ``msg``.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
COLLECTION = "autodealgenie.ops"
PACKAGE = "ansible_collections.autodealgenie.ops"
MODULES = REPO / "plugins" / "modules"
TARGET_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def load_module(name):
    """The module ``plugins/modules/<name>.py`` imported from the collection path."""
    return importlib.import_module(f"{PACKAGE}.plugins.modules.{name}")


def run_in_process(name, args, check_mode=False, diff=False):
    from ansible.module_utils import basic

    module = load_module(name)
    payload = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": payload}).encode()
    basic._ANSIBLE_PROFILE = "legacy"
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            module.main()
    except SystemExit:
        pass
    finally:
        basic._ANSIBLE_ARGS = None
    text = out.getvalue()
    try:
        return json.loads(text[text.index("{") :])
    except ValueError as exc:
        raise AssertionError(f"module {name} printed no JSON result: {text!r}") from exc


def ansible_env(**extra):
    """Environment for ansible CLI runs: the repository's ansible.cfg, JSON output, no profile_tasks."""
    return dict(
        os.environ,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
        ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.minimal",  # i.e. not profile_tasks
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FACT_CACHING="memory",
        **extra,
    )


def run_with_ansible(fqcn, args, check_mode=False, diff=False, timeout=300):
    if not fqcn.startswith(COLLECTION + "."):
        raise ValueError(f"run_with_ansible takes a FQCN ({COLLECTION}.<module>), got {fqcn!r}")
    ansible = Path(sys.executable).with_name("ansible")
    cmd = [
        str(ansible),
        "localhost",
        "-c",
        "local",
        "-i",
        "localhost,",
        "-m",
        fqcn,
        "-a",
        json.dumps(args),
        "-e",
        f"ansible_python_interpreter={TARGET_PYTHON}",
    ]
    if check_mode:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    run = subprocess.run(
        cmd, cwd=REPO, env=ansible_env(), capture_output=True, text=True, timeout=timeout, check=False
    )
    try:
        report = json.loads(run.stdout)
        return report["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError) as exc:
        raise AssertionError(
            f"ansible run failed (rc={run.returncode}):\n{run.stdout}\n{run.stderr}"
        ) from exc
