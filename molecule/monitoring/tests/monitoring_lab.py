"""Shared helpers for the monitoring scenario's tests (not a test module).

Everything here reads the scenario's inventory and the repository; network traffic goes only to
the lab's test hosts.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import testinfra.utils.ansible_runner
import yaml
from adg_molecule import port, topology

from tests.support import paths

SCENARIO = Path(__file__).resolve().parents[1]
REPO = SCENARIO.parents[1]

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY)
MONITORING = "monitoring"
MONITORING_HOSTS = RUNNER.get_hosts(MONITORING)

PROMETHEUS_PORT = port("prometheus_port")
ALERTMANAGER_PORT = port("alertmanager_port")
GRAFANA_PORT = port("grafana_port")
# The rule files and dashboards the scenario's inventory deploys: the directories its
# prometheus_alert_rules_dir and grafana_dashboards_dir name, as Ansible resolves them.
RULE_FILES = sorted(str(p) for p in paths.rules_dir(INVENTORY, MONITORING_HOSTS[0]).glob("*.yml"))
DASHBOARD_FILES = sorted(str(p) for p in paths.dashboards_dir(INVENTORY, MONITORING_HOSTS[0]).glob("*.json"))
# A Prometheus evaluation interval plus a scrape interval, with margin.
SETTLE_SECONDS = 120


# --- helpers --------------------------------------------------------------------------------------
def lab_var(name):
    """A literal variable of the scenario's inventory (molecule/monitoring/group_vars/all)."""
    return RUNNER.get_variables(MONITORING_HOSTS[0])[name]


def address(name):
    return RUNNER.get_variables(name)["ansible_host"]


def secret(name):
    """A generated test secret (tests/molecule/group_vars/all/secrets.yml writes them here)."""
    return (EPHEMERAL / "secrets" / name).read_text().split()[0]


def request(url, data=None, method=None, auth=None, timeout=10.0):
    """(status, decoded JSON or text) for an HTTP request to a lab host; HTTP errors are returned."""
    body = json.dumps(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, method=method)  # noqa: S310 - lab addresses only
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:  # noqa: S310
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    text = raw.decode(errors="replace")
    try:
        return status, json.loads(text) if text.strip() else None
    except ValueError:
        return status, text


def wait_until(probe, timeout=SETTLE_SECONDS, interval=2.0):
    """Call probe() until it returns (True, detail) or time runs out; returns the last detail."""
    deadline = time.monotonic() + timeout
    while True:
        done, detail = probe()
        if done or time.monotonic() > deadline:
            return done, detail
        time.sleep(interval)


def ansible_playbook(*args, timeout=900):
    """Run ansible-playbook against the scenario inventory the way molecule does."""
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_CACHE_PLUGIN_CONNECTION=str(EPHEMERAL / "facts"),
        ANSIBLE_FORCE_COLOR="false",
        ANSIBLE_NOCOLOR="true",
    )
    command = [shutil.which("ansible-playbook") or "ansible-playbook", "-i", INVENTORY, *args]
    return subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO, check=False
    )


def recap(output, host):
    match = re.search(rf"^{re.escape(host)}\s+:\s+(.*)$", output, re.MULTILINE)
    assert match, f"no PLAY RECAP line for {host}:\n{output[-3000:]}"
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}


@functools.cache
def expected_targets():
    """{(job, instance)} for every topology scrape job whose inventory group has hosts."""
    targets = set()
    for job in topology()["adg_scrape_jobs"]:
        for name in RUNNER.get_hosts(job["group"]):
            targets.add((job["job_name"], name))
    return targets


def expected_rule_groups():
    return sorted(g["name"] for path in RULE_FILES for g in yaml.safe_load(Path(path).read_text())["groups"])


def monitoring_urls():
    name = MONITORING_HOSTS[0]
    ip = address(name)
    return {
        "name": name,
        "ip": ip,
        "prometheus": f"http://{ip}:{PROMETHEUS_PORT}",
        "alertmanager": f"http://{ip}:{ALERTMANAGER_PORT}",
        "grafana": f"http://{ip}:{GRAFANA_PORT}",
    }


def prometheus_pid(host):
    return host.check_output("systemctl show -p MainPID --value prometheus")


def rule_group_names(mon):
    status, body = request(mon["prometheus"] + "/api/v1/rules")
    assert status == 200, body
    return sorted(g["name"] for g in body["data"]["groups"])


def last_reload_successful(mon):
    status, text = request(mon["prometheus"] + "/metrics")
    assert status == 200, text
    return re.search(r"^prometheus_config_last_reload_successful 1$", text, re.MULTILINE) is not None


def gpg(home, *args, text=False):
    """Run gpg with its own home directory (a throw-away keyring)."""
    return subprocess.run(
        ["gpg", "--batch", "--quiet", "--homedir", str(home), *args],
        check=True,
        capture_output=True,
        text=text,
    )


def throwaway_signing_key(workdir):
    """Create a passphrase-less signing key under workdir; returns (gnupg home, fingerprint)."""
    home = Path(workdir, "gnupg")
    home.mkdir(mode=0o700)
    gpg(
        home,
        "--passphrase",
        "",
        "--quick-gen-key",
        "ADG test repository <repo@test.invalid>",
        "ed25519",
        "sign",
        "never",
    )
    colons = gpg(home, "--with-colons", "--list-keys", text=True).stdout
    return home, re.search(r"^fpr:::::::::([0-9A-F]{40}):", colons, re.MULTILINE).group(1)


@contextlib.contextmanager
def serve_directory(directory):
    """Serve a directory over HTTP on the lab gateway (the controller's lab address); yields the URL."""

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(directory), **kwargs)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((lab_var("monitoring_lab_gateway"), 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        host, bound_port = server.server_address[:2]
        yield f"http://{host}:{bound_port}"
    finally:
        server.shutdown()
        server.server_close()
