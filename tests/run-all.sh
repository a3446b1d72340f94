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

ADG_STEPS=(lint unit app rules routes modules collection molecule)
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

# Scenarios run in lanes: the lanes run at the same time, each scenario on its own lab and subnet,
# and a lane runs its scenarios in order. `default` (the whole stack) has a lane to itself: it is the
# longest, and most of its verify waits on alert timings. One lane ("a b c") runs them in turn.
ADG_MOLECULE_LANES="${ADG_MOLECULE_LANES:-default preflight|common data monitoring data-trixie monitoring-trixie}"
# Scenarios the lanes above leave out because they do not fit CI's budget beside the others (the
# nine-host `ha` scenario's steps measured 16-41 min on 2 cores; see CHANGELOG 1.5.1). Run them on their
# own: ADG_SCENARIOS=ha tests/run-all.sh molecule
ADG_MOLECULE_OUTSIDE_LANES="ha"

run_scenario() {
  local scenario=$1 log=$2 started=$SECONDS rc=0
  molecule test -s "$scenario" >"$log" 2>&1 || rc=$?
  echo "$scenario $rc $((SECONDS - started))" >"$log.result"
  # progress while the lanes run; the whole output follows when all are done
  echo "--- molecule $scenario finished: rc $rc in $((SECONDS - started)) s"
  return "$rc"
}

step_molecule() {
  local lanes lane scenario rc=0 started=$SECONDS
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
  wait "${pids[@]}"
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
    done
  done
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
