"""(2) The traffic generator exercises every endpoint on every app host, and every business
counter the dashboards use moves. (Every dashboard panel returning data is checked next, by
verify.yml with no panel ignored: test_20_verify_playbook.py.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request

from adg_molecule import topology
from conftest import REPO, report

from tests.molecule.fault_drills.drills import parse_duration
from tests.support import paths

# The dashboards this scenario's inventory deploys (the directory grafana_dashboards_dir names).
DASHBOARDS = sorted(paths.dashboards_dir(os.environ["MOLECULE_INVENTORY_FILE"]).glob("*.json"))


# Counters the traffic cannot move on a healthy lab, and why (the app exports them at 0 from the
# start, so their panels still show data): errors, and the LLM/external API calls that only the
# openai advisor makes (the lab runs NEGOTIATION_ADVISOR=builtin).
UNMOVED_COUNTERS = re.compile(r"_errors_total$|^autodealgenie_(llm|external_api)_")


def business_counters() -> list[str]:
    """Every autodealgenie_*_total counter named in a dashboard query that traffic moves."""
    names: set[str] = set()
    for path in DASHBOARDS:
        names.update(re.findall(r"\b(autodealgenie_[a-z0-9_]+_total)\b", path.read_text()))
    return sorted(name for name in names if not UNMOVED_COUNTERS.search(name))


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

    # Two waves, a scrape interval apart: a counter series first seen by Prometheus contributes
    # nothing to rate()/increase() until a later scrape shows it growing, so one short burst
    # would leave rate-based panels empty (0/0) even though the counters moved.
    scrape = parse_duration(
        next(
            j["scrape_interval"]
            for j in topology()["adg_scrape_jobs"]
            if j["job_name"] == "autodealgenie-backend"
        )
    )
    cmd = [sys.executable, str(REPO / "tests" / "molecule" / "traffic" / "traffic.py"), "--iterations", "2"]
    for url in app_urls:
        cmd += ["--base-url", url]
    started = time.monotonic()
    for wave in (1, 2):
        traffic = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert traffic.returncode == 0, f"wave {wave}: " + traffic.stdout[-5000:] + traffic.stderr[-2000:]
        if wave == 1:
            time.sleep(scrape + 5)
    report(f"traffic generator (2 waves):     {time.monotonic() - started:7.1f} s   rc={traffic.returncode}")
    endpoints = [line for line in traffic.stdout.splitlines() if line.strip()]
    report(f"  last wave's report: {len(endpoints)} lines; tail: {endpoints[-1] if endpoints else ''}")

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
