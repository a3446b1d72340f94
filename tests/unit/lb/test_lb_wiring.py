"""The load-balancer tier (issue 12) as the project wires it (playbooks/defaults/lb.yml, topology.yml):
what the haproxy and keepalived roles are handed on lb hosts, the haproxy.cfg and keepalived.conf
they render from it, the VRRP firewall rule, and what the app trusts with and without lb hosts.

Local-connection hosts, no facts (every host has private_ip): nothing is contacted. The nftables
file with the VRRP rule is parsed by `nft -c` when the controller can (root with nft installed).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")

HA_HOSTS = """\
all:
  children:
    lb: {hosts: {lb1: {private_ip: 10.30.0.11}, lb2: {private_ip: 10.30.0.12}}}
    app: {hosts: {app1: {private_ip: 10.30.0.21}, app2: {private_ip: 10.30.0.22}}}
    postgres: {hosts: {db1: {private_ip: 10.30.0.31}}}
    redis: {hosts: {db1: {}}}
    mongodb: {hosts: {db1: {}}}
    monitoring: {hosts: {mon1: {private_ip: 10.30.0.41}}}
  vars:
    ansible_connection: local
    adg_api_vip: 10.30.0.100
    vault_keepalived_auth_pass: Zq8rT2vX
    ansible_facts: {default_ipv4: {interface: eth0, address: 0.0.0.0}}
"""
SINGLE_HOSTS = """\
all:
  children:
    app: {hosts: {app1: {private_ip: 10.30.0.21}}}
    postgres: {hosts: {db1: {private_ip: 10.30.0.31}}}
    redis: {hosts: {db1: {}}}
    mongodb: {hosts: {db1: {}}}
    monitoring: {hosts: {mon1: {private_ip: 10.30.0.41}}}
  vars:
    ansible_connection: local
"""

SHOW = """\
- name: Render the lb tier's files and show its values
  hosts: all
  gather_facts: false
  vars:
    out: "{{ playbook_dir }}/out/{{ inventory_hostname }}"
  tasks:
    - name: Output directory
      ansible.builtin.file:
        path: "{{ out }}"
        state: directory
        mode: "0700"
      delegate_to: localhost
    - name: Render haproxy.cfg and keepalived.conf (lb hosts)
      ansible.builtin.template:
        src: "{{ repo }}/roles/{{ item.role }}/templates/{{ item.name }}.j2"
        dest: "{{ out }}/{{ item.name }}"
        mode: "0600"
      loop:
        - {role: haproxy, name: haproxy.cfg}
        - {role: keepalived, name: keepalived.conf}
      vars:
        haproxy_maxconn: 4096
        haproxy_admin_socket: /run/haproxy/admin.sock
        haproxy_log_requests: true
        haproxy_check_inter_ms: 1000
        haproxy_check_fall: 3
        haproxy_check_rise: 2
        haproxy_check_timeout_ms: 1000
        haproxy_server_state_backend: api
        haproxy_retries: 2
        haproxy_timeout_connect_ms: 2000
        haproxy_timeout_client_s: 30
        haproxy_timeout_server_s: 30
        keepalived_interface: eth0
        keepalived_vip_prefix: 32
        keepalived_virtual_router_id: 51
        keepalived_advert_int: 1
        keepalived_preempt: true
        keepalived_track_service: haproxy.service
        keepalived_check_interval: 1
        keepalived_check_fall: 2
        keepalived_check_rise: 2
      when: "'lb' in group_names"
      delegate_to: localhost
    - name: Render nftables.conf (the common role's template with this host's rules)
      ansible.builtin.template:
        src: "{{ repo }}/roles/common/templates/nftables.conf.j2"
        dest: "{{ out }}/nftables.conf"
        mode: "0600"
      vars:
        common_firewall_allow_icmp: true
        common_firewall_ssh_from_cidrs: []
        common_firewall_ssh_port: 22
        common_firewall_forward_policy: drop
        _common_firewall_rules: >-
          {{ {'firewall_allow_vrrp': firewall_allow_vrrp,
              'firewall_allow_backend_api': firewall_allow_backend_api}
             | autodealgenie.ops.firewall_rules(
                 {'lb': groups['lb'] | default([]), 'monitoring': groups['monitoring'], 'app': groups['app']},
                 dict(groups['all'] | zip(groups['all'] | map('extract', hostvars, 'adg_private_address'))),
                 group_names) }}
      delegate_to: localhost
    - name: Values
      ansible.builtin.debug:
        msg:
          adg_load_balancer_cidrs: "{{ adg_load_balancer_cidrs }}"
          adg_api_vip_url: "{{ adg_api_vip_url }}"
          backend_trusted_proxy_cidrs: "{{ backend_trusted_proxy_cidrs }}"
          backend_trusted_proxy_count: "{{ backend_trusted_proxy_count | int }}"
          lb: >-
            {{ {'bind': haproxy_api_bind_addresses, 'servers': haproxy_backend_servers,
                'priority': keepalived_priority | int, 'peers': keepalived_unicast_peers,
                'vip': keepalived_vip, 'auth': keepalived_auth_pass | length}
               if 'lb' in group_names else {} }}
