"""The HA drills' helpers (tests/molecule/ha/cluster.py), which otherwise run only on the nine-host
lab: a powered-off host is always powered on again, the clients' figures are kept, a Sentinel that
stopped answering is asked only once, and the bounds follow the roles' defaults."""

from __future__ import annotations

import pytest
import redis

from tests.molecule.ha import cluster


class FakeHammer:
    def __init__(self, *args, **kwargs):
        self.started = self.stopped = False

    def start(self):
        self.started = True
        return self

    def stop(self):
        self.stopped = True
        return "stats"


@pytest.fixture
def lab_calls(monkeypatch):
    calls = []
    monkeypatch.setattr(cluster, "Hammer", FakeHammer)
    monkeypatch.setattr(cluster.time, "sleep", lambda _s: None)
    monkeypatch.setattr(cluster, "testhosts", lambda lab, *args: calls.append((lab, *args)))
    return calls


def test_powered_off_under_load_powers_the_host_on_and_keeps_the_figures(lab_calls):
    with cluster.powered_off_under_load("ha", "app2", ("10.0.0.100", 8080), 4) as outage:
        assert lab_calls == [("ha", "poweroff", "--hard", "app2")]
        assert outage.stats is None
    assert outage.stats == "stats"
    assert lab_calls[-1] == ("ha", "poweron", "app2")


def test_powered_off_under_load_powers_the_host_on_when_the_drill_fails(lab_calls):
    with pytest.raises(AssertionError), cluster.powered_off_under_load("ha", "lb1", ("10.0.0.100", 8080), 4):
        raise AssertionError("the VIP did not move")
    assert lab_calls[-1] == ("ha", "poweron", "lb1")


def test_sentinels_ask_the_last_one_that_answered_first(monkeypatch):
    asked = []

    class FakeRedis:
        def __init__(self, host, port, **options):
            assert options["retry"].get_retries() == 0, "a poll must not retry a dead Sentinel"
            self.host = host

        def execute_command(self, *command):
            asked.append(self.host)
            if self.host == "10.0.0.1":
                raise redis.ConnectionError("powered off")
            return [b"10.0.0.2", b"6379"]

        def close(self):
            pass

    monkeypatch.setattr(cluster.redis, "Redis", FakeRedis)
    addresses = {"data1": "10.0.0.1", "data2": "10.0.0.2", "data3": "10.0.0.3"}
    sentinels = cluster.Sentinels(addresses, ["data1", "data2", "data3"], 26379, "m", "u", "p")
    assert sentinels.master() == "data2"
    assert sentinels.master() == "data2"
    assert asked == ["10.0.0.1", "10.0.0.2", "10.0.0.2"], "the dead Sentinel was asked on every poll"


def test_haproxy_bound_counts_each_check_timeout():
    bounds = cluster.Bounds.load(vrrp_backup_priority=140)
    assert bounds.haproxy_down == bounds.haproxy_fall * (bounds.haproxy_inter + bounds.haproxy_check_timeout)
    assert bounds.haproxy_down > bounds.haproxy_fall * bounds.haproxy_inter
