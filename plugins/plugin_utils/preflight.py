"""The checks behind the autodealgenie.ops.preflight action, as plain Python.

Nothing here talks to Ansible: the action resolves variables per host and hands the values in
through callbacks, so the same logic is unit-tested with plain dicts. A problem names a host and
a variable and says what is wrong with it, never what the value is (ports, versions and OS facts,
which are not secrets, are quoted).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# Host name of a problem that belongs to the inventory as a whole (a group without hosts).
INVENTORY = "(inventory)"

DEFAULT_MIN_LENGTH = 12

# Values people leave in place: vendor defaults and the usual first guesses. Compared in lower
# case, also with trailing digits and punctuation removed ("Password1!" is "password").
WELL_KNOWN_SECRETS = frozenset(
    {
        "admin",
        "administrator",
        "autodealgenie",
        "changeit",
        "changeme",
        "default",
        "foobared",
        "grafana",
        "guest",
        "letmein",
        "mongo",
        "mongodb",
        "pass",
        "passw0rd",
        "password",
        "postgres",
        "prometheus",
        "qwerty",
        "redis",
        "root",
        "secret",
        "test",
        "toor",
        "user",
    }
)
_TRAILING_NOISE = re.compile(r"[\d\W_]+$")
_DIGIT_RUNS = "0123456789" * 4 + " " + "9876543210" * 4  # 123456, 987654321...

# What an unfilled template value looks like: REPLACE_ME, CHANGE-ME, <password>, ${TOKEN}, xxxx...
_PLACEHOLDER = re.compile(
    r"replace[\s_.-]?me|change[\s_.-]?me|fill[\s_.-]?me|placeholder|put[\s_.-]?your|your[\s_.-]?"
    r"(?:password|secret|token|key|webhook)|^\s*<[^>]*>\s*$|^\s*\$\{[^}]*\}\s*$|^\s*(?:todo|fixme|tbd)\s*$"
    r"|^\s*(?:x{3,}|\*{3,}|\.{3,})\s*$",
    re.IGNORECASE,
)

# Reserved for documentation and testing (RFC 2606, RFC 6761): never a real receiver.
_RESERVED_SUFFIXES = (".invalid", ".example", ".test")
_RESERVED_DOMAINS = ("example.com", "example.org", "example.net")

_SLACK_HOSTS = ("hooks.slack.com",)
_SLACK_PATH = re.compile(r"^/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+/?$")
_PAGERDUTY_KEY = re.compile(r"^[A-Za-z0-9]{32}$")
_SMARTHOST = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]+):(?P<port>\d+)$")
_EMAIL = re.compile(r"^[^@\s,<>]+@(?P<domain>[^@\s,<>]+)$")

# Kinds whose values are never quoted; everything else (ports, versions) may be.
SENSITIVE_KINDS = frozenset(
    {"secret", "slack_webhook_url", "pagerduty_routing_key", "url", "url_list", "mongodb_uri"}
)
KINDS = SENSITIVE_KINDS | {
    "smtp_smarthost",
    "email",
    "email_list",
    "version",
    "enabled",
    "port",
    "local_address",
    "controller_python",
}
# Kinds whose value must be the same wherever it is read (rule option `shared_as` names the
# setting when a role reads it under its own name, e.g. the app's copy of the database password).
SHARED_KINDS = frozenset({"secret", "pagerduty_routing_key", "port"})
_WILDCARDS = frozenset({"0.0.0.0", "::", "[::]", "*", ""})  # noqa: S104 - what is refused


@dataclass(frozen=True, order=True)
class Problem:
    """One finding: on `host`, variable `var` (set from `source`, when known) is wrong: `reason`."""

    host: str
    var: str
    reason: str
    source: str = ""

    def line(self) -> str:
        origin = f" (from {self.source})" if self.source else ""
        return f"{self.host}: {self.var}{origin}: {self.reason}"


class Unresolved(Exception):
    """A variable has no value on a host, or its value cannot be computed (the message says why)."""


# --- single values ----------------------------------------------------------------------------


def looks_like_placeholder(value: str) -> bool:
    return bool(_PLACEHOLDER.search(value))


def is_well_known(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in WELL_KNOWN_SECRETS or (lowered.isdigit() and lowered in _DIGIT_RUNS):
        return True
    return _TRAILING_NOISE.sub("", lowered) in WELL_KNOWN_SECRETS


def is_reserved_host(hostname: str) -> bool:
    """A documentation/test host name (example.com, *.invalid, ...) or one holding a placeholder."""
    name = hostname.strip().rstrip(".").lower()
    if not name or looks_like_placeholder(name):
        return True
    if name in {suffix.lstrip(".") for suffix in _RESERVED_SUFFIXES} or name.endswith(_RESERVED_SUFFIXES):
        return True
    return any(name == domain or name.endswith("." + domain) for domain in _RESERVED_DOMAINS)


def _is_local_address(hostname: str) -> bool:
    """Loopback or private IP literal: plain http stays inside the deployment's own networks."""
    try:
        address = ipaddress.ip_address(hostname.strip("[]"))
    except ValueError:
        return False
    return address.is_loopback or address.is_private


