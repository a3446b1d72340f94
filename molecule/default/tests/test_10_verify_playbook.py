"""(1) playbooks/verify.yml passes against the converged stack and prints its table."""

import time

from conftest import report, run_playbook


def test_verify_playbook_passes():
    started = time.monotonic()
    result = run_playbook("playbooks/verify.yml")
    seconds = time.monotonic() - started
    table = [line for line in result.stdout.splitlines() if line.lstrip().startswith("|")]
    report(f"verify.yml:                      {seconds:7.1f} s   rc={result.returncode}")
    for line in table:
        report("  " + line.strip())
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
