#!/usr/bin/env bash
# Installs what the controller needs to run the sandbox and the tests: Debian packages and a
# pinned Python venv in .venv. Safe to run repeatedly: it only installs what is missing.
# Source it (`. tests/tools/bootstrap.sh`) to get the venv on PATH afterwards: the install then runs
# in a child bash, so `set -e` holds inside it and the caller's shell options stay its own.

ADG_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ADG_VENV="${ADG_VENV:-$ADG_ROOT/.venv}"

# Controller packages. The servers among them (PostgreSQL, Redis, Prometheus, Alertmanager,
# exporters) are used as binaries by tests that start private instances on loopback ports;
# their system services are kept from starting on install and disabled afterwards.
ADG_APT_PACKAGES=(
  python3 python3-venv python3-dev gcc git openssh-client rsync curl ca-certificates gpg
  systemd-container debootstrap nftables iproute2
  postgresql redis-server
  prometheus prometheus-alertmanager prometheus-node-exporter
  prometheus-postgres-exporter prometheus-redis-exporter
  wrk
)
ADG_SERVICES_NOT_ON_CONTROLLER=(
  postgresql redis-server prometheus prometheus-alertmanager prometheus-node-exporter
  prometheus-postgres-exporter prometheus-redis-exporter
)

adg_log() { printf '[bootstrap] %s\n' "$*" >&2; }

adg_require_root() {
  if [ "$(id -u)" -ne 0 ]; then
    adg_log "run as root: test hosts need systemd-nspawn, a bridge and NAT rules"
    return 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    adg_log "this needs a Debian or Ubuntu controller (apt-get not found)"
    return 1
  fi
}

adg_install_packages() {
  local missing=() pkg
  for pkg in "${ADG_APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && { adg_log "Debian packages: all present"; return 0; }
  adg_log "installing Debian packages: ${missing[*]}"
  # A policy-rc.d that answers 101 keeps the packages' postinst from starting services with their
  # default settings (several listen on all interfaces) on this machine.
  local policy=/usr/sbin/policy-rc.d had_policy=0
  [ -e "$policy" ] && had_policy=1
  if [ "$had_policy" -eq 0 ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
  fi
  local rc=0
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
  [ "$had_policy" -eq 0 ] && rm -f "$policy"
  [ "$rc" -eq 0 ] || { adg_log "apt-get install failed ($rc)"; return "$rc"; }
  if [ -d /run/systemd/system ]; then
    local unit
    for unit in "${ADG_SERVICES_NOT_ON_CONTROLLER[@]}"; do
      systemctl disable --now "$unit" >/dev/null 2>&1 || true
    done
  fi
}

adg_install_venv() {
  local stamp="$ADG_VENV/.requirements.sha256" want
  want=$(cat "$ADG_ROOT/requirements.txt" "$ADG_ROOT/app/pyproject.toml" 2>/dev/null | sha256sum | cut -d' ' -f1)
  if [ -x "$ADG_VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    adg_log "Python venv: up to date ($ADG_VENV)"
    return 0
  fi
  adg_log "building Python venv in $ADG_VENV"
  python3 -m venv "$ADG_VENV"
  # pip reads this machine's own index configuration (pip.conf, PIP_* variables).
  "$ADG_VENV/bin/pip" install -q --upgrade pip
  "$ADG_VENV/bin/pip" install -q -r "$ADG_ROOT/requirements.txt"
  if [ -f "$ADG_ROOT/app/pyproject.toml" ]; then
    "$ADG_VENV/bin/pip" install -q -e "$ADG_ROOT/app[test]"
  fi
  echo "$want" >"$stamp"
}

# This checkout is the collection autodealgenie.ops; ansible.cfg finds it through this link (the
# same layout `ansible-galaxy collection install` makes), so everything resolves by FQCN.
adg_link_collection() {
  local parent="$ADG_ROOT/.cache/collections/ansible_collections/autodealgenie"
  mkdir -p "$parent"
  [ "$(readlink "$parent/ops" 2>/dev/null)" = "$ADG_ROOT" ] || ln -sfn "$ADG_ROOT" "$parent/ops"
}

adg_use_venv() {
  export PATH="$ADG_VENV/bin:$PATH"
  export ANSIBLE_CONFIG="$ADG_ROOT/ansible.cfg"
  adg_use_mitogen
}

# The sandbox and the tests run plays with Mitogen's linear strategy (mitogen, pinned in
# requirements.txt): same results, faster converges (docs/performance.md).
# ADG_MITOGEN=0 keeps ansible-core's own linear strategy; an ANSIBLE_STRATEGY already set wins.
adg_use_mitogen() {
  [ "${ADG_MITOGEN:-1}" = 0 ] && return 0
  [ -n "${ANSIBLE_STRATEGY:-}" ] && return 0
  local plugins
  plugins=$("$ADG_VENV/bin/python" -c 'import ansible_mitogen, os; print(os.path.dirname(ansible_mitogen.__file__))' 2>/dev/null) || {
    adg_log "mitogen is not in the venv: plays run with ansible-core's linear strategy"
    return 0
  }
  export ANSIBLE_STRATEGY_PLUGINS="$plugins/plugins/strategy" ANSIBLE_STRATEGY=mitogen_linear
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  adg_require_root
  adg_install_packages
  adg_install_venv
  adg_link_collection
else
  # Not `adg_install_packages || return`: bash ignores set -e in a function called from `||`.
  ADG_VENV="$ADG_VENV" bash "${BASH_SOURCE[0]}" || return $?
  adg_use_venv
fi
