#!/usr/bin/env bash
# The project's whole test suite: lint, unit tests, rule and route unit tests, module integration
# tests against real Prometheus/Alertmanager, the app's tests against real PostgreSQL/Redis, and
# every molecule scenario on local systemd-nspawn test hosts. Installs what it needs first.
#
#   tests/run-all.sh                  everything
#   tests/run-all.sh lint unit        only the named steps (see ADG_STEPS below)
#   ADG_SCENARIOS="common data" tests/run-all.sh molecule      those scenarios, one after the other
#   ADG_MOLECULE_LANES="default|common data" tests/run-all.sh molecule   lanes run side by side
set -uo pipefail

ADG_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ADG_ROOT"
# shellcheck source=tests/tools/bootstrap.sh
. "$ADG_ROOT/tests/tools/bootstrap.sh" || exit 1

ADG_STEPS=(lint unit app rules routes modules collection tls molecule)
export ANSIBLE_FORCE_COLOR=0 PY_COLORS=0

step_lint() {
  yamllint --strict . &&
    ansible-lint &&
    ruff check . &&
    ruff format --check . &&
    python tests/tools/argspec_drift.py
}

step_unit() {
  python -m pytest -q tests/unit
}

step_app() {
  (cd app && python -m pytest -q)
}

step_rules() {
  bash tests/integration/promtool/run.sh
}

step_routes() {
  bash tests/integration/amtool/run.sh
}

step_modules() {
  python -m pytest -q tests/integration/modules tests/integration/monitoring
}

# The built tarball installed into an empty collections path and used from outside the repo.
step_collection() {
  python -m pytest -q tests/integration/collection
}

# The pki role on a fresh test host: keys, certificates, renewal, rotation, bring-your-own refusals,
# and a TLS server serving with what it installed.
step_tls() {
  python -m pytest -q tests/integration/tls
}

# Scenarios run in lanes: the lanes run at the same time, each scenario on its own lab and subnet,
# and a lane runs its scenarios in order. `default` (the whole stack) has a lane to itself: it is the
# longest, and most of its verify waits on alert timings. One lane ("a b c") runs them in turn.
ADG_MOLECULE_LANES="${ADG_MOLECULE_LANES:-default preflight|common data monitoring data-trixie monitoring-trixie}"
# Scenarios the lanes above leave out because they do not fit CI's budget beside the others (the
# nine-host `ha` scenario's steps measured 16-41 min on 2 cores; see CHANGELOG 1.5.1). Run them on their
# own: ADG_SCENARIOS=ha tests/run-all.sh molecule
ADG_MOLECULE_OUTSIDE_LANES="ha"

run_scenario() {
  local scenario=$1 log=$2 started=$SECONDS rc
  # molecule_phases.py passes the output through and ends it with each action's time
  molecule test -s "$scenario" 2>&1 | python tests/tools/molecule_phases.py "$scenario" >"$log"
  rc=${PIPESTATUS[0]}
  echo "$scenario $rc $((SECONDS - started))" >"$log.result"
  # progress while the lanes run; the whole output follows when all are done
  echo "--- molecule $scenario finished: rc $rc in $((SECONDS - started)) s"
  return "$rc"
}

# CPU time of the whole machine (test hosts included: they share the kernel), in jiffies.
cpu_ticks() { # prints "busy idle iowait"
  local _cpu user nice system idle iowait irq softirq steal _rest
  read -r _cpu user nice system idle iowait irq softirq steal _rest </proc/stat
  echo "$((user + nice + system + irq + softirq + steal)) $idle $iowait"
}

cpu_share() { # "busy idle iowait" then, later, another: prints "busy% iowait%" between them
  local a b
  read -ra a <<<"$1"
  read -ra b <<<"$2"
  local busy=$((b[0] - a[0])) wait=$((b[2] - a[2])) total=$((b[0] + b[1] + b[2] - a[0] - a[1] - a[2]))
  [ "$total" -gt 0 ] || total=1
  echo "$((100 * busy / total)) $((100 * wait / total))"
}

# Whether the lanes are short of CPU or waiting: the machine's busy share, one figure a minute.
sample_cpu() { # file
  local last now share
  last="$(cpu_ticks)"
  while sleep 60; do
    now="$(cpu_ticks)"
    read -ra share <<<"$(cpu_share "$last" "$now")"
    printf '%s ' "${share[0]}" >>"$1"
    last=$now
  done
}

