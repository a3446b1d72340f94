"""autodealgenie.ops.tsdb_retention_size, and the prometheus role's --storage.tsdb.retention.size:
derived from the TSDB's filesystem by default, an explicit value winning, a bad one refused by
preflight. The role part runs the role's own preflight and flags template through ansible-playbook
on the controller (connection local, facts given as play variables: no host is contacted)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.autodealgenie.ops.plugins.filter import tsdb_retention_size as plugin

from tests.support.paths import REPO

ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
size = plugin.FilterModule().filters()["tsdb_retention_size"]
GiB = 1024**3
TSDB = "/var/lib/prometheus/metrics2"


def test_the_longest_mount_point_containing_the_path_is_measured():
    mounts = [
        {"mount": "/", "size_total": 100 * GiB},
        {"mount": "/var", "size_total": 40 * GiB},
        {"mount": "/var/lib/prometheus", "size_total": 20 * GiB},
        {"mount": "/var/lib/prometheus2", "size_total": 1000 * GiB},  # a sibling, not a parent
    ]
    assert size(mounts, TSDB, 0.5) == "10GB"
    assert size(mounts[:2], TSDB, 0.5) == "20GB"
    assert size(mounts[:1], TSDB, 0.5) == "50GB"
    assert size(list(reversed(mounts)), TSDB + "/", 0.5) == "10GB"  # order and trailing slash do not matter


@pytest.mark.parametrize(
    ("total", "fraction", "expected"),
    [
        (100 * GiB, 0.5, "50GB"),
        (8 * GiB, 0.8, "6553MB"),  # under 10 GB: whole MB, rounded down (6553.6)
        (20 * GiB, 0.5, "10GB"),  # 10240 MB: whole GB from here
        (270553174016, 0.5, "125GB"),  # the test hosts' / (251.97 GiB): 125.98 rounds down
        (1024**4, 1, "1024GB"),
        (3 * 1024**2, 0.5, "1MB"),
    ],
)
def test_size_is_a_rounded_down_base_2_prometheus_size(total, fraction, expected):
    assert size([{"mount": "/", "size_total": total}], TSDB, fraction) == expected


@pytest.mark.parametrize(
    ("mounts", "path", "fraction", "message"),
    [
        ([], TSDB, 0.5, "no mount in the facts contains /var/lib/prometheus/metrics2"),
        ([{"mount": "/srv", "size_total": GiB}], TSDB, 0.5, "no mount in the facts contains"),
        ([{"mount": "/", "size_total": GiB}], "var/lib/x", 0.5, "must be absolute"),
        ([{"mount": "/", "size_total": GiB}], TSDB, 0, "fraction must be > 0 and <= 1"),
        ([{"mount": "/", "size_total": GiB}], TSDB, 1.5, "fraction must be > 0 and <= 1"),
        ([{"mount": "/", "size_total": GiB}], TSDB, "half", "fraction must be a number"),
        ([{"mount": "/", "size_total": 0}], TSDB, 0.5, "has no usable size_total"),
        ([{"mount": "/"}], TSDB, 0.5, "has no usable size_total"),
        ([{"mount": "/", "size_total": 1024**2}], TSDB, 0.5, "less than 1MB"),
    ],
)
def test_no_usable_size_is_an_error_never_no_cap(mounts, path, fraction, message):
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        size(mounts, path, fraction)


# --- the role: preflight + the flags file, as a converge renders them --------------------------

PLAY = """
- name: The prometheus role's preflight and flags file, facts from the inventory
  hosts: all
  gather_facts: false
  vars:
    ansible_facts: "{{ test_facts }}"
  tasks:
    - name: Role preflight (derives and validates the size)
      ansible.builtin.include_role:
        name: autodealgenie.ops.prometheus
        tasks_from: preflight
        public: true
    - name: Render the flags file
      ansible.builtin.template:
        src: %(templates)s/prometheus.default.j2
        dest: "%(out)s/{{ inventory_hostname }}"
        mode: "0600"
      delegate_to: localhost
