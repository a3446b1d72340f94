"""Unit tests for plugins/filter/firewall_rules.py (autodealgenie.ops.firewall_rules)."""

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.autodealgenie.ops.plugins.filter import firewall_rules as fw

rules = fw.FilterModule().filters()["firewall_rules"]

MEMBERS = {"monitoring": ["mon1"], "app": ["app1", "app2"], "empty": []}
ADDRESSES = {"mon1": "10.1.0.5", "app1": "10.1.0.11", "app2": "10.1.0.12"}


def test_groups_become_private_addresses_and_cidrs_are_kept():
    allow = {
        "firewall_allow_postgres": [{"port": "5432", "from_groups": ["app", "monitoring"]}],
        "firewall_allow_node_exporter": [
            {"port": 9100, "from_groups": ["monitoring"], "from_cidrs": ["fd00::/64"]},
        ],
    }
    assert rules(allow, MEMBERS, ADDRESSES) == [
        {"name": "firewall_allow_node_exporter", "port": 9100, "proto": "tcp",
         "ipv4": ["10.1.0.5/32"], "ipv6": ["fd00::/64"]},
        {"name": "firewall_allow_postgres", "port": 5432, "proto": "tcp",
         "ipv4": ["10.1.0.5/32", "10.1.0.11/32", "10.1.0.12/32"], "ipv6": []},
    ]  # fmt: skip


def test_duplicate_sources_collapse_and_empty_groups_open_nothing():
    entry = {"port": 80, "from_groups": ["app", "app", "empty", "unknown"], "proto": "udp"}
    allow = {"firewall_allow_x": [entry]}
    (rule,) = rules(allow, MEMBERS, ADDRESSES)
    assert rule["ipv4"] == ["10.1.0.11/32", "10.1.0.12/32"] and rule["proto"] == "udp"
    (closed,) = rules({"firewall_allow_y": [{"port": 81, "from_groups": ["empty"]}]}, MEMBERS, ADDRESSES)
    assert closed["ipv4"] == [] and closed["ipv6"] == []


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"port": 80}, "not a list"),
        ([{"from_groups": ["app"]}], "at least 'port'"),
        ([{"port": 80, "from_group": ["app"]}], "unknown keys"),
        ([{"port": "http", "from_groups": ["app"]}], "not a number"),
        ([{"port": 70000, "from_groups": ["app"]}], "outside 1-65535"),
        ([{"port": 80, "proto": "icmp", "from_groups": ["app"]}], "tcp, udp or vrrp"),
        ([{"port": 112, "proto": "vrrp", "from_groups": ["app"]}], "vrrp has no port"),
        ([{"proto": "udp", "from_groups": ["app"]}], "at least 'port'"),
        ([{"port": 80}], "from_groups and/or from_cidrs"),
        ([{"port": 80, "from_cidrs": ["10.0.0.300"]}], "not an IP address"),
        ([{"port": 80, "from_groups": "app"}], "must be lists"),
    ],
)
def test_invalid_entries_name_the_variable(entries, message):
    with pytest.raises(AnsibleFilterError, match=message) as info:
        rules({"firewall_allow_bad": entries}, MEMBERS, ADDRESSES)
    assert "firewall_allow_bad" in str(info.value)


def test_vrrp_is_an_ip_protocol_without_a_port():
    allow = {"firewall_allow_vrrp": [{"proto": "vrrp", "from_groups": ["app"], "to_groups": ["app"]}]}
    assert rules(allow, MEMBERS, ADDRESSES, ["app"]) == [
        {"name": "firewall_allow_vrrp", "port": None, "proto": "vrrp",
         "ipv4": ["10.1.0.11/32", "10.1.0.12/32"], "ipv6": []},
    ]  # fmt: skip
    assert rules(allow, MEMBERS, ADDRESSES, ["monitoring"]) == []
    (closed,) = rules(
        {"firewall_allow_vrrp": [{"proto": "vrrp", "from_groups": ["empty"]}]}, MEMBERS, ADDRESSES
    )
    assert closed["ipv4"] == [] and closed["port"] is None


def test_host_without_address_is_an_error():
    with pytest.raises(AnsibleFilterError, match="app2"):
        rules({"firewall_allow_x": [{"port": 80, "from_groups": ["app"]}]}, MEMBERS, {"app1": "10.1.0.11"})


def test_to_groups_limit_an_entry_to_hosts_of_those_groups():
    allow = {"firewall_allow_pg": [{"port": 5432, "from_groups": ["app"], "to_groups": ["postgres"]}]}
    assert [r["port"] for r in rules(allow, MEMBERS, ADDRESSES, ["postgres", "redis"])] == [5432]
    assert rules(allow, MEMBERS, ADDRESSES, ["app"]) == []
    assert len(rules(allow, MEMBERS, ADDRESSES)) == 1, "without host_groups, to_groups is not applied"
    with pytest.raises(AnsibleFilterError, match="to_groups must be a list"):
        rules(
            {"firewall_allow_pg": [{"port": 1, "from_groups": ["app"], "to_groups": "pg"}]},
            MEMBERS,
            ADDRESSES,
        )


def test_documented_example_gives_the_documented_result():
    (task,) = yaml.safe_load(fw.EXAMPLES)
    documented = yaml.safe_load(
        "\n".join(line[2:] for line in fw.EXAMPLES.splitlines() if line.startswith("#   "))
    )
    v = task["vars"]
    assert rules(v["allow"], v["members"], v["addresses"], ["postgres"]) == documented
    assert "autodealgenie.ops.firewall_rules(" in task["ansible.builtin.set_fact"]["firewall_rules"]
