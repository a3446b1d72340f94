"""Rolling upgrade (playbooks/rolling_upgrade.yml):

1. a new release rolls over both app hosts while a client hammers the API on both: the stated
   bound is ZERO failed requests (systemd keeps the listening socket open while gunicorn
   restarts), and the measured count is reported with latency percentiles;
2. a broken build (its WSGI module raises at import, so gunicorn cannot boot) fails the health
   gate on the first host, which is rolled back to the release it had; the run stops and the
   second host is untouched (same release, same gunicorn master PID); no silence is left behind.
"""

from __future__ import annotations

import json
import urllib.request

from adg_molecule import port
from conftest import report, run_on, run_playbook

from tests.molecule.rolling_upgrade.hammer import Hammer
from tests.molecule.rolling_upgrade.variants import app_version, bumped, make_variant

# Cheap endpoints that still go through gunicorn and Flask on each host.
HAMMER_PATHS = ["/api/v1/health", "/api/v1/cars/health"]
# A broken build should be given up quickly in a test: 10 attempts, 2 s apart.
GATE_ARGS = ["-e", "backend_health_retries=10"]


def release_of(remote, name: str) -> dict:
    return json.loads(run_on(remote, name, "cat /opt/autodealgenie/current/RELEASE.json"))


def main_pid(remote, name: str) -> str:
    return run_on(remote, name, "systemctl show -p MainPID --value autodealgenie.service").strip()


def active_silences(alertmanager_url: str, instance: str) -> list[dict]:
    with urllib.request.urlopen(f"{alertmanager_url}/api/v2/silences", timeout=10) as response:  # noqa: S310
        silences = json.load(response)
    return [
        s
        for s in silences
        if s["status"]["state"] in ("active", "pending")
        and any(m["name"] == "instance" and m["value"] == instance for m in s["matchers"])
    ]


def test_rolling_upgrade_then_broken_build_rolled_back(tmp_path, remote, addresses, groups, alertmanager_url):
    apps = groups["app"]
    first, rest = apps[0], apps[1:]
    base = app_version()
    before = {h: release_of(remote, h) for h in apps}

    # --- 1. good release under load -------------------------------------------------------------
    good = make_variant(tmp_path / "good", bumped(base, 1))
    hammer = Hammer([addresses[h] for h in apps], port("backend_port"), HAMMER_PATHS).start()
    upgrade = run_playbook("playbooks/rolling_upgrade.yml", "-e", f"backend_source_dir={good}", *GATE_ARGS)
    stats = hammer.stop()
    report(
        f"rolling upgrade {before[first]['version']} -> {bumped(base, 1)} under load: "
        f"rc={upgrade.returncode}; {stats.summary()} (stated bound: 0 failed)"
    )
    for failure in stats.failures:
        report("  failed: " + failure)
    assert upgrade.returncode == 0, upgrade.stdout[-6000:]
    upgraded = {h: release_of(remote, h) for h in apps}
    assert all(r["version"] == bumped(base, 1) for r in upgraded.values()), upgraded
    assert stats.failed == 0, stats.failures
    assert stats.ok > 0
    assert not any(active_silences(alertmanager_url, h) for h in apps)

    # --- 2. broken build: first host rolled back, the others untouched ---------------------------
    untouched_pids = {h: main_pid(remote, h) for h in rest}
    broken = make_variant(tmp_path / "broken", bumped(base, 2), broken=True)
    hammer = Hammer([addresses[h] for h in rest], port("backend_port"), HAMMER_PATHS, threads=2).start()
    failed_run = run_playbook(
        "playbooks/rolling_upgrade.yml", "-e", f"backend_source_dir={broken}", *GATE_ARGS
    )
    rest_stats = hammer.stop()
    after = {h: release_of(remote, h) for h in apps}
    report(
        f"broken build {bumped(base, 2)}: rc={failed_run.returncode}; {first} back on "
        f"{after[first]['release_id']}; {', '.join(rest)} untouched: "
        f"{all(after[h] == upgraded[h] and main_pid(remote, h) == untouched_pids[h] for h in rest)}; "
        f"clients of untouched hosts: {rest_stats.summary()}"
    )
    assert failed_run.returncode != 0, "the broken build was not stopped"
    assert "rolled back" in failed_run.stdout
    assert after[first] == upgraded[first], "first host not rolled back to its previous release"
    for h in rest:
        assert after[h] == upgraded[h] and main_pid(remote, h) == untouched_pids[h], f"{h} was touched"
    assert rest_stats.failed == 0, rest_stats.failures
    run_on(
        remote,
        first,
        f'python3 -c "import urllib.request as u; '
        f"assert u.urlopen('http://{addresses[first]}:{port('backend_port')}"
        f"/api/v1/health/detailed', timeout=10).status == 200\"",
    )
    assert not active_silences(alertmanager_url, first), "the rolled-back host is still silenced"
