"""(5) Central logs: one API request, followed by its request id from the API host's own journal to the
central store on every monitoring host (systemd-journal-upload -> systemd-journal-remote), where
`journalctl --directory=/var/log/journal/remote` shows it as the API host's entry.

Delay bound: journal-upload follows the journal (inotify) and sends each new entry at once, and
journal-remote writes it on receipt, so an entry normally arrives in well under a second. The worst
case the deployment allows is an uploader that has just failed and waits its RestartSec (read from
the live unit) before it resends from its saved cursor; the bound is that plus a fixed 5 s for the
app's write, the HTTP round trip and this test's polling.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
import uuid

from adg_molecule import port
from conftest import report, run_on

CENTRAL_STORE = "/var/log/journal/remote"
SLACK_S = 5.0


def journal_entries(remote, host: str, command: str, request_id: str) -> list[dict]:
    """JSON entries of `command` (a journalctl -o json over the last minutes) that name request_id."""
    # grep -F on the host keeps the transfer small; the id is [0-9a-f-] only.
    out = run_on(
        remote, host, f"{command} -o json --no-pager --since=-15min | grep -F -- '{request_id}' || true"
    )
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def message_json(entry: dict) -> dict:
    """The entry's MESSAGE as a JSON object ({} for a line that is not one)."""
    try:
        value = json.loads(entry.get("MESSAGE") or "")
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def timespan_seconds(text: str) -> float:
    """A systemd time span as `systemctl show` prints it ("10s", "1min 30s", "500ms")."""
    units = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(us|ms|min|s|h)", text)
    assert parts and "".join(n + u for n, u in parts) == text.replace(" ", ""), f"not a time span: {text!r}"
    return sum(float(n) * units[u] for n, u in parts)


def restart_bound(remote, app_host: str, monitoring_host: str) -> float:
    """RestartSec of the app host's uploader to monitoring_host, which must be running."""
    unit = f"journal-upload@{monitoring_host}.service"
    state = run_on(remote, app_host, f"systemctl is-active {unit} || true").strip()
    assert state == "active", f"{app_host}: {unit} is {state!r}"
    return timespan_seconds(run_on(remote, app_host, f"systemctl show -P RestartUSec {unit}").strip())


def test_request_id_reaches_the_central_store(remote, groups, addresses):
    app_host = groups["app"][0]
    monitoring_hosts = groups["monitoring"]
    assert monitoring_hosts, "the default scenario has a monitoring host"
    request_id = f"central-logs-{uuid.uuid4()}"

    url = f"http://{addresses[app_host]}:{port('backend_port')}/api/v1/health"
    request = urllib.request.Request(url, headers={"X-Request-ID": request_id})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        assert response.status == 200
        assert response.headers["X-Request-ID"] == request_id, "the app did not keep the request id"
    sent = time.time()

    # The API host's own journal first: the access log line with the id (the app's JSON log lines).
    local: list[dict] = []
    deadline = time.monotonic() + SLACK_S
    while not local and time.monotonic() < deadline:
        local = journal_entries(remote, app_host, "journalctl", request_id)
        if not local:
            time.sleep(0.2)
    assert local, f"{app_host}: no journal entry with request_id {request_id}"
    access = [e for e in local if message_json(e).get("request_id") == request_id]
    assert access, f"{app_host}: no JSON log line whose request_id is {request_id}: {local}"
    source = access[0]
    hostname = run_on(remote, app_host, "hostname").strip()
    machine_id = run_on(remote, app_host, "cat /etc/machine-id").strip()
    written = int(source["__REALTIME_TIMESTAMP"]) / 1e6

    for monitoring_host in monitoring_hosts:
        bound = restart_bound(remote, app_host, monitoring_host) + SLACK_S
        command = f"journalctl --directory={CENTRAL_STORE} _HOSTNAME={hostname}"
        central: list[dict] = []
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            found = journal_entries(remote, monitoring_host, command, request_id)
            central = [e for e in found if e.get("MESSAGE") == source["MESSAGE"]]
            if central:
                break
            time.sleep(0.2)
        arrived = time.time()
        assert central, (
            f"{monitoring_host}: the entry with request_id {request_id} from {app_host} "
            f"is not in {CENTRAL_STORE} after {bound:.0f} s"
        )
        entry = central[0]
        # The same entry as on the API host: its host, machine, boot, unit and source timestamp.
        for field in ("_HOSTNAME", "_MACHINE_ID", "_BOOT_ID", "_SYSTEMD_UNIT", "__REALTIME_TIMESTAMP"):
            assert entry.get(field) == source.get(field), (field, entry.get(field), source.get(field))
        assert entry["_HOSTNAME"] == hostname and entry["_MACHINE_ID"] == machine_id
        assert len(central) == 1, f"{monitoring_host}: the entry is stored {len(central)} times"
        delay = arrived - written
        report(
            f"central logs {app_host} -> {monitoring_host}: request id found after {delay:5.2f} s "
            f"(written {written - sent:+.2f} s after the response; "
            f"bound {bound:.0f} s = RestartSec + {SLACK_S:.0f} s)"
        )
        assert delay <= bound
