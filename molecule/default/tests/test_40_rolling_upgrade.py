"""Rolling upgrade (playbooks/rolling_upgrade.yml) and batched deploys (playbooks/app.yml):

1. a new release rolls over both app hosts while a client hammers the API on both: the stated
   bound is ZERO failed requests (systemd keeps the listening socket open while gunicorn
   restarts), and the measured count is reported with latency percentiles;
2. a deploy that fails BEFORE it switches anything (its environment file is refused by the app's
   check-config) leaves the first host on what it ran: same deployment, same environment file,
   same gunicorn master (never restarted); the second host is untouched;
3. re-deploying the running release and failing (a health gate that cannot pass) changes nothing
   either: no switch, so no rollback, and above all not to an older release;
4. a broken build (its WSGI module raises at import, so gunicorn cannot boot) is activated on the
   first host, fails the health gate and is rolled back to the deployment recorded at the start
   of the play (release, environment file and unit), not to the older `previous`; the run stops
   and the second host is untouched; no silence is left behind;
5. the same broken build through app.yml (what site.yml runs, in batches of one): the first batch
   is rolled back, the second never touched;
6. a deploy with Redis stopped succeeds: the gate waits for PostgreSQL only (Redis and MongoDB are
   optional for serving), so an outage of either never fails a deploy or triggers a rollback.

Each rolling upgrade is a Grafana annotation (the API double in this lab): a region over the run,
tagged deploy, release:<id> and version:<v> (and failed when the run stopped).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from adg_molecule import port
from conftest import report, run_on, run_playbook
from test_35_maintenance import grafana_annotations

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


def state_of(remote, name: str) -> dict:
    """What runs on a host: deployment, release, digests of the live env file and unit (never the
    env file's content: it holds secrets), the `previous` link and the gunicorn master."""
    out = run_on(
        remote,
        name,
        "readlink /etc/autodealgenie/active; readlink -f /opt/autodealgenie/current; "
        "sha256sum < /etc/autodealgenie/autodealgenie.env; "
        "sha256sum < /etc/systemd/system/autodealgenie.service; "
        "readlink -f /opt/autodealgenie/previous || true",
    ).splitlines()
    return {
        "deploy": out[0],
        "release": out[1],
        "env": out[2].split()[0],
        "unit": out[3].split()[0],
        "previous": out[4] if len(out) > 4 else "",
        "pid": main_pid(remote, name),
    }


def active_silences(alertmanager_url: str, instance: str) -> list[dict]:
    with urllib.request.urlopen(f"{alertmanager_url}/api/v2/silences", timeout=10) as response:  # noqa: S310
        silences = json.load(response)
    return [
        s
        for s in silences
        if s["status"]["state"] in ("active", "pending")
        and any(m["name"] == "instance" and m["value"] == instance for m in s["matchers"])
    ]


def detailed_health(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"{url}/api/v1/health/detailed", timeout=10) as response:  # noqa: S310
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_rolling_upgrade_failures_and_rollbacks(tmp_path, remote, addresses, groups, alertmanager_url):
    apps = groups["app"]
    first, rest = apps[0], apps[1:]
    base = app_version()
    before = {h: release_of(remote, h) for h in apps}

    # --- 1. good release under load -------------------------------------------------------------
    good = make_variant(tmp_path / "good", bumped(base, 1))
    hammer = Hammer([addresses[h] for h in apps], port("backend_port"), HAMMER_PATHS).start()
    run_started = int(time.time() * 1000)
    upgrade = run_playbook("playbooks/rolling_upgrade.yml", "-e", f"backend_source_dir={good}", *GATE_ARGS)
    run_ended = int(time.time() * 1000)
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
    running = {h: state_of(remote, h) for h in apps}
    # `previous` names the release before the good one: an older release a rollback must never reach
    assert running[first]["previous"] and running[first]["previous"] != running[first]["release"]
    # the deploy annotation: one region covering the run, naming the release and the hosts
    release = upgraded[first]
    tags = ["deploy", f"release:{release['release_id']}", f"version:{release['version']}"]
    marked = grafana_annotations(addresses, groups, tags=tags)
    assert len(marked) == 1, marked
    region = marked[0]
    assert run_started <= region["time"] < region["timeEnd"] <= run_ended, (run_started, region, run_ended)
    assert "failed" not in region["tags"] and any(
        t.startswith("adg-key:rolling-upgrade-") for t in region["tags"]
    )
    assert release["release_id"] in region["text"] and all(h in region["text"] for h in apps), region["text"]
    assert "Grafana annotation not written" not in upgrade.stdout + upgrade.stderr
    report(
        f"deploy annotation: region {(region['timeEnd'] - region['time']) / 1000:.1f} s of the "
        f"{(run_ended - run_started) / 1000:.1f} s run, tags {sorted(region['tags'])}"
    )

    # --- 2. a failure before the switch: nothing changes, nothing restarts -----------------------
    refused = make_variant(tmp_path / "refused", bumped(base, 2))
    bad_env = json.dumps({"backend_extra_environment": {"POSTGRES_POOL_MIN": "0"}})  # check-config refuses it
    early = run_playbook(
        "playbooks/rolling_upgrade.yml", "-e", f"backend_source_dir={refused}", "-e", bad_env, *GATE_ARGS
    )
    after_early = {h: state_of(remote, h) for h in apps}
    report(
        f"failure before activation ({bumped(base, 2)}, env refused by check-config): rc={early.returncode}; "
        f"{first} unchanged: {after_early[first] == running[first]}"
    )
    assert early.returncode != 0, "the refused environment file was not stopped"
    assert "check-config" in early.stdout and "not switched" in early.stdout, early.stdout[-4000:]
    for h in apps:
        assert after_early[h] == running[h], f"{h} changed although nothing was activated"
    assert not active_silences(alertmanager_url, first), "silence left behind"

    # --- 3. re-deploy the running release and fail: still nothing changes -----------------------
    again = run_playbook(
        "playbooks/rolling_upgrade.yml",
        "-e",
        f"backend_source_dir={good}",
        "-e",
        "backend_health_path=/api/v1/no-such-path",
        "-e",
        "backend_health_retries=2",
    )
    after_again = {h: state_of(remote, h) for h in apps}
    report(
        f"same release re-deployed, failing gate: rc={again.returncode}; "
        f"{first} unchanged (not rolled back to an older release): {after_again[first] == running[first]}"
    )
    assert again.returncode != 0, "the failing gate did not fail the run"
    assert "not switched" in again.stdout, again.stdout[-4000:]
    for h in apps:
        assert after_again[h] == running[h], f"{h} changed on a re-deploy of its own release"

    # --- 4. broken build: activated, rolled back to what ran at the play's start ------------------
    broken = make_variant(tmp_path / "broken", bumped(base, 3), broken=True)
    hammer = Hammer([addresses[h] for h in rest], port("backend_port"), HAMMER_PATHS, threads=2).start()
    failed_started = int(time.time() * 1000)
    failed_run = run_playbook(
        "playbooks/rolling_upgrade.yml", "-e", f"backend_source_dir={broken}", *GATE_ARGS
    )
    failed_ended = int(time.time() * 1000)
    rest_stats = hammer.stop()
    after = {h: state_of(remote, h) for h in apps}
    report(
        f"broken build {bumped(base, 3)}: rc={failed_run.returncode}; {first} back on "
        f"{after[first]['release'].rsplit('/', 1)[-1]} with its env file and unit: "
        f"{all(after[first][k] == running[first][k] for k in ('deploy', 'release', 'env', 'unit'))}; "
        f"{', '.join(rest)} untouched: {all(after[h] == running[h] for h in rest)}; "
        f"clients of untouched hosts: {rest_stats.summary()}"
    )
    assert failed_run.returncode != 0, "the broken build was not stopped"
    back_to = "rolled back to " + running[first]["release"].rsplit("/", 1)[-1]
    assert back_to in failed_run.stdout, failed_run.stdout[-4000:]
    for key in ("deploy", "release", "env", "unit"):
        assert after[first][key] == running[first][key], f"{first}: {key} not restored to the play's start"
    assert after[first]["release"] != running[first]["previous"], "rolled back to an older release"
    assert after[first]["pid"] != running[first]["pid"]  # it did run the broken build, then came back
    for h in rest:
        assert after[h] == running[h], f"{h} was touched"
    assert rest_stats.failed == 0, rest_stats.failures
    status, _body = detailed_health(f"http://{addresses[first]}:{port('backend_port')}")
    assert status == 200
    assert not active_silences(alertmanager_url, first), "the rolled-back host is still silenced"
    # its annotation is closed as failed, within this run (from/to: regions overlapping it)
    failed_marks = grafana_annotations(
        addresses, groups, tags=["deploy", "failed"], **{"from": failed_started, "to": failed_ended}
    )
    assert len(failed_marks) == 1, failed_marks
    assert failed_started <= failed_marks[0]["time"] < failed_marks[0]["timeEnd"] <= failed_ended
    assert f"FAILED on {first}" in failed_marks[0]["text"] and back_to in failed_marks[0]["text"]

    # --- 5. the same through app.yml (site.yml's deploy), in batches of one -----------------------
    batched = run_playbook(
        "playbooks/app.yml", "-e", f"backend_source_dir={broken}", "-e", "app_batch_size=1", *GATE_ARGS
    )
    after_batch = {h: state_of(remote, h) for h in apps}
    report(
        f"broken build through app.yml (app_batch_size=1): rc={batched.returncode}; first batch rolled back: "
        f"{after_batch[first]['deploy'] == running[first]['deploy']}; later batch untouched: "
        f"{all(after_batch[h] == running[h] for h in rest)}"
    )
    assert batched.returncode != 0
    assert "rolled back to" in batched.stdout, batched.stdout[-4000:]
    assert after_batch[first]["deploy"] == running[first]["deploy"]
    for h in rest:
        assert after_batch[h] == running[h], f"{h} (a later batch) was touched"


def test_deploy_succeeds_with_redis_down(tmp_path, remote, addresses, groups):
    apps = groups["app"]
    redis_host = groups["redis"][0]
    target = bumped(app_version(), 4)
    variant = make_variant(tmp_path / "no-redis", target)
    run_on(remote, redis_host, "systemctl stop redis-server")
    try:
        deploy = run_playbook("playbooks/app.yml", "-e", f"backend_source_dir={variant}", *GATE_ARGS)
        health = {h: detailed_health(f"http://{addresses[h]}:{port('backend_port')}") for h in apps}
    finally:
        run_on(remote, redis_host, "systemctl start redis-server")
    releases = {h: release_of(remote, h)["version"] for h in apps}
    report(
        f"deploy {target} with Redis stopped: rc={deploy.returncode}; releases {releases}; "
        f"detailed health during the outage: { {h: (s, b.get('services')) for h, (s, b) in health.items()} }"
    )
    assert deploy.returncode == 0, deploy.stdout[-6000:]
    assert set(releases.values()) == {target}
    for status, body in health.values():
        # the app knew Redis was down (degraded), and the deploy went through anyway
        assert status == 503 and body["services"]["redis"] == "unhealthy"
        assert body["services"]["postgres"] == "healthy"


def test_trusted_proxies_reach_the_app(remote, groups):
    """backend_trusted_proxy_count/_cidrs are rendered as TRUSTED_PROXY_COUNT/_CIDRS and the app
    reads them (check-config prints the non-secret settings): none in the test lab, which has no
    load balancer (adg_load_balancer_cidrs empty)."""
    for h in groups["app"]:
        keys = run_on(
            remote, h, "grep -o '^TRUSTED_PROXY_[A-Z]*=' /etc/autodealgenie/autodealgenie.env"
        ).split()
        assert keys == ["TRUSTED_PROXY_COUNT=", "TRUSTED_PROXY_CIDRS="], keys
        settings = json.loads(run_on(remote, h, "autodealgenie-manage check-config"))["settings"]
        assert settings["trusted_proxy_count"] == 0 and settings["trusted_proxy_cidrs"] == [], settings
