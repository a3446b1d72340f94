"""playbooks/verify.yml end to end: ansible-playbook against a local "monitoring host" (this machine,
connection local) whose Prometheus, Alertmanager and Grafana (the API double) run on loopback ports.
The last test also deploys with the grafana role, to show that one inventory override of
grafana_dashboards_dir changes both what is deployed and what is verified."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error

import pytest

from tests.integration.modules.adg_stack import ADMIN_PASSWORD, REPO, alertmanager_config
from tests.support import paths
from tests.support.monitoring import (
    Alertmanager,
    GrafanaDouble,
    LoopbackServer,
    Prometheus,
    WebhookSink,
    free_port,
    http_json,
    respond,
)
from tests.unit.plugins.ansible_module_runner import TARGET_PYTHON, run_in_process

TEST_DASHBOARD = {
    "uid": "adg-verify-test",
    "title": "Verify test",
    "panels": [
        {
            "id": 1,
            "title": "Targets up",
            "type": "stat",
            "datasource": {"type": "prometheus", "uid": "prometheus"},
            "targets": [{"refId": "A", "expr": "min by (job) (up)"}],
        },
        {
            "id": 2,
            "title": "Prometheus requests",
            "type": "timeseries",
            "datasource": {"type": "prometheus", "uid": "prometheus"},
            "targets": [
                {"refId": "A", "expr": "sum(rate(prometheus_http_requests_total[$__rate_interval]))"}
            ],
        },
    ],
}


@pytest.fixture(scope="module")
def local_monitoring(tmp_path_factory):
    base = tmp_path_factory.mktemp("verify")
    with (
        WebhookSink() as sink,
        Alertmanager(base / "am", alertmanager_config(sink.url)) as am,
        GrafanaDouble(base / "grafana", admin_password=ADMIN_PASSWORD) as grafana,
    ):
        prom = Prometheus(base / "prom")
        jobs = {"prometheus": prom.port, "alertmanager": am.port, "grafana": grafana.port}
        scrape = [
            {
                "job_name": job,
                "static_configs": [{"targets": [f"127.0.0.1:{port}"], "labels": {"instance": "mon1"}}],
            }
            for job, port in jobs.items()
        ]
        rules = json.loads(json.dumps(_yaml_rules()))
        prom.write_config(scrape, rules, [am.address])
        with prom:
            grafana_args = {"url": grafana.url, "url_username": "admin", "url_password": ADMIN_PASSWORD}
            assert run_in_process(
                "grafana_datasource",
                dict(
                    grafana_args,
                    uid="prometheus",
                    name="Prometheus",
                    type="prometheus",
                    datasource_url=prom.url,
                ),
            )["changed"]
            assert run_in_process(
                "grafana_dashboard",
                dict(grafana_args, dashboard=TEST_DASHBOARD, folder_uid="autodealgenie", create_folder=True),
            )["changed"]
            dashboards_dir = base / "dashboards"
            dashboards_dir.mkdir()
            (dashboards_dir / "verify-test.json").write_text(json.dumps(TEST_DASHBOARD))
            time.sleep(3)  # a few scrapes, so rate() has samples
            yield {
                "prom": prom,
                "am": am,
                "grafana": grafana,
                "sink": sink,
                "jobs": jobs,
                "base": base,
                "dashboards_dir": dashboards_dir,
            }


def _yaml_rules():
    """Every rule file of the directory, as the role deploys them (verify expects all their groups)."""
    import yaml  # ansible's dependency; only the test reads YAML

    return {path.name: yaml.safe_load(path.read_text()) for path in sorted(paths.RULES_DIR.glob("*.yml"))}


def write_inventory(base, name, group_vars=None, backup=False):
    """The one-host inventory (mon1 = this machine) in base/name/, with group_vars/all if given;
    mon1 is also the backup host when ``backup``."""
    directory = base / name
    (directory / "group_vars").mkdir(parents=True, exist_ok=True)
    inventory = directory / "hosts.json"
    if group_vars:
        (directory / "group_vars" / "all.json").write_text(json.dumps(group_vars))
    inventory.write_text(
        json.dumps(
            {
                "all": {
                    "children": {
                        "monitoring": {
                            "hosts": {
                                "mon1": {
                                    "ansible_connection": "local",
                                    "private_ip": "127.0.0.1",
                                    "ansible_python_interpreter": TARGET_PYTHON,
                                }
                            }
                        },
                        "app": {"hosts": {}},
                        "postgres": {"hosts": {}},
                        "redis": {"hosts": {}},
                        "mongodb": {"hosts": {}},
                        "backup": {"hosts": {"mon1": {}} if backup else {}},
                    }
                }
            }
        )
    )
    return inventory


def stack_variables(stack):
    return {
        "prometheus_port": stack["prom"].port,
        "alertmanager_port": stack["am"].port,
        "grafana_port": stack["grafana"].port,
        "grafana_admin_password": ADMIN_PASSWORD,
        "adg_scrape_jobs": [
            {"job_name": job, "group": "monitoring", "port": port, "scrape_interval": "1s"}
            for job, port in stack["jobs"].items()
        ],
        "verify_wait_timeout": 30,
        "verify_panel_retries": 0,
    }


def run_playbook(stack, playbook, extra, inventory=None, check_mode=False):
    base = stack["base"]
    # The dashboards under test are the inventory's choice, as an operator would set them.
    inventory = inventory or write_inventory(
        base, "inventory", {"grafana_dashboards_dir": str(stack["dashboards_dir"])}
    )
    variables = dict(stack_variables(stack), **extra)
    extra_file = base / "extra.json"
    extra_file.write_text(json.dumps(variables))
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FACT_CACHING="memory",
        ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.minimal",
    )
    ansible_playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    run = subprocess.run(
        [
            ansible_playbook,
            "-i",
            str(inventory),
            str(playbook),
            "-e",
            f"@{extra_file}",
            *(["--check"] if check_mode else []),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return run.returncode, run.stdout + run.stderr


def run_verify(stack, extra, check_mode=False, inventory=None):
    return run_playbook(stack, REPO / "playbooks" / "verify.yml", extra, inventory, check_mode)


def table_rows(output):
    rows = {}
    for line in output.splitlines():
        text = line.strip().strip("-").strip().strip("'\"")
        for component in ("Prometheus", "Alertmanager", "Grafana", "Backup"):
            if text.startswith(component + " "):
                parts = text.split(None, 1)[1]
                for result in (" PASS ", " FAIL "):
                    if result in parts:
                        check, detail = parts.split(result, 1)
                        rows[(component, check.strip())] = (result.strip(), detail.strip())
    return rows


def test_verify_playbook_passes_and_prints_the_table(local_monitoring):
    delivery = {
        "receiver": "critical-alerts",
        "labels": {"severity": "critical"},
        "sink_url": local_monitoring["sink"].url + "/notifications",
        "wait_timeout": 30,
    }
    rc, output = run_verify(local_monitoring, {"verify_alertmanager_delivery": delivery})
    rows = table_rows(output)
    assert rc == 0, output
    expected = {
        ("Prometheus", "targets"),
        ("Prometheus", "rules"),
        ("Prometheus", "alertmanagers"),
        ("Alertmanager", "status"),
        ("Alertmanager", "receivers"),
        ("Alertmanager", "delivery to critical-alerts"),
        ("Grafana", "health"),
        ("Grafana", "admin login"),
        ("Grafana", "datasource prometheus"),
        ("Grafana", "dashboard adg-verify-test"),
        ("Grafana", "panel data"),
    }
    assert set(rows) == expected, output
    assert all(result == "PASS" for result, _ in rows.values()), rows
    assert rows[("Prometheus", "targets")][1] == "3/3 up"
    groups = [group for content in _yaml_rules().values() for group in content["groups"]]
    rule_count = sum(len(group["rules"]) for group in groups)
    assert f"{len(groups)} group(s), {rule_count} rule(s)" in rows[("Prometheus", "rules")][1]
    assert rows[("Alertmanager", "delivery to critical-alerts")][1].startswith("confirmed by webhook")
    assert "logged in as admin" in rows[("Grafana", "admin login")][1]
    assert ADMIN_PASSWORD not in output


def test_verify_playbook_fails_on_a_missing_target_and_bad_login(local_monitoring):
    jobs = [
        {"job_name": job, "group": "monitoring", "port": port}
        for job, port in local_monitoring["jobs"].items()
    ]
    jobs.append({"job_name": "node", "group": "monitoring", "port": free_port()})
    rc, output = run_verify(
        local_monitoring,
        {"adg_scrape_jobs": jobs, "verify_wait_timeout": 3, "grafana_admin_password": "not-the-password"},
    )
    rows = table_rows(output)
    assert rc != 0
    result, detail = rows[("Prometheus", "targets")]
    assert result == "FAIL" and "target job=node instance=mon1 is missing" in detail
    assert rows[("Grafana", "admin login")] == ("FAIL", "HTTP 401: login refused")
    assert rows[("Grafana", "datasource prometheus")] == ("FAIL", "HTTP 401: login refused")
    assert rows[("Prometheus", "rules")][0] == "PASS"
    assert "check(s) failed on mon1" in output and "not-the-password" not in output


def test_verify_playbook_runs_in_check_mode(local_monitoring):
    delivery = {"receiver": "critical-alerts", "labels": {"severity": "critical"}}
    before = len(local_monitoring["sink"].notifications)
    rc, output = run_verify(local_monitoring, {"verify_alertmanager_delivery": delivery}, check_mode=True)
    rows = table_rows(output)
    assert rc == 0, output
    assert all(result == "PASS" for result, _ in rows.values()), rows
    assert (
        rows[("Alertmanager", "delivery to critical-alerts")][1]
        == "receiver configured; check mode sends no alert"
    )
    assert rows[("Grafana", "datasource prometheus")][1].startswith("prometheus -> http://127.0.0.1:")
    assert len(local_monitoring["sink"].notifications) == before, "check mode sent no test alert"


OVERRIDE_DASHBOARD = {
    "uid": "adg-override-test",
    "title": "Dashboards directory override",
    "panels": [
        {
            "id": 1,
            "title": "Targets up",
            "type": "stat",
            "datasource": {"type": "prometheus", "uid": "prometheus"},
            "targets": [{"refId": "A", "expr": "sum(up)"}],
        }
    ],
}

DEPLOY_GRAFANA = """\
- name: Deploy the dashboards with the grafana role (existing server mode)
  hosts: monitoring
  gather_facts: false
  roles:
    - role: autodealgenie.ops.grafana
