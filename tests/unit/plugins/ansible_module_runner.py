"""Run the project's modules the way Ansible does, for tests.

* ``run_in_process(name, args, check_mode=False, diff=False)``: import plugins/modules/<name>.py and call
  ``main()`` with JSON arguments, the way ansible-test's unit tests do (fast; patchable).
* ``run_with_ansible(name, args, check_mode=False, diff=False)``: ``ansible localhost -m <name>`` with the
  repository's ansible.cfg, executed by /usr/bin/python3 (no third-party packages), so module resolution
  from the library path, AnsiballZ packaging of module_utils and the stdlib-only promise are all exercised.

Both return the module's result dict; a failed module has ``failed: True`` and ``msg``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
MODULES = REPO / "plugins" / "modules"
MODULE_UTILS = REPO / "plugins" / "module_utils"
TARGET_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def enable_project_module_utils():
    """Make ``ansible.module_utils.adg_*`` importable in this process (Ansible does this on the target)."""
    import ansible.module_utils as module_utils

    if str(MODULE_UTILS) not in module_utils.__path__:
        module_utils.__path__.append(str(MODULE_UTILS))


def load_module(name):
    enable_project_module_utils()
    spec = importlib.util.spec_from_file_location(f"adg_test_module_{name}", MODULES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def run_with_ansible(name, args, check_mode=False, diff=False, timeout=300):
    ansible = Path(sys.executable).with_name("ansible")
    cmd = [
        str(ansible),
        "localhost",
        "-c",
        "local",
        "-i",
        "localhost,",
        "-m",
        name,
        "-a",
        json.dumps(args),
        "-e",
        f"ansible_python_interpreter={TARGET_PYTHON}",
    ]
    if check_mode:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
        ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.minimal",  # i.e. not profile_tasks
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FACT_CACHING="memory",
    )
    run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    try:
        report = json.loads(run.stdout)
        return report["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError) as exc:
        raise AssertionError(
            f"ansible run failed (rc={run.returncode}):\n{run.stdout}\n{run.stderr}"
        ) from exc
