#!/usr/bin/env bash
# Lint the alert rules and run their unit tests with promtool from PATH (Debian: prometheus).
# Usage: bash tests/integration/promtool/run.sh        Exit status: non-zero on any failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
command -v promtool >/dev/null || { echo "promtool not found in PATH (apt-get install prometheus)" >&2; exit 2; }
promtool --version 2>&1 | head -n 1
promtool check rules "$repo"/roles/prometheus/files/rules/*.yml
# test files reference the rule file relative to themselves; run from here so the output names are short
cd "$here"
promtool test rules ./*.yml