def secret_reason(value: Any, min_length: int = DEFAULT_MIN_LENGTH) -> str | None:
    """Why a password/key is unusable, or None. The order puts the most useful reason first."""
    if value is None:
        return "is not set"
    if not isinstance(value, str):
        return "must be a string"
    if not value.strip():
        return "is empty"
    if is_well_known(value):
        return "is a well-known default"
    if looks_like_placeholder(value):
        return "is a placeholder"
    if len(value) < min_length:
        return f"is shorter than {min_length} characters"
    if len(set(value)) == 1:
        return "repeats one character"
    return None


def url_reason(value: Any, *, https: bool = False, slack: bool = False) -> str | None:
    """Why a receiver URL is unusable, or None. `https`: plain http is refused (except for
    loopback/private addresses unless `slack`, whose endpoints are always https)."""
    if not isinstance(value, str):
        return "must be a string"
    if looks_like_placeholder(value):
        return "is a placeholder"
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "is not an http(s) URL"
    try:
        hostname = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return "has a malformed host or port"
    if is_reserved_host(hostname):
        return "points at a reserved placeholder host (example.*, *.invalid, *.test)"
    if parts.scheme != "https" and (slack or (https and not _is_local_address(hostname))):
        return "must use https"
    if slack and hostname.lower() in _SLACK_HOSTS and not _SLACK_PATH.match(parts.path):
        return "is not a Slack incoming-webhook URL (https://hooks.slack.com/services/T.../B.../...)"
    return None


