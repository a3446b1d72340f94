#!/usr/bin/env bash
# Lint the alert rules and run their unit tests with promtool from PATH (Debian: prometheus).
# The rules are those of the directory prometheus_alert_rules_dir names (read from Ansible by
# tests/support/paths.py), the one the prometheus role deploys: each test file's `rule_files` (the
# rule files it tests, by name) is pointed at that directory (in a temporary copy), so an override
# of the variable is tested too. Only those files: promtool evaluates every loaded rule at every
# step, and the SLO tests run a day of 30 s steps.
# Usage: bash tests/integration/promtool/run.sh        Exit status: non-zero on any failure.
# Needs: promtool, and a Python with ansible-core and PyYAML (the project venv; ADG_PYTHON overrides).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
command -v promtool >/dev/null || { echo "promtool not found in PATH (apt-get install prometheus)" >&2; exit 2; }
py="${ADG_PYTHON:-}"
if [ -z "$py" ]; then
  for candidate in "$repo/.venv/bin/python" "$(command -v python || true)" "$(command -v python3 || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" -c 'import yaml, ansible' 2>/dev/null; then
      py="$candidate"; break
    fi
  done
fi
[ -n "$py" ] || { echo "no Python with ansible and PyYAML found (run tests/tools/bootstrap.sh)" >&2; exit 2; }
promtool --version 2>&1 | head -n 1
rules="$(cd "$repo" && "$py" -m tests.support.paths prometheus_alert_rules_dir)"
echo "rules: $rules (prometheus_alert_rules_dir)"
shopt -s nullglob
rule_files=("$rules"/*.yml)
[ ${#rule_files[@]} -gt 0 ] || { echo "no *.yml rule file in $rules" >&2; exit 1; }
promtool check rules "${rule_files[@]}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$py" - "$here" "$rules" "$work" <<'PY'
import sys
from pathlib import Path

import yaml

here, rules, work = (Path(arg) for arg in sys.argv[1:])
for test in sorted(here.glob("*.yml")):
    content = yaml.safe_load(test.read_text())
    content["rule_files"] = [str(rules / Path(name).name) for name in content["rule_files"]]
    (work / test.name).write_text(yaml.safe_dump(content, sort_keys=False))
PY
# run from the copies' directory so the output names are short
cd "$work"
promtool test rules ./*.yml
