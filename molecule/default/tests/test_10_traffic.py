"""(2) The traffic generator exercises every endpoint on every app host, and every business
counter the dashboards use moves. (Every dashboard panel returning data is checked next, by
verify.yml with no panel ignored: test_20_verify_playbook.py.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request

from conftest import REPO, report

DASHBOARDS = sorted((REPO / "roles" / "grafana" / "files" / "dashboards").glob("*.json"))


def business_counters() -> list[str]:
    """Every autodealgenie_*_total counter named in a dashboard query."""
    names: set[str] = set()
    for path in DASHBOARDS:
        names.update(re.findall(r"\b(autodealgenie_[a-z0-9_]+_total)\b", path.read_text()))
    return sorted(names)


def counter_value(prometheus_url: str, name: str) -> float:
    query = urllib.parse.urlencode({"query": f"sum({name})"})
    url = f"{prometheus_url}/api/v1/query?{query}"
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (http URL from the inventory)
        data = json.load(response)["data"]["result"]
    return float(data[0]["value"][1]) if data else 0.0


def test_traffic_moves_every_business_counter(prometheus_url, app_urls):
    counters = business_counters()
    assert counters, f"no autodealgenie_*_total counter found in {DASHBOARDS}"
    before = {name: counter_value(prometheus_url, name) for name in counters}

    started = time.monotonic()
    cmd = [sys.executable, str(REPO / "tests" / "traffic" / "traffic.py"), "--iterations", "2"]
    for url in app_urls:
        cmd += ["--base-url", url]
    traffic = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    report(f"traffic generator:               {time.monotonic() - started:7.1f} s   rc={traffic.returncode}")
    assert traffic.returncode == 0, traffic.stdout[-5000:] + traffic.stderr[-2000:]

    # The backend job's scrape interval bounds how long the counters take to show the traffic.
    deadline = time.monotonic() + 90
    moved: dict[str, float] = {}
    while time.monotonic() < deadline:
        moved = {name: counter_value(prometheus_url, name) - before[name] for name in counters}
        if all(delta > 0 for delta in moved.values()):
            break
        time.sleep(5)
    report("business counters moved:         " + ", ".join(f"{n}+{d:g}" for n, d in moved.items()))
    assert all(delta > 0 for delta in moved.values()), f"counters that did not move: {moved}"
