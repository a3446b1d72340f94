#!/usr/bin/python3
"""Write pgBackRest's backup state as Prometheus metrics for node_exporter's textfile collector.

Reads `pgbackrest info --output=json` (the repository's own record, so a failed backup job leaves the
last success in place) and the repository's filesystem, and replaces the output file atomically.
When `info` fails the old file stays: its collected timestamp goes stale, which the alerts watch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

BACKUP_TYPES = ("full", "diff", "incr")


def read_info(stanza: str, user: str) -> list[dict]:
    command = ["/usr/bin/pgbackrest", f"--stanza={stanza}", "--output=json", "--log-level-file=off", "info"]
    if os.geteuid() == 0 and user != "root":
        command = ["/usr/sbin/runuser", "-u", user, "--", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pgbackrest info failed ({done.returncode}): {done.stderr.strip()}")
    return json.loads(done.stdout)


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(info: list[dict], repository_path: str, now: float) -> str:
    gauges: dict[str, tuple[str, list[str]]] = {
        "pgbackrest_backup_last_completion_timestamp_seconds": (
            "Stop time of the newest backup of this type.",
            [],
        ),
        "pgbackrest_backup_last_duration_seconds": ("Duration of the newest backup of this type.", []),
        "pgbackrest_backup_last_size_bytes": ("Database size in the newest backup of this type.", []),
        "pgbackrest_backup_last_repo_size_bytes": (
            "Bytes the newest backup of this type stored in the repository.",
            [],
        ),
        "pgbackrest_backup_count": ("Backups of this type kept in the repository.", []),
        "pgbackrest_stanza_status_code": ("pgbackrest info status code of the stanza (0 = ok).", []),
        "pgbackrest_repo_filesystem_avail_bytes": (
            "Bytes available to unprivileged users on the repository's filesystem.",
            [],
        ),
        "pgbackrest_repo_filesystem_size_bytes": ("Size of the repository's filesystem.", []),
        "pgbackrest_metrics_collected_timestamp_seconds": ("When these metrics were written.", []),
    }
    for stanza in info:
        name = escape(stanza["name"])
        gauges["pgbackrest_stanza_status_code"][1].append(f'{{stanza="{name}"}} {stanza["status"]["code"]}')
        backups = [b for b in stanza.get("backup", []) if not b.get("error", False)]
        for backup_type in BACKUP_TYPES:
            of_type = [b for b in backups if b["type"] == backup_type]
            labels = f'{{stanza="{name}",type="{backup_type}"}}'
            gauges["pgbackrest_backup_count"][1].append(f"{labels} {len(of_type)}")
            if not of_type:
                continue
            newest = max(of_type, key=lambda b: b["timestamp"]["stop"])
            stamps = newest["timestamp"]
            gauges["pgbackrest_backup_last_completion_timestamp_seconds"][1].append(
                f"{labels} {stamps['stop']}"
            )
            gauges["pgbackrest_backup_last_duration_seconds"][1].append(
                f"{labels} {stamps['stop'] - stamps['start']}"
            )
            gauges["pgbackrest_backup_last_size_bytes"][1].append(f"{labels} {newest['info']['size']}")
            gauges["pgbackrest_backup_last_repo_size_bytes"][1].append(
                f"{labels} {newest['info']['repository']['delta']}"
            )
    stats = os.statvfs(repository_path)
    path = escape(repository_path)
    gauges["pgbackrest_repo_filesystem_avail_bytes"][1].append(
        f'{{path="{path}"}} {stats.f_bavail * stats.f_frsize}'
    )
    gauges["pgbackrest_repo_filesystem_size_bytes"][1].append(
        f'{{path="{path}"}} {stats.f_blocks * stats.f_frsize}'
    )
    gauges["pgbackrest_metrics_collected_timestamp_seconds"][1].append(f" {now:.0f}")
    lines = []
    for metric, (help_text, samples) in gauges.items():
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge"]
        lines += [f"{metric}{sample}" for sample in samples]
    return "\n".join(lines) + "\n"


def write_atomically(output: str, text: str) -> None:
    directory = os.path.dirname(output) or "."
    handle, temporary = tempfile.mkstemp(prefix=".pgbackrest.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, output)
    except BaseException:
        os.unlink(temporary)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stanza", required=True)
    parser.add_argument("--user", default="pgbackrest", help="OS user that runs pgbackrest")
    parser.add_argument("--repository-path", required=True)
    parser.add_argument("--output", required=True, help="the .prom file to replace")
    args = parser.parse_args(argv)
    try:
        info = read_info(args.stanza, args.user)
    except (RuntimeError, ValueError, subprocess.TimeoutExpired) as error:
        print(f"pgbackrest_metrics: {error}; keeping the previous {args.output}", file=sys.stderr)
        return 1
    write_atomically(args.output, render(info, args.repository_path, time.time()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
