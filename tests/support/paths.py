"""Where the monitoring content lives in the repository (one place for the tests to look)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "roles/prometheus/files/rules"
RULES_FILE = RULES_DIR / "autodealgenie.yml"
PROMTOOL_TESTS = REPO / "tests/integration/promtool"
RUNBOOKS = REPO / "docs/runbooks"
DASHBOARDS = REPO / "roles/grafana/files/dashboards"
TOPOLOGY = REPO / "playbooks/defaults/topology.yml"
ALERTMANAGER_TEMPLATE = REPO / "roles/alertmanager/templates/alertmanager.yml.j2"
