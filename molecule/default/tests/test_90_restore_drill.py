"""(9) The restore drill, through the real API and playbooks/restore.yml (destructive: runs last).

Deals of one user, counted by the API: N before a full backup, M after it, then the time T, then K.
Pass 1, a lost data directory on the database host: restore the latest state -> N+M+K.
Pass 2, the database host lost: J more deals, a new empty host (data2) put into the postgres group,
restore the latest state there -> N+M+K+J (on the timeline pass 1 started), then T -> N+M over the
running cluster (restore_overwrite), with the API pointed at the new host by the same playbook.
The point-in-time restore runs once, in pass 2: it crosses the timeline pass 1 started, which is the
harder case; each restore is a playbook run of 29-77 s in CI (issue 16).

Printed next to their bounds: the backup's duration and size, each restore's duration, the WAL
archive lag of the last acknowledged deal and the age of the newest archived segment at the moment
of loss (the data-loss window; bound: archive_timeout).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import yaml
from conftest import EPHEMERAL, REPO, ansible_env, report, run_on

from tests.molecule.fault_drills.drills import DRILL_VARS
from tests.support import paths

N, M, K, J = 5, 4, 3, 2
PASSWORD = "Restore-drill-passw0rd"  # noqa: S105 (a throwaway user of the test lab)


def api(base: str, method: str, path: str, body=None, token: str | None = None, attempts: int = 30):
    """One API call; 503 (the database restarting under the pool) is retried for up to a minute."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    for attempt in range(attempts):
        request = urllib.request.Request(base + path, data=data, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310 (lab URL)
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            if error.code != 503 or attempt == attempts - 1:
                return error.code, json.loads(error.read() or b"null")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if attempt == attempts - 1:
                raise
        time.sleep(2)
    raise AssertionError("unreachable")


class DrillUser:
    def __init__(self, base: str):
        self.base = base
        self.email = f"restore{int(time.time())}@example.test"
        status, body = api(
            base,
            "POST",
            "/api/v1/auth/signup",
            {"email": self.email, "username": self.email.split("@")[0], "password": PASSWORD},
        )
        assert status == 201, (status, body)
        self.login()

    def login(self) -> None:
        status, body = api(
            self.base, "POST", "/api/v1/auth/login", {"email": self.email, "password": PASSWORD}
        )
        assert status == 200, (status, body)
        self.token = body["access_token"]

    def create_deals(self, count: int, batch: str) -> None:
        for index in range(count):
            status, body = api(
                self.base,
                "POST",
                "/api/v1/deals",
                {
                    "customer_name": f"Restore drill {batch}{index}",
                    "customer_email": self.email,
                    "vehicle_make": "Toyota",
                    "vehicle_model": "Corolla",
                    "vehicle_year": 2022,
                    "vehicle_mileage": 1000 + index,
                    "asking_price": 20000 + index,
                },
                self.token,
            )
            assert status == 201, (status, body)

    def deal_count(self) -> int:
        # After a restore the user row is the restored one; a fresh login proves it is there.
        self.login()
        status, body = api(self.base, "GET", "/api/v1/deals?limit=1", token=self.token)
        assert status == 200, (status, body)
        return body["total"]


def psql(remote, host: str, sql: str, database: str = "postgres") -> str:
    # (the SQL is the test's own; cd: postgres may not read root's home)
    return run_on(remote, host, f'cd /tmp && runuser -u postgres -- psql -d {database} -XAtc "{sql}"').strip()


def restore(inventory: Path, *args: str) -> tuple[float, str]:
    """restore.yml against an inventory; returns (seconds, pgbackrest restore's own duration)."""
    started = time.monotonic()
    done = run_restore(inventory, *args)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    inner = re.search(r"Restored stanza \S+ onto \S+ \(\S+\) in (\S+);", " ".join(done.stdout.split()))
    assert inner, done.stdout[-3000:]
    return elapsed, inner.group(1)


def wait_archived(remote, host: str, timeout_s: float) -> float:
    """Seconds until the WAL segment holding everything committed so far is in the archive."""
    segment = psql(remote, host, "SELECT pg_walfile_name(pg_current_wal_lsn())")
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        archived = psql(remote, host, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
        # Same timeline: names compare in WAL order; a later timeline's segment also counts.
        if archived[:8] > segment[:8] or (archived[:8] == segment[:8] and archived[8:24] >= segment[8:24]):
            return time.monotonic() - started
        time.sleep(1)
    raise AssertionError(f"{segment} not archived within {timeout_s:.0f} s (last: {archived})")


def loss_window(remote, host: str) -> float:
    """Age of the newest archived WAL segment right now (what a lost disk would take with it)."""
    return float(
        psql(remote, host, "SELECT extract(epoch FROM now() - last_archived_time) FROM pg_stat_archiver")
    )


def lose_data_directory(remote, host: str) -> None:
    data_dir = psql(remote, host, "SHOW data_directory")
    run_on(remote, host, "systemctl kill -s KILL 'postgresql@*-main.service'; sleep 1")
    run_on(remote, host, f"rm -rf --one-file-system {data_dir}")


def inventory_with_postgres_on(host: str, tmp_path: Path) -> Path:
    """The scenario inventory with `host` as the postgres group (the lost host taken out of it)."""
    target = tmp_path / "inventory"
    shutil.copytree(EPHEMERAL / "inventory", target, symlinks=True)
    path = target / "ansible_inventory.yml"
    data = yaml.safe_load(path.read_text())
    data["postgres"] = {"hosts": {host: data["all"]["hosts"][host]}, "vars": data["postgres"].get("vars", {})}
    path.write_text(yaml.safe_dump(data))
    return target


def run_restore(inventory: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        "ansible-playbook",
        "-i",
        str(inventory),
        f"--extra-vars=@{DRILL_VARS}",
        str(REPO / "playbooks/restore.yml"),
    ]
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, env=ansible_env(), timeout=1500, cwd=REPO
    )


def cluster_started_at(remote, host: str) -> str:
    """When the cluster's unit last became active (changes with every stop/start or crash restart)."""
    return run_on(remote, host, "systemctl show -P ActiveEnterTimestampMonotonic 'postgresql@*-main'")


def test_restore_refuses_bad_requests_before_stopping_anything(groups, remote):
    db_host = groups["postgres"][0]
    started_at = cluster_started_at(remote, db_host)
    host, overwrite = f"restore_host={db_host}", "restore_overwrite=true"
    cases = {
        "not a time": ([host, "restore_target_time=yesterday"], "is not a timestamp with a time zone offset"),
        "no offset": ([host, "restore_target_time='2026-12-01 10:15:00'"], "time zone offset"),
        "before the oldest backup": (
            [host, "restore_target_time='2001-01-01 00:00:00+00'", overwrite],
            "is before the end of the oldest backup",
        ),
        "in the future": (
            [host, "restore_target_time='2999-01-01 00:00:00+00'", overwrite],
            "is in the future",
        ),
        "running cluster": ([host], "a restore replaces its data"),
        "not a database host": ([f"restore_host={groups['app'][0]}"], "host of the postgres group"),
    }
    for name, (extra_vars, message) in cases.items():
        done = run_restore(EPHEMERAL / "inventory", *[arg for var in extra_vars for arg in ("-e", var)])
        assert done.returncode != 0, f"{name}: accepted"
        assert message in " ".join(done.stdout.split()), f"{name}: {done.stdout[-2000:]}"
    # None of them stopped or restarted anything.
    assert cluster_started_at(remote, db_host) == started_at


def test_restore_check_mode_says_what_it_would_do(groups, remote):
    db_host = groups["postgres"][0]
    started_at = cluster_started_at(remote, db_host)
    done = run_restore(
        EPHEMERAL / "inventory", "-e", f"restore_host={db_host}", "-e", "restore_overwrite=true", "--check"
    )
    assert done.returncode == 0, done.stdout[-3000:]
    said = " ".join(done.stdout.split())
    assert "Would restore stanza" in said
    assert f"onto {db_host}" in said and "stopping the running cluster" in said
    assert cluster_started_at(remote, db_host) == started_at


def test_restore_drill(app_urls, groups, remote, tmp_path):
    db_host, backup_host = groups["postgres"][0], groups["backup"][0]
    new_host = groups["spare"][0]
    settings = paths.ansible_values(
        ("postgresql_archive_timeout", "pgbackrest_stanza"),
        inventory=str(EPHEMERAL / "inventory"),
        host=db_host,
    )
    archive_timeout = float(settings["postgresql_archive_timeout"])
    stanza = settings["pgbackrest_stanza"]
    user = DrillUser(app_urls[0])
    base_count = user.deal_count()
    assert base_count == 0

    user.create_deals(N, "n")
    started = time.monotonic()
    run_on(remote, backup_host, "systemctl start pgbackrest-backup@full.service")
    backup_s = time.monotonic() - started
    info = json.loads(
        run_on(
            remote, backup_host, f"runuser -u pgbackrest -- pgbackrest --stanza={stanza} --output=json info"
        )
    )
    newest = info[0]["backup"][-1]
    assert newest["type"] == "full"
    report(
        f"restore drill: full backup {backup_s:5.1f} s (pgBackRest: "
        f"{newest['timestamp']['stop'] - newest['timestamp']['start']} s), database "
        f"{newest['info']['size'] / 2**20:.1f} MiB, "
        f"stored {newest['info']['repository']['delta'] / 2**20:.1f} MiB"
    )

    user.create_deals(M, "m")
    time.sleep(1.5)
    target_time = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")
    time.sleep(1.5)
    user.create_deals(K, "k")
    assert user.deal_count() == N + M + K

    # The moment of loss: everything acknowledged is archived within archive_timeout.
    lag = wait_archived(remote, db_host, archive_timeout + 30)
    window = loss_window(remote, db_host)
    report(
        f"  WAL archive lag of the last deal: {lag:5.1f} s   (bound: archive_timeout {archive_timeout:.0f} s)"
    )
    report(
        f"  data-loss window at the loss:     {window:5.1f} s   "
        f"(bound: archive_timeout {archive_timeout:.0f} s)"
    )
    assert lag <= archive_timeout + 10
    assert window <= archive_timeout + 10

    def restore_latest_then_target(
        label: str, inventory: Path, host: str, latest_expected: int, to_target: bool
    ) -> None:
        """Latest first (a point-in-time restore starts a timeline that "latest" would follow)."""
        steps = [("latest", [], latest_expected)]
        if to_target:
            to_t = ["-e", f"restore_target_time='{target_time}'", "-e", "restore_overwrite=true"]
            steps.append(("to T", to_t, N + M))
        for what, extra, expected in steps:
            seconds, inner = restore(inventory, "-e", f"restore_host={host}", *extra)
            count = user.deal_count()
            report(
                f"  {label} {host} restore {what:6}: {seconds:5.1f} s (pgBackRest {inner}) -> {count} deals"
            )
            assert count == expected, f"{label} restore {what}: {count} deals, expected {expected}"

    # Pass 1: the data directory is gone, the host is fine.
    lose_data_directory(remote, db_host)
    restore_latest_then_target("pass 1", EPHEMERAL / "inventory", db_host, N + M + K, to_target=False)

    # Pass 2: the database host is lost; a new empty host takes its place in the postgres group.
    user.create_deals(J, "j")
    wait_archived(remote, db_host, archive_timeout + 30)
    run_on(remote, db_host, "systemctl stop 'postgresql@*-main.service'")
    restore_latest_then_target(
        "pass 2", inventory_with_postgres_on(new_host, tmp_path), new_host, N + M + K + J, to_target=True
    )
    # The API is served from the new host now.
    query = f"SELECT count(*) FROM deals WHERE customer_email = '{user.email}'"  # noqa: S608 (the test's own value)
    served = psql(remote, new_host, query, "autodealgenie")
    assert served == str(N + M)
