"""The HA topology as converged, before any drill: every cluster complete and the API's VIP held by
the first load balancer. The drills below start from this state and must return to it."""

from __future__ import annotations

import urllib.parse

from adg_molecule import port
from conftest import report, run_on

from tests.molecule.ha.cluster import http_json


def vip_holders(remote, groups, vip: str, powered_off: tuple[str, ...] = ()) -> list[str]:
    """The load balancers that hold the VIP, asked over SSH (not those `powered_off`)."""
    return [
        lb
        for lb in groups["lb"]
        if lb not in powered_off and f" {vip}/" in run_on(remote, lb, "ip -o -4 addr show")
    ]


def test_patroni_has_one_leader_and_a_synchronous_standby(patroni, groups):
    view = patroni.cluster()
    assert view, "no Patroni member answers /cluster"
    roles = sorted(m["role"] for m in view["members"])
    assert len(view["members"]) == len(groups["postgres"]), view
    assert roles.count("leader") == 1, roles
    assert "sync_standby" in roles, (
        f"synchronous_mode is on, but no member is the synchronous standby: {roles}"
    )
    assert len(patroni.streaming_replicas()) == len(groups["postgres"]) - 1, view
    report(f"Patroni: leader {patroni.leader()}, replicas {', '.join(patroni.streaming_replicas())}")


def test_sentinels_agree_on_the_master_and_see_every_replica(sentinels, groups):
    master = sentinels.master()
    assert master in groups["redis"], master
    assert sentinels.replicas_ok() == len(groups["redis"]) - 1
    report(f"Redis: master {master} (per Sentinel), {sentinels.replicas_ok()} replicas linked")


def test_the_vip_is_held_by_one_load_balancer_and_serves_the_api(remote, groups, vip, api):
    assert vip_holders(remote, groups, vip) == [groups["lb"][0]]
    answer = http_json(f"http://{api[0]}:{api[1]}/api/v1/health")
    assert answer and answer[0] == 200, answer


def test_alertmanagers_form_one_cluster(addresses, groups):
    for host in groups["monitoring"]:
        status = http_json(f"http://{addresses[host]}:{port('alertmanager_port')}/api/v2/status")
        assert status and status[0] == 200, (host, status)
        peers = status[1]["cluster"]["peers"]
        assert status[1]["cluster"]["status"] == "ready" and len(peers) == len(groups["monitoring"]), (
            host,
            peers,
        )


def test_victoriametrics_keeps_one_series_per_target_from_the_pair(addresses, groups):
    """Both Prometheus remote_write the same series; VictoriaMetrics drops the `replica` label and
    deduplicates, so each target's `up` is one series there."""
    base = (
        f"http://{addresses[groups['victoriametrics'][0]]}:{port('victoriametrics_port')}/api/v1/query?query="
    )

    def query(expr: str) -> list:
        answer = http_json(base + urllib.parse.quote(expr), timeout=10)
        assert answer and answer[0] == 200 and answer[1]["status"] == "success", answer
        return answer[1]["data"]["result"]

    assert query("count by (job, instance) (up) > 1") == [], (
        "a target's series is duplicated in VictoriaMetrics"
    )
    assert query('count(up{replica!=""})') == [], "the replica label reached VictoriaMetrics"
    series = int(float(query("count(up)")[0]["value"][1]))
    assert series >= len(addresses), series
    report(f"VictoriaMetrics: {series} `up` series from the Prometheus pair, none duplicated")
