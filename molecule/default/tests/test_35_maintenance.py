"""playbooks/maintenance.yml silences and unsilences by host and by alert name, idempotently."""

from __future__ import annotations

import json
import urllib.request

from conftest import report, run_playbook


def active_matchers(alertmanager_url: str) -> list[set[str]]:
    with urllib.request.urlopen(f"{alertmanager_url}/api/v2/silences", timeout=10) as response:  # noqa: S310
        silences = json.load(response)
    return [
        {f"{m['name']}={m['value']}" for m in s["matchers"]}
        for s in silences
        if s["status"]["state"] in ("active", "pending")
    ]


def test_maintenance_silence_by_host_and_by_alert(alertmanager_url, groups):
    host = groups["postgres"][0]
    for selector, matcher in (
        (f"maintenance_host={host}", f"instance={host}"),
        ("maintenance_alert=HighAPILatency", "alertname=HighAPILatency"),
    ):
        first = run_playbook("playbooks/maintenance.yml", "-e", selector, "-e", "maintenance_duration=10m")
        assert first.returncode == 0, first.stdout[-3000:]
        assert {matcher} in active_matchers(alertmanager_url)
        again = run_playbook("playbooks/maintenance.yml", "-e", selector, "-e", "maintenance_duration=10m")
        assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout[-3000:]
        lifted = run_playbook("playbooks/maintenance.yml", "-e", selector, "-e", "maintenance_state=absent")
        assert lifted.returncode == 0, lifted.stdout[-3000:]
        assert {matcher} not in active_matchers(alertmanager_url)
    report("maintenance.yml: silence by host and by alert, re-run unchanged, lifted: ok")
