"""Self-healing: every long-running service of the collection restarts after a crash, within a start
limit, through one mechanism (autodealgenie.ops.shared, entry point restart_policy).

- the entry point, run by ansible-playbook in check mode with --diff on local "hosts" (one per case,
  nothing is written): the drop-in it renders, with the documented defaults and with overrides, and
  the inputs it refuses;
- every role that enables and starts a .service unit applies the entry point to that unit (a role
  that forgets it fails here), with the policy of its kind;
- no role template or task sets Restart=/RestartSec=/StartLimit*= itself (one place for the values).
"""

from __future__ import annotations

import configparser
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
ROLES = ROOT / "roles"
SPEC = yaml.safe_load((ROLES / "shared" / "meta" / "argument_specs.yml").read_text())["argument_specs"]
OPTIONS = SPEC["restart_policy"]["options"]
DROPIN = "70-restart.conf"

# Units that roles enable and start but that are no long-running service of the project, and why.
NOT_SERVICES = {
    "postgresql.service": "Debian's umbrella oneshot (/bin/true); the server is postgresql@<ver>-<cluster>",
    "nftables.service": "a oneshot that loads the ruleset and exits",
    "systemd-timesyncd.service": "the distribution's own time daemon (its unit already restarts it)",
}
# Data stores restart only after a crash: their clean exit is a deliberate shutdown.
ON_FAILURE_ROLES = {"postgresql", "redis", "mongodb"}

CASES = {
    "defaults": {"shared_restart_policy_unit": "example.service"},
    "overrides": {
        "shared_restart_policy_unit": "postgresql@15-main.service",
        "shared_restart_policy_restart": "always",
        "shared_restart_policy_restart_sec": 3,
        "shared_restart_policy_start_limit_interval": 300,
        "shared_restart_policy_start_limit_burst": 4,
    },
    "unknown_policy": {
        "shared_restart_policy_unit": "example.service",
        "shared_restart_policy_restart": "on-abort",
    },
    "unreachable_limit": {
        "shared_restart_policy_unit": "example.service",
        "shared_restart_policy_restart_sec": 10,
        "shared_restart_policy_start_limit_interval": 50,
        "shared_restart_policy_start_limit_burst": 5,
    },
    "not_a_service": {"shared_restart_policy_unit": "example.socket"},
}

