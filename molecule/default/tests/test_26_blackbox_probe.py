"""(2b) The blackbox exporter probes the API like a client (job blackbox-api).

Every app host's API health URL (adg_api_health_url, topology.yml) is a target of the monitoring
host's Prometheus, probed through that host's own blackbox exporter, labelled with the app host's
inventory name, and probe_success is 1. Stopping the backend (socket and service) on one app host
turns its probe_success to 0 at the next probe while the target itself stays up (the exporter
answered: `up` alone cannot see the API down), and the restart turns it back to 1. APIProbeFailing
(roles/prometheus/files/rules) reads this series.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request

from adg_molecule import port, topology
from conftest import report, run_on

from tests.molecule.fault_drills.drills import parse_duration

JOB = "blackbox-api"
BACKEND_UNITS = ("autodealgenie.socket", "autodealgenie.service")


def probe_job() -> dict:
    return next(job for job in topology()["adg_scrape_jobs"] if job["job_name"] == JOB)


def query(prometheus_url: str, expr: str) -> dict[str, float]:
    """instance -> value of an instant query."""
    url = prometheus_url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (lab http URL)
        body = json.load(response)
    assert body["status"] == "success", body
    return {r["metric"].get("instance", ""): float(r["value"][1]) for r in body["data"]["result"]}


def targets(prometheus_url: str) -> dict[str, dict]:
    url = prometheus_url + "/api/v1/targets?state=active"
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (lab http URL)
        active = json.load(response)["data"]["activeTargets"]
    return {t["labels"]["instance"]: t for t in active if t["labels"].get("job") == JOB}


def wait_for(check, timeout: float, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def test_every_app_host_is_probed_and_up(prometheus_url, groups, addresses):
    scrape = parse_duration(probe_job()["scrape_interval"])
    apps = sorted(groups["app"])
    mon_ip = addresses[groups["monitoring"][0]]
    path = topology()["adg_api_health_path"]

    def all_up():
        found = targets(prometheus_url)
        return found if set(found) == set(apps) and all(t["health"] == "up" for t in found.values()) else None

    found = wait_for(all_up, timeout=scrape * 4 + 10)
    assert found, f"blackbox-api targets not all up: {targets(prometheus_url)}"
    for host, target in found.items():
        # asked of the monitoring host's own exporter, for this app host's health URL
        assert target["scrapeUrl"].startswith(f"http://{mon_ip}:{port('blackbox_exporter_port')}/probe?"), (
            target
        )
        params = urllib.parse.parse_qs(urllib.parse.urlsplit(target["scrapeUrl"]).query)
        assert params["module"] == ["http_2xx"], params
        wanted = f"http://{addresses[host]}:{port('backend_port')}{path}"
        assert params["target"] == [wanted], params
    success = query(prometheus_url, f'probe_success{{job="{JOB}"}}')
    assert success == dict.fromkeys(apps, 1.0), success
    codes = query(prometheus_url, f'probe_http_status_code{{job="{JOB}"}}')
    assert codes == dict.fromkeys(apps, 200.0), codes


def test_a_stopped_api_is_probe_success_0(prometheus_url, groups, remote):
    scrape = parse_duration(probe_job()["scrape_interval"])
    host = sorted(groups["app"])[-1]
    selector = f'{{job="{JOB}",instance="{host}"}}'
    # a sample newer than the stop: probes run every scrape interval
    bound = scrape * 2 + 5
    stopped = time.monotonic()
    run_on(remote, host, "systemctl stop " + " ".join(BACKEND_UNITS))
    try:
        failed = wait_for(lambda: query(prometheus_url, f"probe_success{selector}").get(host) == 0, bound)
        took = time.monotonic() - stopped
        during = {
            "up": query(prometheus_url, f"up{selector}").get(host),
            "status": query(prometheus_url, f"probe_http_status_code{selector}").get(host),
        }
    finally:
        run_on(remote, host, "systemctl start " + " ".join(reversed(BACKEND_UNITS)))
    restarted = time.monotonic()
    back = wait_for(lambda: query(prometheus_url, f"probe_success{selector}").get(host) == 1, bound + 30)
    report(
        f"blackbox-api probe of {host}: probe_success 0 after {took:5.1f} s (bound {bound:.0f} s),"
        f" 1 again after {time.monotonic() - restarted:5.1f} s"
    )
    assert failed, f"probe_success{selector} still not 0 {bound:.0f} s after the API stopped"
    # the exporter answered the scrape: only probe_success shows the API down
    assert during == {"up": 1.0, "status": 0.0}, during
    assert back, f"probe_success{selector} not 1 again after the API restarted"
