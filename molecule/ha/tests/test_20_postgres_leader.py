"""Drill 1: the PostgreSQL leader's host loses power while clients create deals through the VIP.

Bound of the failover, from Patroni's settings: the leader key lives `ttl` after its last renewal
and a replica takes it within its next loop, so a new leader runs within ttl + loop_wait. Writes
may fail only from the power cut until the app's connections find the new leader. With
synchronous_mode every commit the API acknowledged is on the synchronous standby, which is the
only member Patroni may promote: no acknowledged deal may be lost. While the old leader is away the
cluster is a replica short (PostgreSQLReplicaMissing fires); it rejoins as a replica (pg_rewind)
and the alert resolves.
"""

from __future__ import annotations

import time

from conftest import report

from tests.molecule.fault_drills.drills import SLACK_SECONDS
from tests.molecule.ha.cluster import alert_bounds, power_off, power_on, wait_until
from tests.molecule.ha.deal_writer import DealWriter, missing_deals

ALERT = "PostgreSQLReplicaMissing"
# After the new leader is up, the app's pooled connections to the dead host time out
# (tcp_user_timeout) and reconnect through the host list to the read-write member.
RECONNECT_SECONDS = 10.0


def test_leader_power_off_loses_no_acknowledged_deal(
    lab, api, token, patroni, sentinels, bounds, drill_settings, webhook
):
    old = patroni.leader()
    assert old, "no Patroni leader before the drill"
    fire_bound, resolve_bound = alert_bounds(drill_settings, "patroni", ALERT, "warning")
    redis_note = (
        " (also the Redis master: Sentinel fails it over meanwhile)" if sentinels.master() == old else ""
    )

    writer = DealWriter(*api, token).start()
    time.sleep(5)
    before = len(writer.log.acknowledged)
    assert before > 0 and not writer.log.failures, "the writers do not write before the drill"
    cut = power_off(lab, old)
    try:
        new, _ = wait_until(
            "a new Patroni leader", lambda: patroni.leader(exclude=(old,)), bounds.patroni_failover + 30
        )
        elected = time.monotonic() - cut
        fired = webhook.wait_for(
            "firing", {"alertname": ALERT}, after=cut, timeout=elected + fire_bound * 2 + 30
        )
        time.sleep(RECONNECT_SECONDS + 5)  # writes after the window must all succeed
    finally:
        log = writer.stop()
        power_on(lab, old)

    window = log.failure_window()
    last_failure = (window[1] - cut) if window else 0.0
    report(f"drill 1: PostgreSQL leader {old} powered off{redis_note}")
    report(
        f"  new leader {new}       {elected:6.1f} s   "
        f"bound {bounds.patroni_failover:5.1f} s (ttl + loop_wait)"
    )
    report(
        f"  writes failed until     {last_failure:6.1f} s   bound {elected + RECONNECT_SECONDS:5.1f} s "
        f"(election + {RECONNECT_SECONDS:.0f} s reconnect); "
        f"{len(log.failures)} of {log.attempts} writes failed"
    )
    assert elected <= bounds.patroni_failover + SLACK_SECONDS
    assert last_failure <= elected + RECONNECT_SECONDS + SLACK_SECONDS, log.failures[-3:]

    missing = missing_deals(*api, token, log.acknowledged)
    report(
        f"  acknowledged deals      {len(log.acknowledged)} ({before} before the cut), lost {len(missing)}"
    )
    assert not missing, f"acknowledged deals lost: {missing[:10]}"

    assert fired, f"{ALERT} never reached the receiver"
    fire_delay = fired.received - cut - elected
    report(f"  {ALERT} firing {fire_delay:6.1f} s after the election   bound {fire_bound:5.1f} s")
    assert fire_delay <= fire_bound + SLACK_SECONDS

    # The old leader comes back as a replica of the new one, streaming (rewound if it had diverged).
    back = time.monotonic()
    wait_until(
        f"{old} streaming as a replica",
        lambda: old in patroni.streaming_replicas() and patroni.leader() == new,
        240,
    )
    rejoined = time.monotonic() - back
    report(f"  {old} rejoined as a replica {rejoined:6.1f} s after power-on")
    resolved = webhook.wait_for(
        "resolved", {"alertname": ALERT}, after=back, timeout=rejoined + resolve_bound * 2 + 30
    )
    assert resolved, f"{ALERT} did not resolve after {old} rejoined"
    resolve_delay = resolved.received - back - rejoined
    report(f"  {ALERT} resolved {resolve_delay:6.1f} s after the rejoin   bound {resolve_bound:5.1f} s")
    assert resolve_delay <= resolve_bound + SLACK_SECONDS