PLAYBOOK = """
- name: The restart_policy entry point, one case per host
  hosts: all
  gather_facts: false
  tasks:
    - name: Apply the entry point
      ansible.builtin.import_role:
        name: autodealgenie.ops.shared
        tasks_from: restart_policy
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, list[dict]]:
    """host (case) -> its task results, in order, from one check-mode --diff run."""
    work = tmp_path_factory.mktemp("restart_policy")
    inventory = {
        "all": {
            "hosts": {
                case: dict(values, ansible_connection="local", ansible_python_interpreter=sys.executable)
                for case, values in CASES.items()
            }
        }
    }
    (work / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (work / "playbook.yml").write_text(PLAYBOOK)
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
        "ANSIBLE_CALLBACKS_ENABLED": "ansible.builtin.json",
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_NOCOLOR": "1",
    }
    ansible_playbook = Path(sys.executable).with_name("ansible-playbook")
    run = subprocess.run(
        [
            str(ansible_playbook),
            "-i",
            str(work / "inventory.yml"),
            "--check",
            "--diff",
            str(work / "playbook.yml"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    try:
        report = json.loads(run.stdout)
    except ValueError as exc:
        raise AssertionError(
            f"ansible-playbook printed no JSON (rc={run.returncode}):\n{run.stderr}"
        ) from exc
    results: dict[str, list[dict]] = {case: [] for case in CASES}
    for task in report["plays"][0]["tasks"]:
        for host, result in task["hosts"].items():
            results[host].append(dict(result, _task=task["task"]["name"]))
    return results


def rendered_dropin(results: list[dict], unit: str) -> configparser.ConfigParser:
    writes = [
        r for r in results if r["_task"].split(" : ")[-1].startswith("Write the restart policy drop-in")
    ]
    assert len(writes) == 1, [r["_task"] for r in results]
    assert writes[0]["invocation"]["dest"] == f"/etc/systemd/system/{unit}.d/{DROPIN}"
    diff = writes[0]["diff"]
    diff = diff[0] if isinstance(diff, list) else diff
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(diff["after"])
    return parser


def failed(results: list[dict]) -> dict | None:
    return next((r for r in results if r.get("failed")), None)


def test_defaults_render_the_documented_policy(runs):
    assert failed(runs["defaults"]) is None, failed(runs["defaults"])
    dropin = rendered_dropin(runs["defaults"], "example.service")
    assert dict(dropin["Unit"]) == {
        "StartLimitIntervalSec": str(OPTIONS["shared_restart_policy_start_limit_interval"]["default"]),
        "StartLimitBurst": str(OPTIONS["shared_restart_policy_start_limit_burst"]["default"]),
    }
    assert dict(dropin["Service"]) == {
        "Restart": OPTIONS["shared_restart_policy_restart"]["default"],
        "RestartSec": str(OPTIONS["shared_restart_policy_restart_sec"]["default"]),
    }


def test_documented_defaults_meet_the_self_healing_contract():
    """kill -9 -> active again well within 15 s; a tight crash loop ends failed within 2 minutes."""
    restart_sec = OPTIONS["shared_restart_policy_restart_sec"]["default"]
    interval = OPTIONS["shared_restart_policy_start_limit_interval"]["default"]
    burst = OPTIONS["shared_restart_policy_start_limit_burst"]["default"]
    assert restart_sec <= 5
    assert burst * restart_sec < interval <= 120


def test_overrides_are_rendered(runs):
    assert failed(runs["overrides"]) is None, failed(runs["overrides"])
    dropin = rendered_dropin(runs["overrides"], "postgresql@15-main.service")
    assert dropin["Service"]["Restart"] == "always"
    assert dropin["Service"]["RestartSec"] == "3"
    assert dropin["Unit"]["StartLimitIntervalSec"] == "300"
    assert dropin["Unit"]["StartLimitBurst"] == "4"
    directory = next(r for r in runs["overrides"] if "Create the drop-in directory" in r["_task"])
    assert directory["diff"]["after"]["path"] == "/etc/systemd/system/postgresql@15-main.service.d"


def test_no_daemon_reload_in_check_mode(runs):
    reload = next(r for r in runs["defaults"] if "Reload systemd's units" in r["_task"])
    assert reload.get("skipped"), reload


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unknown_policy", "shared_restart_policy_restart"),
        ("unreachable_limit", "never ends in failed"),
        ("not_a_service", "must name a .service unit"),
    ],
)
def test_refused_inputs(runs, case, message):
    failure = failed(runs[case])
    assert failure is not None, f"{case} was accepted"
    assert message in json.dumps(failure), failure
    assert not [r for r in runs[case] if "Write the restart policy drop-in" in r["_task"]], (
        "nothing is written"
    )


# --- every role applies it --------------------------------------------------------------------------


def _load_yaml(path: Path):
    return yaml.safe_load(path.read_text()) or {}


def _role_vars(role: Path) -> dict:
    values: dict = {}
    for sub in ("defaults", "vars"):
        base = role / sub
        for path in sorted(base.rglob("*.yml")) if base.is_dir() else []:
            data = _load_yaml(path)
            if isinstance(data, dict):
                values.update(data)
    return values


def _tasks(node):
    """Every task of a task list, blocks (and rescue/always) unrolled."""
    for task in node or []:
        if not isinstance(task, dict):
            continue
        yield task
        for key in ("block", "rescue", "always"):
            yield from _tasks(task.get(key))


def _unit(name: str, values: dict) -> str:
    """A unit name with the role's plain `{{ var }}` references resolved, `.service` if no suffix."""
    resolved = re.sub(
        r"\{\{\s*(\w+)\s*\}\}",
        lambda m: str(values[m.group(1)]) if isinstance(values.get(m.group(1)), str | int) else m.group(0),
        str(name),
    )
    return (
        resolved
        if re.search(r"\.(service|socket|timer|target|mount|path)$", resolved)
        else resolved + ".service"
    )


