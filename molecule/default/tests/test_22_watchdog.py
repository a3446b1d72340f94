"""(2b) The dead-man's switch: the always-firing Watchdog alert reaches the heartbeat webhook
(here the drills' webhook receiver on the controller, adg_deadmans_switch_url in
molecule/default/group_vars/all/scenario.yml) as receiver `deadmans-switch`, and keeps arriving:
two deliveries, each within the bound the deployed route gives (repeat_interval, checked on the
route's group_interval ticks). Measured delays are printed next to their bound."""

from __future__ import annotations

import json
import time
import urllib.request

import yaml
from conftest import report

from tests.molecule.fault_drills.drills import SLACK_SECONDS, parse_duration

RECEIVER = "deadmans-switch"


def _watchdog_route(alertmanager_url: str) -> dict:
    """The Watchdog route of the configuration Alertmanager is running (not of the template)."""
    with urllib.request.urlopen(alertmanager_url + "/api/v2/status", timeout=10) as response:  # noqa: S310 (lab URL)
        config = yaml.safe_load(json.load(response)["config"]["original"])
    routes = config["route"].get("routes", [])
    assert routes and routes[0].get("matchers") == ['alertname="Watchdog"'], "Watchdog is not the first route"
    return routes[0]


def test_watchdog_heartbeat_reaches_the_switch_repeatedly(alertmanager_url, webhook):
    route = _watchdog_route(alertmanager_url)
    assert route["receiver"] == RECEIVER, (
        f"Watchdog goes to {route['receiver']}: adg_deadmans_switch_url unset?"
    )
    assert route.get("continue", False) is False
    repeat, tick = parse_duration(route["repeat_interval"]), parse_duration(route["group_interval"])
    # a heartbeat is due every repeat_interval and leaves on the next group tick; the first one
    # may have been due before the receiver started listening (failed sends are retried on the
    # next tick), so it too comes within one period
    bound = repeat + tick + SLACK_SECONDS
    started = time.monotonic()
    beats: list = []
    deadline = started + 2 * bound
    while len(beats) < 2 and time.monotonic() < deadline:
        beats = [
            n
            for n in webhook.notifications()
            if n.received >= started and n.labels.get("alertname") == "Watchdog"
        ]
        time.sleep(1)
    first = beats[0].received - started if beats else None
    gap = beats[1].received - beats[0].received if len(beats) > 1 else None
    report(
        f"Watchdog heartbeat: first after {first if first is None else round(first, 1)} s, next after "
        f"{gap if gap is None else round(gap, 1)} s; bound {bound:.0f} s each "
        f"(repeat_interval {route['repeat_interval']} + group_interval {route['group_interval']}"
        f" + {SLACK_SECONDS} s slack)"
    )
    assert len(beats) >= 2, f"{len(beats)} Watchdog heartbeat(s) in {2 * bound:.0f} s"
    assert {n.receiver for n in beats} == {RECEIVER}, "Watchdog reached another receiver"
    assert all(n.status == "firing" for n in beats)
    assert first <= bound, f"first heartbeat after {first:.1f} s > bound {bound:.0f} s"
    assert gap <= bound, f"heartbeats {gap:.1f} s apart > bound {bound:.0f} s"
    # not faster than configured either: Alertmanager waits repeat_interval between heartbeats
    assert gap >= repeat - 1, f"heartbeats {gap:.1f} s apart, under repeat_interval {repeat:.0f} s"