"""


def facts(mounts: list[dict]) -> dict:
    return {
        "service_mgr": "systemd",
        "os_family": "Debian",
        "distribution_release": "bookworm",
        "default_ipv4": {"address": "127.0.0.9"},
        "mounts": mounts,
    }


SHARED_ROOT = [{"mount": "/", "size_total": 100 * GiB}, {"mount": "/boot", "size_total": GiB}]
OWN_VOLUME = [*SHARED_ROOT, {"mount": "/var/lib/prometheus", "size_total": 10 * GiB}]
HOSTS = {
    # name: (host variables, expected --storage.tsdb.retention.size or None, or a preflight error)
    "derived_root": ({"test_facts": facts(SHARED_ROOT)}, "50GB"),
    "derived_own_volume": ({"test_facts": facts(OWN_VOLUME)}, "5120MB"),
    # 0.8 of 10 GiB is 8192 MB: under 10 GB, so whole MB
    "derived_fraction": (
        {"test_facts": facts(OWN_VOLUME), "prometheus_retention_size_disk_fraction": 0.8},
        "8192MB",
    ),
    "explicit": ({"test_facts": facts([]), "prometheus_retention_size": "20GB"}, "20GB"),
    "explicit_fraction_unit": (
        {"test_facts": facts(SHARED_ROOT), "prometheus_retention_size": "1.5TB"},
        "1.5TB",
    ),
    "no_cap": ({"test_facts": facts(SHARED_ROOT), "prometheus_retention_size": ""}, None),
    "bad_case": (
        {"test_facts": facts(SHARED_ROOT), "prometheus_retention_size": "20gb"},
        "error: prometheus_retention_size must be a Prometheus size such as 20GB",
    ),
    "bad_no_unit": (
        {"test_facts": facts(SHARED_ROOT), "prometheus_retention_size": "20"},
        "error: prometheus_retention_size must be a Prometheus size",
    ),
    "no_mounts_fact": (
        {"test_facts": facts([])},
        "error: no mount in the facts contains /var/lib/prometheus/metrics2",
    ),
}


@pytest.fixture(scope="module")
def converged(tmp_path_factory) -> tuple[dict[str, str | None], str]:
    """One ansible-playbook run over every case: host -> rendered ARGS (None: the host failed)."""
    work = tmp_path_factory.mktemp("prometheus_retention")
    out = work / "out"
    out.mkdir()
    (work / "ansible.cfg").write_text(
        textwrap.dedent(f"""\
        [defaults]
        collections_path = {REPO / ".cache/collections"}
        stdout_callback = ansible.builtin.default
        callback_result_format = json
        """)
    )
    common = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory = {"all": {"vars": common, "hosts": {name: case[0] for name, case in HOSTS.items()}}}
    (work / "inventory.json").write_text(json.dumps(inventory))
    (work / "play.yml").write_text(PLAY % {"templates": REPO / "roles/prometheus/templates", "out": out})
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env |= {"ANSIBLE_CONFIG": str(work / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    run = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(work / "inventory.json"), "--forks", "10", str(work / "play.yml")],
        cwd=work, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    rendered = {name: (out / name).read_text() if (out / name).exists() else None for name in HOSTS}
    return rendered, run.stdout + run.stderr


def flag(args_file: str) -> str | None:
    line = next(line for line in args_file.splitlines() if line.startswith("ARGS="))
    values = re.findall(r"--storage\.tsdb\.retention\.size=(\S+?)(?=[\s\"])", line)
    assert len(values) <= 1, line
    return values[0] if values else None


@pytest.mark.parametrize(
    "host", [name for name, case in HOSTS.items() if not str(case[1]).startswith("error:")]
)
def test_rendered_flag(converged, host):
    rendered, output = converged
    assert rendered[host] is not None, output[-4000:]
    assert flag(rendered[host]) == HOSTS[host][1]
    assert "--storage.tsdb.retention.time=30d" in rendered[host]


@pytest.mark.parametrize("host", [name for name, case in HOSTS.items() if str(case[1]).startswith("error:")])
def test_preflight_refuses_with_a_clear_message(converged, host):
    rendered, output = converged
    assert rendered[host] is None, f"{host} rendered flags despite a bad size: {rendered[host]}"
    failure = re.search(rf"^fatal: \[{host}\]: FAILED! => (.*?)(?=^\S)", output, re.MULTILINE | re.DOTALL)
    assert failure, output[-4000:]
    assert HOSTS[host][1].removeprefix("error: ") in failure.group(1), failure.group(1)
