"""Drill 2: the Redis master's host loses power while clients use the API. Sentinel agrees the
master is down after `down-after-milliseconds` and promotes a replica; the app, which asks
Sentinel for the master (redis-py's Sentinel, master_for), follows it without a restart: the
gunicorn masters' PIDs stay the same and the detailed health check reports Redis healthy again.
"""

from __future__ import annotations

import time

from conftest import report, run_on

from tests.molecule.fault_drills.drills import SLACK_SECONDS
from tests.molecule.ha.cluster import http_json, power_off, power_on, wait_until


def main_pids(remote, groups) -> dict[str, str]:
    return {
        host: run_on(remote, host, "systemctl show -p MainPID --value autodealgenie.service").strip()
        for host in groups["app"]
    }


def redis_healthy_everywhere(app_urls) -> bool:
    """Every app host reports Redis healthy. Only Redis: the host cut may also lead PostgreSQL (drill
    1 leaves its leader where Patroni chose), and that failover is drill 1's to measure."""
    for url in app_urls:
        answer = http_json(url + "/api/v1/health/detailed", timeout=5)
        if not answer or not isinstance(answer[1], dict):
            return False
        if answer[1].get("services", {}).get("redis") != "healthy":
            return False
    return True


def test_master_power_off_promotes_a_replica_and_the_app_follows(
    lab, remote, groups, app_urls, sentinels, bounds
):
    wait_until(
        "two replicas Sentinel can promote", lambda: sentinels.replicas_ok() == len(groups["redis"]) - 1, 120
    )
    old = sentinels.master()
    assert old, "Sentinel names no master before the drill"
    pids = main_pids(remote, groups)
    cut = power_off(lab, old)
    try:
        new, _ = wait_until(
            "a promoted Redis master",
            lambda: (m := sentinels.master()) and m != old and m,
            bounds.sentinel_failover + 60,
        )
        promoted = time.monotonic() - cut
        _, recovered = wait_until(
            "the app healthy on every host", lambda: redis_healthy_everywhere(app_urls), 60
        )
        recovered += promoted
    finally:
        power_on(lab, old)
    report(f"drill 2: Redis master {old} powered off")
    report(
        f"  {new} promoted         {promoted:6.1f} s   bound {bounds.sentinel_failover:5.1f} s "
        f"(down-after {bounds.sentinel_down_after:.0f} s + election and promotion)"
    )
    report(f"  Redis healthy on apps   {recovered:6.1f} s after the cut, gunicorn masters not restarted")
    assert promoted <= bounds.sentinel_failover + SLACK_SECONDS
    assert main_pids(remote, groups) == pids, "an app host was restarted to find the new master"

    back = time.monotonic()
    wait_until(f"{old} back as a replica", lambda: sentinels.replicas_ok() == len(groups["redis"]) - 1, 120)
    report(f"  {old} linked as a replica {time.monotonic() - back:6.1f} s after power-on")
    assert sentinels.master() == new
