"""(3b) Self-healing drills (tests/molecule/fault_drills/self_heal.py):

1. every service the project runs on this lab: its unit shows the restart policy of
   autodealgenie.ops.shared restart_policy; `kill -9` of its main process -> active again with a new
   MainPID (an automatic restart) within 15 s, and Prometheus scrapes it healthy again
   (`up`, or the exporter's pg_up/redis_up/mongodb_up) within 15 s + the job's scrape interval;
2. a crash that heals in seconds does not page: MongoDBDown (`for: 2m`, not shortened by
   drill_vars.yml) goes pending when a scrape sees MongoDB down, and never fires nor reaches the
   webhook receiver;
3. a crash loop ends `failed`: kill an exporter each time it comes back until systemd refuses to start
   it (start limit); node_exporter's systemd collector, when deployed, shows the unit failed. The unit
   is reset and started again, so the lab is healthy afterwards.
Each measured delay is printed next to its bound in the scenario's report."""

from __future__ import annotations

import json
import time

import pytest
import yaml
from conftest import report, run_on

from tests.molecule.fault_drills.drills import ROOT, SLACK_SECONDS, parse_duration
from tests.molecule.fault_drills.self_heal import (
    RESTART_BOUND_SECONDS,
    HealResult,
    Prometheus,
    Service,
    crash_loop_command,
    kill_command,
    parse_timespan,
    restart_policy_defaults,
    rfc3339,
    unit_properties,
)

# A for: 2m alert the crash of a service on this lab makes pending, left at 2m by drill_vars.yml.
HOLD_ALERT = "MongoDBDown"
# mongodb_exporter waits up to its 5 s server-selection timeout for MongoDB to answer, so a shorter
# outage never shows as mongodb_up 0 (the stand-in is back in 0.4 s). For the drill a runtime drop-in
# (/run, removed afterwards) delays the restart to 8 s: still a crash that heals within the 15 s bound.
DRILL_RESTART_SEC = 8
DRILL_DROPIN = "/run/systemd/system/{unit}.d/90-self-heal-drill.conf"
# The cheap service driven into its start limit (nothing reads redis_up while it is down).
CRASH_LOOP_UNIT = "prometheus-redis-exporter.service"
# The alert a unit left failed raises (labels instance, name), when Prometheus has it.
FAILED_ALERT = "SystemdUnitFailed"
# Measured on the data scenario: the first scrape after PostgreSQL is back still reports pg_up 0.
POSTGRES_EXPORTER_STALE = "postgres_exporter's pooled connection to the killed server fails once"
STANDIN = yaml.safe_load((ROOT / "tests/molecule/standins/mongodb_nx27017.yml").read_text())[0]["vars"]


def show(remote, host: str, unit: str, *props: str) -> dict[str, str]:
    return unit_properties(
        run_on(remote, host, f"systemctl show {unit} " + " ".join(f"-p {p}" for p in props))
    )


def loaded(remote, host: str, unit: str) -> bool:
    return show(remote, host, unit, "LoadState")["LoadState"] == "loaded"


@pytest.fixture(scope="module")
def prometheus(prometheus_url) -> Prometheus:
    return Prometheus(prometheus_url)


@pytest.fixture(scope="module")
def services(groups, remote) -> tuple[list[Service], list[str]]:
    """(services deployed on this lab in drill order, units not deployed here)."""
    app, pg, redis = groups["app"][0], groups["postgres"][0], groups["redis"][0]
    mongo, mon = groups["mongodb"][0], groups["monitoring"][0]
    listed = run_on(remote, pg, "systemctl list-units --all --plain --no-legend 'postgresql@*.service'")
    pg_unit = listed.split()[0] if listed.strip() else "postgresql@.service"
    candidates = [
        Service("autodealgenie.service", app, "autodealgenie-backend", "up", "always"),
        Service(pg_unit, pg, "postgres", "pg_up", "on-failure", 1, POSTGRES_EXPORTER_STALE),
        Service("redis-server.service", redis, "redis", "redis_up", "on-failure"),
        Service("mongod.service", mongo, "mongodb", "mongodb_up", "on-failure"),
        Service("prometheus-node-exporter.service", app, "node", "up", "always"),
        Service("prometheus-postgres-exporter.service", pg, "postgres", "up", "always"),
        Service("prometheus-redis-exporter.service", redis, "redis", "up", "always"),
        Service("mongodb_exporter.service", mongo, "mongodb", "up", "always"),
        Service("grafana-server.service", mon, "grafana", "up", "always"),
        Service("prometheus-alertmanager.service", mon, "alertmanager", "up", "always"),
        Service("prometheus-blackbox-exporter.service", mon, "blackbox-exporter", "up", "always"),
        # last: while it restarts, nothing is scraped
        Service("prometheus.service", mon, "prometheus", "up", "always"),
    ]
    present = [s for s in candidates if loaded(remote, s.host, s.unit)]
    absent = [f"{s.unit} ({s.host})" for s in candidates if s not in present]
    return present, absent


