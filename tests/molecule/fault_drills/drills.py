"""Fault drills: break one component, measure how long its alert takes to reach the webhook
receiver, restore it, measure how long the resolution takes; compare both with their bounds.

Theoretical bounds (all values read from the test-only vars file and topology.yml):
  firing   <= scrape_interval(job) + evaluation interval + for + group_wait(critical route)
  resolved <= scrape_interval(job) + evaluation interval + group_interval
A sample shows the fault at the next scrape; the next evaluation makes the alert pending; it
fires `for` later (a multiple of the interval here) and Prometheus sends it at once;
Alertmanager holds a new group for group_wait and later changes for group_interval.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.molecule.fault_drills.webhook_receiver import WebhookReceiver
from tests.support.paths import TOPOLOGY

ROOT = Path(__file__).resolve().parents[3]
DRILL_VARS = ROOT / "tests" / "molecule" / "fault_drills" / "drill_vars.yml"
# Delivery, HTTP and process scheduling on a loaded 2-core machine, on top of the bound.
SLACK_SECONDS = 5.0

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Prometheus/Alertmanager duration ("1m30s", "500ms", "0s") in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def load_settings() -> dict:
    drill = yaml.safe_load(DRILL_VARS.read_text())
    topology = yaml.safe_load(TOPOLOGY.read_text())
    scrape = {job["job_name"]: parse_duration(job["scrape_interval"]) for job in topology["adg_scrape_jobs"]}
    return {
        "for": {k: parse_duration(v) for k, v in drill["prometheus_alert_rules_for_overrides"].items()},
        "interval": parse_duration(drill["prometheus_alert_rules_interval"]),
        "group_wait": parse_duration(drill["alertmanager_critical_group_wait"]),
        "group_interval": parse_duration(drill["alertmanager_group_interval"]),
        "scrape": scrape,
        "webhook_port": int(drill["adg_drill_webhook_port"]),
    }


@dataclass(frozen=True)
class Drill:
    title: str
    alertname: str
    host: str  # inventory name of the host whose units are stopped
    units: tuple[str, ...]  # stopped in this order, started in reverse
    job: str  # scrape job that detects the fault
    match: dict  # labels the notification must carry besides alertname

    def bounds(self, settings: dict) -> tuple[float, float]:
        scrape = settings["scrape"][self.job]
        firing = scrape + settings["interval"] + settings["for"][self.alertname] + settings["group_wait"]
        resolved = scrape + settings["interval"] + settings["group_interval"]
        return firing, resolved


@dataclass
class DrillResult:
    drill: Drill
    fire_bound: float
    resolve_bound: float
    fire_delay: float | None = None
    resolve_delay: float | None = None
    during_fault: str = ""  # extra observation while the fault was active (e.g. health 503)

    @property
    def ok(self) -> bool:
        return (
            self.fire_delay is not None
            and self.resolve_delay is not None
            and self.fire_delay <= self.fire_bound + SLACK_SECONDS
            and self.resolve_delay <= self.resolve_bound + SLACK_SECONDS
        )

    def rows(self) -> list[str]:
        def fmt(value: float | None) -> str:
            return "never" if value is None else f"{value:6.1f} s"

        return [
            f"{self.drill.alertname:<13} firing   {fmt(self.fire_delay)}  bound "
            f"{self.fire_bound:5.1f} s (+{SLACK_SECONDS:.0f} s slack)  {self.drill.title}",
            f"{self.drill.alertname:<13} resolved {fmt(self.resolve_delay)}  bound "
            f"{self.resolve_bound:5.1f} s (+{SLACK_SECONDS:.0f} s slack)  {self.during_fault}".rstrip(),
        ]


def run_drill(
    drill: Drill,
    settings: dict,
    receiver: WebhookReceiver,
    run_on_host: Callable[[str, str], None],
    during_fault: Callable[[], str] | None = None,
) -> DrillResult:
    """Stop the drill's units, wait for the firing notification, optionally observe, restore,
    wait for the resolved notification. Units are restored whatever happens."""
    fire_bound, resolve_bound = drill.bounds(settings)
    result = DrillResult(drill, fire_bound, resolve_bound)
    labels = {"alertname": drill.alertname, **drill.match}
    # Generous waits: a missing notification must fail with "never", not hang the scenario.
    wait = max(fire_bound, resolve_bound) * 3 + 30
    restored = False
    started = time.monotonic()
    run_on_host(drill.host, "systemctl stop " + " ".join(drill.units))
    try:
        fired = receiver.wait_for("firing", labels, after=started, timeout=wait)
        if fired:
            result.fire_delay = fired.received - started
        if during_fault:
            result.during_fault = during_fault()
    finally:
        restore_started = time.monotonic()
        run_on_host(drill.host, "systemctl start " + " ".join(reversed(drill.units)))
        restored = True
    if restored and result.fire_delay is not None:
        resolved = receiver.wait_for("resolved", labels, after=restore_started, timeout=wait)
        if resolved:
            result.resolve_delay = resolved.received - restore_started
    return result
