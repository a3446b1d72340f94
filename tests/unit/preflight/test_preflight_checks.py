"""Unit tests of the preflight checks (plugins/plugin_utils/preflight.py) and of the component table
in playbooks/preflight.yml: each kind of problem is found, a clean deployment passes, which secrets
a host is checked for follows from its groups, and no message ever quotes a secret's value."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import yaml
from ansible.template import Templar, trust_as_template
from ansible_collections.autodealgenie.ops.plugins.plugin_utils import preflight as pf

from tests.support.paths import REPO

PLAY = yaml.safe_load((REPO / "playbooks/preflight.yml").read_text())[0]
# The app's key length comes from the backend role (templated by the play, here by hand).
_KEY_LENGTH = yaml.safe_load((REPO / "roles/backend/vars/main.yml").read_text())["_backend_secret_min_length"]
COMPONENTS = yaml.safe_load(
    yaml.safe_dump(PLAY["vars"]["preflight_components"]).replace(
        "{{ preflight_backend_secret_min_length }}", str(_KEY_LENGTH)
    )
)
PLATFORMS = PLAY["vars"]["preflight_platforms"]

DEBIAN12 = {
    "distribution": "Debian",
    "distribution_major_version": "12",
    "service_mgr": "systemd",
    "python": {"version": {"major": 3, "minor": 11, "micro": 2}},
}
GOOD = "Zq7tLm2Rx9Pw4Kc8Vb3N"  # 20 characters, nothing well-known
PD_KEY = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"

# What every host sees when nothing is wrong: the topology's ports, the roles' defaults the table
# reads, and good secrets and receivers.
BASE_VARS = {
    "common_firewall_ssh_port": 22,
    "node_exporter_port": 9100,
    "backend_port": 8000,
    "postgresql_port": 5432,
    "postgres_exporter_port": 9187,
    "redis_port": 6379,
    "redis_exporter_port": 9121,
    "mongodb_port": 27017,
    "mongodb_exporter_port": 9216,
    "prometheus_port": 9090,
    "blackbox_exporter_port": 9115,
    "journal_remote_port": 19532,
    "alertmanager_port": 9093,
    "grafana_port": 3000,
    "postgresql_version": "",
    "mongodb_series": "8.0",
    "mongodb_version": "8.0.12",
    "prometheus_package_version": "2.42.*",
    "alertmanager_package_version": "0.25.*",
    "grafana_version": "12.4.2",
    "grafana_manage_server": True,
    "mongodb_manage_server": True,
    "backend_build_python": "/usr/bin/python3",
    "postgresql_app_password": GOOD + "pg",
    "postgresql_monitor_password": GOOD + "pm",
    "redis_app_password": GOOD + "ra",
    "redis_monitor_password": GOOD + "re",
    "mongodb_admin_password": GOOD + "ma",
    "mongodb_app_password": GOOD + "mp",
    "mongodb_monitor_password": GOOD + "me",
    "mongodb_existing_uri": "",
    "grafana_admin_password": GOOD + "ga",
    "grafana_url": "http://10.0.0.31:3000",
    "backend_secret_key": GOOD * 2 + "bs",  # the app's keys: 32 characters at least
    "backend_jwt_secret": GOOD * 2 + "bj",
    "alertmanager_slack_webhook_url": "https://hooks.slack.com/services/T0001/B0002/abcdefABCDEF123456",
    "alertmanager_pagerduty_routing_key": PD_KEY,
    "alertmanager_webhook_urls": ["https://alerts.corp.acme.io/hook"],
    "alertmanager_smtp_smarthost": "smtp.acme.io:587",
    "alertmanager_smtp_from": "alertmanager@acme.io",
    "alertmanager_smtp_auth_username": "alertmanager",
    "alertmanager_smtp_auth_password": GOOD + "sm",
    "alertmanager_smtp_require_tls": True,
    "alertmanager_dba_email": "dba@acme.io",
    "alertmanager_security_email": "sec@acme.io, soc@acme.io",
}
# Role inputs that the project maps from the values above (playbooks/defaults): derived per host
# unless a test sets them itself, as the templates are.
COPIES = {
    "backend_postgresql_password": "postgresql_app_password",
    "backend_redis_password": "redis_app_password",
    "postgres_exporter_db_password": "postgresql_monitor_password",
    "redis_exporter_redis_password": "redis_monitor_password",
    "backend_postgresql_port": "postgresql_port",
    "backend_redis_port": "redis_port",
    "postgres_exporter_db_port": "postgresql_port",
    "redis_exporter_redis_port": "redis_port",
}
LISTEN = [
    "node_exporter_listen_address",
    "postgres_exporter_listen_address",
    "redis_exporter_listen_address",
    "mongodb_exporter_listen_address",
    "backend_listen_address",
    "prometheus_listen_address",
    "alertmanager_listen_address",
    "grafana_listen_address",
    "blackbox_exporter_listen_address",
    "journal_remote_listen_address",
]
LISTEN_LISTS = ["postgresql_listen_addresses", "redis_listen_addresses", "mongodb_listen_addresses"]
LAYOUT = {
    "app1": (["app"], "10.0.0.11"),
    "data1": (["postgres", "redis", "mongodb"], "10.0.0.21"),
    "mon1": (["monitoring"], "10.0.0.31"),
}


def deployment(overrides=None, per_host=None, layout=None, states=None, controller="3.11.2", **kwargs):
    """A Deployment of plain data: BASE_VARS + overrides (every host) + per_host overrides, then
    the derived role inputs. A value of pf.Unresolved leaves the variable undefined."""
    layout = layout or LAYOUT
    host_vars = {}
    for host, (groups, address) in layout.items():
        explicit = {**(overrides or {}), **(per_host or {}).get(host, {})}
        values = {**copy.deepcopy(BASE_VARS), "adg_private_address": address, **explicit}
        for role_var, source in COPIES.items():
            if role_var not in explicit and source in values:
                values[role_var] = values[source]
        for var in LISTEN:
            values.setdefault(var, address)
        for var in LISTEN_LISTS:
            values.setdefault(var, [address, "127.0.0.1"])
        values["group_names"] = groups
        host_vars[host] = {k: v for k, v in values.items() if v is not pf.Unresolved}
    groups = {}
    for host, (names, _address) in layout.items():
        for name in names:
            groups.setdefault(name, []).append(host)

    def resolve(host, var):
        if var not in host_vars[host]:
            raise pf.Unresolved(f"'{var}' is undefined")
        return host_vars[host][var]

    def evaluate(host, expression):
        return Templar(variables=host_vars[host]).evaluate_conditional(trust_as_template(expression))

    def controller_python(path):
        if controller is None:
            raise pf.Unresolved(f"{path}: FileNotFoundError")
        return controller

    default_states = {
        host: pf.HostState(groups=g, facts={**DEBIAN12, "all_ipv4_addresses": [a]})
        for host, (g, a) in layout.items()
    }
    for host, state in (states or {}).items():
        if state.facts is not None and "all_ipv4_addresses" not in state.facts:
            state = dataclasses.replace(state, facts={**state.facts, "all_ipv4_addresses": [layout[host][1]]})
        default_states[host] = state
    return pf.Deployment(
        components=COMPONENTS,
        hosts=default_states,
        groups=groups,
        platforms=PLATFORMS,
        resolve=resolve,
        evaluate=evaluate,
        source=lambda host, var: (
            "vault_" + COPIES.get(var, var) if "password" in var or "secret" in var else ""
        ),
        controller_python=controller_python,
        **kwargs,
    )


def pairs(problems):
    return {(p.host, p.var) for p in problems}


def reasons(problems):
    return {(p.host, p.var): p.reason for p in problems}


SAME = "(every host must use the same value)"


# --- a clean deployment ----------------------------------------------------------------------


def test_a_clean_deployment_passes():
    assert pf.find_problems(deployment()) == []


def test_optional_receivers_left_empty_pass_when_a_webhook_carries_the_alerts():
    empty = {
        "alertmanager_slack_webhook_url": "",
        "alertmanager_pagerduty_routing_key": "",
        "alertmanager_smtp_smarthost": "",
        "alertmanager_smtp_auth_password": "",
        "alertmanager_webhook_urls": ["http://172.30.14.1:19099/alerts", ""],  # private: http is fine
    }
    assert pf.find_problems(deployment(empty)) == []


def test_an_existing_mongodb_needs_its_uri_instead_of_the_server_passwords():
    existing = {
        "mongodb_manage_server": False,
        "mongodb_admin_password": pf.Unresolved,
        "mongodb_app_password": pf.Unresolved,
        "mongodb_monitor_password": pf.Unresolved,
        "mongodb_existing_uri": "mongodb://10.0.0.21:27017/autodealgenie",
    }
    assert pf.find_problems(deployment(existing)) == []
    broken = pf.find_problems(deployment({**existing, "mongodb_existing_uri": ""}))
    assert pairs(broken) == {("app1", "mongodb_existing_uri"), ("data1", "mongodb_existing_uri")}


# --- which host needs which secret -----------------------------------------------------------


def test_each_host_is_checked_for_the_secrets_of_its_own_groups_only():
    every_secret = [var for var, value in BASE_VARS.items() if value and str(value).startswith(GOOD)]
    problems = pf.find_problems(deployment({var: "REPLACE_ME" for var in every_secret}))
    assert pairs(problems) == {
        ("app1", "backend_jwt_secret"),
        ("app1", "backend_postgresql_password"),
        ("app1", "backend_redis_password"),
        ("app1", "backend_secret_key"),
        ("app1", "mongodb_app_password"),
        ("data1", "mongodb_admin_password"),
        ("data1", "mongodb_app_password"),
        ("data1", "mongodb_monitor_password"),
        ("data1", "postgres_exporter_db_password"),
        ("data1", "postgresql_app_password"),
        ("data1", "postgresql_monitor_password"),
        ("data1", "redis_app_password"),
        ("data1", "redis_exporter_redis_password"),
        ("data1", "redis_monitor_password"),
        ("mon1", "alertmanager_smtp_auth_password"),
        ("mon1", "grafana_admin_password"),
    }
    assert {p.reason for p in problems} == {"is a placeholder"}
    assert ("app1", "vault_postgresql_app_password") in {(p.host, p.source) for p in problems}


def test_an_undefined_secret_is_reported_with_its_source():
    problems = pf.find_problems(deployment(per_host={"app1": {"backend_jwt_secret": pf.Unresolved}}))
    assert [p.line() for p in problems] == [
        "app1: backend_jwt_secret (from vault_backend_jwt_secret): is not set: "
        "'backend_jwt_secret' is undefined"
    ]


def test_a_shared_secret_must_be_the_same_on_every_host_that_uses_it():
    # the app's copy set apart from the server's: the app could not log in
    problems = pf.find_problems(deployment(per_host={"app1": {"backend_postgresql_password": GOOD + "x"}}))
    assert reasons(problems) == {  # one against one: both are named
        (
            "app1",
            "backend_postgresql_password",
        ): f"differs from the value in postgresql_app_password on data1 {SAME}",
        (
            "data1",
            "postgresql_app_password",
        ): f"differs from the value in backend_postgresql_password on app1 {SAME}",
    }
    layout = {**LAYOUT, "app2": (["app"], "10.0.0.12"), "app3": (["app"], "10.0.0.13")}
    per_host = {"app2": {"backend_jwt_secret": GOOD * 2 + "other"}}
    assert reasons(pf.find_problems(deployment(per_host=per_host, layout=layout))) == {
        ("app2", "backend_jwt_secret"): f"differs from the value on app1, app3 {SAME}",
    }


# --- each kind of problem --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "is not set"),
        ("", "is empty"),
        ("   ", "is empty"),
        (12345678901234, "must be a string"),
        ("REPLACE_ME", "is a placeholder"),
        ("replace-me-with-a-long-secret", "is a placeholder"),
        ("CHANGE_ME", "is a placeholder"),
        ("<your db password>", "is a placeholder"),
        ("${PG_PASSWORD}", "is a placeholder"),
        ("xxxxxxxxxxxxxxxx", "is a placeholder"),
        ("admin", "is a well-known default"),
        ("changeme", "is a well-known default"),
        ("password", "is a well-known default"),
        ("Password123!", "is a well-known default"),
        ("secret", "is a well-known default"),
        ("123456789012", "is a well-known default"),
        ("98765432109876", "is a well-known default"),
        ("Zq7tLm2Rx9", "is shorter than 12 characters"),
        ("aaaaaaaaaaaaaaaa", "repeats one character"),
    ],
)
def test_secret_problems(value, reason):
    assert pf.secret_reason(value) == reason


def test_a_random_secret_passes_whatever_its_alphabet():
    for value in ("80417265395718204631", "k3J9-xQ2_vL8.mN4", "Zq7tLm2Rx9Pw4Kc8"):
        assert pf.secret_reason(value) is None, value


def test_secret_minimum_length_follows_the_table():
    short = "Zq7tLm2Rx9Pw4K"  # 14: enough for a database password, not for the app's keys
    problems = pf.find_problems(
        deployment({"backend_secret_key": short, "postgresql_monitor_password": short})
    )
    assert reasons(problems) == {("app1", "backend_secret_key"): f"is shorter than {_KEY_LENGTH} characters"}
    assert _KEY_LENGTH == 32  # what the app requires outside development/test (app config.py)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://REPLACE_ME.invalid/", "is a placeholder"),
        ("https://hooks.example.com/services/T1/B2/abc", "points at a reserved placeholder host"),
        ("https://chat.example.org/hook", "points at a reserved placeholder host"),
        ("https://hooks.slack.invalid/services/T1/B2/abc", "points at a reserved placeholder host"),
        ("https://hooks.acme.example/x", "points at a reserved placeholder host"),
        ("http://hooks.slack.com/services/T0001/B0002/abcdef", "must use https"),
        ("http://10.0.0.5/slack", "must use https"),  # Slack-compatible endpoints are https too
        ("https://hooks.slack.com/services/abc", "is not a Slack incoming-webhook URL"),
        ("hooks.slack.com/services/T0001/B0002/abcdef", "is not an http(s) URL"),
        ("https://hooks.slack.com:99999/services/T1/B2/abc", "has a malformed host or port"),
    ],
)
def test_slack_webhook_problems(url, reason):
    [(suffix, found)] = pf.value_problems("slack_webhook_url", url, {"required": False})
    assert suffix == ""
    assert found.startswith(reason)


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("REPLACE_ME", "is a placeholder"),
        ("changeme", "is a well-known default"),
        ("a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5", "is shorter than 32 characters"),
        ("a1b2c3d4-e5f6-a7b8-c9d0-e1f2a3b4c5d6", "is not an Events API v2 routing key"),
    ],
)
def test_pagerduty_routing_key_problems(key, reason):
    [(_suffix, found)] = pf.value_problems("pagerduty_routing_key", key, {"required": False})
    assert found.startswith(reason)


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [
        ("smtp_smarthost", "smtp.REPLACE_ME.invalid:587", "is a placeholder"),
        ("smtp_smarthost", "smtp.example.net:587", "points at a reserved placeholder host"),
        ("smtp_smarthost", "relay.invalid:25", "points at a reserved placeholder host"),
        ("smtp_smarthost", "smtp.acme.io", "must be host:port"),
        ("smtp_smarthost", "smtp.acme.io:70000", "has a port outside 1-65535"),
        ("email", "alertmanager@REPLACE_ME.invalid", "is a placeholder"),
        ("email", "alerts@example.com", "uses a reserved placeholder domain"),
        ("email", "not-an-address", "is not an email address"),
        ("email_list", "dba@acme.io, ops@example.org", "uses a reserved placeholder domain"),
        ("mongodb_uri", "mongodb://REPLACE_ME", "is a placeholder"),
        ("mongodb_uri", "postgres://db:5432/x", "is not a mongodb://"),
        ("mongodb_uri", "mongodb://db.example.com:27017/app", "points at a reserved placeholder host"),
        (
            "mongodb_uri",
            "mongodb://app:password@10.0.0.5:27017/app",
            "carries a password that is a well-known",
        ),
        ("url", "https://grafana.invalid", "points at a reserved placeholder host"),
        ("url", "grafana:3000", "is not an http(s) URL"),
    ],
)
def test_receiver_and_url_problems(kind, value, reason):
    [(_suffix, found)] = pf.value_problems(kind, value, {})
    assert found.startswith(reason), found


def test_webhook_urls_are_checked_one_by_one_and_need_https_outside_private_networks():
    urls = [
        "https://ok.acme.io/a",
        "",
        "https://REPLACE_ME.invalid/",
        "http://alerts.acme.io/",
        "http://127.0.0.1:9/x",
    ]
    assert pf.value_problems("url_list", urls, {"https": True}) == [
        ("[2]", "is a placeholder"),
        ("[3]", "must use https"),
    ]
    assert pf.value_problems("url_list", "https://x.acme.io", {}) == [("", "must be a list of URLs")]


def test_alerts_must_reach_slack_or_a_webhook():
    none = {"alertmanager_slack_webhook_url": "", "alertmanager_webhook_urls": [""]}
    assert reasons(pf.find_problems(deployment(none))) == {("mon1", "alertmanager_webhook_urls"): "is empty"}


def test_smtp_settings_are_checked_only_with_a_relay_and_tls_is_kept_with_authentication():
    no_relay = {
        "alertmanager_smtp_smarthost": "",
        "alertmanager_smtp_from": "",
        "alertmanager_smtp_auth_password": "REPLACE_ME",
    }
    assert pf.find_problems(deployment(no_relay)) == []
    clear = pf.find_problems(deployment({"alertmanager_smtp_require_tls": False}))
    assert pairs(clear) == {("mon1", "alertmanager_smtp_require_tls")}
    assert "in clear" in clear[0].reason


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("grafana_version", "latest"),
        ("mongodb_version", "8.0"),
        ("mongodb_series", "8"),
        ("prometheus_package_version", "*"),
        ("alertmanager_package_version", ""),
        ("postgresql_version", "15.4"),
    ],
)
def test_unpinned_versions(var, value):
    host = "data1" if var.startswith(("mongodb", "postgresql")) else "mon1"
    problems = pf.find_problems(deployment({var: value}))
    assert pairs(problems) == {(host, var)}
    assert "is not a pinned version" in problems[0].reason


def test_ports_must_be_integers_distinct_on_a_host_and_equal_everywhere():
    text = pf.find_problems(deployment({"backend_port": "8000"}))
    assert reasons(text) == {("app1", "backend_port"): "'8000' is not an integer port"}
    outside = pf.find_problems(deployment({"redis_port": 70000}))
    assert reasons(outside) == {  # and the roles' copies of it
        ("data1", "redis_port"): "70000 is outside 1-65535",
        ("data1", "redis_exporter_redis_port"): "70000 is outside 1-65535",
        ("app1", "backend_redis_port"): "70000 is outside 1-65535",
    }
    clash = pf.find_problems(deployment({"redis_exporter_port": 9187}))
    assert reasons(clash) == {
        ("data1", "redis_exporter_port"): "port 9187 is also postgres_exporter_port on this host"
    }
    # a port set for one group only: the app would connect to 5432, the server listen on 5433
    split = pf.find_problems(deployment(per_host={"data1": {"postgresql_port": 5433}}))
    assert reasons(split) == {
        ("data1", "postgres_exporter_db_port"): "is 5433 here but 5432 in postgresql_port on app1, mon1 "
        f"and in backend_postgresql_port on app1 {SAME}",
        ("data1", "postgresql_port"): "is 5433 here but 5432 on app1, mon1 and in backend_postgresql_port "
        f"on app1 {SAME}",
    }
    client = pf.find_problems(deployment({"backend_redis_port": 6380}))
    assert reasons(client) == {
        ("app1", "backend_redis_port"): "is 6380 here but 6379 in redis_port on app1, data1, mon1 and in "
        f"redis_exporter_redis_port on data1 {SAME}",
    }


def test_listen_addresses_must_be_the_hosts_own():
    problems = pf.find_problems(
        deployment(
            per_host={
                "data1": {"redis_listen_addresses": ["10.9.9.9", "127.0.0.1"]},
                "mon1": {"prometheus_listen_address": "0.0.0.0", "grafana_listen_address": "grafana.lan"},  # noqa: S104
            }
        )
    )
    assert reasons(problems) == {
        ("data1", "redis_listen_addresses"): "10.9.9.9 is not an address of this host",
        ("mon1", "prometheus_listen_address"): "listens on every interface (give the host's private address)",
    }


def test_every_tier_needs_hosts():
    layout = {"app1": (["app"], "10.0.0.11"), "mon1": (["monitoring"], "10.0.0.31")}
    problems = pf.find_problems(deployment(layout=layout))
    assert pairs(problems) == {
        (pf.INVENTORY, "groups['mongodb']"),
        (pf.INVENTORY, "groups['postgres']"),
        (pf.INVENTORY, "groups['redis']"),
    }


def test_addresses_must_be_usable_and_unique():
    names = {"db.internal.acme": True}
    d = deployment(
        per_host={
            "app1": {"adg_private_address": "10.0.0.21"},
            "mon1": {"adg_private_address": "mon.nowhere.acme"},
        },
        resolve_name=lambda name: names.get(name, False),
    )
    assert reasons(pf.find_problems(d)) == {
        ("app1", "adg_private_address"): "10.0.0.21 is also the address of data1",
        ("data1", "adg_private_address"): "10.0.0.21 is also the address of app1",
        ("mon1", "adg_private_address"): "'mon.nowhere.acme' is neither an IP address nor a name "
        "that resolves",
    }
    unresolved = deployment(per_host={"mon1": {"adg_private_address": pf.Unresolved}})
    assert reasons(pf.find_problems(unresolved)) == {
        ("mon1", "adg_private_address"): "cannot be evaluated: 'adg_private_address' is undefined"
    }


@pytest.mark.parametrize(
    ("state", "var", "reason"),
    [
        (
            pf.HostState(["app"], reachable=False, unreachable_msg="ssh: timed out"),
            "ansible_host",
            "is unreachable",
        ),
        (pf.HostState(["app"], python3=False), "ansible_python_interpreter", "no python3 on the host"),
        (
            pf.HostState(["app"], facts=None, facts_msg="sudo: a password is required"),
            "ansible_facts",
            "could not",
        ),
        (
            pf.HostState(["app"], facts={**DEBIAN12, "distribution": "Ubuntu"}),
            "ansible_facts['distribution']",
            "Ubuntu",
        ),
        (
            pf.HostState(["app"], facts={**DEBIAN12, "distribution_major_version": "11"}),
            "ansible_facts['distribution_major_version']",
            "Debian 11 is not supported (Debian 12, 13)",
        ),
        (
            pf.HostState(["app"], facts={**DEBIAN12, "service_mgr": "sysvinit"}),
            "ansible_facts['service_mgr']",
            "sysvinit",
        ),
    ],
)
def test_platform_problems(state, var, reason):
    problems = pf.find_problems(deployment(states={"app1": state}))
    assert pairs(problems) == {("app1", var)}
    assert reason in problems[0].reason


def test_debian_13_is_supported():
    python313 = {"version": {"major": 3, "minor": 13, "micro": 5}}
    trixie = {**DEBIAN12, "distribution_major_version": "13", "python": python313}
    d = deployment(states={"mon1": pf.HostState(["monitoring"], facts=trixie)})
    assert pf.find_problems(d) == []


def test_the_app_hosts_python_must_match_the_controller_interpreter_that_builds_its_wheels():
    problems = pf.find_problems(deployment(controller="3.13.5"))
    assert reasons(problems) == {
        ("app1", "backend_build_python"): "the controller's interpreter runs Python 3.13.5 but this "
        "host runs 3.11.2 (wheels built on the controller must match the host's Python)"
    }
    missing = pf.find_problems(deployment(controller=None))
    assert pairs(missing) == {("app1", "backend_build_python")}


def test_every_problem_is_reported_in_one_run():
    bad = {
        "backend_secret_key": "",
        "redis_app_password": "redis",
        "alertmanager_pagerduty_routing_key": "REPLACE_ME",
        "grafana_version": "latest",
        "prometheus_port": "9090",
    }
    states = {
        "data1": pf.HostState(["postgres", "redis", "mongodb"], facts={**DEBIAN12, "service_mgr": "upstart"})
    }
    problems = pf.find_problems(deployment(bad, states=states))
    assert pairs(problems) == {
        ("app1", "backend_redis_password"),
        ("app1", "backend_secret_key"),
        ("data1", "redis_app_password"),
        ("data1", "ansible_facts['service_mgr']"),
        ("mon1", "alertmanager_pagerduty_routing_key"),
        ("mon1", "grafana_version"),
        ("mon1", "prometheus_port"),
    }
    text = pf.report(problems)
    assert text.startswith("Preflight found 7 problem(s) on 3 host(s); the run stops before any host")
    assert len(text.splitlines()) == 8


def test_unknown_check_kind_is_a_table_error():
    table = [{"name": "x", "groups": ["all"], "checks": {"x_password": {"kind": "passwrod"}}}]
    with pytest.raises(ValueError, match="unknown kind"):
        pf.checks_for(table, lambda expression: True)


# --- values never appear ---------------------------------------------------------------------

LEAKY = {
    "postgresql_app_password": "Hunter2Hunter",  # fine alone, but differs between hosts below
    "postgresql_monitor_password": "shortPw9",
    "redis_app_password": "REPLACE_ME_redis_pw",
    "redis_monitor_password": "Foobared2024!",
    "mongodb_admin_password": "<mongo-admin-secret>",
    "grafana_admin_password": "gr4f",
    "backend_secret_key": "aaaaaaaaaaaaaaaaaaaa",
    "alertmanager_slack_webhook_url": "http://hooks.slack.com/services/T9X/B9Y/tok3nS3cr3t",
    "alertmanager_pagerduty_routing_key": "pdKeyWithDashes-0123456789abcdef0",
    "alertmanager_webhook_urls": ["https://user:wh00kpass@alerts.example.com/wh00ktoken"],
    "alertmanager_smtp_auth_password": "smtpPw1",
    "alertmanager_smtp_smarthost": "mail.relay.invalid:2525",
}


def test_messages_never_quote_a_secret_or_receiver_value():
    per_host = {"app1": {"postgresql_app_password": "Hunter2Hunter-app"}}
    problems = pf.find_problems(deployment(LEAKY, per_host=per_host))
    expected = (set(LEAKY) - {"alertmanager_webhook_urls"}) | {"alertmanager_webhook_urls[0]"}
    assert {p.var for p in problems} >= expected
    text = pf.report(problems)
    values = [*LEAKY.values(), "Hunter2Hunter-app"]
    for value in [v for item in values for v in (item if isinstance(item, list) else [item])]:
        assert value not in text
    # nor any recognisable part of one (a token in a URL, a relay host)
    for fragment in ("tok3nS3cr3t", "wh00kpass", "wh00ktoken", "relay.invalid", "Foobared", "REPLACE_ME"):
        assert fragment not in text


def test_a_backup_host_is_optional_but_its_passphrase_must_be_real():
    # No backup group: no problem (test_a_clean_deployment_passes). With one, its passphrase counts.
    layout = {**LAYOUT, "backup1": (["backup"], "10.0.0.41")}
    weak = pf.find_problems(
        deployment(layout=layout, per_host={"backup1": {"pgbackrest_cipher_pass": "short-pass"}})
    )
    assert reasons(weak) == {("backup1", "pgbackrest_cipher_pass"): "is shorter than 20 characters"}
    strong = deployment(layout=layout, per_host={"backup1": {"pgbackrest_cipher_pass": "Zq8" * 10}})
    assert pf.find_problems(strong) == []


# --- the HA topology's shape (ha_topology_problems) ----------------------------------------------


def _ha_groups(**sizes: int) -> dict[str, list[str]]:
    return {group: [f"{group}{i}" for i in range(1, n + 1)] for group, n in sizes.items()}


def _vip(value):
    def resolve(host, var):
        assert var == "adg_api_vip"
        if value is None:
            raise pf.Unresolved("undefined")
        return value

    return resolve


def test_the_full_ha_shape_passes():
    groups = _ha_groups(etcd=3, postgres=3, redis=3, redis_sentinel=3, lb=2)
    assert pf.ha_topology_problems(groups, _vip("10.0.0.100")) == []


def test_the_single_host_topology_has_no_ha_checks():
    assert pf.ha_topology_problems(_ha_groups(postgres=1, redis=1), _vip(None)) == []


@pytest.mark.parametrize(
    ("sizes", "variable", "reason"),
    [
        ({"etcd": 2, "postgres": 3}, "groups['etcd']", "odd number, at least 3"),
        ({"etcd": 1, "postgres": 3}, "groups['etcd']", "odd number, at least 3"),
        ({"etcd": 3, "postgres": 1}, "groups['postgres']", "at least 2"),
        ({"redis_sentinel": 2, "redis": 3}, "groups['redis_sentinel']", "at least 3"),
        ({"redis_sentinel": 3, "redis": 1}, "groups['redis']", "a replica to promote"),
        ({"lb": 1}, "groups['lb']", "at least 2"),
    ],
)
def test_an_ha_group_too_small_to_fail_over_is_reported(sizes, variable, reason):
    problems = pf.ha_topology_problems(_ha_groups(**sizes), _vip("10.0.0.100"))
    assert [p.var for p in problems] == [variable]
    assert reason in problems[0].reason


@pytest.mark.parametrize("vip", [None, "", "lb.example.internal"])
def test_load_balancers_need_a_vip_address(vip):
    problems = pf.ha_topology_problems(_ha_groups(lb=2), _vip(vip))
    assert [(p.host, p.var) for p in problems] == [("lb1", "adg_api_vip")]