def smarthost_reason(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if looks_like_placeholder(value):
        return "is a placeholder"
    match = _SMARTHOST.match(value.strip())
    if not match:
        return "must be host:port"
    if not 1 <= int(match.group("port")) <= 65535:
        return "has a port outside 1-65535"
    if is_reserved_host(match.group("host").strip("[]")):
        return "points at a reserved placeholder host (example.*, *.invalid, *.test)"
    return None


def email_reason(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "is not set"
    addresses = [part.strip() for part in value.split(",")]
    for address in addresses:
        match = _EMAIL.match(address)
        if not match:
            return "is not an email address (name@domain, comma-separated for several)"
        if looks_like_placeholder(address):
            return "is a placeholder"
        if is_reserved_host(match.group("domain")):
            return "uses a reserved placeholder domain (example.*, *.invalid, *.test)"
    return None


def mongodb_uri_reason(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "is not set"
    if looks_like_placeholder(value):
        return "is a placeholder"
    match = re.match(
        r"^mongodb(?:\+srv)?://(?:(?P<user>[^:@/]*)(?::(?P<password>[^@/]*))?@)?(?P<hosts>[^/?]+)", value
    )
    if not match:
        return "is not a mongodb:// or mongodb+srv:// connection string"
    for host in match.group("hosts").split(","):
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
        if is_reserved_host(name.strip("[]")):
            return "points at a reserved placeholder host (example.*, *.invalid, *.test)"
    password = match.group("password")
    if password is not None and secret_reason(password) is not None:
        return "carries a password that is " + secret_reason(password).removeprefix("is ")
    return None


def version_reason(value: Any, pattern: str) -> str | None:
    text = "" if value is None else str(value)
    if not re.match(pattern, text):
        return f"'{text}' is not a pinned version (expected {pattern})"
    return None


def port_reason(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"'{value}' is not an integer port"
    if not 1 <= value <= 65535:
        return f"{value} is outside 1-65535"
    return None


def local_address_reasons(value: Any, facts: Mapping[str, Any] | None) -> list[str]:
    """A listen address (or list of them) must be one of the host's own addresses: a service
    cannot bind an address the host does not have, nor should it listen on every interface."""
    addresses = value if isinstance(value, list) else [value]
    mine = set()
    for key in ("all_ipv4_addresses", "all_ipv6_addresses"):
        mine.update(str(a) for a in (facts or {}).get(key, []) or [])
    found = []
    for address in addresses:
        text = str(address).strip().strip("[]")
        if text in _WILDCARDS:
            found.append("listens on every interface (give the host's private address)")
            continue
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            continue  # a name: resolved by the service on the host itself
        if facts and not ip.is_loopback and text not in mine:
            found.append(f"{text} is not an address of this host")
    return found


def value_problems(kind: str, value: Any, rule: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Problems of one variable as (suffix, reason): suffix is '' or an index such as '[0]'.

    `rule`: `required` (bool, default true: an empty optional receiver is simply not used),
    `min_length` (secrets), `https` (urls), `pattern` (versions), `reason` (kind `enabled`).
    """
    required = rule.get("required", True)
    empty = value is None or (isinstance(value, str | list) and len(value) == 0)
    if kind == "url_list":
        entries = [] if value is None else value
        if not isinstance(entries, list):
            return [("", "must be a list of URLs")]
        used = [(i, entry) for i, entry in enumerate(entries) if entry not in ("", None)]
        if not used:
            return [("", "is empty")] if required else []
        found = []
        for index, entry in used:
            reason = url_reason(entry, https=rule.get("https", False))
            if reason:
                found.append((f"[{index}]", reason))
        return found
    if empty and not required:
        return []
    if kind == "secret":
        reason = secret_reason(value, int(rule.get("min_length", DEFAULT_MIN_LENGTH)))
    elif kind == "slack_webhook_url":
        reason = "is empty" if empty else url_reason(value, https=True, slack=True)
    elif kind == "url":
        reason = "is empty" if empty else url_reason(value, https=rule.get("https", False))
    elif kind == "pagerduty_routing_key":
        reason = secret_reason(value, 32)
        if reason is None and not _PAGERDUTY_KEY.match(value):
            reason = "is not an Events API v2 routing key (32 letters and digits)"
    elif kind == "smtp_smarthost":
        reason = "is empty" if empty else smarthost_reason(value)
    elif kind in ("email", "email_list"):
        reason = email_reason(value)
    elif kind == "mongodb_uri":
        reason = mongodb_uri_reason(value)
    elif kind == "version":
        reason = version_reason(value, str(rule.get("pattern", r"^[0-9]+\.[0-9]+")))
    elif kind == "port":
        reason = port_reason(value)
    elif kind == "enabled":
        reason = None if value is True else str(rule.get("reason", "must be true"))
    else:
        raise ValueError(f"unknown check kind {kind!r}")
    return [("", reason)] if reason else []


# --- the deployment --------------------------------------------------------------------------


@dataclass
class HostState:
    """What the playbook learned about a host before the checks: reachability, python3, facts."""

    groups: list[str]
    reachable: bool = True
    unreachable_msg: str = ""
    python3: bool = True
    facts: Mapping[str, Any] | None = None
    facts_msg: str = ""


def components_for(components: Iterable[Mapping[str, Any]], groups: Iterable[str], evaluate: Callable):
    """The components a host runs: those sharing a group with it whose `when` holds there."""
    member = set(groups) | {"all"}
    chosen = []
    for component in components:
        if not member & set(component.get("groups", [])):
            continue
        condition = component.get("when")
        if condition is not None and not evaluate(condition):
            continue
        chosen.append(component)
    return chosen


def checks_for(components: Iterable[Mapping[str, Any]], evaluate: Callable) -> dict[str, dict]:
    """Variable -> rule for a host's components. A variable used by two components (the app's
    database password is also the server's) is checked once, with the stricter rule."""
    merged: dict[str, dict] = {}
    for component in components:
        for var, rule in (component.get("checks") or {}).items():
            rule = dict(rule or {})
            if rule.get("kind", "secret") not in KINDS:
                raise ValueError(f"{component.get('name')}: {var}: unknown kind {rule.get('kind')!r}")
            condition = rule.pop("when", None)
            if condition is not None and not evaluate(condition):
                continue
            required = rule.get("required", True)
            rule["required"] = required if isinstance(required, bool) else bool(evaluate(required))
            previous = merged.get(var)
            if previous:
                rule["required"] = rule["required"] or previous["required"]
                rule["min_length"] = max(
                    int(rule.get("min_length", DEFAULT_MIN_LENGTH)),
                    int(previous.get("min_length", DEFAULT_MIN_LENGTH)),
                )
            merged[var] = rule
    return merged


def required_groups(components: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every group a component is placed on (the topology's tiers), derived from the table; the
    groups of an `optional` component (one a deployment may leave out) may be empty."""
    return sorted({g for c in components if not c.get("optional") for g in c.get("groups", []) if g != "all"})


def platform_problems(host: str, state: HostState, platforms: Mapping[str, Iterable[Any]]) -> list[Problem]:
    """Reachable, python3 present, facts gathered, a supported OS release, systemd."""
    if not state.reachable:
        return [Problem(host, "ansible_host", f"is unreachable: {state.unreachable_msg}".rstrip(": "))]
    if not state.python3:
        return [
            Problem(host, "ansible_python_interpreter", "no python3 on the host (Ansible modules need it)")
        ]
    facts = state.facts
    if not facts:
        return [Problem(host, "ansible_facts", f"could not be gathered: {state.facts_msg}".rstrip(": "))]
    found = []
    distribution = str(facts.get("distribution", "?"))
    release = str(facts.get("distribution_major_version", "?"))
    supported = {str(k): [str(v) for v in versions] for k, versions in platforms.items()}
    wanted = "; ".join(f"{name} {', '.join(versions)}" for name, versions in supported.items())
    if distribution not in supported:
        found.append(
            Problem(host, "ansible_facts['distribution']", f"{distribution} is not supported ({wanted})")
        )
    elif release not in supported[distribution]:
        found.append(
            Problem(
                host,
                "ansible_facts['distribution_major_version']",
                f"{distribution} {release} is not supported ({wanted})",
            )
        )
    service_mgr = str(facts.get("service_mgr", "?"))
    if service_mgr != "systemd":
        found.append(Problem(host, "ansible_facts['service_mgr']", f"{service_mgr} is not systemd"))
    return found


def python_version(facts: Mapping[str, Any] | None) -> str | None:
    version = (facts or {}).get("python", {}).get("version", {})
    if not all(part in version for part in ("major", "minor", "micro")):
        return None
    return f"{version['major']}.{version['minor']}.{version['micro']}"


def consistency_problems(
    key: str, entries: Iterable[tuple[str, str, Any]], sensitive: bool, sources: Mapping[tuple, str]
) -> list[Problem]:
    """One setting read on several hosts, maybe under several names, must have one value: the app
    reads the database password (and port) from its own host variables, the server from its own.
    `entries` are (host, var, value) of setting `key`. The entries outside the largest group of
    equal values are reported; on a tie, every entry is."""
    entries = sorted(entries, key=lambda entry: (entry[0], entry[1]))
    by_value: dict[str, list[tuple[str, str]]] = {}
    for host, var, value in entries:
        by_value.setdefault(_same(value), []).append((host, var))
    if len(by_value) <= 1:
        return []
    sizes = sorted((len(members) for members in by_value.values()), reverse=True)
    majority = max(by_value.values(), key=len) if sizes[0] > sizes[1] else []
    values = {(host, var): value for host, var, value in entries}

    found = []
    for host, var, value in entries:
        if (host, var) in majority:
            continue
        others = majority or [(h, v) for h, v, other in entries if _same(other) != _same(value)]
        if sensitive:
            here = "differs from the value"
        elif majority:
            here = f"is {value} here but {values[others[0]]}"
        else:
            here = f"is {value} here, unlike the value"
        reason = f"{here} {_where(others, var, key)} (every host must use the same value)"
        found.append(Problem(host, var, reason, sources.get((host, var), "")))
    return found


def _same(value: Any) -> str:
    """A comparison key that tells 8000 from "8000" and compares lists by content."""
    return json.dumps(value, sort_keys=True, default=str)


def _where(members: list[tuple[str, str]], var: str, key: str) -> str:
    """'on app1, app3' for the same variable, 'in postgresql_app_password on data1' for another."""
    by_var: dict[str, list[str]] = {}
    for host, name in members:
        by_var.setdefault(name, []).append(host)
    parts = []
    for name, hosts in sorted(by_var.items(), key=lambda item: (item[0] != var, item[0] != key, item[0])):
        prefix = "" if name == var else f"in {name} "
        parts.append(f"{prefix}on {', '.join(hosts)}")
    return " and ".join(parts)


def address_problems(
    addresses: Mapping[str, Any], address_var: str, resolve: Callable[[str], bool]
) -> list[Problem]:
    """Every topology host needs an address other hosts can use: an IP or a name that resolves,
    and not the same as another host's."""
    found = []
    owners: dict[str, list[str]] = {}
    for host in sorted(addresses):
        value = addresses[host]
        if isinstance(value, Unresolved):
            found.append(Problem(host, address_var, f"cannot be evaluated: {value}"))
            continue
        text = str(value).strip()
        try:
            ipaddress.ip_address(text)
        except ValueError:
            if not text or not resolve(text):
                found.append(
                    Problem(host, address_var, f"'{text}' is neither an IP address nor a name that resolves")
                )
                continue
        owners.setdefault(text, []).append(host)
    for address, hosts in owners.items():
        if len(hosts) > 1:
            for host in hosts:
                others = ", ".join(h for h in hosts if h != host)
                found.append(Problem(host, address_var, f"{address} is also the address of {others}"))
    return found


def port_collisions(host: str, ports: Mapping[str, Any]) -> list[Problem]:
    """Two services of one host on one port: the second cannot start."""
    found = []
    seen: dict[Any, str] = {}
    for var, value in ports.items():
        if port_reason(value) is not None:
            continue
        if value in seen:
            found.append(Problem(host, var, f"port {value} is also {seen[value]} on this host"))
        else:
            seen[value] = var
    return found


def ha_topology_problems(
    groups: Mapping[str, list[str]], resolve: Callable[[str, str], Any]
) -> list[Problem]:
    """The HA topology's shape, chosen by inventory groups: a consensus that can lose a member,
    something to fail over to, and one address for the load balancers to share."""
    found: list[Problem] = []

    def members(group: str) -> list[str]:
        return list(groups.get(group) or [])

    etcd, postgres, sentinels, lbs = (
        members("etcd"),
        members("postgres"),
        members("redis_sentinel"),
        members("lb"),
    )
    if etcd:
        if len(etcd) < 3 or len(etcd) % 2 == 0:
            found.append(
                Problem(
                    INVENTORY,
                    "groups['etcd']",
                    f"has {len(etcd)} hosts: etcd needs an odd number, at least 3, to keep a quorum "
                    "after losing one",
                )
            )
        if len(postgres) < 2:
            found.append(
                Problem(
                    INVENTORY,
                    "groups['postgres']",
                    f"has {len(postgres)} host(s) while an etcd group selects Patroni: it needs at least "
                    "2 (3 for synchronous_mode to keep a synchronous standby after losing one)",
                )
            )
    if sentinels:
        if len(sentinels) < 3:
            found.append(
                Problem(
                    INVENTORY,
                    "groups['redis_sentinel']",
                    f"has {len(sentinels)} hosts: Sentinel needs at least 3 so that a majority "
                    "(the quorum) survives losing one",
                )
            )
        if len(members("redis")) < 2:
            found.append(
                Problem(
                    INVENTORY,
                    "groups['redis']",
                    "needs at least 2 hosts (a replica to promote) with Sentinels",
                )
            )
    if lbs:
        if len(lbs) < 2:
            found.append(
                Problem(INVENTORY, "groups['lb']", "has 1 host: a keepalived VIP needs at least 2 to move")
            )
        try:
            vip = resolve(lbs[0], "adg_api_vip")
            ipaddress.ip_address(str(vip))
        except (Unresolved, ValueError) as exc:
            found.append(
                Problem(
                    lbs[0], "adg_api_vip", f"must be the API's virtual IP address (lb hosts exist): {exc}"
                )
            )
    return found


@dataclass
class Deployment:
    """Everything the checks read, behind callbacks so tests can feed plain data.

    `resolve(host, var)` returns the value a host sees or raises Unresolved; `evaluate(host, expr)`
    evaluates a condition of the table there; `source(host, var)` names the variable a value is
    mapped from (vault_*), or ''; `controller_python(path)` returns the version of a controller
    interpreter or raises Unresolved; `resolve_name(name)` says whether a host name resolves.
    """

    components: list[Mapping[str, Any]]
    hosts: Mapping[str, HostState]
    groups: Mapping[str, list[str]]
    platforms: Mapping[str, Iterable[Any]]
    resolve: Callable[[str, str], Any]
    evaluate: Callable[[str, Any], bool]
    source: Callable[[str, str], str] = lambda host, var: ""
    controller_python: Callable[[str], str] = lambda path: ""
    resolve_name: Callable[[str], bool] = lambda name: False
    address_var: str = "adg_private_address"


def find_problems(deployment: Deployment) -> list[Problem]:
    """All problems of a deployment, sorted by host and variable, each reported once."""
    d = deployment
    found: list[Problem] = []

    for group in required_groups(d.components):
        if not d.groups.get(group):
            found.append(
                Problem(INVENTORY, f"groups['{group}']", "has no hosts (every tier needs at least one)")
            )

    # setting -> [(host, var, value)], for the consistency checks
    shared: dict[tuple[str, bool], list[tuple[str, str, Any]]] = {}
    sources: dict[tuple[str, str], str] = {}
    topology_ports = list(dict.fromkeys(v for c in d.components for v in c.get("ports", [])))
    for host in sorted(d.hosts):
        state = d.hosts[host]
        found += platform_problems(host, state, d.platforms)
        mine = components_for(d.components, state.groups, lambda expr, host=host: d.evaluate(host, expr))
        checks = checks_for(mine, lambda expr, host=host: d.evaluate(host, expr))
        for var, rule in checks.items():
            kind = rule.get("kind", "secret")
            source = sources[(host, var)] = d.source(host, var)
            try:
                value = d.resolve(host, var)
            except Unresolved as exc:
                if rule["required"]:
                    found.append(Problem(host, var, f"is not set: {exc}", source))
                continue
            if kind == "controller_python":
                found += _controller_python_problems(d, host, var, value, state)
                continue
            if kind == "local_address":
                found += [Problem(host, var, r) for r in local_address_reasons(value, state.facts)]
                continue
            for suffix, reason in value_problems(kind, value, rule):
                found.append(Problem(host, var + suffix, reason, source))
            if kind in SHARED_KINDS and value not in ("", None):
                key = (str(rule.get("shared_as", var)), kind in SENSITIVE_KINDS)
                shared.setdefault(key, []).append((host, var, value))
        host_ports: dict[str, Any] = {}
        for component in mine:
            for var in component.get("ports", []):
                if var in host_ports:
                    continue
                try:
                    host_ports[var] = d.resolve(host, var)
                except Unresolved as exc:
                    found.append(Problem(host, var, f"is not set: {exc}"))
        for var, value in host_ports.items():
            reason = port_reason(value)
            if reason:
                found.append(Problem(host, var, reason))
        found += port_collisions(host, host_ports)
        # every host reads every port of the topology (firewall rules, scrape targets, clients)
        for var in topology_ports:
            if var in checks:
                continue
            try:
                shared.setdefault((var, False), []).append((host, var, d.resolve(host, var)))
            except Unresolved:
                continue

    for (key, sensitive), entries in sorted(shared.items()):
        found += consistency_problems(key, entries, sensitive, sources)

    topology_hosts = sorted(
        {h for g in required_groups(d.components) for h in d.groups.get(g, [])} | set(d.hosts)
    )
    addresses: dict[str, Any] = {}
    for host in topology_hosts:
        try:
            addresses[host] = d.resolve(host, d.address_var)
        except Unresolved as exc:
            addresses[host] = exc
    found += address_problems(addresses, d.address_var, d.resolve_name)
    found += ha_topology_problems(d.groups, d.resolve)

    return sorted(set(found))


def _controller_python_problems(
    d: Deployment, host: str, var: str, path: Any, state: HostState
) -> list[Problem]:
    """The controller builds wheels for the host with `path`: both must run the same Python."""
    try:
        wanted = d.controller_python(str(path))
    except Unresolved as exc:
        return [Problem(host, var, f"cannot run on the controller: {exc}")]
    have = python_version(state.facts)
    if have is None or have == wanted:
        return []  # no facts: already reported by the platform checks
    return [
        Problem(
            host,
            var,
            f"the controller's interpreter runs Python {wanted} but this host runs {have} "
            "(wheels built on the controller must match the host's Python)",
        )
    ]


def report(problems: list[Problem]) -> str:
    """The one message a failed preflight prints."""
    hosts = sorted({p.host for p in problems})
    head = (
        f"Preflight found {len(problems)} problem(s) on {len(hosts)} host(s); the run stops before "
        "any host is changed. "
        "Fix them all and run again:"
    )
    return "\n".join([head] + ["  " + p.line() for p in problems])
