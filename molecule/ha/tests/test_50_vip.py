"""Drill 4: the load balancer holding the VIP loses power while a client hammers the VIP. The
backup stops hearing VRRP adverts and takes the address after its master-down interval,
3 x advert_int + skew (RFC 5798; skew from its priority), then announces it (gratuitous ARP).
Connections opened meanwhile retry their SYN and land on the new holder; what can fail are the
requests that were in flight through the dead one (at most one per client thread).
When the first load balancer is back it takes the VIP again (preempt).
"""

from __future__ import annotations

import subprocess
import time

from conftest import report, run_on
from test_10_cluster_shape import vip_holders

from tests.molecule.fault_drills.drills import SLACK_SECONDS
from tests.molecule.ha.cluster import powered_off_under_load, wait_until

THREADS = 4


def test_vip_holder_power_off_moves_the_vip(lab, remote, groups, vip, api, bounds):
    holder, backup = groups["lb"][0], groups["lb"][1]
    assert vip_holders(remote, groups, vip) == [holder]

    # Watched from the controller's neighbour table: the new holder's gratuitous ARP replaces the
    # VIP's MAC there (an SSH poll of the backup would add a second of latency to each look).
    backup_mac = run_on(
        remote, backup, "cat /sys/class/net/$(ip route show default | awk '{print $5; exit}')/address"
    ).strip()

    def moved() -> bool:
        neighbour = subprocess.run(["ip", "neigh", "show", "to", vip], capture_output=True, text=True).stdout
        return f"lladdr {backup_mac}" in neighbour

    with powered_off_under_load(lab, holder, api, THREADS) as outage:
        wait_until(f"the VIP on {backup}", moved, bounds.vrrp_takeover + 30, 0.1)
        took_over = time.monotonic() - outage.cut
        assert vip_holders(remote, groups, vip, powered_off=(holder,)) == [backup]
    stats = outage.stats
    report(f"drill 4: VIP holder {holder} powered off under {THREADS} clients")
    report(
        f"  VIP on {backup}           {took_over:6.1f} s   bound {bounds.vrrp_takeover:5.2f} s "
        f"(3 x advert {bounds.vrrp_advert:.0f} s + skew, priority {bounds.vrrp_backup_priority})"
    )
    report(
        f"  failed requests         {stats.failed:6d}     "
        f"bound {THREADS:5d} (in flight via {holder}); {stats.summary()}"
    )
    assert took_over <= bounds.vrrp_takeover + SLACK_SECONDS
    assert stats.failed <= THREADS, stats.failures

    wait_until(
        f"the VIP back on {holder} (preempt)", lambda: vip_holders(remote, groups, vip) == [holder], 180, 1
    )
