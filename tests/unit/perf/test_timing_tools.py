"""The converge-timing tools: the adg_run_timing callback's accounting, converge_timing.py's
verdict, and the CI lanes covering every molecule scenario exactly once."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

_SPEC = importlib.util.spec_from_file_location("converge_timing", REPO / "tests/tools/converge_timing.py")
converge_timing = importlib.util.module_from_spec(_SPEC)
sys.modules["converge_timing"] = converge_timing
_SPEC.loader.exec_module(converge_timing)


def test_callback_records_time_per_role_and_play_and_changes(tmp_path):
    role = tmp_path / "roles" / "slow_role" / "tasks"
    role.mkdir(parents=True)
    (role / "main.yml").write_text(
        "- name: Spend a second in the role\n  ansible.builtin.command: sleep 1\n  changed_when: false\n"
    )
    (tmp_path / "site.yml").write_text(
        "- name: First play\n  hosts: localhost\n  gather_facts: false\n  roles: [slow_role]\n"
        "- name: Second play\n  hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - name: One change\n      ansible.builtin.command: 'true'\n      changed_when: true\n"
    )
    timing = tmp_path / "timing.jsonl"
    env = dict(os.environ)
    env.pop("ANSIBLE_CONFIG", None)
    env.update(
        ANSIBLE_CALLBACK_PLUGINS=str(REPO / "tests/tools/callback_plugins"),
        ANSIBLE_CALLBACKS_ENABLED="adg_run_timing",
        ADG_RUN_TIMING_FILE=str(timing),
        ANSIBLE_ROLES_PATH=str(tmp_path / "roles"),
        ANSIBLE_STRATEGY="linear",
    )
    env.pop("ANSIBLE_STRATEGY_PLUGINS", None)
    done = subprocess.run(
        [
            "ansible-playbook",
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "site.yml",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (record,) = [json.loads(line) for line in timing.read_text().splitlines()]
    assert record["playbook"] == "site.yml"
    assert record["strategy"] == "linear"
    assert record["changed"] == {"localhost": 1}
    assert record["roles"]["slow_role"] >= 1.0
    assert record["roles"]["slow_role"] < record["seconds"]
    assert [name for name, _ in record["plays"]] == ["First play", "Second play"]
    assert record["plays"][0][1] >= 1.0
    assert sum(seconds for _, seconds in record["plays"]) <= record["seconds"] + 0.2


def _run(changed: int, rc: int = 0) -> dict:
    return {
        "strategy": "linear",
        "fresh": {
            "rc": 0,
            "up_seconds": 300.0,
            "site_seconds": 280.0,
            "deploy_seconds": 250.0,
            "changed": 90,
        },
        "idempotent": {
            "rc": rc,
            "up_seconds": 60.0,
            "site_seconds": 50.0,
            "deploy_seconds": 30.0,
            "changed": changed,
        },
    }


def test_verdict_requires_an_unchanged_successful_second_run(capsys):
    assert converge_timing.report([_run(changed=0)]) == 0
    out = capsys.readouterr().out
    assert "0.18" in out  # 50 s / 280 s, site.yml alone
    assert "ratio 0.12" in out  # 30 s / 250 s without the verification plays
    assert converge_timing.report([_run(changed=3)]) == 1
    assert converge_timing.report([_run(changed=0, rc=2)]) == 1
    assert converge_timing.report([{"strategy": "linear", "fresh": {"rc": 2, "up_seconds": 10.0}}]) == 1


def test_verification_plays_are_the_plays_of_verify_yml():
    names = converge_timing.verification_plays()
    text = (REPO / "playbooks/verify.yml").read_text()
    assert names and all(f"- name: {name}" in text for name in names)


def test_ci_lanes_run_every_scenario_exactly_once():
    script = (REPO / "tests/run-all.sh").read_text()
    (lanes,) = re.findall(r'ADG_MOLECULE_LANES="\$\{ADG_MOLECULE_LANES:-([^}]*)\}"', script)
    listed = [scenario for lane in lanes.split("|") for scenario in lane.split()]
    # a scenario left out of the lanes must be named, with why, in ADG_MOLECULE_OUTSIDE_LANES
    (outside,) = re.findall(r'^ADG_MOLECULE_OUTSIDE_LANES="([^"]*)"', script, re.MULTILINE)
    scenarios = sorted(p.parent.name for p in (REPO / "molecule").glob("*/molecule.yml"))
    assert sorted(listed + outside.split()) == scenarios
    assert len(listed) == len(set(listed)) and not set(listed) & set(outside.split())


_PHASES_SPEC = importlib.util.spec_from_file_location(
    "molecule_phases", REPO / "tests/tools/molecule_phases.py"
)
molecule_phases = importlib.util.module_from_spec(_PHASES_SPEC)
_PHASES_SPEC.loader.exec_module(molecule_phases)


def test_molecule_phases_times_each_action_and_passes_lines_through():
    lines = [
        "INFO     Found config file .config/molecule/config.yml\n",
        "INFO     \x1b[32mdata\x1b[0m ➜ \x1b[33mcreate\x1b[0m: \x1b[36mExecuting\x1b[0m\n",
        "PLAY [Create] ****\n",
        "INFO     data ➜ create: Executed: Successful\n",
        "INFO     [data > converge] Executing\n",  # the same, written to a pipe
        "INFO     [data > verify] Executing\n",
        "INFO     [data > verify] Executing Testinfra tests found in molecule/data/tests/...\n",
    ]
    ticks = iter([10.0, 52.5, 952.0, 1000.0])  # create, converge, verify start; then the end
    out = list(molecule_phases.phases(lines, clock=lambda: next(ticks)))
    assert [line for line, seconds in out if seconds is None] == lines  # unchanged, in order
    assert [(action, round(s, 1)) for action, s in out if s is not None] == [
        ("create", 42.5),
        ("converge", 899.5),
        ("verify", 48.0),
    ]
