"""The collection as a user gets it: built into a tarball, installed into an EMPTY collections path,
used from a playbook in a temporary directory outside this repository (no ansible.cfg, inventory,
defaults or vars plugin of the project), with only the inputs the argument specs mark as required.

It applies autodealgenie.ops.redis and autodealgenie.ops.prometheus to one fresh test host (lab
`colltest`, 172.30.15.0/24) and runs the module autodealgenie.ops.prometheus_verify there. The
collection's dependencies (ansible.posix, community.general, ...) come from the `ansible` package,
as they would from Galaxy (`--no-deps`: Galaxy is not reachable from CI).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
TESTHOSTS = REPO / "tests/tools/testhosts/testhosts.py"
LAB, SUBNET, HOST = "colltest", "172.30.15.0/24", "node1"
ROLES = ("redis", "prometheus")

if os.geteuid() != 0:  # test hosts are systemd-nspawn machines
    pytest.skip("needs root for the test hosts", allow_module_level=True)


def clean_env(**extra) -> dict[str, str]:
    """The caller's environment without any ANSIBLE_* setting of this project."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "ADG_"))}
    env.update(extra)
    return env


def run(cmd, cwd, env, timeout=900) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("outside-the-repo")


@pytest.fixture(scope="module")
def installed(workdir) -> Path:
    """The tarball built from this checkout, installed into an empty collections path."""
    env = clean_env()
    build = run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(workdir), str(REPO)],
        workdir,
        env,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (tarball,) = workdir.glob("autodealgenie-ops-*.tar.gz")
    with tarfile.open(tarball) as archive:
        names = set(archive.getnames())
    # the product, not the project: roles and plugins in, the project's own tree out
    assert {"roles/redis/tasks/main.yml", "plugins/modules/prometheus_verify.py", "meta/runtime.yml"} <= names
    assert not {
        n for n in names if n.split("/")[0] in {"playbooks", "inventories", "tests", "app", "molecule"}
    }

    collections = workdir / "collections"
    collections.mkdir()
    assert not any(collections.iterdir())
    install = run(
        [
            str(BIN / "ansible-galaxy"),
            "collection",
            "install",
            "--no-deps",
            "-p",
            str(collections),
            str(tarball),
        ],
        workdir,
        env,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    root = collections / "ansible_collections/autodealgenie/ops"
    assert (root / "MANIFEST.json").is_file() and not (root / "playbooks").exists()
    return collections


@pytest.fixture(scope="module")
def test_host(workdir):
    inventory = workdir / "hosts.yml"
    create = run(
        [
            sys.executable,
            str(TESTHOSTS),
            "create",
            "--lab",
            LAB,
            "--subnet",
            SUBNET,
            "--host",
            f"{HOST}:standalone",
            "--inventory",
            str(inventory),
        ],
        REPO,
        clean_env(),
    )
    assert create.returncode == 0, create.stdout + create.stderr
    yield inventory
    run([sys.executable, str(TESTHOSTS), "destroy", "--lab", LAB], REPO, clean_env())


# The user's playbook: the collection's roles by FQCN, then one of its modules and a look at Redis.
PLAYBOOK = """\
- name: The collection's roles and a module, nothing of the project
  hosts: all
  become: true
  vars_files: [required.yml]
  roles: @ROLES@
  tasks:
    - name: Prometheus scrapes itself and is healthy
      autodealgenie.ops.prometheus_verify:
        url: "http://{{ ansible_facts['default_ipv4']['address'] }}:9090"
        expected_jobs: [prometheus]
        check_alertmanagers: false
        wait_timeout: 120
    - name: Redis answers each ACL user the role created (its default user is disabled)
      ansible.builtin.command: redis-cli -h 127.0.0.1 -p 6379 --user {{ item.user }} PING
      environment:
        REDISCLI_AUTH: "{{ item.password }}"
      loop:
        - {user: "{{ redis_app_user }}", password: "{{ redis_app_password }}"}
        - {user: "{{ redis_monitor_user }}", password: "{{ redis_monitor_password }}"}
      loop_control:
        label: "{{ item.user }}"
      register: pings
      changed_when: false
    - name: Report
      ansible.builtin.debug:
        msg: "PINGS={{ pings.results | map(attribute='stdout') | join(',') }}"
"""


def required_options(collections: Path, role: str) -> set[str]:
    """What the INSTALLED role's meta/argument_specs.yml marks as required (entry point main)."""
    spec = collections / f"ansible_collections/autodealgenie/ops/roles/{role}/meta/argument_specs.yml"
    options = yaml.safe_load(spec.read_text())["argument_specs"]["main"]["options"]
    return {name for name, option in options.items() if (option or {}).get("required")}


def test_roles_and_a_module_work_from_a_playbook_outside_the_repo(workdir, installed, test_host):
    # Inputs for the required options only; values are test-only random strings.
    values = {
        "redis_app_password": os.urandom(12).hex(),
        "redis_monitor_password": os.urandom(12).hex(),
    }
    inputs = {role: sorted(required_options(installed, role)) for role in ROLES}
    unknown = {name for names in inputs.values() for name in names} - set(values)
    assert not unknown, f"a role now requires {sorted(unknown)}: give the test a value for it"
    secrets = workdir / "required.yml"  # the playbook's vars_files
    secrets.write_text(yaml.safe_dump({name: values[name] for names in inputs.values() for name in names}))
    secrets.chmod(0o600)

    (workdir / "ansible.cfg").write_text(
        "[defaults]\n"
        f"collections_path = {installed}\n"
        "host_key_checking = False\n"
        "interpreter_python = auto_silent\n"
        "stdout_callback = ansible.builtin.default\n"
        "callback_result_format = json\n"
        "[ssh_connection]\n"
        "ssh_args = -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no\n"
    )
    (workdir / "site.yml").write_text(
        PLAYBOOK.replace("@ROLES@", json.dumps([f"autodealgenie.ops.{r}" for r in ROLES]))
    )
    env = clean_env(ANSIBLE_CONFIG=str(workdir / "ansible.cfg"))
    play = run([str(BIN / "ansible-playbook"), "-i", str(test_host), "site.yml"], workdir, env, timeout=1200)
    output = play.stdout + play.stderr
    assert play.returncode == 0, output[-6000:]
    # resolved from the installed tarball, not from this checkout
    assert str(REPO) not in output
    assert re.search(rf"^{HOST}\s+:\s+ok=\d+\s+changed=\d+\s+unreachable=0\s+failed=0", output, re.M), output[
        -3000:
    ]
    assert re.search(r"PINGS=PONG,PONG\b", output), output[-3000:]
