"""Drill 5: the monitoring pair. Both Prometheus evaluate the same rules and send every alert to
both Alertmanagers, which gossip as one cluster:
- with both up, a stopped backend's ServiceDown reaches the receiver exactly once (the cluster
  shares its notification log: the second Alertmanager sees the first one's send and skips);
- a silence created on one Alertmanager holds on the other (gossiped, active there);
- with one monitoring host powered off, a stopped backend still reaches the receiver, from the
  surviving pair member, within the alert's bound plus the cluster's peer timeout (while the dead
  peer still counts as a member ahead of it, the survivor waits that long before sending).
"""

from __future__ import annotations

import json
import time
import urllib.request

from adg_molecule import port
from conftest import report, run_on

from tests.molecule.fault_drills.drills import SLACK_SECONDS
from tests.molecule.ha.cluster import alert_bounds, http_json, power_off, power_on, wait_until

ALERT = "ServiceDown"
BACKEND_UNITS = "autodealgenie.socket autodealgenie.service"
# Alertmanager's --cluster.peer-timeout and --cluster.gossip-interval (its defaults; the role sets
# neither). A new silence is broadcast on the next gossip rounds: a few intervals, 1 s at most.
PEER_TIMEOUT = 15.0
GOSSIP_INTERVAL = 0.2
SILENCE_SPREAD_BOUND = 5 * GOSSIP_INTERVAL


def alertmanager(addresses, host: str) -> str:
    return f"http://{addresses[host]}:{port('alertmanager_port')}"


def notifications(webhook, status: str, labels: dict, after: float) -> list:
    return [
        n
        for n in webhook.notifications()
        if n.received >= after and n.status == status and labels.items() <= n.labels.items()
    ]


def duplicate_messages(webhook, sent: list) -> list[list]:
    """Messages that repeat another one's content: the same group with the same alerts in the same
    state. A pair whose Alertmanagers did not share their notification log sends each group twice;
    a legitimate second message (an alert joined or left the group) differs in content."""
    sent_messages = {n.message for n in sent}
    by_message: dict[int, list] = {}
    for n in webhook.notifications():
        if n.message in sent_messages:
            by_message.setdefault(n.message, []).append(n)
    seen: dict[tuple, list] = {}
    duplicates = []
    for alerts in by_message.values():
        content = (
            alerts[0].group_key,
            frozenset((n.status, n.starts_at, tuple(sorted(n.labels.items()))) for n in alerts),
        )
        if content in seen:
            duplicates.append([seen[content], alerts])
        seen.setdefault(content, alerts)
    return duplicates


def stop_backend_until_notified(remote, webhook, app: str, bound: float) -> tuple[float | None, float]:
    """Stop the backend on `app`; (delay of the first firing ServiceDown or None, start time)."""
    started = time.monotonic()
    run_on(remote, app, f"systemctl stop {BACKEND_UNITS}")
    fired = webhook.wait_for(
        "firing", {"alertname": ALERT, "instance": app}, after=started, timeout=bound * 3 + 30
    )
    return (fired.received - started if fired else None), started


def start_backend_until_resolved(remote, webhook, app: str, bound: float) -> None:
    started = time.monotonic()
    run_on(remote, app, f"systemctl start {BACKEND_UNITS}")
    resolved = webhook.wait_for(
        "resolved", {"alertname": ALERT, "instance": app}, after=started, timeout=bound * 3 + 30
    )
    assert resolved, f"{ALERT} on {app} did not resolve"


def test_one_alert_from_the_pair_is_notified_exactly_once(remote, groups, drill_settings, webhook):
    app = groups["app"][-1]
    fire_bound, resolve_bound = alert_bounds(drill_settings, "autodealgenie-backend", ALERT, "critical")
    delay, started = stop_backend_until_notified(remote, webhook, app, fire_bound)
    try:
        assert delay is not None, f"{ALERT} on {app} never reached the receiver"
        # Long enough for the second Alertmanager's own send (peer timeout) and a group_interval.
        time.sleep(PEER_TIMEOUT + drill_settings["group_interval"] + 5)
        sent = notifications(webhook, "firing", {"alertname": ALERT, "instance": app}, started)
    finally:
        start_backend_until_resolved(remote, webhook, app, resolve_bound)
    duplicates = duplicate_messages(webhook, sent)
    senders = sorted({n.external_url for n in sent})
    report("drill 5: the monitoring pair")
    report(
        f"  both up: {ALERT} on {app} firing {delay:6.1f} s (bound {fire_bound:5.1f} s), "
        f"in {len(sent)} message(s) from {len(senders)} Alertmanager(s), {len(duplicates)} duplicate(s)"
    )
    assert delay <= fire_bound + SLACK_SECONDS
    assert not duplicates, f"the pair notified the same group twice: {duplicates}"
    # One alert that nothing joins or leaves: its group goes out once, from one Alertmanager.
    assert len(sent) == 1, f"expected exactly one notification, got {sent}"


def test_a_silence_created_on_one_alertmanager_holds_on_the_other(addresses, groups):
    first, second = (alertmanager(addresses, h) for h in groups["monitoring"][:2])
    now = time.time()
    silence = {
        "matchers": [
            {"name": "alertname", "value": "HADrillSilenceProbe", "isRegex": False, "isEqual": True}
        ],
        "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 600)),
        "createdBy": "molecule ha drill 5",
        "comment": "gossip check: created on the first Alertmanager",
    }
    request = urllib.request.Request(  # noqa: S310 (lab http URL)
        f"{first}/api/v2/silences",
        data=json.dumps(silence).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (lab http URL)
        silence_id = json.load(response)["silenceID"]
    try:

        def active_on_second() -> bool:
            answer = http_json(f"{second}/api/v2/silence/{silence_id}")
            return bool(answer and answer[0] == 200 and answer[1]["status"]["state"] == "active")

        _, spread = wait_until("the silence active on the second Alertmanager", active_on_second, 30, 0.05)
    finally:
        urllib.request.urlopen(  # noqa: S310
            urllib.request.Request(f"{first}/api/v2/silence/{silence_id}", method="DELETE"),  # noqa: S310
            timeout=10,
        ).close()
    report(
        f"  silence created on {groups['monitoring'][0]}: active on {groups['monitoring'][1]} "
        f"after {spread * 1000:.0f} ms   bound {SILENCE_SPREAD_BOUND * 1000:.0f} ms (5 gossip intervals)"
    )
    assert spread <= SILENCE_SPREAD_BOUND + SLACK_SECONDS


def test_with_one_monitoring_host_down_a_stopped_backend_still_reaches_the_receiver(
    lab, remote, groups, drill_settings, webhook
):
    app, lost = groups["app"][-1], groups["monitoring"][0]
    fire_bound, resolve_bound = alert_bounds(drill_settings, "autodealgenie-backend", ALERT, "critical")
    power_off(lab, lost)
    try:
        delay, _ = stop_backend_until_notified(remote, webhook, app, fire_bound + PEER_TIMEOUT)
        start_backend_until_resolved(remote, webhook, app, resolve_bound + PEER_TIMEOUT)
    finally:
        run_on(remote, app, f"systemctl start {BACKEND_UNITS}")
        power_on(lab, lost)
    report(
        f"  {lost} powered off: {ALERT} on {app} firing {delay if delay is None else round(delay, 1)} s "
        f"(bound {fire_bound:5.1f} s + peer timeout {PEER_TIMEOUT:.0f} s)"
    )
    assert delay is not None, f"with {lost} down, {ALERT} never reached the receiver"
    assert delay <= fire_bound + PEER_TIMEOUT + SLACK_SECONDS
