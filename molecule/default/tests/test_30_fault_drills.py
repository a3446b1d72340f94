"""(3) Fault drills with the test-only short `for`/intervals (tests/molecule/fault_drills/drill_vars.yml):
stop the backend on one app host -> ServiceDown reaches the webhook receiver; stop Redis ->
RedisDown and /api/v1/health/detailed answers 503; stop PostgreSQL -> DatabaseDown; restore each
-> the alert resolves. Each measured delay is printed next to its theoretical bound."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from conftest import report, run_on

from tests.molecule.fault_drills.drills import SLACK_SECONDS, Drill, run_drill


def http_status(url: str, timeout: float = 10) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (lab http URL)
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def wait_healthy(app_urls: list[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    pending = list(app_urls)
    while pending and time.monotonic() < deadline:
        pending = [u for u in pending if http_status(u + "/api/v1/health/detailed")[0] != 200]
        if pending:
            time.sleep(2)
    assert not pending, f"not healthy again after the drill: {pending}"


@pytest.fixture(scope="module")
def drills(groups) -> list[Drill]:
    app_host = groups["app"][-1]
    redis_host = groups["redis"][0]
    postgres_host = groups["postgres"][0]
    return [
        Drill(
            "stop the backend (socket + service) on " + app_host,
            "ServiceDown",
            app_host,
            ("autodealgenie.socket", "autodealgenie.service"),
            "autodealgenie-backend",
            {"instance": app_host},
        ),
        Drill("stop Redis on " + redis_host, "RedisDown", redis_host, ("redis-server",), "redis", {}),
        Drill(
            "stop PostgreSQL on " + postgres_host,
            "DatabaseDown",
            postgres_host,
            ("postgresql",),
            "postgres",
            {},
        ),
    ]


def test_fault_drills(drills, drill_settings, webhook, app_urls, remote):
    def health_during_redis_outage() -> str:
        code, body = http_status(app_urls[0] + "/api/v1/health/detailed")
        redis_state = body.get("services", {}).get("redis")
        health_seen.append((code, redis_state))
        return f"health/detailed during the outage: {code} (redis {redis_state})"

    health_seen: list[tuple[int, str]] = []
    wait_healthy(app_urls)
    results = []
    for drill in drills:
        observe = health_during_redis_outage if drill.alertname == "RedisDown" else None
        result = run_drill(
            drill, drill_settings, webhook, lambda name, cmd: run_on(remote, name, cmd), during_fault=observe
        )
        results.append(result)
        wait_healthy(app_urls)

    report(
        "fault drills (delay from fault/restore to webhook; bound = scrape + eval + for + group_wait"
        " / scrape + eval + group_interval):"
    )
    for result in results:
        for line in result.rows():
            report("  " + line)
    assert health_seen and health_seen[0] == (503, "unhealthy"), f"health during Redis outage: {health_seen}"
    failed = [r.drill.alertname for r in results if not r.ok]
    assert not failed, f"alerts late or missing (slack {SLACK_SECONDS} s): {failed}"
