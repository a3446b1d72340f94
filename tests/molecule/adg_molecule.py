"""Helpers for molecule testinfra tests (on PYTHONPATH via .config/molecule/config.yml).

Tests run on the controller. Network probes from here target only the lab's test hosts.
"""

from __future__ import annotations

import functools
import socket
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
TOPOLOGY = REPO / "playbooks" / "defaults" / "topology.yml"


@functools.cache
def topology() -> dict:
    """The project's shared facts (ports, group names); literal values only, not templated."""
    return yaml.safe_load(TOPOLOGY.read_text())


def port(name: str) -> int:
    """A port from topology.yml, e.g. port("node_exporter_port")."""
    return int(topology()[name])


def private_ip(host) -> str:
    """The test host's private address: its ansible_host on the lab bridge.

    (Inventory variables reach tests untemplated; tests/molecule/group_vars/all/testhosts.yml sets
    private_ip to "{{ ansible_host }}".)
    """
    return str(host.ansible.get_variables()["ansible_host"])


def tcp_probe(address: str, port_number: int, timeout: float = 2.0) -> str:
    """Connect from the controller: 'open', 'refused' (RST) or 'filtered' (no answer)."""
    try:
        with socket.create_connection((address, port_number), timeout=timeout):
            return "open"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "filtered"
    except OSError as exc:  # e.g. EHOSTUNREACH from an ICMP reject
        return f"error: {exc}"


def remote_tcp_probe(host, address: str, port_number: int, timeout: float = 2.0) -> str:
    """Connect from inside a test host (python3 is in every test image); same results as tcp_probe."""
    script = (
        "import socket,sys\n"
        "try:\n"
        f"    socket.create_connection(({address!r}, {port_number}), timeout={timeout}).close()\n"
        "    print('open')\n"
        "except ConnectionRefusedError: print('refused')\n"
        "except TimeoutError: print('filtered')\n"
        "except OSError as e: print('error: %s' % e)\n"
    )
    return host.check_output("python3 -c %s", script).strip()
