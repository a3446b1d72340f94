"""Verify the data tier on real systemd test hosts (scenario `data`, lab 172.30.12.0/24).

data1 runs PostgreSQL, Redis, the three exporters and the nx-27017 STAND-IN used as "an existing
MongoDB"; app1 is an app-like client; mon1 is a monitoring-like host. Ports and names come from
playbooks/defaults/topology.yml, secrets from this scenario run's generated secrets directory.
The last tests run side converges (bad pg_hba entry, bad role input) and the real MongoDB install path
in --check mode.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import NamedTuple

import pytest
import testinfra
import testinfra.utils.ansible_runner
from adg_molecule import REPO, port, remote_tcp_probe, topology

EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
SECRETS = EPHEMERAL / "secrets"
RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY)
# Tests pick their hosts themselves (data/app/monitoring roles differ); none is parametrized by host.
testinfra_hosts = RUNNER.get_hosts("postgres")[:1]

TOPO = topology()
PG_PORT = port("postgresql_port")
REDIS_PORT = port("redis_port")


class Exporter(NamedTuple):
    port: int
    up_metric: str
    unit: str  # the role's systemd unit
    env_file: str  # the role's 0600 EnvironmentFile (credentials)


EXPORTERS = {
    "postgres": Exporter(
        port("postgres_exporter_port"),
        "pg_up",
        "prometheus-postgres-exporter",
        "/etc/postgres_exporter/postgres_exporter.env",
    ),
    "redis": Exporter(
        port("redis_exporter_port"),
        "redis_up",
        "prometheus-redis-exporter",
        "/etc/redis_exporter/redis_exporter.env",
    ),
    "mongodb": Exporter(
        port("mongodb_exporter_port"),
        "mongodb_up",
        "mongodb_exporter",
        "/etc/mongodb_exporter/mongodb_exporter.env",
    ),
}
PG_APP_DB = TOPO["postgresql_app_database"]
PG_APP_USER = TOPO["postgresql_app_user"]
REDIS_APP_USER = TOPO["redis_app_user"]
REDIS_EXPORTER_USER = TOPO["redis_monitor_user"]


def _host(name: str):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}")


DATA = _host(RUNNER.get_hosts("postgres")[0])
APP = _host(RUNNER.get_hosts("app")[0])
MON = _host(RUNNER.get_hosts("monitoring")[0])


def _address(host) -> str:
    return str(host.ansible.get_variables()["ansible_host"])


DATA_IP = _address(DATA)


def _secret(name: str) -> str:
    return (SECRETS / name).read_text().split()[0]


# Secrets reach a test host as files (ansible copy with src=, so no secret is ever on a command line)
# and are only ever passed around by name here, so a failing test cannot print one.
HOST_CREDENTIAL_PATH = "/root/.adg-test-secret"
INCORRECT_CREDENTIAL = "not-the-password-0123456789"


def _install_secret(host, secret_name: str | None) -> None:
    if secret_name is None:
        host.ansible(
            "copy", f"content={INCORRECT_CREDENTIAL} dest={HOST_CREDENTIAL_PATH} mode=0600", check=False
        )
    else:
        host.ansible(
            "copy", f"src={SECRETS / secret_name} dest={HOST_CREDENTIAL_PATH} mode=0600", check=False
        )


def _psql(host, secret_name: str | None, sql: str = "SELECT 1", address: str = DATA_IP):
    """psql as the app role; secret_name None means a wrong password."""
    _install_secret(host, secret_name)
    host.check_output(
        "umask 077; { printf '%%s:%%s:%%s:%%s:' %s %s %s %s; cat %s; } > /root/.pgpass",
        address,
        str(PG_PORT),
        PG_APP_DB,
        PG_APP_USER,
        HOST_CREDENTIAL_PATH,
    )
    return host.run(
        "psql -X -A -t -w 'host=%s port=%s dbname=%s user=%s connect_timeout=5' -c %s",
        address,
        str(PG_PORT),
        PG_APP_DB,
        PG_APP_USER,
        sql,
    )


def _redis(host, user: str | None, secret_name: str | None, *command: str):
    """redis-cli against the data host; user None means no authentication at all."""
    words = " ".join(["%s"] * len(command))
    if user is None:
        return host.run(
            "redis-cli --no-auth-warning -h %s -p %s " + words, DATA_IP, str(REDIS_PORT), *command
        )
    _install_secret(host, secret_name)
    return host.run(
        f'REDISCLI_AUTH="$(cat {HOST_CREDENTIAL_PATH})" redis-cli --no-auth-warning -h %s -p %s --user %s '
        + words,
        DATA_IP,
        str(REDIS_PORT),
        user,
        *command,
    )


def _metrics(host, exporter: str) -> str:
    return host.check_output(
        "curl -sS --max-time 10 http://%s:%s/metrics", DATA_IP, str(EXPORTERS[exporter].port)
    )


def _cluster_unit() -> str:
    version, cluster = DATA.check_output("pg_lsclusters -h | awk 'NR==1 {print $1, $2}'").split()
    return f"postgresql@{version}-{cluster}"


def _playbook(*args: str) -> subprocess.CompletedProcess:
    """Run a side converge against this lab the way molecule runs converge."""
    env = os.environ | {
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(EPHEMERAL / "facts"),
        "ANSIBLE_FORCE_COLOR": "false",
        "ANSIBLE_NOCOLOR": "true",
    }
    return subprocess.run(
        [
            "ansible-playbook",
            "-i",
            str(Path(INVENTORY).parent),
            str(REPO / "molecule/data/side_converge.yml"),
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def _task_output(output: str, name: str) -> str:
    """What a playbook run printed for the first task whose name starts with `name`."""
    match = re.search(rf"^TASK \[[^\]]*: {re.escape(name)}.*?(?=^TASK \[|^PLAY RECAP)", output, re.M | re.S)
    assert match, f"no task {name!r} in:\n{output[-3000:]}"
    return match.group(0)


def _recap(output: str, host: str) -> dict[str, int]:
    match = re.search(rf"^{host}\s+:\s+(.*)$", output, re.MULTILINE)
    assert match, output[-3000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


# --- services -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "unit", ["postgresql", "redis-server", *(exporter.unit for exporter in EXPORTERS.values())]
)
def test_service_running_and_enabled(unit):
    service = DATA.service(unit)
    assert service.is_running
    assert service.is_enabled


def test_postgresql_cluster_running_and_enabled():
    service = DATA.service(_cluster_unit())
    assert service.is_running
    assert service.is_enabled


def test_listeners_are_private_or_loopback_only():
    for listen_port in (PG_PORT, REDIS_PORT):
        assert DATA.socket(f"tcp://{DATA_IP}:{listen_port}").is_listening
        assert DATA.socket(f"tcp://127.0.0.1:{listen_port}").is_listening
        assert not DATA.socket(f"tcp://0.0.0.0:{listen_port}").is_listening
    for exporter in EXPORTERS.values():
        assert DATA.socket(f"tcp://{DATA_IP}:{exporter.port}").is_listening
        assert not DATA.socket(f"tcp://0.0.0.0:{exporter.port}").is_listening
        assert not DATA.socket(f"tcp://:::{exporter.port}").is_listening


# --- install window: Debian's packaged defaults never served -----------------------------------


def test_postgresql_first_start_already_listened_on_the_private_address():
    """policy-rc.d 101 kept the packaged cluster stopped: its very first start used our drop-in."""
    version, cluster = DATA.check_output("pg_lsclusters -h | awk 'NR==1 {print $1, $2}'").split()
    log = DATA.check_output("cat /var/log/postgresql/postgresql-%s-%s.log", version, cluster)
    first_start = log.split("database system is ready to accept connections")[0]
    assert f'listening on IPv4 address "{DATA_IP}", port {PG_PORT}' in first_start


@pytest.mark.parametrize(
    ("unit", "marker"),
    [
        (EXPORTERS["postgres"].unit, "Listening on"),
        (EXPORTERS["redis"].unit, "Providing metrics at"),
    ],
)
def test_exporter_first_start_already_used_the_private_address(unit, marker):
    """Debian's postinst would have started the exporter on every interface; the first start is ours."""
    first = DATA.check_output("journalctl -u %s --no-pager -o cat | grep -m1 %s", unit, marker)
    assert DATA_IP in first


