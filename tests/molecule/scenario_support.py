"""Fixtures and helpers shared by the whole-stack molecule scenarios (`default`, `ha`): the
scenario inventory, host addresses and groups, the drills' webhook receiver, commands on hosts,
playbook runs with the test-only vars, and the figures report printed at the end of verify.

Each scenario's tests/conftest.py imports the fixtures it uses from here (pytest finds fixtures
by name in the conftest's namespace) and calls terminal_summary() with its name.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import testinfra
from adg_molecule import port

from tests.molecule.fault_drills.drills import DRILL_VARS, load_settings
from tests.molecule.fault_drills.webhook_receiver import WebhookReceiver

REPO = Path(__file__).resolve().parents[2]

EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"))
REPORT: list[str] = []
_STARTED = time.monotonic()


def report(line: str = "") -> None:
    REPORT.append(line)


@pytest.fixture(scope="session")
def inventory() -> dict:
    """The scenario inventory as `ansible-inventory --list` sees it (hostvars untemplated)."""
    out = subprocess.run(
        ["ansible-inventory", "-i", str(EPHEMERAL / "inventory"), "--list"],
        check=True,
        capture_output=True,
        text=True,
        env=ansible_env(),
    ).stdout
    return json.loads(out)


@pytest.fixture(scope="session")
def addresses(inventory) -> dict[str, str]:
    """Inventory host name -> address on the lab bridge."""
    return {name: str(v["ansible_host"]) for name, v in inventory["_meta"]["hostvars"].items()}


@pytest.fixture(scope="session")
def groups(inventory) -> dict[str, list[str]]:
    return {name: data.get("hosts", []) for name, data in inventory.items() if name != "_meta"}


@pytest.fixture(scope="session")
def gateway(addresses) -> str:
    """The controller's address on the lab bridge (.1 of the lab's /24)."""
    any_host = next(iter(addresses.values()))
    return any_host.rsplit(".", 1)[0] + ".1"


@pytest.fixture(scope="session")
def prometheus_url(addresses, groups) -> str:
    return f"http://{addresses[groups['monitoring'][0]]}:{port('prometheus_port')}"


@pytest.fixture(scope="session")
def alertmanager_url(addresses, groups) -> str:
    return f"http://{addresses[groups['monitoring'][0]]}:{port('alertmanager_port')}"


@pytest.fixture(scope="session")
def app_urls(addresses, groups) -> list[str]:
    return [f"http://{addresses[h]}:{port('backend_port')}" for h in groups["app"]]


@pytest.fixture(scope="session")
def drill_settings() -> dict:
    return load_settings()


@pytest.fixture(scope="session")
def webhook(gateway, drill_settings):
    """Alertmanager's webhook receiver (drill_vars.yml points every receiver at it)."""
    receiver = WebhookReceiver(gateway, drill_settings["webhook_port"]).start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def remote():
    """Inventory host name -> testinfra host (over ansible), for commands on one named host."""
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            inventory = str(EPHEMERAL / "inventory")
            cache[name] = testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory)
        return cache[name]

    return get


def run_on(remote, name: str, command: str) -> str:
    result = remote(name).run(command)
    assert result.rc == 0, f"{name}: {command}: rc={result.rc} {result.stderr}"
    return result.stdout


def ansible_env() -> dict:
    env = dict(os.environ)
    env.setdefault("ANSIBLE_CONFIG", str(REPO / "ansible.cfg"))
    # playbooks/group_vars must reach role tasks (see .config/molecule/config.yml)
    env["ANSIBLE_PLAYBOOK_VARS_ROOT"] = "top"
    env["ANSIBLE_FORCE_COLOR"] = "false"
    # these runs are not converges: keep them out of the converge timing log
    env.pop("ADG_RUN_TIMING_FILE", None)
    return env


def run_playbook(playbook: str, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    """ansible-playbook against the scenario inventory with the test-only vars, output captured."""
    cmd = [
        "ansible-playbook",
        "-i",
        str(EPHEMERAL / "inventory"),
        f"--extra-vars=@{DRILL_VARS}",
        str(REPO / playbook),
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=ansible_env(), timeout=timeout, cwd=REPO)


def _converge_figures() -> list[str]:
    log = EPHEMERAL / "run_timing.jsonl"
    if not log.exists():
        return ["converge timings: no run_timing.jsonl (adg_run_timing callback not enabled?)"]
    runs = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    # the log outlives a scenario run: only the converges since the latest create count
    creates = [i for i, r in enumerate(runs) if r["playbook"] == "create.yml"]
    site = [r for r in runs[(creates[-1] if creates else 0) :] if r["playbook"] == "site.yml"]
    lines = []
    if len(site) >= 1:
        lines.append(f"fresh converge (site.yml):       {site[0]['seconds']:7.1f} s")
    if len(site) >= 2:
        second = site[1]
        changed = sum(second["changed"].values())
        lines.append(f"idempotent converge (site.yml):  {second['seconds']:7.1f} s   (changed={changed})")
        lines.append(f"ratio idempotent/fresh:          {second['seconds'] / site[0]['seconds']:7.2f}")
    return lines


def terminal_summary(terminalreporter, scenario: str) -> None:
    verify_seconds = time.monotonic() - _STARTED
    lines = ["", "=" * 30 + f" molecule {scenario}: figures " + "=" * 30]
    lines += _converge_figures()
    lines.append(f"verify step (this pytest run):   {verify_seconds:7.1f} s")
    lines += REPORT
    lines.append("=" * 87)
    for line in lines:
        terminalreporter.write_line(line)
    reports = REPO / ".cache" / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    (reports / f"molecule-{scenario}.txt").write_text("\n".join(lines) + "\n")
