"""The monitoring tier's inputs in playbooks/defaults/monitoring.yml for one and for two monitoring
hosts (issue 12), through a real ansible run on localhost with the project's ansible.cfg (no host is
contacted): one host keeps today's values exactly; a pair gets the replica label, the label drops,
one Alertmanager cluster, remote_write and the VictoriaMetrics datasource."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.paths import ansible_values

VARS = [
    "prometheus_external_labels",
    "prometheus_alert_drop_labels",
    "prometheus_remote_write_drop_labels",
    "prometheus_remote_write",
    "prometheus_alertmanager_targets",
    "alertmanager_cluster_listen_address",
    "alertmanager_cluster_peers",
    "grafana_datasources_extra",
    "victoriametrics_dedup_min_scrape_interval",
]


def values(tmp_path: Path, groups: dict) -> dict:
    """Each monitoring host's VARS, templated by Ansible (tests/support/paths.ansible_values)."""
    inventory = tmp_path / "hosts.json"
    inventory.write_text(json.dumps({"all": {"children": groups}}))
    hosts = groups["monitoring"]["hosts"]
    return {name: ansible_values(tuple(VARS), str(inventory), name) for name in hosts}


def host(address: str) -> dict:
    return {"ansible_connection": "local", "private_ip": address}


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return values(tmp_path_factory.mktemp("single"), {"monitoring": {"hosts": {"mon1": host("10.0.0.1")}}})


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return values(
        tmp_path_factory.mktemp("pair"),
        {
            "monitoring": {"hosts": {"mon1": host("10.0.0.1"), "mon2": host("10.0.0.2")}},
            "victoriametrics": {"hosts": {"mon1": {}}},
        },
    )


def test_one_monitoring_host_keeps_todays_values(single):
    mon1 = single["mon1"]
    assert mon1["prometheus_external_labels"] == {"monitor": "autodealgenie"}
    assert mon1["prometheus_alert_drop_labels"] == [] and mon1["prometheus_remote_write_drop_labels"] == []
    assert mon1["prometheus_remote_write"] == [] and mon1["grafana_datasources_extra"] == []
    assert mon1["alertmanager_cluster_listen_address"] == ""  # gossip off, as before
    assert mon1["alertmanager_cluster_peers"] == []
    assert mon1["prometheus_alertmanager_targets"] == ["10.0.0.1:9093"]


def test_a_pair_is_one_cluster_with_replica_labels_dropped_on_the_way_out(pair):
    for name, address, other in (("mon1", "10.0.0.1", "10.0.0.2"), ("mon2", "10.0.0.2", "10.0.0.1")):
        got = pair[name]
        assert got["prometheus_external_labels"] == {"monitor": "autodealgenie", "replica": name}
        assert got["prometheus_alert_drop_labels"] == ["replica"]
        assert got["prometheus_remote_write_drop_labels"] == ["replica"]
        assert got["alertmanager_cluster_listen_address"] == f"{address}:9094"
        assert got["alertmanager_cluster_peers"] == [f"{other}:9094"]
        assert sorted(got["prometheus_alertmanager_targets"]) == ["10.0.0.1:9093", "10.0.0.2:9093"]
        assert [e["url"] for e in got["prometheus_remote_write"]] == ["http://10.0.0.1:8428/api/v1/write"]
        assert got["grafana_datasources_extra"] == [
            {"uid": "victoriametrics", "name": "VictoriaMetrics", "url": "http://10.0.0.1:8428"}
        ]
        # dedup keeps one sample per scrape interval: the pair's two become one
        assert got["victoriametrics_dedup_min_scrape_interval"] == "15s"
