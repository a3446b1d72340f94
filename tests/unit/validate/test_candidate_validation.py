"""Config files are validated as candidates before they replace the live ones (issue 13).

- static: every template/copy task of the service roles either has a `validate:` (with the checker
  that fits the file: systemd units and drop-ins go through verify-unit under their own name,
  /etc/default flag files through check-env-file --flags-of the service's binary), or stages into
  Prometheus' candidate rule directory / swaps from it, or is listed below with the reason it has
  no checker;
- the rule set is checked as one set (one promtool run over every staged file) before the swap;
- the checkers of autodealgenie.ops.shared (entry point validators), run here on good and bad
  candidates: each rejects the bad one with a message naming the live file, and passes the files the
  roles really render.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
ROLES = ROOT / "roles"
CHECKERS = ROLES / "shared" / "files"
LIBEXEC = "/usr/local/libexec/autodealgenie/"
# roles/backend belongs to the deploy area (its own candidate checks); every other role is covered.
COVERED = [
    "alertmanager",
    "blackbox_exporter",
    "common",
    "etcd",
    "grafana",
    "haproxy",
    "journal_remote",
    "journal_upload",
    "keepalived",
    "mongodb",
    "mongodb_exporter",
    "node_exporter",
    "pgbackrest",
    "postgres_exporter",
    "postgresql",
    "prometheus",
    "redis",
    "redis_exporter",
    "redis_sentinel",
    "shared",
    "victoriametrics",
]
_CHECKERS_TASK = (
    "Install the candidate checkers (systemd units, env files, PostgreSQL, mongod, Grafana, exporter queries)"
)
# (role, task name) -> why the file has no checker.
NO_CHECKER = {
    (
        "mongodb",
        "Write the mongodump config (connection string and password, 0600)",
    ): "read by mongodump only",
    ("mongodb", "Install the backup script"): "a program shipped with the role, not configuration",
    (
        "mongodb",
        "Write the keyfile on members that lack it",
    ): "random key material, written once (force: false)",
    (
        "mongodb",
        "Configure the vendor repository (deb822, Signed-By the checked key)",
    ): "apt reads it; key checked",
    ("mongodb", "Install the user-management script"): "a program shipped with the role",
    (
        "grafana",
        "Write the admin password file read at first start (0640 root:grafana)",
    ): "a secret, no syntax",
    ("grafana", "Install the keyring"): "fingerprint checked by the install phase",
    ("grafana", "Add the Grafana repository (deb822, signed-by the checked keyring)"): "apt reads it",
    ("mongodb_exporter", "Install the exporter"): "a program shipped with the role",
    ("pgbackrest", "Make SSH of the pgBackRest user require the pinned host keys"): "fixed content",
    (
        "pgbackrest",
        "Render pgbackrest.conf",
    ): "pgbackrest has no offline config check; run.yml's check runs it",
    ("pgbackrest", "Install the metrics writer"): "a program shipped with the role",
    ("redis", "Install the candidate-config checker and the RDB-to-AOF converter"): "programs",
    ("redis_sentinel", "Install the candidate-config checker"): "a program shipped with the role",
    ("shared", "Stamp the venv with the wheel set and install list it has"): "a stamp read by creates:",
    (
        "common",
        "Name the timezone in /etc/timezone",
    ): "one name; the /etc/localtime link fails on an unknown one",
    (
        "common",
        "Configure systemd-timesyncd",
    ): "no checker exists for timesyncd.conf (unknown keys are ignored)",
    ("shared", _CHECKERS_TASK): "the checkers themselves",
    (
        "journal_remote",
        "Configure journal-remote (split by host, TLS files, size limits where supported)",
    ): "journal-remote has no offline config check; run.yml's readiness check proves the service took it",
    (
        "journal_upload",
        "Configure the TLS client files of every instance (journal-upload.conf.d)",
    ): "journal-upload has no offline config check; run.yml waits for every instance's first upload",
}
# verify-unit's optional FILE=UNIT arguments: companions loaded next to the candidate (a socket or
# timer is checked with the service it starts); paths and names may be plain `{{ var }}`s.
_WORD = r"(?:[\w@./-]|\{\{ \w+ \}\})+"
COMPANIONS = re.compile(rf"( /{_WORD}={_WORD})*")
UNIT_SUFFIXES = (".service", ".timer", ".socket", ".path", ".mount", ".target", ".slice")


def _walk(tasks):
    for task in tasks or []:
        for key in ("block", "rescue", "always"):
            if key in task:
                yield from _walk(task[key])
        yield task


def _file_tasks():
    for role in COVERED:
        for path in sorted((ROLES / role / "tasks").glob("*.yml")):
            for task in _walk(yaml.safe_load(path.read_text())):
                for module in ("ansible.builtin.template", "ansible.builtin.copy"):
                    if module in task:
                        yield role, path.name, task, task[module]


FILE_TASKS = list(_file_tasks())


def _ids(rows):
    return [f"{role}/{name}:{task.get('name')}" for role, name, task, _ in rows]


def test_the_static_check_sees_the_tasks():
    # The walk must find the known validated tasks, or every check below would pass vacuously.
    names = {task.get("name") for _, _, task, args in FILE_TASKS if "validate" in args}
    assert len(FILE_TASKS) >= 40
    assert "Render mongod.conf (validated by mongod-check-candidate)" in names
    assert any(name.startswith("Write the restart policy drop-in") for name in names)


@pytest.mark.parametrize(("role", "file", "task", "args"), FILE_TASKS, ids=_ids(FILE_TASKS))
def test_every_config_write_is_validated_or_staged(role, file, task, args):
    key = (role, task.get("name"))
    dest = str(args.get("dest", ""))
    staged = "_prometheus_rules_candidate_dir" in dest or (
        args.get("remote_src") and "_prometheus_rules_candidate_dir" in str(args.get("src"))
    )
    if key in NO_CHECKER:
        assert "validate" not in args, f"{key} has a checker now: drop it from NO_CHECKER"
        return
    assert "validate" in args or staged, (
        f"{role}/tasks/{file}: '{task.get('name')}' writes {dest} without validate: (add a checker from "
        "autodealgenie.ops.shared validators, or list it in NO_CHECKER with the reason)"
    )
    assert "validate" not in args or "%s" in str(args["validate"])


@pytest.mark.parametrize(
    ("role", "file", "task", "args"),
    [
        row
        for row in FILE_TASKS
        if "/etc/systemd/system/" in str(row[3].get("dest", ""))
        or "_restart_policy_dir" in str(row[3].get("dest", ""))
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_units_and_dropins_go_through_verify_unit_under_their_own_name(role, file, task, args):
    dest = str(args["dest"])
    # The name verify-unit gets is the path below /etc/systemd/system: the unit's file name, or
    # <unit>.d/<drop-in> (restart_policy's directory is /etc/systemd/system/<unit>.d).
    name = (
        dest.split("/etc/systemd/system/", 1)[1]
        if "/etc/systemd/system/" in dest
        else "{{ shared_restart_policy_unit }}.d/" + dest.rsplit("/", 1)[1]
    )
    validate = " ".join(str(args.get("validate", "")).split())
    expected = f"{LIBEXEC}verify-unit {name} %s"
    assert validate.startswith(expected), f"{role}: '{task.get('name')}'"
    assert COMPANIONS.fullmatch(validate[len(expected) :]), f"{role}: '{task.get('name')}': {validate}"


@pytest.mark.parametrize(
    ("role", "dest", "binary"),
    [
        ("prometheus", "/etc/default/prometheus", "/usr/bin/prometheus"),
        ("alertmanager", "/etc/default/prometheus-alertmanager", "/usr/bin/prometheus-alertmanager"),
        ("node_exporter", "/etc/default/prometheus-node-exporter", "/usr/bin/prometheus-node-exporter"),
        (
            "blackbox_exporter",
            "/etc/default/prometheus-blackbox-exporter",
            "/usr/bin/prometheus-blackbox-exporter",
        ),
    ],
)
def test_flag_files_are_checked_against_the_binarys_help(role, dest, binary):
    rows = [args for r, _, _, args in FILE_TASKS if r == role and args.get("dest") == dest]
    assert len(rows) == 1
    validate = " ".join(str(rows[0]["validate"]).split())
    assert validate.startswith(LIBEXEC + "check-env-file ")
    assert f"--flags-of {binary}" in validate and f"--name {dest}" in validate


def test_rule_files_are_checked_as_one_set_before_the_swap():
    tasks = list(_walk(yaml.safe_load((ROLES / "prometheus/tasks/configure.yml").read_text())))
    names = [task.get("name", "") for task in tasks]
    check = names.index("Check the whole staged rule set with promtool")
    fail = names.index("Fail before the swap when promtool rejects the rule set")
    swap = names.index("Swap the checked rule set in (replaces the live rule files)")
    assert max(i for i, n in enumerate(names) if n.startswith("Stage ")) < check < fail < swap
    argv = tasks[check]["ansible.builtin.command"]["argv"]
    # one promtool run over every managed file of the candidate directory (_prometheus_rule_candidates)
    candidates = yaml.safe_load((ROLES / "prometheus/vars/main.yml").read_text())[
        "_prometheus_rule_candidates"
    ]
    assert "'promtool', 'check', 'rules'" in argv and "_prometheus_rule_candidates" in argv
    assert "_prometheus_managed_rule_files" in candidates
    assert "_prometheus_rules_candidate_dir" in candidates
    # nothing writes the live rule directory except the swap (and the cleanup of unmanaged files)
    live_writers = [
        task["name"]
        for task in tasks
        for module in ("ansible.builtin.copy", "ansible.builtin.template")
        if module in task and "prometheus_rules_dir }}/" in str(task[module].get("dest"))
    ]
    assert live_writers == ["Swap the checked rule set in (replaces the live rule files)"]


def test_every_role_using_a_checker_installs_them_first():
    for role in COVERED:
        text = "\n".join(p.read_text() for p in sorted((ROLES / role / "tasks").glob("*.yml")))
        if LIBEXEC in text and role != "shared":
            assert "tasks_from: validators" in text, role


# --- the checkers themselves -------------------------------------------------------------------


def _run(name: str, *args: str):
    return subprocess.run(
        [str(CHECKERS / name), *args], capture_output=True, text=True, check=False, timeout=120
    )


def test_checkers_are_executable():
    for name in (
        "verify-unit",
        "check-env-file",
        "pg-check-candidate",
        "mongod-check-candidate",
        "grafana-check-ini",
        "check-exporter-queries",
    ):
        assert (CHECKERS / name).stat().st_mode & stat.S_IXUSR, name
    tasks = (ROLES / "shared/tasks/validators.yml").read_text()
    for path in CHECKERS.iterdir():
        if path.name != "python_wheels.py":
            assert f"- {path.name}\n" in tasks, f"{path.name} is not installed by the validators entry point"


@pytest.fixture
def fake_binary(tmp_path):
    """A program whose --help lists flags the way kingpin does (Prometheus, Alertmanager, exporters)."""
    path = tmp_path / "fake-prometheus"
    path.write_text(
        "#!/bin/sh\ncat >&2 <<'EOF'\nusage: prometheus [<flags>]\nFlags:\n"
        '  --config.file="prometheus.yml"  Prometheus configuration file path.\n'
        '  --web.listen-address="0.0.0.0:9090"\n  --[no-]web.enable-lifecycle  Enable shutdown via HTTP.\n'
        "  --storage.tsdb.retention.time=STORAGE.TSDB.RETENTION.TIME\n"
        # older kingpin: a boolean flag without its --[no-] form
        "  --collector.textfile  Enable the textfile collector\nEOF\n"
    )
    path.chmod(0o755)
    return path


def test_check_env_file_accepts_known_flags_and_refuses_an_unknown_one(tmp_path, fake_binary):
    good = tmp_path / "good"
    good.write_text(
        '# x\nARGS="--config.file=/etc/p.yml --web.enable-lifecycle --no-web.enable-lifecycle'
        ' --no-collector.textfile"\n'
    )
    result = _run(
        "check-env-file",
        "--name",
        "/etc/default/prometheus",
        "--require",
        "ARGS",
        "--flags-of",
        str(fake_binary),
        str(good),
    )
    assert result.returncode == 0, result.stderr
    bad = tmp_path / "bad"
    bad.write_text('ARGS="--config.file=/etc/p.yml --storage.tsdb.retention=31d --web.enable-lifecycle"\n')
    result = _run(
        "check-env-file", "--name", "/etc/default/prometheus", "--flags-of", str(fake_binary), str(bad)
    )
    assert result.returncode == 1
    assert "/etc/default/prometheus: ARGS: --storage.tsdb.retention is not a flag" in result.stderr
    assert "the live file is unchanged" in result.stderr


def test_check_env_file_syntax_required_keys_and_no_values_printed(tmp_path, fake_binary):
    bad = tmp_path / "env"
    bad.write_text(
        'DATA_SOURCE_URI="db:5432/x"\nDATA_SOURCE_PASS="s3cret-value\nDATA_SOURCE_URI=again\nnot a line\n'
    )
    result = _run("check-env-file", "--name", "/etc/x.env", "--require", "DATA_SOURCE_USER", str(bad))
    assert result.returncode == 1
    for expected in (
        "line 2: DATA_SOURCE_PASS: unbalanced quotes",
        "line 3: DATA_SOURCE_URI is set twice",
        "line 4: not KEY=VALUE",
        "DATA_SOURCE_USER is missing or empty",
    ):
        assert f"/etc/x.env: {expected}" in result.stderr, result.stderr
    assert "s3cret" not in result.stderr + result.stdout
    # a binary not installed yet: the flag check is skipped only with --if-installed
    missing = str(tmp_path / "not-installed")
    good = tmp_path / "good"
    good.write_text('ARGS="--whatever"\n')
    assert _run("check-env-file", "--flags-of", missing, "--if-installed", str(good)).returncode == 0
    assert _run("check-env-file", "--flags-of", missing, str(good)).returncode != 0


def _render(role: str, template: str, **variables) -> str:
    # config files, not HTML: no autoescape
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)  # noqa: S701
    env.filters["to_json"] = lambda value: __import__("json").dumps(value)
    return env.from_string((ROLES / role / "templates" / template).read_text()).render(
        ansible_managed="managed", **variables
    )


def test_mongod_checker_passes_the_roles_file_and_refuses_broken_ones(tmp_path):
    mongod_conf = tmp_path / "mongod.conf"
    mongod_conf.write_text(
        _render(
            "mongodb",
            "mongod.conf.j2",
            mongodb_wiredtiger_cache_size_gb=0.5,
            mongodb_port=27017,
            mongodb_listen_addresses=["127.0.0.1", "10.0.0.5"],
            mongodb_replica_set_name="rs0",
            mongodb_keyfile_path="/etc/mongodb/keyfile",
        ).replace("{{ mongodb_listen_addresses | unique | join(',') | to_json }}", '"127.0.0.1"')
    )
    result = _run("mongod-check-candidate", str(mongod_conf), "/etc/mongod.conf")
    assert result.returncode == 0, result.stderr + mongod_conf.read_text()
    broken = tmp_path / "broken.conf"
    broken.write_text(mongod_conf.read_text().replace("  port: 27017", "  port: [27017"))
    result = _run("mongod-check-candidate", str(broken), "/etc/mongod.conf")
    assert result.returncode == 1 and "/etc/mongod.conf: not valid YAML" in result.stderr
    noauth = tmp_path / "noauth.conf"
    noauth.write_text(mongod_conf.read_text().replace("  authorization: enabled\n", ""))
    result = _run("mongod-check-candidate", str(noauth), "/etc/mongod.conf")
    assert result.returncode == 1 and "security.authorization is missing" in result.stderr


def test_grafana_checker_passes_the_roles_file_and_refuses_broken_ones(tmp_path):
    ini = {
        "server": {"protocol": "http", "http_addr": "10.0.0.5", "http_port": 3000},
        "security": {
            "admin_user": "admin",
            "admin_password": "$__file{/etc/grafana/admin-password}",
            "disable_gravatar": True,
        },
        "paths": {"data": "/var/lib/grafana"},
    }
    good = tmp_path / "grafana.ini"
    good.write_text(_render("grafana", "grafana.ini.j2", _grafana_ini=ini).replace("| dictsort", ""))
    result = _run("grafana-check-ini", str(good), "/etc/grafana/grafana.ini")
    assert result.returncode == 0, result.stderr + good.read_text()
    cases = {
        "[server]\nhttp_port = 3000\n[server]\n": "[line  3]: section 'server' already exists",
        good.read_text().replace(
            "http_port = 3000", "http_port = 3000\nhttp_port = 3001"
        ): "option 'http_port'",
        good.read_text().replace(
            "http_port = 3000", "http_port = three"
        ): "[server] http_port must be a port number",
        good.read_text().replace("admin_user = admin\n", ""): "[security] admin_user is missing",
        good.read_text() + "a line without an equals sign\n": "not a [section], key = value or comment",
    }
    for text, message in cases.items():
        bad = tmp_path / "bad.ini"
        bad.write_text(text)
        result = _run("grafana-check-ini", str(bad), "/etc/grafana/grafana.ini")
        assert result.returncode == 1, text
        assert "/etc/grafana/grafana.ini" in result.stderr and message in result.stderr, result.stderr
        assert "admin-password" not in result.stderr


def test_queries_checker_passes_the_shipped_file_and_refuses_broken_ones(tmp_path):
    shipped = ROLES / "postgres_exporter/files/queries.yml"
    assert _run("check-exporter-queries", str(shipped), "/etc/q.yml").returncode == 0
    document = yaml.safe_load(shipped.read_text())
    name = next(iter(document))
    broken = {**document, name: {**document[name], "metrics": [{"calls_total": {"usage": "COUNTR"}}]}}
    bad = tmp_path / "q.yml"
    bad.write_text(yaml.safe_dump(broken))
    result = _run("check-exporter-queries", str(bad), "/etc/q.yml")
    assert result.returncode == 1 and "column 'calls_total': usage must be one of" in result.stderr
    bad.write_text("pg_x:\n  query: SELECT 1\n  metrics: [\n")
    assert "not valid YAML" in _run("check-exporter-queries", str(bad), "/etc/q.yml").stderr


needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="no systemd-analyze"
)


@needs_systemd_analyze
def test_verify_unit_checks_units_and_dropins_under_their_own_name(tmp_path):
    good = tmp_path / "candidate-good"
    good.write_text("[Unit]\nDescription=x\n[Service]\nExecStart=/bin/sleep 5\n")
    bad = tmp_path / "candidate-bad"
    bad.write_text("[Service]\nExecStart=/bin/sleep 5\nRestart=sometimes\n")
    assert _run("verify-unit", "adg-example.service", str(good)).returncode == 0
    result = _run("verify-unit", "adg-example.service", str(bad))
    assert result.returncode == 1
    assert "verify-unit: adg-example.service: rejected by systemd-analyze verify" in result.stderr
    assert "(candidate) adg-example.service:3" in result.stderr
    assert _run("verify-unit", "adg-example@.service", str(good)).returncode == 0
    # A drop-in is checked on top of the unit it extends; without that unit it is refused.
    result = _run("verify-unit", "adg-no-such-unit.service.d/70-restart.conf", str(good))
    assert result.returncode == 1 and "there is no unit adg-no-such-unit.service" in result.stderr
    assert _run("verify-unit", "example.service.d/70-restart", str(good)).returncode == 1
    assert _run("verify-unit", "../etc/passwd", str(good)).returncode == 2


@needs_systemd_analyze
def test_verify_unit_checks_a_socket_with_the_service_it_starts(tmp_path):
    socket = tmp_path / "candidate-socket"
    socket.write_text("[Socket]\nListenStream=127.0.0.1:18999\n")
    service = tmp_path / "deploys-service"
    service.write_text("[Service]\nExecStart=/bin/sleep 5\n")
    alone = _run("verify-unit", "adg-example.socket", str(socket))
    assert alone.returncode == 1 and "adg-example.service" in alone.stderr
    assert (
        _run("verify-unit", "adg-example.socket", str(socket), f"{service}=adg-example.service").returncode
        == 0
    )
    assert _run("verify-unit", "adg-example.socket", str(socket), f"{service}=../x.service").returncode == 2


@needs_systemd_analyze
@pytest.mark.skipif(not Path("/lib/systemd/system/getty@.service").exists(), reason="no getty@.service")
def test_verify_unit_dropin_on_a_template_instance(tmp_path):
    good = tmp_path / "good.conf"
    good.write_text("[Unit]\nStartLimitBurst=5\n[Service]\nRestart=always\nRestartSec=2\n")
    bad = tmp_path / "bad.conf"
    bad.write_text("[Service]\nRestart=always\nRestartSec=two\n")
    assert _run("verify-unit", "getty@tty9.service.d/70-restart.conf", str(good)).returncode == 0
    result = _run("verify-unit", "getty@tty9.service.d/70-restart.conf", str(bad))
    assert result.returncode == 1 and "(candidate) getty@tty9.service.d/70-restart.conf:3" in result.stderr


def _pg_major() -> str | None:
    found = (
        sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if Path("/usr/lib/postgresql").exists()
        else []
    )
    return found[-1].parts[-3] if found else None


@pytest.mark.skipif(
    os.geteuid() != 0 or _pg_major() is None or not list(Path("/etc/postgresql").glob("*/*/postgresql.conf")),
    reason="needs root and a PostgreSQL cluster configuration (the data scenario covers it on a host)",
)
def test_pg_checker_refuses_a_bad_hba_line_and_a_bad_setting(tmp_path):
    major = _pg_major()
    confdir = str(sorted(Path("/etc/postgresql").glob(f"{major}/*/postgresql.conf"))[0].parent)
    hba = tmp_path / "hba"
    hba.write_text("local all postgres peer\nhost all all 10.0.0.0/8 scram-sha-256\n")
    assert _run("pg-check-candidate", "hba", major, confdir, str(hba), "/etc/pg/pg_hba.conf").returncode == 0
    hba.write_text("local all postgres peer\nhost all all 10.0.0.1/33 scram-sha-256\n")
    result = _run("pg-check-candidate", "hba", major, confdir, str(hba), "/etc/pg/pg_hba.conf")
    assert result.returncode == 1
    assert 'invalid CIDR mask in address "10.0.0.1/33"' in result.stderr
    assert "/etc/pg/pg_hba.conf (candidate)" in result.stderr
    conf = tmp_path / "conf"
    conf.write_text("max_connections = 50\n")
    assert _run("pg-check-candidate", "conf", major, confdir, str(conf), "/etc/pg/50.conf").returncode == 0
    conf.write_text("max_connections = many\n")
    result = _run("pg-check-candidate", "conf", major, confdir, str(conf), "/etc/pg/50.conf")
    assert result.returncode == 1 and 'invalid value for parameter "max_connections"' in result.stderr


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