# --- PostgreSQL -----------------------------------------------------------------------------


def test_app_role_connects_from_client_host_with_its_password():
    result = _psql(APP, "postgresql_app_password", "SELECT current_user")
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == PG_APP_USER


def test_app_connection_uses_scram():
    sql = "SELECT rolpassword LIKE 'SCRAM-SHA-256$%%' FROM pg_authid WHERE rolname = :'role'"
    check = "runuser -u postgres -- psql -X -A -t -v role=%s"
    assert DATA.check_output(check + " <<'SQL'\n" + sql + "\nSQL", PG_APP_USER) == "t"
    hba = DATA.check_output(
        "runuser -u postgres -- psql -X -A -t -c %s",
        "SELECT DISTINCT auth_method FROM pg_hba_file_rules WHERE auth_method <> 'peer' ORDER BY 1",
    )
    assert hba.split() == ["scram-sha-256"]


def test_wrong_password_is_refused():
    result = _psql(APP, None)
    assert result.rc != 0
    assert "password authentication failed" in result.stderr


def test_address_not_in_pg_hba_is_refused():
    """The data host itself is not an app client: pg_hba has no entry for its private address."""
    result = _psql(DATA, "postgresql_app_password")
    assert result.rc != 0
    assert "no pg_hba.conf entry" in result.stderr


