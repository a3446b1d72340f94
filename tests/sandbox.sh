#!/usr/bin/env bash
# The local sandbox: four systemd-nspawn test hosts (tests/sandbox-lab.yml) running the whole
# stack, deployed by playbooks/site.yml against inventories/sandbox. With `--topology ha`, the HA
# topology on nine hosts instead (tests/sandbox-lab-ha.yml: Patroni + etcd, Redis Sentinel,
# HAProxy + keepalived, a monitoring pair with VictoriaMetrics). One sandbox at a time.
#
#   tests/sandbox.sh up [--topology single|ha]   create hosts (idempotent), deploy stand-ins where
#                                                needed, run site.yml
#   tests/sandbox.sh down     power hosts off; remove machines, bridge and NAT rules
#   tests/sandbox.sh status   the sandbox's hosts
# Extra arguments after `up` go to ansible-playbook (e.g. `--tags backend`).
set -euo pipefail

ADG_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ADG_ROOT"
INVENTORY=inventories/sandbox
STATE=.sandbox
TESTHOSTS=(python3 tests/tools/testhosts/testhosts.py)
TOPOLOGIES=(single ha)
spec_of() { if [ "$1" = ha ]; then echo tests/sandbox-lab-ha.yml; else echo tests/sandbox-lab.yml; fi; }
lab_of() { sed -n 's/^lab: *//p' "$(spec_of "$1")"; }
# The sandbox that is up (its topology is remembered in .sandbox/topology), else the one asked for.
topology=$(cat "$STATE/topology" 2>/dev/null || echo single)

# Grafana and MongoDB come from vendor apt repositories. Use the real ones only when the role's
# repository URL resolves and answers from this controller; otherwise the test stand-ins.
# An explicit ADG_SANDBOX_{GRAFANA,MONGODB}_STANDIN=0/1 wins over the probe.
repo_reachable() {
  local defaults=$1 variable=$2
  python3 - "$defaults" "$variable" <<'PY'
import socket, sys, urllib.parse, urllib.request
import yaml
url = str(yaml.safe_load(open(sys.argv[1]))[sys.argv[2]])
host = urllib.parse.urlsplit(url).hostname
try:
    socket.getaddrinfo(host, 443)  # no name, no traffic
    urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=5)
except Exception:
    sys.exit(1)
PY
}

standin_flag() {
  local name=$1 defaults=$2 variable=$3 current=$4
  if [ -n "$current" ]; then echo "$current"; return; fi
  if repo_reachable "$defaults" "$variable"; then echo 0; else
    echo "[sandbox] $name vendor repository not reachable: using the test STAND-IN" >&2
    echo 1
  fi
}

start_webhook_receiver() {
  # The sandbox's Alertmanager delivers every alert to this receiver (no Slack/PagerDuty here).
  local port pidfile=$STATE/webhook.pid
  port=$(sed -n 's/^adg_sandbox_webhook_port: *//p' "$INVENTORY/group_vars/all/main.yml")
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then return; fi
  setsid python3 tests/molecule/fault_drills/webhook_receiver.py --listen "$gateway" --port "$port" \
    >>"$STATE/alerts.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  echo "[sandbox] alert webhook receiver on $gateway:$port, log $STATE/alerts.log"
}

stop_webhook_receiver() {
  local pidfile=$STATE/webhook.pid
  [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  rm -f "$pidfile"
}

cmd=${1:-up}
[ $# -gt 0 ] && shift
if [ "$cmd" = up ]; then
  wanted=single
  if [ "${1:-}" = --topology ]; then wanted=${2:-}; shift 2 || { echo "--topology needs a value" >&2; exit 2; }; fi
  case " ${TOPOLOGIES[*]} " in *" $wanted "*) ;; *) echo "--topology: one of ${TOPOLOGIES[*]}, not '$wanted'" >&2; exit 2 ;; esac
  if [ -f "$INVENTORY/hosts.generated.yml" ] && [ "$topology" != "$wanted" ]; then
    echo "the $topology sandbox is up: run '$0 down' first (one sandbox at a time)" >&2
    exit 2
  fi
  topology=$wanted
fi
SPEC=$(spec_of "$topology")
lab=$(lab_of "$topology")
gateway=$(sed -n 's/^subnet: *\([0-9.]*\)\.0\/.*/\1.1/p' "$SPEC")

case "$cmd" in
  up)
    # shellcheck source=tests/tools/bootstrap.sh
    . tests/tools/bootstrap.sh
    mkdir -p "$STATE" && chmod 0700 "$STATE"
    echo "$topology" >"$STATE/topology"
    "${TESTHOSTS[@]}" create --spec "$SPEC" --inventory "$INVENTORY/hosts.generated.yml"
    ADG_SANDBOX_GRAFANA_STANDIN=$(standin_flag Grafana roles/grafana/defaults/main.yml grafana_apt_repo_url "${ADG_SANDBOX_GRAFANA_STANDIN:-}")
    ADG_SANDBOX_MONGODB_STANDIN=$(standin_flag MongoDB roles/mongodb/defaults/main.yml mongodb_repo_url "${ADG_SANDBOX_MONGODB_STANDIN:-}")
    export ADG_SANDBOX_GRAFANA_STANDIN ADG_SANDBOX_MONGODB_STANDIN
    start_webhook_receiver
    if [ "$ADG_SANDBOX_MONGODB_STANDIN" = 1 ]; then
      ansible-playbook -i "$INVENTORY" tests/molecule/standins/mongodb_nx27017.yml
    fi
    if [ "$ADG_SANDBOX_GRAFANA_STANDIN" = 1 ]; then
      ansible-playbook -i "$INVENTORY" tests/molecule/standins/grafana_double.yml
    fi
    ansible-playbook -i "$INVENTORY" playbooks/site.yml "$@"
    ;;
  down)
    stop_webhook_receiver
    "${TESTHOSTS[@]}" destroy --lab "$lab"
    rm -f "$INVENTORY/hosts.generated.yml" "$STATE/topology"
    # Facts cached for these hosts (ansible.cfg: jsonfile, 2 h) would describe machines that no
    # longer exist, and a new sandbox would skip gathering its own.
    sed -n 's/^ *- name: *//p' "$SPEC" | while read -r host; do rm -f ".cache/facts/$host"; done
    ;;
  status)
    "${TESTHOSTS[@]}" status --lab "$lab"
    ;;
  *)
    echo "usage: $0 up [--topology single|ha] [ansible-playbook args] | down | status" >&2
    exit 2
    ;;
esac