def policy_problems(remote, service: Service, expected: dict) -> list[str]:
    props = show(
        remote,
        service.host,
        service.unit,
        "Restart",
        "RestartUSec",
        "StartLimitBurst",
        "StartLimitIntervalUSec",
        "DropInPaths",
    )
    seen = {
        "Restart": props["Restart"],
        "RestartSec": parse_timespan(props["RestartUSec"]),
        "StartLimitBurst": int(props["StartLimitBurst"]),
        "StartLimitIntervalSec": parse_timespan(props["StartLimitIntervalUSec"]),
    }
    want = {
        "Restart": service.policy,
        "RestartSec": float(expected["restart_sec"]),
        "StartLimitBurst": int(expected["start_limit_burst"]),
        "StartLimitIntervalSec": float(expected["start_limit_interval"]),
    }
    problems = [f"{service.unit}: {k}={seen[k]}, expected {want[k]}" for k in want if seen[k] != want[k]]
    if not any(p.endswith("/70-restart.conf") for p in props["DropInPaths"].split()):
        problems.append(f"{service.unit}: no 70-restart.conf drop-in ({props['DropInPaths']})")
    return problems


def test_every_service_heals_after_kill_9(services, remote, prometheus, drill_settings):
    present, absent = services
    expected = restart_policy_defaults()
    assert len(present) >= 8, f"too few services found on the lab: {present}"
    problems: list[str] = []
    results: list[HealResult] = []
    for service in present:
        problems += policy_problems(remote, service, expected)
        scrape = drill_settings["scrape"][service.job]
        result = HealResult(service, up_bound=service.health_bound(scrape))
        results.append(result)
        # Healthy before the kill, so the delay measured is the crash's.
        healthy = prometheus.wait_for_sample(
            service.selector, 1, after=time.time() - scrape - 5, timeout=3 * scrape
        )
        if healthy is None:
            result.error = "not healthy before the kill"
            continue
        out = json.loads(run_on(remote, service.host, kill_command(service.unit)))
        if "error" in out:
            result.error = f"{out['error']}: {out['show']}"
            continue
        result.killed = out["killed"]
        result.restarts = out["restarts"]
        result.pids = f"pid {out['old_pid']} -> {out['new_pid']}"
        if out["active"] is None:
            result.error = f"not active again (state {out['state']})"
            continue
        result.active_delay = out["active"] - out["killed"]
        up = prometheus.wait_for_sample(
            service.selector, 1, after=out["killed"], timeout=result.up_bound + SLACK_SECONDS + 30
        )
        if up is not None:
            result.up_delay = up - out["killed"]

    report(
        "self-healing (kill -9 of the main process; delay to active with a new MainPID / to the first"
        " scrape after the kill showing it healthy; bound 15 s / 15 s + scrape interval,"
        f" +{SLACK_SECONDS:.0f} s slack):"
    )
    for result in results:
        report("  " + result.row())
    for unit in absent:
        report(f"  {unit}: not deployed on this lab (an existing server or a stand-in serves it)")
    assert not problems, f"restart policy not in effect: {problems}"
    late = [r.row() for r in results if not r.ok]
    assert not late, "services that did not heal in time:\n" + "\n".join(late)


