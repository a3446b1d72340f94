"""The mongodb role's backup (tasks/backup.yml) as far as it can run without a MongoDB or the vendor's
tools: the units and the mongodump config as the role renders them (its own preflight first, through
ansible-playbook on the controller), checked with systemd-analyze verify; and files/mongodb-backup run
for real against a stub mongodump (archive naming, .partial then rename, retention by count, the
textfile metrics, a failed dump deleting nothing)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from tests.support.paths import REPO

ROLE = REPO / "roles/mongodb"
SCRIPT = ROLE / "files/mongodb-backup"
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
ARCHIVE = re.compile(r"^mongodump-\d{8}T\d{6}Z\.archive\.gz$")

# --- the rendered files ------------------------------------------------------------------------

PLAY = """
- name: The mongodb role's preflight, then its backup files rendered as a converge would
  hosts: all
  gather_facts: false
  vars:
    ansible_facts: {default_ipv4: {address: 127.0.0.9}}
  tasks:
    - name: Role preflight
      ansible.builtin.include_role:
        name: autodealgenie.ops.mongodb
        tasks_from: preflight
        public: true
    - name: Render the backup files
      ansible.builtin.template:
        src: "%(templates)s/{{ item }}.j2"
        dest: "%(out)s/{{ inventory_hostname }}/{{ item }}"
        mode: "0600"
      loop: [mongodb-backup.service, mongodb-backup.timer, mongodump.yaml]
      delegate_to: localhost