"""


def test_dashboards_dir_override_changes_what_is_deployed_and_verified(local_monitoring):
    """One value in the inventory's group_vars/all: the role pushes that directory's dashboards and
    verify.yml expects exactly those (and no longer the project's or the other tests' ones)."""
    base, grafana = local_monitoring["base"], local_monitoring["grafana"]
    override = base / "override-dashboards"
    override.mkdir()
    (override / "override.json").write_text(json.dumps(OVERRIDE_DASHBOARD))
    inventory = write_inventory(
        base, "override-inventory", {"grafana_dashboards_dir": str(override), "grafana_manage_server": False}
    )
    auth = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}

    def deployed(uid):
        try:
            return http_json(f"{grafana.url}/api/dashboards/uid/{uid}", headers=auth)["meta"]["folderUid"]
        except urllib.error.HTTPError as exc:
            assert exc.code == 404, exc
            return None

    assert deployed("adg-override-test") is None
    playbook = base / "deploy_grafana.yml"
    playbook.write_text(DEPLOY_GRAFANA)
    rc, output = run_playbook(local_monitoring, playbook, {}, inventory)
    assert rc == 0, output
    assert deployed("adg-override-test") == "autodealgenie", "the role did not push the overriding directory"

    rc, output = run_verify(local_monitoring, {}, inventory=inventory)
    rows = table_rows(output)
    assert rc == 0, output
    dashboards = {check for component, check in rows if check.startswith("dashboard ")}
    assert dashboards == {"dashboard adg-override-test"}, output
    assert rows[("Grafana", "panel data")] == ("PASS", "1 panel(s) with data"), rows
    assert ADMIN_PASSWORD not in output


BACKUP_METRIC = "pgbackrest_backup_last_completion_timestamp_seconds"
# The Database Performance dashboard's backup panel (verify.yml's verify_group_panels default names
# it by uid and title), here with a query the test's Prometheus can answer.
BACKUP_PANEL_DASHBOARD = {
    "uid": "autodealgenie-database-performance",
    "title": "Backup panel",
    "panels": [
        {
            "id": 11,
            "title": "Backup Age",
            "type": "timeseries",
            "datasource": {"type": "prometheus", "uid": "prometheus"},
            "targets": [
                {
                    "refId": "A",
                    "expr": f'time() - max by (stanza, type) ({BACKUP_METRIC}{{job="node"}})',
                }
            ],
        }
    ],
}


@pytest.fixture
def backup_metrics(local_monitoring):
    """A textfile-like node target (instance mon1) whose metrics the test sets; removed afterwards."""
    import http.server

    state = {"text": ""}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            respond(self, state["text"].encode(), content_type="text/plain; version=0.0.4")

        def log_message(self, *args):
            pass

    server = LoopbackServer(Handler)
    prom = local_monitoring["prom"]

    def job(name, port):
        return {
            "job_name": name,
            "static_configs": [{"targets": [f"127.0.0.1:{port}"], "labels": {"instance": "mon1"}}],
        }

    base_scrape = [job(name, port) for name, port in local_monitoring["jobs"].items()]
    node = job("node", server.port)
    rules = _yaml_rules()
    am = [local_monitoring["am"].address]
    prom.write_config([*base_scrape, node], rules, am)
    prom.reload()
    try:
        yield state
    finally:
        prom.write_config(base_scrape, rules, am)
        prom.reload()
        server.stop()


def _wait_for_series(prom, query, present, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if bool(prom.api("/api/v1/query", query=query)["result"]) == present:
            return
        time.sleep(0.5)
    raise AssertionError(f"{query}: still {'absent' if present else 'present'} after {timeout} s")


def test_backup_check_and_backup_panel_follow_the_backup_group(local_monitoring, backup_metrics):
    """No backup group: no backup row, and the empty backup panel counts as ignored. A backup group:
    the row needs a full backup of the stanza from the backup host, and the panel must show data."""
    base, prom, grafana = local_monitoring["base"], local_monitoring["prom"], local_monitoring["grafana"]
    grafana_args = {"url": grafana.url, "url_username": "admin", "url_password": ADMIN_PASSWORD}
    run_in_process(
        "grafana_dashboard",
        dict(grafana_args, dashboard=BACKUP_PANEL_DASHBOARD, folder_uid="autodealgenie", create_folder=True),
    )
    dashboards = base / "backup-dashboards"
    dashboards.mkdir()
    (dashboards / "database-performance.json").write_text(json.dumps(BACKUP_PANEL_DASHBOARD))
    content = {"grafana_dashboards_dir": str(dashboards)}
    without = write_inventory(base, "no-backup-inventory", content)
    with_backup = write_inventory(base, "backup-inventory", content, backup=True)
    series = BACKUP_METRIC + '{job="node"}'
    ignored = "autodealgenie-database-performance:Backup Age"

    def sample(stanza, kind, age):
        return f'{BACKUP_METRIC}{{stanza="{stanza}",type="{kind}"}} {time.time() - age:.0f}\n'

    rc, output = run_verify(local_monitoring, {}, inventory=without)
    rows = table_rows(output)
    assert rc == 0, output
    assert not [key for key in rows if key[0] == "Backup"], rows
    assert rows[("Grafana", "panel data")] == (
        "PASS",
        f"0 panel(s) with data, 1 ignored (no hosts in their group: {ignored})",
    ), rows

    # only a diff backup, and a full one of another stanza: no full backup of the project's stanza
    backup_metrics["text"] = sample("autodealgenie", "diff", 60) + sample("other", "full", 60)
    _wait_for_series(prom, series, present=True)
    rc, output = run_verify(local_monitoring, {"verify_backup_retries": 0}, inventory=with_backup)
    rows = table_rows(output)
    assert rc != 0, output
    result, detail = rows[("Backup", "full backup of autodealgenie")]
    assert result == "FAIL" and detail.startswith("none from mon1 (pgbackrest.prom"), detail
    assert rows[("Grafana", "panel data")][0] == "PASS", rows  # the panel has data now
    assert "check(s) failed on mon1: Backup full backup of autodealgenie" in output

    backup_metrics["text"] += sample("autodealgenie", "full", 7500)
    _wait_for_series(prom, BACKUP_METRIC + '{type="full", stanza="autodealgenie"}', present=True)
    rc, output = run_verify(local_monitoring, {}, inventory=with_backup)
    rows = table_rows(output)
    assert rc == 0, output
    assert rows[("Backup", "full backup of autodealgenie")] == ("PASS", "mon1 newest 2h 5m old"), rows
    # not in the ignore list once the group has hosts (the detail would say so)
    assert rows[("Grafana", "panel data")] == ("PASS", "1 panel(s) with data"), rows