@pytest.mark.parametrize("name", ["postgresql_port", "redis_port", "mongodb_port"])
def test_database_ports_open_to_app_host_only(name):
    """The firewall (common role, group_vars/<group>/firewall.yml) opens DB ports to the app group only."""
    assert remote_tcp_probe(APP, DATA_IP, port(name)) == "open"
    assert remote_tcp_probe(MON, DATA_IP, port(name)) != "open"


def test_pg_stat_statements_preloaded():
    assert "pg_stat_statements" in DATA.check_output(
        "runuser -u postgres -- psql -X -A -t -c %s", "SHOW shared_preload_libraries"
    )


# --- Redis ----------------------------------------------------------------------------------


def test_redis_refuses_unauthenticated_commands():
    result = _redis(APP, None, None, "SET", "probe", "1")
    assert "NOAUTH" in result.stdout + result.stderr


def test_redis_app_user_works_and_exporter_user_cannot_read_data():
    app = _redis(APP, REDIS_APP_USER, "redis_app_password", "SET", "adg:probe", "1")
    assert app.stdout.strip() == "OK", app.stderr
    exporter = _redis(APP, REDIS_EXPORTER_USER, "redis_exporter_password", "GET", "adg:probe")
    assert "NOPERM" in exporter.stdout + exporter.stderr
    wrong = _redis(APP, REDIS_APP_USER, None, "PING")
    assert "WRONGPASS" in wrong.stdout + wrong.stderr


REDIS_AOF_MANIFEST = "/var/lib/redis/appendonlydir/appendonly.aof.manifest"


def _redis_app(*command: str) -> str:
    result = _redis(APP, REDIS_APP_USER, "redis_app_password", *command)
    assert result.rc == 0, result.stderr
    return result.stdout.strip()


def _redis_appendonly() -> list[str]:
    """CONFIG GET appendonly as the monitoring user (its ACL allows config|get, the app user's does not)."""
    return _redis(
        APP, REDIS_EXPORTER_USER, "redis_exporter_password", "CONFIG", "GET", "appendonly"
    ).stdout.split()