def role_units(role: Path) -> tuple[set[str], dict[str, str]]:
    """(.service units the role enables and starts, unit -> restart policy it applies)."""
    values = _role_vars(role)
    started: set[str] = set()
    policies: dict[str, str] = {}
    for path in sorted((role / "tasks").rglob("*.yml")):
        for task in _tasks(_load_yaml(path) if path.stat().st_size else []):
            module = next(
                (
                    task[k]
                    for k in ("ansible.builtin.systemd_service", "ansible.builtin.systemd")
                    if k in task
                ),
                None,
            )
            if (
                isinstance(module, dict)
                and module.get("enabled") is True
                and module.get("state") == "started"
            ):
                names = task.get("loop") if module.get("name") == "{{ item }}" else [module.get("name")]
                if isinstance(names, str):  # a templated list: the unit names quoted in it
                    names = re.findall(r"'([\w@.-]+\.(?:service|socket|timer))'", names)
                started |= {_unit(n, values) for n in names or []}
            for key in ("ansible.builtin.import_role", "ansible.builtin.include_role"):
                call = task.get(key)
                if isinstance(call, dict) and call.get("tasks_from") == "restart_policy":
                    assert call.get("name") == "autodealgenie.ops.shared", f"{path}: {call}"
                    assert key == "ansible.builtin.import_role", (
                        f"{path}: import it, so the phase's tags reach it"
                    )
                    variables = task.get("vars") or {}
                    unit = _unit(variables["shared_restart_policy_unit"], values)
                    policies[unit] = variables.get(
                        "shared_restart_policy_restart", OPTIONS["shared_restart_policy_restart"]["default"]
                    )
    return {u for u in started if u.endswith(".service")}, policies


SERVICE_ROLES = sorted(
    p.name for p in ROLES.iterdir() if p.is_dir() and p.name != "shared" and (p / "tasks").is_dir()
)


def test_the_scan_sees_the_service_roles():
    # Guards against the scan silently finding nothing.
    units = {role: role_units(ROLES / role)[0] for role in SERVICE_ROLES}
    assert "redis-server.service" in units["redis"]
    assert "prometheus-node-exporter.service" in units["node_exporter"]
    assert "autodealgenie.service" in units["backend"]


@pytest.mark.parametrize("role", SERVICE_ROLES)
def test_every_started_service_heals_itself(role):
    started, policies = role_units(ROLES / role)
    missing = sorted(started - set(policies) - set(NOT_SERVICES))
    assert not missing, f"roles/{role} starts {missing} without autodealgenie.ops.shared restart_policy"
    expected = "on-failure" if role in ON_FAILURE_ROLES else "always"
    wrong = {unit: policy for unit, policy in policies.items() if policy != expected}
    assert not wrong, f"roles/{role}: {wrong}, expected {expected} for this kind of service"


@pytest.mark.parametrize(
    "role",
    [
        "postgresql",
        "redis",
        "mongodb",
        "grafana",
        "prometheus",
        "alertmanager",
        "blackbox_exporter",
        "journal_remote",
    ],
)
def test_packaged_units_get_the_drop_in(role):
    """Roles that start the package's unit (or the vendor's) apply the policy to it by name."""
    _, policies = role_units(ROLES / role)
    assert policies, f"roles/{role} applies no restart_policy"


def test_no_role_sets_its_own_restart_settings():
    pattern = re.compile(
        r"^\s*(Restart|RestartSec|StartLimitIntervalSec|StartLimitInterval|StartLimitBurst)=", re.M
    )
    offenders = [
        str(path.relative_to(ROOT))
        for path in ROLES.rglob("*")
        if path.is_file()
        and path.suffix in (".j2", ".service", ".conf", ".yml")
        and not path.is_relative_to(ROLES / "shared")
        and pattern.search(path.read_text(errors="replace"))
    ]
    assert not offenders, f"restart settings outside autodealgenie.ops.shared restart_policy: {offenders}"


@pytest.mark.parametrize("role", SERVICE_ROLES)
def test_unit_names_are_known_whenever_the_argument_check_runs(role):
    """The entry point's argument check runs under every tag (`always`), also when the phase that
    sets a fact was skipped (`--tags <other role>`): a unit name from a fact needs `when: <fact> is
    defined`, role defaults and vars are always there."""
    values = _role_vars(ROLES / role)
    unguarded = []
    for path in sorted((ROLES / role / "tasks").rglob("*.yml")):
        for task in _tasks(_load_yaml(path) if path.stat().st_size else []):
            call = task.get("ansible.builtin.import_role") or {}
            if not isinstance(call, dict) or call.get("tasks_from") != "restart_policy":
                continue
            unit = (task.get("vars") or {}).get("shared_restart_policy_unit", "")
            facts = set(re.findall(r"\{\{\s*(\w+)", str(unit))) - {
                k for k, v in values.items() if v is not None
            }
            when = " ".join(
                task["when"] if isinstance(task.get("when"), list) else [str(task.get("when", ""))]
            )
            unguarded += [f"{path.name}: {fact}" for fact in facts if f"{fact} is defined" not in when]
    assert not unguarded, f"roles/{role}: unit names from facts without `is defined`: {unguarded}"