step_molecule() {
  local lanes lane scenario rc=0 started=$SECONDS cpu_start sampler
  cpu_start="$(cpu_ticks)"
  # Build (or confirm cached) the test-host images once, before scenarios race for them.
  python tests/tools/testhosts/testhosts.py image || return 1
  python tests/tools/testhosts/testhosts.py image --suite trixie || return 1
  # ADG_SCENARIOS (if set) picks scenarios and runs them in one lane.
  if [ -n "${ADG_SCENARIOS:-}" ]; then lanes=("$ADG_SCENARIOS"); else IFS='|' read -ra lanes <<<"$ADG_MOLECULE_LANES"; fi
  local logs pids=()
  logs="$(mktemp -d)"
  for lane in "${lanes[@]}"; do
    (for scenario in $lane; do run_scenario "$scenario" "$logs/$scenario.log"; done) &
    pids+=($!)
  done
  echo "molecule: ${#lanes[@]} lane(s): $(printf '[%s] ' "${lanes[@]}")"
  sample_cpu "$logs/cpu-per-minute" &
  sampler=$!
  wait "${pids[@]}"
  kill "$sampler" 2>/dev/null
  # Each scenario's whole output, one after the other, then its result and time.
  for lane in "${lanes[@]}"; do
    for scenario in $lane; do
      echo "--- molecule test -s $scenario"
      [ -f "$logs/$scenario.log" ] && cat "$logs/$scenario.log"
      local result=()
      read -ra result <"$logs/$scenario.log.result" 2>/dev/null || result=("$scenario" 1 0)
      [ "${result[1]}" -eq 0 ] || rc=1
      echo "--- molecule $scenario: ${result[2]} s (rc ${result[1]})"
      printf '  molecule %-17s %5d s\n' "$scenario" "${result[2]}" >>"$step_logs/scenario-times"
      grep -h -- "^--- molecule $scenario phases: " "$logs/$scenario.log" | sed 's/^--- molecule [^ ]* phases: /    /' >>"$step_logs/scenario-times"
    done
  done
  local share
  read -ra share <<<"$(cpu_share "$cpu_start" "$(cpu_ticks)")"
  {
    echo "  molecule CPU: busy ${share[0]} %, iowait ${share[1]} % of $(nproc) cores over the step"
    echo "    busy % per minute: $(cat "$logs/cpu-per-minute" 2>/dev/null)"
  } >>"$step_logs/scenario-times"
  rm -rf "$logs"
  echo "--- molecule: $((SECONDS - started)) s wall clock for ${#lanes[@]} lane(s)"
  return "$rc"
}

selected=("$@")
[ ${#selected[@]} -eq 0 ] && selected=("${ADG_STEPS[@]}")

for step in "${selected[@]}"; do
  if ! declare -F "step_$step" >/dev/null; then
    echo "unknown step '$step' (steps: ${ADG_STEPS[*]})" >&2
    exit 2
  fi
done

# Each step's output is kept so the summary can repeat why a step failed: CI often shows only the
# tail of a long log, and the failure itself scrolls out of it.
step_logs="$(mktemp -d)"
trap 'rm -rf "$step_logs"' EXIT

why_failed() {
  local log="$1" reasons
  reasons="$(grep -E '^(FAILED|ERROR) |^E  |fatal: |FAILED! |^ERROR|[Ee]rror: |^--- FAIL|failed=[1-9]' "$log" | tail -n 40)"
  if [ -n "$reasons" ]; then
    printf '%s\n' "$reasons"
  else
    tail -n 25 "$log"
  fi
}

# Steps that need no test hosts run beside the molecule step, not before it: they use one core at a
# time, and molecule's lanes leave room while they wait on alert timings (docs/performance.md, CI lanes).
# ADG_SERIAL=1 runs every step in turn, as `tests/run-all.sh <step>` does for a step named alone.
passed=0 failed=0 summary=() failures=() run_started=$SECONDS

record() { # step rc seconds
  if [ "$2" -eq 0 ]; then
    passed=$((passed + 1)) result=ok
  else
    failed=$((failed + 1)) result=FAILED failures+=("$1")
  fi
  summary+=("$(printf '%-10s %-7s %5d s' "$1" "$result" "$3")")
}

run_step() { # runs a step in the foreground, its output on the terminal and in its log
  local step=$1 started=$SECONDS
  echo "=== $step"
  "step_$step" 2>&1 | tee "$step_logs/$step.log"
  record "$step" "${PIPESTATUS[0]}" $((SECONDS - started))
}

beside=()
if [ "${ADG_SERIAL:-0}" != 1 ] && [ ${#selected[@]} -gt 1 ] && [[ " ${selected[*]} " == *" molecule "* ]]; then
  for step in "${selected[@]}"; do [ "$step" = molecule ] || beside+=("$step"); done
fi

if [ ${#beside[@]} -eq 0 ]; then
  for step in "${selected[@]}"; do run_step "$step"; done
else
  echo "=== molecule starts; beside it, in turn: ${beside[*]}"
  molecule_started=$SECONDS
  step_molecule >"$step_logs/molecule.log" 2>&1 &
  molecule_pid=$!
  for step in "${beside[@]}"; do run_step "$step"; done
  echo "=== molecule (its output from the start; it began $((SECONDS - molecule_started)) s ago)"
  # tail ends within a second of molecule; wait then hands over molecule's exit status
  tail -n +1 --pid="$molecule_pid" -f "$step_logs/molecule.log"
  wait "$molecule_pid"
  record molecule $? $((SECONDS - molecule_started))
fi

for step in "${failures[@]}"; do
  echo
  echo "=== why $step failed"
  why_failed "$step_logs/$step.log"
done

echo
echo "=== summary"
printf '%s\n' "${summary[@]}"
[ -f "$step_logs/scenario-times" ] && cat "$step_logs/scenario-times"
echo "steps: $passed passed, $failed failed, $((SECONDS - run_started)) s wall clock"
[ "$failed" -eq 0 ]