"""
MANAGED = {
    "mongodb_manage_server": True,
    "mongodb_admin_password": "Adm1n-pass-for-tests",
    "mongodb_app_password": "App-pass-for-tests-1",
    "mongodb_monitor_password": "Mon-pass-for-tests-1",
    "mongodb_replica_set_name": "rs0",
    "mongodb_port": 27018,
    "_mongodb_backup_password": "Generated-on-host-0123",
}
EXISTING = {
    "mongodb_manage_server": False,
    "mongodb_existing_uri": "mongodb://dumper:S3cret-in-uri@db.example.test:27017/?authSource=admin",
    "mongodb_backup_dir": "/srv/backups/mongo",
    "mongodb_backup_on_calendar": "Mon..Fri *-*-* 01:15:00",
    "mongodb_backup_retention_count": 14,
    "mongodb_backup_textfile_dir": "",
}
BAD_CALENDAR = {**EXISTING, "mongodb_backup_on_calendar": "every full moon"}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Path, str]:
    work = tmp_path_factory.mktemp("mongodb_backup")
    out = work / "out"
    for host in ("managed", "existing", "bad_calendar"):
        (out / host).mkdir(parents=True)
    (work / "ansible.cfg").write_text(
        textwrap.dedent(f"""\
        [defaults]
        collections_path = {REPO / ".cache/collections"}
        stdout_callback = ansible.builtin.default
        """)
    )
    common = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    hosts = {"managed": MANAGED, "existing": EXISTING, "bad_calendar": BAD_CALENDAR}
    (work / "inventory.json").write_text(json.dumps({"all": {"vars": common, "hosts": hosts}}))
    (work / "play.yml").write_text(PLAY % {"templates": ROLE / "templates", "out": out})
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env |= {"ANSIBLE_CONFIG": str(work / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    run = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(work / "inventory.json"), str(work / "play.yml")],
        cwd=work, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    return out, run.stdout + run.stderr


def unit_settings(path: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_managed_replica_set_units_and_config(rendered):
    out, output = rendered
    host = out / "managed"
    assert (host / "mongodb-backup.service").exists(), output[-4000:]
    service = unit_settings(host / "mongodb-backup.service")
    environment = dict(item.split("=", 1) for item in service["Environment"])
    assert environment == {
        "MONGODB_BACKUP_MONGODUMP": "/usr/bin/mongodump",
        "MONGODB_BACKUP_CONFIG": "/etc/mongodb-backup/mongodump.yaml",
        "MONGODB_BACKUP_DIR": "/var/backups/mongodb",
        "MONGODB_BACKUP_KEEP": "7",
        "MONGODB_BACKUP_OPLOG": "yes",  # replica set: one consistent point in time
        "MONGODB_BACKUP_TEXTFILE_DIR": "/var/lib/prometheus/node-exporter",
    }
    assert service["ReadWritePaths"] == ["/var/backups/mongodb", "-/var/lib/prometheus/node-exporter"]
    assert service["ProtectSystem"] == ["strict"] and service["Type"] == ["oneshot"]
    timer = unit_settings(host / "mongodb-backup.timer")
    assert timer["OnCalendar"] == ["*-*-* 02:30:00"] and timer["Persistent"] == ["true"]
    config = yaml.safe_load((host / "mongodump.yaml").read_text())
    # The password is its own key, never part of the URI or of the unit.
    assert config == {
        "uri": "mongodb://mongodb_backup@127.0.0.1:27018/?authSource=admin&directConnection=true",
        "password": "Generated-on-host-0123",
    }
    assert "Generated-on-host" not in (host / "mongodb-backup.service").read_text()


def test_existing_server_units_and_config(rendered):
    out, output = rendered
    host = out / "existing"
    assert (host / "mongodb-backup.service").exists(), output[-4000:]
    service = unit_settings(host / "mongodb-backup.service")
    environment = dict(item.split("=", 1) for item in service["Environment"])
    assert environment["MONGODB_BACKUP_DIR"] == "/srv/backups/mongo"
    assert environment["MONGODB_BACKUP_KEEP"] == "14"
    assert environment["MONGODB_BACKUP_OPLOG"] == "no"
    assert environment["MONGODB_BACKUP_TEXTFILE_DIR"] == ""
    assert service["ReadWritePaths"] == ["/srv/backups/mongo"]  # no metrics directory to open
    assert unit_settings(host / "mongodb-backup.timer")["OnCalendar"] == ["Mon..Fri *-*-* 01:15:00"]
    config = yaml.safe_load((host / "mongodump.yaml").read_text())
    assert config == {"uri": EXISTING["mongodb_existing_uri"]}  # mongodb_backup_uri defaults to it
    assert "S3cret-in-uri" not in (host / "mongodb-backup.service").read_text()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
@pytest.mark.parametrize("host", ["managed", "existing"])
def test_units_pass_systemd_analyze_verify(rendered, tmp_path, host):
    out, _ = rendered
    for name in ("mongodb-backup.service", "mongodb-backup.timer"):
        text = (out / host / name).read_text()
        # verify checks that ExecStart exists: point it at the role's script.
        (tmp_path / name).write_text(text.replace("/usr/local/sbin/mongodb-backup", str(SCRIPT)))
    units = [str(tmp_path / "mongodb-backup.service"), str(tmp_path / "mongodb-backup.timer")]
    result = subprocess.run(
        ["systemd-analyze", "verify", *units], capture_output=True, text=True, timeout=60, check=False
    )
    relevant = [line for line in result.stderr.splitlines() if "mongodb-backup" in line]
    assert result.returncode == 0 and not relevant, result.stderr


def test_preflight_refuses_a_schedule_systemd_cannot_parse(rendered):
    out, output = rendered
    assert not (out / "bad_calendar" / "mongodb-backup.timer").exists()
    failure = re.search(
        r"^fatal: \[bad_calendar\]: FAILED! => (.*?)(?=^\S)", output, re.MULTILINE | re.DOTALL
    )
    assert failure, output[-4000:]
    assert "mongodb_backup_on_calendar 'every full moon'" in failure.group(1)
    assert "Failed to parse calendar specification" in failure.group(1)


# --- the backup script against a stub mongodump ------------------------------------------------

STUB = """#!/bin/sh
# Stub mongodump: records its arguments, writes a fake archive to --archive=, or fails on request.
printf '%s\\n' "$@" > "$STUB_ARGS"
[ -n "${STUB_FAIL:-}" ] && { echo "stub: connection refused" >&2; exit 1; }
for arg in "$@"; do
    case $arg in --archive=*) printf 'fake archive %s\\n' "$STUB_PAYLOAD" > "${arg#--archive=}" ;; esac