def test_redis_keeps_a_key_and_its_ttl_across_a_restart():
    """What the app keeps (token revocations, rate-limit windows) are keys with TTLs: both survive."""
    assert _redis_appendonly() == ["appendonly", "yes"]
    assert DATA.file(REDIS_AOF_MANIFEST).exists
    key = f"adg:persistence:{time.time_ns()}"
    assert _redis_app("SET", key, "kept", "EX", "3600") == "OK"
    # A script that writes twice is a MULTI/EXEC block in the AOF, as the app's rate limits are: Redis
    # replays it as the default user and drops it unless that (disabled) user may run it.
    scripted = f"adg:persistence:script:{time.time_ns()}"
    incr = "redis.call('INCR', KEYS[1]); redis.call('EXPIRE', KEYS[1], 900); return 1"
    assert _redis_app("EVAL", incr, "1", scripted) == "1"
    pid_before = DATA.check_output("systemctl show -P MainPID redis-server")
    DATA.check_output("systemctl restart redis-server")  # Type=notify: returns once it serves again
    assert DATA.check_output("systemctl show -P MainPID redis-server") != pid_before
    assert _redis_app("GET", key) == "kept"
    assert 3500 < int(_redis_app("TTL", key)) <= 3600
    assert _redis_app("GET", scripted) == "1"
    assert 800 < int(_redis_app("TTL", scripted)) <= 900
    assert _redis_appendonly() == ["appendonly", "yes"]
    # The replay rejected nothing (the log names each MULTI/EXEC block it refused).
    assert DATA.run("grep -c 'NOPERM' /var/log/redis/redis-server.log").stdout.strip() in ("", "0")


# --- exporters ------------------------------------------------------------------------------


@pytest.mark.parametrize("exporter", sorted(EXPORTERS))
def test_exporter_answers_monitoring_host_with_up_1(exporter):
    body = _metrics(MON, exporter)
    assert re.search(rf"^{EXPORTERS[exporter].up_metric} 1(\.0)?$", body, re.MULTILINE), body[-2000:]


def test_postgres_exporter_exports_pg_stat_statements_for_slow_queries():
    body = _metrics(MON, "postgres")
    assert re.search(r"^pg_stat_statements_db_calls_total\{.*datname=", body, re.MULTILINE)
    assert "pg_stat_statements_db_exec_seconds_total" in body


def test_redis_maxmemory_is_set():
    body = _metrics(MON, "redis")
    match = re.search(r"^redis_memory_max_bytes (\S+)$", body, re.MULTILINE)
    assert match and float(match.group(1)) > 0


@pytest.mark.parametrize("exporter", sorted(EXPORTERS))
def test_exporter_port_refused_from_client_host(exporter):
    assert remote_tcp_probe(APP, DATA_IP, EXPORTERS[exporter].port) != "open"


# Test-only port for a second, throw-away mongodb_exporter on the data host's loopback.
SCRATCH_EXPORTER_PORT = 19216


def test_mongodb_exporter_reports_down_when_login_fails():
    """mongodb_up means "authenticated ping worked": a URI whose login cannot succeed gives 0.

    nx-27017 has no SCRAM, so any credentials fail there, the way a wrong password fails on MongoDB.
    """
    unit = "adg-test-mongodb-exporter-badauth"
    uri = f"mongodb://{TOPO['mongodb_monitor_user']}:{INCORRECT_CREDENTIAL}@{DATA_IP}:{port('mongodb_port')}/admin"
    DATA.check_output(
        "systemd-run --collect --unit %s -p DynamicUser=yes"
        " -E MONGODB_URI=%s -E MONGODB_EXPORTER_LISTEN_ADDRESS=%s -E MONGODB_EXPORTER_TIMEOUT_SECONDS=2"
        " /opt/mongodb_exporter/venv/bin/python -I /opt/mongodb_exporter/mongodb_exporter.py",
        unit,
        uri,
        f"127.0.0.1:{SCRATCH_EXPORTER_PORT}",
    )
    try:
        scrape = (
            "for i in $(seq 50); do"
            " curl -sf --max-time 5 http://127.0.0.1:%s/metrics && break; sleep 0.2;"
            " done"
        )
        body = DATA.check_output(scrape, str(SCRATCH_EXPORTER_PORT))
        assert re.search(r"^mongodb_up 0(\.0)?$", body, re.MULTILINE), body
        # The real exporter, with the deployment's URI, still reports the server up.
        assert re.search(r"^mongodb_up 1(\.0)?$", _metrics(MON, "mongodb"), re.MULTILINE)
    finally:
        DATA.run("systemctl stop %s", unit)


