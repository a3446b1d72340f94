#!/usr/bin/env bash
# The project's whole test suite: lint, unit tests, rule and route unit tests, module integration
# tests against real Prometheus/Alertmanager, the app's tests against real PostgreSQL/Redis, and
# every molecule scenario on local systemd-nspawn test hosts. Installs what it needs first.
#
#   tests/run-all.sh                  everything
#   tests/run-all.sh lint unit        only the named steps (see ADG_STEPS below)
#   ADG_SCENARIOS="common data" tests/run-all.sh molecule
set -uo pipefail

ADG_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ADG_ROOT"
# shellcheck source=tests/tools/bootstrap.sh
. "$ADG_ROOT/tests/tools/bootstrap.sh" || exit 1

ADG_STEPS=(lint unit app rules routes modules collection molecule)
ADG_SCENARIOS="${ADG_SCENARIOS:-common data monitoring default preflight data-trixie monitoring-trixie}"
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

step_molecule() {
  local scenario rc=0
  # Build (or confirm cached) the test-host images once, before scenarios race for them.
  python tests/tools/testhosts/testhosts.py image || return 1
  python tests/tools/testhosts/testhosts.py image --suite trixie || return 1
  for scenario in $ADG_SCENARIOS; do
    echo "--- molecule test -s $scenario"
    local started=$SECONDS
    molecule test -s "$scenario" || rc=1
    echo "--- molecule $scenario: $((SECONDS - started)) s"
  done
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

passed=0 failed=0 summary=() failures=()
for step in "${selected[@]}"; do
  echo "=== $step"
  started=$SECONDS
  "step_$step" 2>&1 | tee "$step_logs/$step.log"
  if [ "${PIPESTATUS[0]}" -eq 0 ]; then
    passed=$((passed + 1)); result=ok
  else
    failed=$((failed + 1)); result=FAILED; failures+=("$step")
  fi
  summary+=("$(printf '%-10s %-7s %5d s' "$step" "$result" $((SECONDS - started)))")
done

for step in "${failures[@]}"; do
  echo
  echo "=== why $step failed"
  why_failed "$step_logs/$step.log"
done

echo
echo "=== summary"
printf '%s\n' "${summary[@]}"
echo "steps: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