done
"""


@pytest.fixture
def backup(tmp_path):
    """run(**env) -> CompletedProcess of files/mongodb-backup with a stub mongodump."""
    stub = tmp_path / "bin/mongodump"
    stub.parent.mkdir()
    stub.write_text(STUB)
    stub.chmod(0o755)
    (tmp_path / "archives").mkdir()
    (tmp_path / "textfile").mkdir()
    config = tmp_path / "mongodump.yaml"
    config.write_text('uri: "mongodb://u@h/"\npassword: "Not-on-the-command-line"\n')

    def run(**overrides) -> subprocess.CompletedProcess:
        env = {
            "PATH": os.environ["PATH"],
            "MONGODB_BACKUP_MONGODUMP": str(stub),
            "MONGODB_BACKUP_CONFIG": str(config),
            "MONGODB_BACKUP_DIR": str(tmp_path / "archives"),
            "MONGODB_BACKUP_KEEP": "7",
            "MONGODB_BACKUP_OPLOG": "no",
            "MONGODB_BACKUP_TEXTFILE_DIR": str(tmp_path / "textfile"),
            "STUB_ARGS": str(tmp_path / "args"),
            "STUB_PAYLOAD": "x" * 100,
        } | overrides
        return subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)

    run.dir = tmp_path
    return run


def archives(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def metrics(directory: Path) -> dict[str, float]:
    text = (directory / "mongodb_backup.prom").read_text()
    return {name: float(value) for name, value in re.findall(r"^(\w+) (\S+)$", text, re.MULTILINE)}


def test_a_successful_backup_writes_one_archive_and_its_metrics(backup):
    before = time.time()
    result = backup()
    assert result.returncode == 0, result.stderr
    names = archives(backup.dir / "archives")
    assert len(names) == 1 and ARCHIVE.match(names[0]), names  # no .partial left behind
    archive = backup.dir / "archives" / names[0]
    assert archive.read_text().startswith("fake archive")
    assert oct(archive.stat().st_mode & 0o777) == "0o600"  # umask 077
    args = (backup.dir / "args").read_text().split()
    assert args[0] == f"--config={backup.dir / 'mongodump.yaml'}"
    assert args[1].startswith(f"--archive={backup.dir / 'archives'}/.mongodump-") and args[1].endswith(
        ".partial"
    )
    assert args[2:] == ["--gzip"]
    assert not any("Not-on-the-command-line" in a for a in args)
    values = metrics(backup.dir / "textfile")
    assert before - 1 <= values["mongodb_backup_last_completion_timestamp_seconds"] <= time.time() + 1
    assert values["mongodb_backup_last_size_bytes"] == archive.stat().st_size
    assert 0 <= values["mongodb_backup_last_duration_seconds"] < 60
    assert [p.name for p in (backup.dir / "textfile").iterdir()] == ["mongodb_backup.prom"]


def test_oplog_is_passed_for_a_replica_set(backup):
    assert backup(MONGODB_BACKUP_OPLOG="yes").returncode == 0
    assert (backup.dir / "args").read_text().split()[2:] == ["--gzip", "--oplog"]


def test_retention_keeps_the_newest_archives_by_count_and_nothing_else_is_touched(backup):
    directory = backup.dir / "archives"
    old = [f"mongodump-2026010{day}T023000Z.archive.gz" for day in range(1, 9)]
    others = ["mongodump-manual.archive.gz", "notes.txt"]
    for name in old + others:
        (directory / name).write_text("old")
    result = backup(MONGODB_BACKUP_KEEP="3")
    assert result.returncode == 0, result.stderr
    kept = [n for n in archives(directory) if ARCHIVE.match(n)]
    assert len(kept) == 3
    assert kept[:2] == old[-2:]  # the two newest old ones, then today's
    assert set(others) <= set(archives(directory))
    assert result.stdout.count("removed") == 6


def test_a_failed_dump_leaves_no_archive_deletes_nothing_and_keeps_the_last_metrics(backup):
    assert backup().returncode == 0
    first = archives(backup.dir / "archives")
    metrics_before = (backup.dir / "textfile/mongodb_backup.prom").read_text()
    time.sleep(1.1)  # a new timestamp, so a leaked archive would show
    failed = backup(STUB_FAIL="1", MONGODB_BACKUP_KEEP="1")
    assert failed.returncode != 0
    assert "connection refused" in failed.stderr
    assert archives(backup.dir / "archives") == first  # no .partial, nothing removed
    assert (backup.dir / "textfile/mongodb_backup.prom").read_text() == metrics_before


@pytest.mark.parametrize("keep", ["0", "", "three", "-1"])
def test_a_bad_keep_count_is_refused_before_dumping(backup, keep):
    result = backup(MONGODB_BACKUP_KEEP=keep)
    assert result.returncode != 0
    assert not (backup.dir / "args").exists()
    assert archives(backup.dir / "archives") == []


def test_no_textfile_directory_means_no_metrics(backup):
    result = backup(MONGODB_BACKUP_TEXTFILE_DIR="")
    assert result.returncode == 0, result.stderr
    assert list((backup.dir / "textfile").iterdir()) == []