# --- secrets --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [exporter.env_file for exporter in EXPORTERS.values()])
def test_secret_files_are_0600_root(path):
    secret_file = DATA.file(path)
    assert secret_file.exists
    assert secret_file.mode == 0o600
    assert secret_file.user == "root"


def test_no_secret_in_units_or_process_list():
    names = (
        "postgresql_monitor_password",
        "redis_exporter_password",
        "postgresql_app_password",
        "redis_app_password",
    )
    unit_files = [f"/etc/systemd/system/{exporter.unit}.service" for exporter in EXPORTERS.values()]
    units = DATA.check_output("cat " + " ".join([*unit_files, "/etc/redis/redis.conf"]))
    processes = DATA.check_output("ps -eo args")
    # Only names are compared in the asserts, so a failure cannot print a secret.
    assert [name for name in names if _secret(name) in units] == []
    assert [name for name in names if _secret(name) in processes] == []


# --- side converges -------------------------------------------------------------------------


def _pg(sql: str) -> str:
    return DATA.check_output("runuser -u postgres -- psql -X -A -t -c %s", sql)


def _pg_conf_dir() -> str:
    return _pg("SHOW config_file").rsplit("/", 1)[0]


def _converge_data_host(tags: str, extra: dict | None = None) -> tuple[int, str]:
    """A side converge of the data host with `tags` (and extra vars): its return code and output."""
    args = ["--tags", tags, "--limit", DATA.backend.host]
    if extra is not None:
        args += ["-e", json.dumps(extra)]
    result = _playbook(*args)
    return result.returncode, result.stdout + result.stderr


def _main_pid(unit: str) -> str:
    return DATA.check_output("systemctl show -P MainPID %s", unit)


def test_bad_hba_entry_is_rejected_before_the_swap_and_postgresql_keeps_serving():
    """The candidate pg_hba.conf is checked by a throw-away cluster: the live file is never replaced
    (nothing to restore) and the server is not even reloaded."""
    hba_path = _pg("SHOW hba_file")
    before = DATA.file(hba_path).sha256sum
    started, loaded = _pg("SELECT pg_postmaster_start_time()"), _pg("SELECT pg_conf_load_time()")
    bad = {
        "postgresql_hba_entries": [
            {"type": "host", "database": "all", "user": "all", "address": f"{DATA_IP}/33"}
        ]
    }
    rc, output = _converge_data_host("postgresql", bad)
    assert rc != 0, output[-3000:]
    failed = _task_output(output, "Render pg_hba.conf from the entry list")
    assert "failed to validate" in failed, failed[-3000:]
    assert f"pg-check-candidate: {hba_path}: rejected by postgres" in failed
    assert f'invalid CIDR mask in address \\"{DATA_IP}/33\\"' in failed or "invalid CIDR mask" in failed
    assert "PostgreSQL reports errors" not in output
    # Same server process, same configuration load (no reload), live pg_hba.conf untouched.
    assert _pg("SELECT pg_postmaster_start_time()") == started
    assert _pg("SELECT pg_conf_load_time()") == loaded
    assert DATA.file(hba_path).sha256sum == before
    assert _psql(APP, "postgresql_app_password").rc == 0
    # No throw-away cluster or socket is left behind.
    assert DATA.run("pgrep -f 'postgres -D /tmp/'").rc == 1


