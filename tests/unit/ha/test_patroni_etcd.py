"""PostgreSQL HA (issue 12): the etcd role and the Patroni mode of the postgresql role.

Static checks of what the roles would do, without hosts:
- the single-server files of the postgresql role are used only when postgresql_patroni is false, and
  the Patroni files only when it is true (the single-host topology keeps today's tasks);
- Patroni's timing variables exist, are documented and meet Patroni's rule
  loop_wait + 2 * retry_timeout <= ttl (the HA drills derive their bound from them); synchronous_mode is on;
- etcd's environment file lists every member in the initial cluster, listens on the private address
  and loopback, and writes `existing` only for a member without data joining a running cluster;
- the data playbook runs etcd before PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
PG = ROOT / "roles/postgresql"
ETCD = ROOT / "roles/etcd"


def _yaml(path: Path):
    return yaml.safe_load(path.read_text())


def test_single_server_and_patroni_task_files_are_exclusive():
    tasks = {t["name"]: t for t in _yaml(PG / "tasks/main.yml")}
    by_file = {t["ansible.builtin.import_tasks"]: t.get("when") for t in tasks.values()}
    assert by_file["configure.yml"] == "not postgresql_patroni"
    assert by_file["run.yml"] == "not postgresql_patroni"
    assert by_file["patroni_configure.yml"] == "postgresql_patroni"
    assert by_file["patroni_run.yml"] == "postgresql_patroni"
    assert by_file["install.yml"] is None and by_file["preflight.yml"] is None


def test_patroni_timings_are_documented_and_consistent():
    defaults = _yaml(PG / "defaults/main.yml")
    specs = _yaml(PG / "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert defaults["postgresql_patroni"] is False
    for name in (
        "postgresql_patroni_ttl",
        "postgresql_patroni_loop_wait",
        "postgresql_patroni_retry_timeout",
    ):
        assert specs[name]["default"] == defaults[name], name
    ttl, loop_wait, retry = (
        defaults["postgresql_patroni_ttl"],
        defaults["postgresql_patroni_loop_wait"],
        defaults["postgresql_patroni_retry_timeout"],
    )
    assert loop_wait + 2 * retry <= ttl
    dcs = _yaml(PG / "vars/main.yml")["_postgresql_patroni_dcs"]
    assert dcs["synchronous_mode"] is True
    assert dcs["postgresql"]["use_pg_rewind"] is True
    assert dcs["postgresql"]["parameters"]["wal_log_hints"] == "on"  # pg_rewind without checksums


def test_patroni_secrets_are_mapped_and_generated_for_tests():
    mapping = (ROOT / "playbooks/defaults/secrets.yml").read_text()
    generated = _yaml(ROOT / "tests/molecule/group_vars/all/secrets.yml")
    for role_var, vault_var in (
        ("postgresql_replication_password", "vault_postgresql_replication_password"),
        ("postgresql_rewind_password", "vault_postgresql_rewind_password"),
        ("postgresql_patroni_rest_password", "vault_patroni_rest_password"),
    ):
        assert f'{role_var}: "{{{{ {vault_var} ' in mapping
        assert vault_var in generated


def test_databases_are_created_on_the_leader_only():
    tasks = _yaml(PG / "tasks/patroni_run.yml")
    create = [t for t in tasks if t.get("ansible.builtin.import_tasks") == "databases.yml"]
    assert len(create) == 1 and create[0]["when"] == "_postgresql_is_leader"
    primary = [t for t in tasks if "/primary" in str(t.get("ansible.builtin.uri", {}).get("url", ""))]
    assert primary, "the leader is asked from Patroni's /primary endpoint"


def _render_etcd(member_dirs: dict[str, bool], host: str) -> dict[str, str]:
    env = jinja2.Environment(  # noqa: S701 (renders an env file, not HTML)
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=False
    )
    template = env.from_string((ETCD / "templates/etcd.default.j2").read_text())
    members = sorted(member_dirs)
    hostvars = {name: {"adg_private_address": f"10.0.0.{i + 1}"} for i, name in enumerate(members)}
    exists = any(member_dirs.values())
    text = template.render(
        ansible_managed="managed",
        inventory_hostname=host,
        hostvars=hostvars,
        etcd_members=members,
        etcd_address_var="adg_private_address",
        etcd_client_port=2379,
        etcd_peer_port=2380,
        etcd_data_dir="/var/lib/etcd/cluster",
        etcd_cluster_token="tok",
        etcd_heartbeat_interval=100,
        etcd_election_timeout=1000,
        etcd_auto_compaction_retention="1",
        etcd_quota_backend_bytes=2147483648,
        etcd_extra_flags=[],
        _etcd_initial_state="existing" if exists and not member_dirs[host] else "new",
    )
    pairs = [line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")]
    return dict(pairs)


def test_etcd_initial_cluster_lists_every_member_and_listens_privately():
    env = _render_etcd({"data1": False, "data2": False, "data3": False}, "data2")
    assert env["ETCD_INITIAL_CLUSTER"] == (
        "data1=http://10.0.0.1:2380,data2=http://10.0.0.2:2380,data3=http://10.0.0.3:2380"
    )
    assert env["ETCD_LISTEN_CLIENT_URLS"] == "http://10.0.0.2:2379,http://127.0.0.1:2379"
    assert env["ETCD_LISTEN_PEER_URLS"] == "http://10.0.0.2:2380"
    assert env["ETCD_INITIAL_CLUSTER_STATE"] == "new"
    assert env["ETCD_NAME"] == "data2" and env["ETCD_DATA_DIR"] == "/var/lib/etcd/cluster"


@pytest.mark.parametrize(
    ("dirs", "host", "state"),
    [
        ({"data1": True, "data2": True, "data3": True}, "data1", "new"),  # running cluster: unchanged file
        ({"data1": True, "data2": True, "data3": False}, "data3", "existing"),  # a replaced member joins
    ],
)
def test_etcd_initial_state(dirs, host, state):
    assert _render_etcd(dirs, host)["ETCD_INITIAL_CLUSTER_STATE"] == state


def test_etcd_configure_decides_the_state_as_the_test_does():
    tasks = _yaml(ETCD / "tasks/configure.yml")
    render = next(
        t for t in tasks if t.get("ansible.builtin.template", {}).get("dest") == "/etc/default/etcd"
    )
    assert "existing" in render["vars"]["_etcd_initial_state"]
    assert "check-env-file" in render["ansible.builtin.template"]["validate"]


def test_data_playbook_runs_etcd_before_postgresql():
    plays = _yaml(ROOT / "playbooks/data.yml")
    hosts = [p["hosts"] for p in plays]
    assert hosts.index("etcd") < hosts.index("postgres")
    defaults = _yaml(ROOT / "playbooks/defaults/data.yml")
    assert defaults["postgresql_patroni"] == "{{ adg_postgresql_ha }}"


def test_restore_command_without_pgbackrest_means_not_in_archive(tmp_path):
    """On a first deploy Patroni starts PostgreSQL before pgBackRest is installed. PostgreSQL runs
    restore_command with /bin/sh and treats exit 127 ("command not found") as fatal: the guard must
    answer exit 1 ("not in the archive"). dash's `command -v` answered 127 and stopped the member."""
    import json
    import shutil
    import subprocess

    from tests.support.paths import ansible_values

    if Path("/usr/bin/pgbackrest").exists():
        pytest.skip("pgbackrest is installed on this controller: the guard's missing case cannot run here")
    inventory = tmp_path / "hosts.json"
    inventory.write_text(
        json.dumps(
            {"all": {"children": {"backup": {"hosts": {"adg-paths": {"ansible_connection": "local"}}}}}}
        )
    )
    command = ansible_values(("postgresql_restore_command",), inventory=str(inventory))[
        "postgresql_restore_command"
    ]
    assert "archive-get" in command
    rendered = command.replace("%f", "00000002.history").replace("%p", str(tmp_path / "out"))
    for shell in filter(None, (shutil.which("dash"), "/bin/sh")):
        result = subprocess.run([shell, "-c", rendered], capture_output=True, text=True)
        assert result.returncode == 1, f"{shell}: exit {result.returncode} {result.stderr}"
