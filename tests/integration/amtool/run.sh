#!/usr/bin/env bash
# Alertmanager configuration tests: render roles/alertmanager/templates/alertmanager.yml.j2 with
# Ansible, `amtool check-config`, `amtool config routes test --verify.receivers` for every
# severity x component combination, and inhibition/delivery on a real Alertmanager on loopback.
# Usage: bash tests/integration/amtool/run.sh [pytest args]     Needs: amtool, prometheus-alertmanager (Debian),
# and a Python with ansible-core and pytest (the project venv; ADG_PYTHON overrides).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
py="${ADG_PYTHON:-}"
if [ -z "$py" ]; then
  for candidate in "$repo/.venv/bin/python" "$(command -v python || true)" "$(command -v python3 || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" -c 'import pytest, ansible' 2>/dev/null; then
      py="$candidate"; break
    fi
  done
fi
[ -n "$py" ] || { echo "no Python with pytest and ansible found (run tests/tools/bootstrap.sh)" >&2; exit 2; }
for tool in amtool prometheus-alertmanager; do
  command -v "$tool" >/dev/null || { echo "$tool not found (apt-get install prometheus-alertmanager)" >&2; exit 2; }
done
amtool --version 2>&1 | head -n 1
cd "$repo"
exec "$py" -m pytest -q -p no:cacheprovider "$here" "$@"
