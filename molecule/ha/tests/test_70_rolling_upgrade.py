"""Drill 6: a new release rolls over both app hosts while a client hammers the API's VIP. Each host
is drained in HAProxy (on every load balancer) before its backend stops and set ready again after
its health gate, so the stated bound is ZERO failed requests."""

from __future__ import annotations

import json

from conftest import report, run_on, run_playbook

from tests.molecule.ha.cluster import API_PATHS
from tests.molecule.rolling_upgrade.hammer import Hammer
from tests.molecule.rolling_upgrade.variants import app_version, bumped, make_variant


def test_rolling_upgrade_through_the_lb_fails_no_request(tmp_path, remote, groups, api):
    version = bumped(app_version(), 1)
    release = make_variant(tmp_path / "release", version)
    hammer = Hammer([api[0]], api[1], API_PATHS).start()
    upgrade = run_playbook("playbooks/rolling_upgrade.yml", "-e", f"backend_source_dir={release}")
    stats = hammer.stop()
    report(
        f"drill 6: rolling upgrade to {version} through the VIP: rc={upgrade.returncode}; "
        f"{stats.summary()} (bound: 0 failed)"
    )
    for failure in stats.failures:
        report("  failed: " + failure)
    assert upgrade.returncode == 0, upgrade.stdout[-6000:]
    assert "drain" in upgrade.stdout, "the rolling upgrade did not drain the hosts in HAProxy"
    for host in groups["app"]:
        running = json.loads(run_on(remote, host, "cat /opt/autodealgenie/current/RELEASE.json"))
        assert running["version"] == version, (host, running)
    assert stats.ok > 0
    assert stats.failed == 0, stats.failures