"""


def run(tmp_path: Path, hosts: str) -> tuple[dict[str, dict], Path]:
    (tmp_path / "hosts.yml").write_text(hosts)
    (tmp_path / "show.yml").write_text(SHOW)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    result = subprocess.run(
        [str(PLAYBOOK), "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "show.yml"), "-e", f"repo={REPO}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    document, _ = json.JSONDecoder().raw_decode(result.stdout[result.stdout.index("\n{") + 1 :])
    task = document["plays"][0]["tasks"][-1]
    return {host: r["msg"] for host, r in task["hosts"].items()}, tmp_path / "out"


@pytest.fixture(scope="module")
def ha(tmp_path_factory):
    return run(tmp_path_factory.mktemp("ha"), HA_HOSTS)


def test_the_app_trusts_exactly_the_lb_hosts(ha):
    values, _ = ha
    for host in ("app1", "app2"):
        assert values[host]["adg_load_balancer_cidrs"] == ["10.30.0.11/32", "10.30.0.12/32"]
        assert values[host]["backend_trusted_proxy_cidrs"] == ["10.30.0.11/32", "10.30.0.12/32"]
        assert values[host]["backend_trusted_proxy_count"] == 1
    assert values["app1"]["adg_api_vip_url"] == "http://10.30.0.100:80"


def test_without_lb_hosts_clients_connect_directly(tmp_path):
    values, _ = run(tmp_path, SINGLE_HOSTS)
    assert values["app1"]["adg_load_balancer_cidrs"] == []
    assert values["app1"]["backend_trusted_proxy_count"] == 0
    assert values["app1"]["adg_api_vip_url"] == ""


def test_lb_hosts_get_vip_peers_and_priorities_by_host_order(ha):
    values, _ = ha
    lb1, lb2 = values["lb1"]["lb"], values["lb2"]["lb"]
    assert lb1["bind"] == ["10.30.0.100", "10.30.0.11"] and lb2["bind"] == ["10.30.0.100", "10.30.0.12"]
    assert lb1["peers"] == ["10.30.0.12"] and lb2["peers"] == ["10.30.0.11"]
    assert lb1["priority"] > lb2["priority"]
    assert lb1["vip"] == "10.30.0.100" and lb1["auth"] == 8
    assert lb1["servers"] == [
        {"name": "app1", "address": "10.30.0.21", "port": 8000},
        {"name": "app2", "address": "10.30.0.22", "port": 8000},
    ]


def test_haproxy_cfg_checks_the_liveness_path_and_forwards_the_client(ha):
    _, out = ha
    cfg = (out / "lb1/haproxy.cfg").read_text()
    assert "bind 10.30.0.100:80" in cfg and "bind 10.30.0.11:80" in cfg
    assert "http-check send meth GET uri /api/v1/health" in cfg
    assert re.search(r"default-server check inter 1000 fall 3 rise 2", cfg)
    assert "server app1 10.30.0.21:8000" in cfg and "server app2 10.30.0.22:8000" in cfg
    for line in ("option forwardfor", "option redispatch 1", "retries 2", "level admin"):
        assert line in cfg
    # POSTs are never retried once they may have reached a server
    assert "http-request disable-l7-retry unless METH_GET || METH_HEAD || METH_OPTIONS" in cfg
    assert "http-request use-service prometheus-exporter if { path /metrics }" in cfg
    assert "bind 10.30.0.11:8405" in cfg
    if shutil.which("haproxy"):
        check = subprocess.run(
            ["haproxy", "-c", "-f", str(out / "lb1/haproxy.cfg")], capture_output=True, check=False
        )
        assert check.returncode == 0, check.stderr


def test_keepalived_conf_is_unicast_and_tracks_haproxy(ha):
    _, out = ha
    conf = (out / "lb2/keepalived.conf").read_text()
    assert "unicast_src_ip 10.30.0.12" in conf
    assert re.search(r"unicast_peer \{\s+10\.30\.0\.11\s+\}", conf)
    assert "10.30.0.100/32 dev eth0" in conf and "advert_int 1" in conf
    assert "systemctl is-active --quiet haproxy.service" in conf
    assert "auth_pass Zq8rT2vX" in conf


def test_vrrp_is_open_between_the_lb_hosts_only(ha):
    _, out = ha
    lb = (out / "lb1/nftables.conf").read_text()
    assert (
        'ip saddr { 10.30.0.11/32, 10.30.0.12/32 } meta l4proto vrrp accept comment "firewall_allow_vrrp"'
        in lb
    )
    app = (out / "app1/nftables.conf").read_text()
    assert "vrrp" not in app
    # the API port on the app hosts is open to the load balancers
    assert re.search(r"ip saddr \{[^}]*10\.30\.0\.11/32[^}]*\} tcp dport 8000 accept", app)
    if os.geteuid() == 0 and shutil.which("nft"):
        check = subprocess.run(
            ["nft", "-c", "-f", str(out / "lb1/nftables.conf")], capture_output=True, check=False
        )
        assert check.returncode == 0, check.stderr
