"""(1) playbooks/verify.yml passes against the converged stack, after the test traffic, with no
dashboard panel ignored: every target up, every rule group loaded, Alertmanager discovered,
Grafana datasource and dashboards present, and every panel returning data."""

import re
import time

from conftest import report, run_playbook


def test_verify_playbook_passes():
    started = time.monotonic()
    strict = '{"verify_panel_ignore": [], "verify_panel_retries": 6}'
    result = run_playbook("playbooks/verify.yml", "--extra-vars", strict)
    seconds = time.monotonic() - started
    table = [
        line
        for line in result.stdout.splitlines()
        if line.strip().startswith("COMPONENT") or re.search(r"\s(PASS|FAIL)\s", line)
    ]
    report(f"verify.yml:                      {seconds:7.1f} s   rc={result.returncode}")
    for line in table:
        report("  " + line.strip())
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