def kill_before_scrape(remote, prometheus, host, unit, up_selector):
    """Kill `unit` 2 s before the mongodb job's next scrape; up to 3 attempts until a scrape records
    mongodb_up 0. (first kill time, timestamp of that sample or None, the last kill's figures)."""
    first_kill, down_at, out = None, None, {}
    for _attempt in range(3):
        target = prometheus.target("mongodb", host)
        assert target, f"no mongodb target for {host}"
        interval = parse_duration(target["scrapeInterval"])
        next_scrape = rfc3339(target["lastScrape"]) + interval
        while next_scrape < time.time() + 8:  # time to reach the host
            next_scrape += interval
        out = json.loads(run_on(remote, host, kill_command(unit, at=next_scrape - 2)))
        assert "error" not in out, out
        first_kill = first_kill or out["killed"]
        assert out["active"] is not None, f"{unit} not active again: {out}"
        down_at = prometheus.wait_for_sample(up_selector, 0, after=out["killed"], timeout=interval + 10)
        if down_at is not None:
            break
        assert prometheus.wait_for_sample(up_selector, 1, after=out["killed"], timeout=interval + 10)
    return first_kill, down_at, out


def test_a_crash_that_heals_does_not_page(groups, remote, prometheus, drill_settings, webhook):
    assert HOLD_ALERT not in drill_settings["for"], f"drill_vars.yml shortens {HOLD_ALERT}: pick another"
    rule = prometheus.alert_rule(HOLD_ALERT)
    assert rule is not None, f"{HOLD_ALERT} is not loaded in Prometheus"
    hold = float(rule["duration"])
    assert hold == 120, f"{HOLD_ALERT} holds {hold} s on the lab, not for: 2m"
    host = groups["mongodb"][0]
    unit = "mongod.service" if loaded(remote, host, "mongod.service") else STANDIN["nx27017_unit"]
    up_selector = f'mongodb_up{{job="mongodb",instance="{host}"}}'
    alerts = f'ALERTS{{alertname="{HOLD_ALERT}",instance="{host}"}}'
    scrape = drill_settings["scrape"]["mongodb"]
    assert prometheus.wait_for_sample(up_selector, 1, after=time.time() - scrape - 5, timeout=3 * scrape)
    assert not prometheus.query(alerts), f"{HOLD_ALERT} active before the drill"

    # The kill lands just before the exporter's next scrape, so that scrape sees MongoDB down (a
    # crash between two scrapes may heal unseen, which would prove nothing).
    dropin = DRILL_DROPIN.format(unit=unit)
    content = f"[Service]\\nRestartSec={DRILL_RESTART_SEC}\\n"
    run_on(
        remote,
        host,
        f"mkdir -p {dropin.rsplit('/', 1)[0]} && printf '{content}' > {dropin} && systemctl daemon-reload",
    )
    try:
        first_kill, down_at, out = kill_before_scrape(remote, prometheus, host, unit, up_selector)
    finally:
        run_on(remote, host, f"rm -f {dropin} && systemctl daemon-reload")
    assert down_at is not None, f"no scrape saw MongoDB down after {unit} was killed (3 attempts)"
    assert out["active"] - out["killed"] <= RESTART_BOUND_SECONDS, out
    healed_at = prometheus.wait_for_sample(up_selector, 1, after=down_at, timeout=2 * scrape + 10)

    # Had MongoDB stayed down, it would have paged by: the scrape + hold + evaluation + group_wait.
    evaluation = float(rule.get("group_interval") or drill_settings["interval"])
    would_page = down_at + hold + evaluation + drill_settings["group_wait"] + SLACK_SECONDS
    time.sleep(max(0.0, would_page - time.time()))
    window = time.time() - first_kill + 5
    pending = [t for t, _ in prometheus.samples(alerts.replace("}", ',alertstate="pending"}'), window)]
    firing = [t for t, _ in prometheus.samples(alerts.replace("}", ',alertstate="firing"}'), window)]
    paged = [
        n for n in webhook.notifications() if n.labels.get("alertname") == HOLD_ALERT and n.wall >= first_kill
    ]

    report(
        f"a healed crash does not page ({HOLD_ALERT}, for {hold:.0f} s): kill -9 of {unit} on {host};"
        f" active again after {out['active'] - out['killed']:.1f} s"
        f" (RestartSec={DRILL_RESTART_SEC} for the drill);"
        f" mongodb_up 0 at kill +{down_at - out['killed']:.1f} s,"
        f" 1 again at +{(healed_at or float('nan')) - out['killed']:.1f} s;"
        f" pending {len(pending)} evaluations; firing {len(firing)}; notifications {len(paged)}"
        f" (watched until kill +{would_page - out['killed']:.0f} s)"
    )
    assert healed_at is not None, "MongoDB not healthy again at the next scrape"
    assert pending, f"{HOLD_ALERT} never went pending: the rule did not see the crash"
    assert not firing, f"{HOLD_ALERT} fired for a crash that healed in seconds: {firing}"
    assert not paged, f"{HOLD_ALERT} reached the webhook: {paged}"


