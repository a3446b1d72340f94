"""Filters for the common role's nftables firewall: normalise the firewall_allow_* lists."""

from __future__ import annotations

import ipaddress

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: firewall_rules
short_description: Turn firewall allow lists into sorted, de-duplicated nftables rules
description:
  - Takes a mapping of allow-list name (for example C(firewall_allow_postgres)) to a list of entries
    C({port, proto, to_groups, from_groups, from_cidrs}) and returns one rule per entry, with the
    sources resolved to IPv4 and IPv6 networks, sorted and de-duplicated.
  - C(proto) is C(tcp) (the default), C(udp), or C(vrrp) (IP protocol 112, keepalived's adverts); a
    C(vrrp) entry has no C(port) (its rule's C(port) is null), every other entry needs one.
  - C(from_groups) are resolved through O(group_members) and O(host_addresses) (a host's private
    address); C(from_cidrs) are taken as they are. An entry needs at least one of them.
  - An entry with C(to_groups) applies only to a host in one of those groups (O(host_groups)); without
    it, to every host.
  - A group without members yields a rule with no sources (rendered as a comment, so nothing is opened).
  - Unknown keys, a port outside 1-65535, a protocol other than C(tcp)/C(udp)/C(vrrp), a missing port
    (or one given to C(vrrp)), a host without an address or a source that is not an IP address or
    CIDR are errors, never a silently open port.
positional: group_members, host_addresses, host_groups
options:
  _input:
    description: Allow-list name to a list of entries (a null list is skipped).
    type: dict
    required: true
  group_members:
    description: Group name to the names of its hosts (for example built from C(groups)).
    type: dict
    required: true
  host_addresses:
    description: Host name to the address its peers reach it at.
    type: dict
    required: true
  host_groups:
    description: Groups of the host the rules are for (C(group_names)); when omitted, C(to_groups) is ignored.
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Rules of this host, from every firewall_allow_* variable
  ansible.builtin.set_fact:
    firewall_rules: >-
      {{ allow | autodealgenie.ops.firewall_rules(members, addresses, group_names) }}
  vars:
    allow:
      firewall_allow_postgres:
        - {port: 5432, from_groups: [app, monitoring], to_groups: [postgres]}
      firewall_allow_ssh:
        - {port: 22, from_cidrs: [10.0.0.0/8, "fd00::/8"]}
    members: {app: [app1], monitoring: [mon1]}
    addresses: {app1: 10.1.0.11, mon1: 10.1.0.5}
# On a host of group postgres:
#   - {name: firewall_allow_postgres, port: 5432, proto: tcp, ipv4: [10.1.0.5/32, 10.1.0.11/32], ipv6: []}
#   - {name: firewall_allow_ssh, port: 22, proto: tcp, ipv4: [10.0.0.0/8], ipv6: ["fd00::/8"]}
# VRRP between the load balancers (IP protocol 112, no port): the entry
# {proto: vrrp, from_groups: [lb], to_groups: [lb]} gives, on an lb host,
# {name: firewall_allow_vrrp, port: null, proto: vrrp, ipv4: [<the lb hosts>/32], ipv6: []}
"""

RETURN = r"""
_value:
  description:
    - One rule per applicable entry, ordered by allow-list name then entry, each
      C({name, port, proto, ipv4, ipv6}) with the source networks sorted; C(port) is null for C(vrrp).
  type: list
  elements: dict
"""

_ENTRY_KEYS = {"port", "proto", "to_groups", "from_groups", "from_cidrs"}
# Protocols with ports, and IP protocols matched without one (VRRP: IP protocol 112).
_PORT_PROTOS = ("tcp", "udp")
_PORTLESS_PROTOS = ("vrrp",)


def _port(value, where):
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"{where}: port {value!r} is not a number") from None
    if not 1 <= port <= 65535:
        raise AnsibleFilterError(f"{where}: port {port} is outside 1-65535")
    return port


def firewall_rules(allow_lists, group_members, host_addresses, host_groups=None):
    """Turn ``{firewall_allow_<name>: [entries]}`` into sorted, de-duplicated nftables rules.

    Each entry is ``{port, proto (tcp|udp|vrrp, default tcp; vrrp has no port), to_groups: [...],
    from_groups: [...], from_cidrs: [...]}``. An entry with ``to_groups`` applies only to a host in
    one of them (``host_groups``: the host's group names); without it, to every host.
    ``group_members`` maps group -> host names, ``host_addresses`` host -> private address.
    Returns ``[{name, port, proto, ipv4: [...], ipv6: [...]}]``; an entry whose groups are empty
    yields a rule with no sources (rendered as a comment: nothing is opened).
    """
    rules = []
    for name in sorted(allow_lists):
        entries = allow_lists[name]
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise AnsibleFilterError(f"{name}: not a list of {{port, from_groups, from_cidrs}}")
        for index, entry in enumerate(entries):
            where = f"{name}[{index}]"
            if not isinstance(entry, dict) or (
                "port" not in entry and entry.get("proto") not in _PORTLESS_PROTOS
            ):
                raise AnsibleFilterError(f"{where}: expected a mapping with at least 'port'")
            unknown = set(entry) - _ENTRY_KEYS
            if unknown:
                raise AnsibleFilterError(f"{where}: unknown keys {sorted(unknown)}")
            to_groups = entry.get("to_groups")
            if to_groups is not None:
                if not isinstance(to_groups, list):
                    raise AnsibleFilterError(f"{where}: to_groups must be a list")
                if host_groups is not None and not set(map(str, to_groups)) & set(map(str, host_groups)):
                    continue
            proto = str(entry.get("proto", "tcp"))
            if proto not in _PORT_PROTOS + _PORTLESS_PROTOS:
                raise AnsibleFilterError(f"{where}: proto must be tcp, udp or vrrp, not {proto!r}")
            if proto in _PORTLESS_PROTOS and "port" in entry:
                raise AnsibleFilterError(f"{where}: proto {proto} has no port (an IP protocol, not TCP/UDP)")
            groups = entry.get("from_groups") or []
            cidrs = entry.get("from_cidrs") or []
            if not isinstance(groups, list) or not isinstance(cidrs, list):
                raise AnsibleFilterError(f"{where}: from_groups and from_cidrs must be lists")
            if not groups and not cidrs:
                raise AnsibleFilterError(f"{where}: give from_groups and/or from_cidrs ")
            sources = []
            for group in groups:
                for host in group_members.get(str(group), []):
                    address = host_addresses.get(host)
                    if not address:
                        raise AnsibleFilterError(f"{where}: host {host} (group {group}): no private address")
                    sources.append(str(address))
            sources += [str(c) for c in cidrs]
            networks = set()
            for source in sources:
                try:
                    networks.add(ipaddress.ip_network(source, strict=False))
                except ValueError:
                    raise AnsibleFilterError(f"{where}: {source!r} is not an IP address or CIDR") from None
            rules.append(
                {
                    "name": name,
                    "port": _port(entry["port"], where) if proto in _PORT_PROTOS else None,
                    "proto": proto,
                    "ipv4": [str(n) for n in sorted(n for n in networks if n.version == 4)],
                    "ipv6": [str(n) for n in sorted(n for n in networks if n.version == 6)],
                }
            )
    return rules


class FilterModule:
    def filters(self):
        return {"firewall_rules": firewall_rules}