def test_bad_setting_is_rejected_before_the_drop_in_changes():
    conf_dir = _pg_conf_dir()
    dropin = f"{conf_dir}/conf.d/50-autodealgenie.conf"
    before, loaded = DATA.file(dropin).sha256sum, _pg("SELECT pg_conf_load_time()")
    rc, output = _converge_data_host("postgresql", {"postgresql_settings": {"work_mem": "lots"}})
    assert rc != 0, output[-3000:]
    failed = _task_output(output, "Render the settings drop-in")
    assert (
        "failed to validate" in failed and f"pg-check-candidate: {dropin}: rejected by postgres" in failed
    ), failed
    assert "work_mem" in failed
    assert DATA.file(dropin).sha256sum == before
    assert _pg("SELECT pg_conf_load_time()") == loaded
    assert _psql(APP, "postgresql_app_password").rc == 0


def test_bad_exporter_queries_file_is_rejected_and_the_exporter_keeps_running(tmp_path):
    live = "/etc/postgres_exporter/queries.yml"
    unit = EXPORTERS["postgres"].unit
    before, pid = DATA.file(live).sha256sum, _main_pid(unit)
    bad = tmp_path / "queries.yml"
    bad.write_text("pg_broken:\n  query: SELECT 1 AS x\n  metrics:\n    - x: {usage: COUNTR}\n")
    rc, output = _converge_data_host("postgres_exporter", {"postgres_exporter_queries_file": str(bad)})
    assert rc != 0, output[-3000:]
    failed = _task_output(output, "Install the custom queries")
    assert (
        "failed to validate" in failed and f"check-exporter-queries: {live}: query 'pg_broken'" in failed
    ), failed
    assert DATA.file(live).sha256sum == before
    assert _main_pid(unit) == pid
    assert re.search(r"^pg_up 1(\.0)?$", _metrics(MON, "postgres"), re.MULTILINE)


def test_env_file_with_a_broken_line_is_rejected_without_printing_the_secret():
    """A password with a newline would split the EnvironmentFile: refused, the value never printed."""
    unit = EXPORTERS["redis"].unit
    live = EXPORTERS["redis"].env_file
    before, pid = DATA.file(live).sha256sum, _main_pid(unit)
    newline_value = "correct-horse-battery\nstaple-4711"
    rc, output = _converge_data_host("redis_exporter", {"redis_exporter_redis_password": newline_value})
    assert rc != 0, output[-3000:]
    failed = _task_output(output, "Fail when the checker rejected the connection settings")
    assert f"check-env-file: {live}: line" in failed and "REDIS_PASSWORD: unbalanced quotes" in failed, failed
    assert "staple-4711" not in output and "correct-horse" not in output
    assert DATA.file(live).sha256sum == before
    assert _main_pid(unit) == pid


def test_bad_unit_line_is_rejected_by_systemd_analyze_and_the_unit_is_unchanged():
    """A flag with a newline smuggles a line into the unit: systemd-analyze verify refuses the candidate."""
    unit = EXPORTERS["redis"].unit
    live = f"/etc/systemd/system/{unit}.service"
    before, pid = DATA.file(live).sha256sum, _main_pid(unit)
    extra = {"redis_exporter_extra_flags": ["--include-system-metrics\nRestart=sometimes"]}
    rc, output = _converge_data_host("redis_exporter", extra)
    assert rc != 0, output[-3000:]
    failed = _task_output(output, "Install the hardened unit")
    assert f"verify-unit: {unit}.service: rejected by systemd-analyze verify" in failed, failed
    # systemd's own line for the bad setting; its wording changed (252: "Failed to parse service
    # restart specifier, ignoring: sometimes", 257: "...Restart=sometimes, ignoring: Invalid argument").
    assert re.search(r"restart specifier, ignoring|Restart=sometimes, ignoring", failed), failed
    assert DATA.file(live).sha256sum == before
    assert _main_pid(unit) == pid
    assert DATA.service(unit).is_running


def test_port_given_as_text_is_rejected_before_anything_changes():
    conf_dir = _pg_conf_dir()
    watched = [f"{conf_dir}/pg_hba.conf", f"{conf_dir}/conf.d/50-autodealgenie.conf"]
    before = [DATA.file(path).sha256sum for path in watched]
    rc, output = _converge_data_host("postgresql", {"postgresql_port": "five-four-three-two"})
    assert rc != 0
    assert "Validating arguments against arg spec" in output
    assert "postgresql_port" in output and "int" in output
    assert _recap(output, DATA.backend.host)["changed"] == 0
    assert [DATA.file(path).sha256sum for path in watched] == before