def test_a_crash_loop_ends_failed(groups, remote, prometheus, drill_settings):
    host = groups["redis"][0]
    unit = CRASH_LOOP_UNIT
    expected = restart_policy_defaults()
    burst, interval = int(expected["start_limit_burst"]), float(expected["start_limit_interval"])
    restart_sec = float(expected["restart_sec"])
    node_scrape = drill_settings["scrape"]["node"]
    failed_selector = f'node_systemd_unit_state{{instance="{host}",name="{unit}",state="failed"}}'
    collector = bool(prometheus.query(f'node_systemd_unit_state{{instance="{host}"}}'))
    if collector:
        assert prometheus.query(failed_selector), f"node_exporter's systemd collector does not report {unit}"

    alert_rule = prometheus.alert_rule(FAILED_ALERT) if collector else None
    failed_shown = pending_at = None
    try:
        command = crash_loop_command(unit, max_kills=burst + 2, timeout=interval + 30, hold=restart_sec + 3)
        out = json.loads(run_on(remote, host, command))
        if collector and out["failed"]:
            failed_shown = prometheus.wait_for_sample(
                failed_selector, 1, after=out["failed"], timeout=node_scrape + SLACK_SECONDS + 10
            )
        if failed_shown and alert_rule:
            # The alert that a unit left failed raises (it fires after its `for`; the unit is reset first).
            pending_at = prometheus.wait_for_sample(
                f'ALERTS{{alertname="{FAILED_ALERT}",instance="{host}",name="{unit}"}}',
                1,
                after=failed_shown,
                timeout=2 * float(alert_rule.get("group_interval") or drill_settings["interval"]) + 15,
            )
    finally:
        restarted = time.time()
        run_on(remote, host, f"systemctl reset-failed {unit}; systemctl start {unit}")
    back = prometheus.wait_for_sample(
        f'up{{job="redis",instance="{host}"}}',
        1,
        after=restarted,
        timeout=drill_settings["scrape"]["redis"] + 30,
    )
    cleared = (
        prometheus.wait_for_sample(failed_selector, 0, after=restarted, timeout=node_scrape + 30)
        if collector
        else None
    )

    took = (out["failed"] - out["first_kill"]) if out["failed"] and out["first_kill"] else None
    line = (
        f"crash loop ({unit} on {host}, StartLimitBurst={burst} in {interval:.0f} s):"
        f" {out['kills']} kills -> {out['state']} (result {out['result']};"
        f" {out['later']} {restart_sec + 3:.0f} s later)"
        + (f" {took:.1f} s after the first kill (bound {interval:.0f} s)" if took is not None else "")
    )
    if collector:
        delay = (failed_shown - out["failed"]) if failed_shown else None
        line += (
            "; node_systemd_unit_state failed=1 after "
            + (f"{delay:.1f} s" if delay is not None else "never")
            + f" (bound {node_scrape:.0f} s +{SLACK_SECONDS:.0f} s)"
        )
        if alert_rule:
            line += f"; {FAILED_ALERT} (for {float(alert_rule['duration']):.0f} s) " + (
                f"pending {pending_at - out['failed']:.1f} s after the failure"
                if pending_at
                else "never pending"
            )
    else:
        line += "; node_exporter's systemd collector not deployed on this lab: metric not checked"
    report(line)
    report(f"  reset-failed + start: redis exporter scraped up again: {'yes' if back else 'NO'}")

    # Restart=always never passes through `failed`: failed and still failed means the start was refused.
    assert out["state"] == "failed" and out["later"] == "failed", out
    assert 1 <= out["kills"] <= burst + 1, out
    assert took is not None and took <= interval, out
    if collector:
        assert failed_shown is not None and failed_shown - out["failed"] <= node_scrape + SLACK_SECONDS
        assert cleared is not None, "the unit still shows failed after reset-failed + start"
        assert alert_rule is None or pending_at is not None, f"{FAILED_ALERT} did not see the failed unit"
    assert back is not None, f"{unit} not scraped up again after reset-failed + start"
