"""playbooks/maintenance.yml silences and unsilences by host and by alert name, idempotently, and
marks each window as a Grafana annotation (the API double in this lab) with the silence's times."""

from __future__ import annotations

import base64
import datetime
import time
import urllib.parse

from adg_molecule import port
from conftest import EPHEMERAL, report, run_playbook

from tests.support.monitoring import http_json


def live_silences(alertmanager_url: str) -> list[tuple[set[str], dict]]:
    """(matchers as name=value, silence) of every active or pending silence."""
    return [
        ({f"{m['name']}={m['value']}" for m in s["matchers"]}, s)
        for s in http_json(f"{alertmanager_url}/api/v2/silences", timeout=10)
        if s["status"]["state"] in ("active", "pending")
    ]


def active_matchers(alertmanager_url: str) -> list[set[str]]:
    return [matchers for matchers, _ in live_silences(alertmanager_url)]


def active_silence(alertmanager_url: str, matcher: str) -> dict:
    found = [s for matchers, s in live_silences(alertmanager_url) if matchers == {matcher}]
    assert len(found) == 1, found
    return found[0]


def epoch_ms(stamp: str) -> int:
    """Alertmanager's RFC 3339 time (up to nanoseconds) in epoch milliseconds."""
    head, _, rest = stamp.rstrip("Z").partition(".")
    seconds = datetime.datetime.fromisoformat(head).replace(tzinfo=datetime.UTC).timestamp()
    return int(seconds) * 1000 + int((rest or "0")[:3].ljust(3, "0"))


def now_ms() -> int:
    return int(time.time() * 1000)


def grafana_annotations(addresses, groups, **params) -> list[dict]:
    """GET /api/annotations of the lab's Grafana (the double) as its admin."""
    password = (EPHEMERAL / "secrets" / "grafana_admin_password").read_text().split()[0]
    query = urllib.parse.urlencode(
        [(k, v) for k, values in params.items() for v in (values if isinstance(values, list) else [values])]
    )
    url = f"http://{addresses[groups['monitoring'][0]]}:{port('grafana_port')}/api/annotations?{query}"
    auth = base64.b64encode(f"admin:{password}".encode()).decode()
    return http_json(url, timeout=10, headers={"Authorization": f"Basic {auth}"})


def test_maintenance_silence_by_host_and_by_alert(alertmanager_url, groups, addresses):
    host = groups["postgres"][0]
    for selector, matcher, tag in (
        (f"maintenance_host={host}", f"instance={host}", f"instance:{host}"),
        ("maintenance_alert=HighAPILatency", "alertname=HighAPILatency", "alertname:HighAPILatency"),
    ):
        tags = ["maintenance", tag]
        marked_before = len(grafana_annotations(addresses, groups, tags=tags))
        check = run_playbook(
            "playbooks/maintenance.yml", "-e", selector, "-e", "maintenance_duration=10m", "--check"
        )
        assert check.returncode == 0, check.stdout[-3000:]
        assert {matcher} not in active_matchers(alertmanager_url)
        # --check wrote nothing
        assert len(grafana_annotations(addresses, groups, tags=tags)) == marked_before

        started = now_ms()
        first = run_playbook("playbooks/maintenance.yml", "-e", selector, "-e", "maintenance_duration=10m")
        assert first.returncode == 0, first.stdout[-3000:]
        assert {matcher} in active_matchers(alertmanager_url)
        silence = active_silence(alertmanager_url, matcher)
        key = f"adg-key:maintenance-{silence['id']}"
        marked = grafana_annotations(addresses, groups, tags=[key, *tags])
        assert len(marked) == 1, marked
        window = (epoch_ms(silence["startsAt"]), epoch_ms(silence["endsAt"]))
        assert (marked[0]["time"], marked[0]["timeEnd"]) == window, (marked[0], silence)
        assert started - 2000 <= window[0] <= now_ms() and window[1] - window[0] >= 10 * 60_000 - 2000
        assert "planned maintenance" in marked[0]["text"]

        again = run_playbook("playbooks/maintenance.yml", "-e", selector, "-e", "maintenance_duration=10m")
        assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout[-3000:]
        assert grafana_annotations(addresses, groups, tags=[key]) == marked  # no second one, unchanged

        lifting = now_ms()
        lifted = run_playbook("playbooks/maintenance.yml", "-e", selector, "-e", "maintenance_state=absent")
        assert lifted.returncode == 0, lifted.stdout[-3000:]
        assert {matcher} not in active_matchers(alertmanager_url)
        ended = grafana_annotations(addresses, groups, tags=[key])
        assert len(ended) == 1 and ended[0]["time"] == window[0], ended
        assert lifting <= ended[0]["timeEnd"] <= now_ms()  # the window ended when it was lifted
        for run in (first, again, lifted):
            assert "Grafana annotation not written" not in run.stdout + run.stderr, run.stderr[-2000:]
    report("maintenance.yml: --check writes nothing; silence by host and by alert, each with a Grafana")
    report(
        "  region (the silence's start and end); re-run unchanged, no second annotation; lifted: it ends then"
    )