def test_switching_aof_on_keeps_the_data_of_a_server_that_ran_without_it():
    """Redis started with appendonly yes and no (current) AOF would start empty: the role converts."""
    off_rc, off_output = _converge_data_host("redis", {"redis_appendonly": False})
    assert off_rc == 0, off_output[-3000:]
    assert _redis_appendonly() == ["appendonly", "no"]
    key = f"adg:written-without-aof:{time.time_ns()}"
    assert _redis_app("SET", key, "kept", "EX", "3600") == "OK"

    rc, output = _converge_data_host("redis")
    assert rc == 0, output[-3000:]
    # The AOF of the first converge is older than this key: moved aside, dump.rdb converted instead.
    assert re.search(r"Turn the RDB snapshot into the first AOF.*\n(.*\n)?changed:", output), output[-3000:]
    assert _redis_appendonly() == ["appendonly", "yes"]
    assert _redis_app("GET", key) == "kept"
    assert 3500 < int(_redis_app("TTL", key)) <= 3600
    assert DATA.file("/var/lib/redis/appendonlydir.superseded").is_directory
    assert DATA.file(REDIS_AOF_MANIFEST).user == "redis"


@pytest.mark.parametrize("replica_set", ["", "rs0"])
def test_real_mongodb_install_path_passes_check_mode(replica_set):
    """The vendor-repository path cannot run here (repository unreachable); it must pass --check."""
    extra = json.dumps({"mongodb_manage_server": True, "mongodb_replica_set_name": replica_set})
    result = _playbook("--check", "--tags", "mongodb", "--limit", DATA.backend.host, "-e", extra)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert re.search(r"Configure the vendor repository.*\n.*\nchanged:", output)
    assert re.search(r"Render mongod.conf.*\n.*\nchanged:", output)
    if replica_set:
        assert re.search(r"Write the keyfile on members that lack it.*\n.*\nchanged:", output)
    # The backup of a managed server: the vendor's tools, the 0600 mongodump config, the units.
    tools = _task_output(output, "Install the vendor's mongodb-database-tools")
    assert "mongodb-database-tools" in tools and "skipping:" not in tools, (
        tools
    )  # attempted (fails in --check)
    assert "changed:" in _task_output(output, "Write the mongodump config")
    units = _task_output(output, "Render the backup service and timer")
    assert "(item=mongodb-backup.service)" in units and "(item=mongodb-backup.timer)" in units, units
    assert "changed:" in units and "skipping:" not in units, units
    assert "MongoDB backups are NOT set up" not in output
    # --check changed nothing: no repository file, no mongod.conf, the stand-in still serves.
    assert not DATA.file("/etc/apt/sources.list.d/mongodb-org-8.0.sources").exists
    assert not DATA.file("/etc/mongod.conf").exists
    assert not DATA.file("/etc/systemd/system/mongodb-backup.timer").exists
    assert not DATA.file("/etc/mongodb-backup").exists
    assert DATA.service("adg-nx27017").is_running


def test_mongodb_backup_is_skipped_with_a_message_without_mongodump():
    """The existing-server mode installs nothing and the stand-in has no mongodump: the role says
    that backups are NOT set up and schedules nothing (the backup itself cannot run here)."""
    rc, output = _converge_data_host("mongodb_backup")
    assert rc == 0, output[-3000:]
    assert f"MongoDB backups are NOT set up on {DATA.backend.host}" in " ".join(output.split())
    assert _recap(output, DATA.backend.host)["changed"] == 0
    assert not DATA.file("/usr/bin/mongodump").exists
    for path in (
        "/etc/systemd/system/mongodb-backup.timer",
        "/usr/local/sbin/mongodb-backup",
        "/etc/mongodb-backup",
    ):
        assert not DATA.file(path).exists, path
