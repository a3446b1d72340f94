"""Drill 3: one app host loses power while a client hammers the API's VIP. HAProxy's health checks
mark it DOWN within fall * (inter + check timeout); until then a request sent to it fails over to
the other server when its connection fails (retries + redispatch). What can fail: the requests that
were already in flight on the dead host (at most one per client thread).
"""

from __future__ import annotations

import time

from adg_molecule import port
from conftest import report

from tests.molecule.fault_drills.drills import SLACK_SECONDS
from tests.molecule.ha.cluster import haproxy_server_down, powered_off_under_load, role_default, wait_until

THREADS = 4


def test_app_host_power_off_is_routed_around(lab, addresses, groups, api, bounds):
    victim = groups["app"][-1]
    backend = role_default("haproxy", "haproxy_server_state_backend")
    lbs = [addresses[lb] for lb in groups["lb"]]

    def down_states() -> list[bool | None]:
        """Per load balancer: whether it marks the victim DOWN (None: it does not answer)."""
        return [haproxy_server_down(lb, port("haproxy_prometheus_port"), backend, victim) for lb in lbs]

    assert not any(down_states())
    with powered_off_under_load(lab, victim, api, THREADS) as outage:
        wait_until(
            f"{victim} DOWN on every HAProxy", lambda: all(down_states()), bounds.haproxy_down + 30, 0.1
        )
        detected = time.monotonic() - outage.cut
    stats = outage.stats
    report(f"drill 3: app host {victim} powered off under {THREADS} clients")
    report(
        f"  DOWN on every HAProxy   {detected:6.1f} s   "
        f"bound {bounds.haproxy_down:5.1f} s (fall x (inter + timeout))"
    )
    report(
        f"  failed requests         {stats.failed:6d}     "
        f"bound {THREADS:5d} (in flight on {victim}); {stats.summary()}"
    )
    assert detected <= bounds.haproxy_down + SLACK_SECONDS
    assert stats.failed <= THREADS, stats.failures

    # Back in rotation once it answers its health checks again (rise good checks).
    wait_until(f"{victim} UP again", lambda: not any(down_states()), 180)
