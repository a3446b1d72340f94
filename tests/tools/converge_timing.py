#!/usr/bin/env python3
"""Times the sandbox's converges, side by side in one run: fresh and idempotent, per strategy.

    python3 tests/tools/converge_timing.py                          linear and mitogen_linear
    python3 tests/tools/converge_timing.py --strategy mitogen_linear   one strategy
    python3 tests/tools/converge_timing.py --replace --keep         replace a running sandbox, leave
                                                                    the last one up

For each strategy the sandbox (tests/sandbox-lab.yml) is destroyed and `tests/sandbox.sh up` runs
twice: the first run is the fresh converge (host creation from the cached image, stand-ins,
site.yml), the second the idempotent one. Each ansible-playbook run is recorded by the
adg_run_timing callback (tests/tools/callback_plugins): wall time, changes per host, time per role.

Prints, per strategy: `up` and site.yml alone for both runs, the changes of the idempotent run,
the ratio idempotent/fresh; then the ratio of each strategy to the first; then the roles that took
longest. The targets of issue 16 are printed next to the figures. Exit status 1 when a run failed
or the idempotent run changed anything. Needs root (test hosts), like tests/sandbox.sh.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SANDBOX = ["bash", str(REPO / "tests" / "sandbox.sh")]
CALLBACKS = REPO / "tests" / "tools" / "callback_plugins"
STRATEGIES = ("linear", "mitogen_linear")
# issue 16's targets for `tests/sandbox.sh up` with a cached image, and for the ratio
TARGET_FRESH_UP_S = 180
TARGET_IDEMPOTENT_UP_S = 30
TARGET_RATIO = 0.20


@functools.cache
def verification_plays() -> frozenset[str]:
    """Names of the plays of playbooks/verify.yml (the checks at the end of site.yml)."""
    plays = yaml.safe_load((REPO / "playbooks" / "verify.yml").read_text(encoding="utf-8"))
    return frozenset(play["name"] for play in plays if "name" in play and "hosts" in play)


def without_verification(record: dict) -> float:
    verify = verification_plays()
    return record["seconds"] - sum(seconds for name, seconds in record.get("plays", []) if name in verify)


def sandbox_env(strategy: str, timing_file: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("ANSIBLE_STRATEGY", None)
    env.pop("ANSIBLE_STRATEGY_PLUGINS", None)
    # bootstrap.sh turns Mitogen on unless ADG_MITOGEN=0
    env["ADG_MITOGEN"] = "1" if strategy == "mitogen_linear" else "0"
    env["ANSIBLE_CALLBACK_PLUGINS"] = str(CALLBACKS)
    env["ANSIBLE_CALLBACKS_ENABLED"] = "ansible.posix.profile_tasks,adg_run_timing"
    env["ADG_RUN_TIMING_FILE"] = str(timing_file)
    env["ANSIBLE_FORCE_COLOR"] = "false"
    return env


def run(cmd: list[str], env: dict[str, str], log: Path) -> tuple[int, float]:
    started = time.monotonic()
    with log.open("a", encoding="utf-8") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        done = subprocess.run(cmd, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, check=False)
        rc = done.returncode
    return rc, time.monotonic() - started


def records(timing_file: Path, since: int) -> list[dict]:
    if not timing_file.exists():
        return []
    lines = timing_file.read_text(encoding="utf-8").splitlines()[since:]
    return [json.loads(line) for line in lines if line.strip()]


def line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0


def measure(strategy: str, workdir: Path) -> dict:
    """Destroy the sandbox, then `up` twice; the figures of both runs."""
    timing_file = workdir / f"timing-{strategy}.jsonl"
    log = workdir / f"sandbox-{strategy}.log"
    env = sandbox_env(strategy, timing_file)
    rc, _ = run([*SANDBOX, "down"], env, log)
    if rc != 0:
        raise SystemExit(f"tests/sandbox.sh down failed (rc {rc}); see {log}")
    result: dict = {"strategy": strategy, "log": str(log)}
    for phase in ("fresh", "idempotent"):
        before = line_count(timing_file)
        rc, seconds = run([*SANDBOX, "up"], env, log)
        site = [r for r in records(timing_file, before) if r["playbook"] == "site.yml"]
        result[phase] = {
            "rc": rc,
            "up_seconds": seconds,
            "site_seconds": site[-1]["seconds"] if site else None,
            "deploy_seconds": without_verification(site[-1]) if site else None,
            "changed": sum(site[-1]["changed"].values()) if site else None,
            "roles": site[-1].get("roles", {}) if site else {},
            "strategy_seen": site[-1].get("strategy") if site else None,
        }
        print(f"  {strategy:<15} {phase:<10} up {seconds:6.1f} s  rc {rc}", flush=True)
        if rc != 0:
            break
    return result


def fmt(value: float | None, unit: str = "s") -> str:
    return "   n/a" if value is None else f"{value:6.1f} {unit}"


def fmt_ratio(value: float | None) -> str:
    return "  n/a" if value is None else f"{value:5.2f}"


def ratio(part: float | None, whole: float | None) -> float | None:
    return part / whole if part and whole else None


def report(results: list[dict]) -> int:
    failed = 0
    print()
    print(
        "strategy         fresh up  (site.yml)   idempotent up  (site.yml)  changed"
        "  idem/fresh: up  (site.yml)"
    )
    for r in results:
        fresh, idem = r.get("fresh", {}), r.get("idempotent", {})
        if fresh.get("rc") or idem.get("rc") is None or idem.get("rc") or idem.get("changed"):
            failed = 1
        print(
            f"{r['strategy']:<15} {fmt(fresh.get('up_seconds'))} ({fmt(fresh.get('site_seconds'))})"
            f"   {fmt(idem.get('up_seconds'))} ({fmt(idem.get('site_seconds'))})"
            f"  {idem.get('changed', 'n/a')!s:>7}"
            f"           {fmt_ratio(ratio(idem.get('up_seconds'), fresh.get('up_seconds')))}"
            f"     ({fmt_ratio(ratio(idem.get('site_seconds'), fresh.get('site_seconds')))})"
        )
    print(
        f"targets: fresh up <= {TARGET_FRESH_UP_S} s, idempotent up <= {TARGET_IDEMPOTENT_UP_S} s, "
        f"idempotent/fresh <= {TARGET_RATIO:.2f}, changed = 0"
    )
    print("\nwithout the verification plays of playbooks/verify.yml (the deploy alone):")
    for r in results:
        fresh, idem = r.get("fresh", {}), r.get("idempotent", {})
        if fresh.get("deploy_seconds") and idem.get("deploy_seconds"):
            print(
                f"{r['strategy']:<15} fresh {fresh['deploy_seconds']:6.1f} s"
                f"   idempotent {idem['deploy_seconds']:6.1f} s"
                f"   ratio {ratio(idem['deploy_seconds'], fresh['deploy_seconds']):.2f}"
            )
    base = results[0]
    for r in results[1:]:
        for phase in ("fresh", "idempotent"):
            a, b = base.get(phase, {}).get("site_seconds"), r.get(phase, {}).get("site_seconds")
            if a and b:
                pair = f"{r['strategy']} / {base['strategy']}"
                print(f"{pair} ({phase} site.yml): {b / a:.2f}  ({b:.1f} s / {a:.1f} s)")
    for r in results:
        for phase in ("fresh", "idempotent"):
            roles = r.get(phase, {}).get("roles") or {}
            top = sorted(roles.items(), key=lambda kv: kv[1], reverse=True)[:12]
            if top:
                print(f"\nslowest roles, {r['strategy']}, {phase} site.yml:")
                for role, seconds in top:
                    print(f"  {seconds:7.1f} s  {role}")
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--strategy", action="append", choices=STRATEGIES, help="a strategy to time (default: both, in order)"
    )
    parser.add_argument("--replace", action="store_true", help="destroy a sandbox that is already up")
    parser.add_argument("--keep", action="store_true", help="leave the last strategy's sandbox up")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("converge_timing: run as root (test hosts need systemd-nspawn)", file=sys.stderr)
        return 2
    status = subprocess.run([*SANDBOX, "status"], cwd=REPO, capture_output=True, text=True, check=False)
    if status.returncode == 0 and status.stdout.startswith("lab ") and not args.replace:
        print("converge_timing: a sandbox exists; --replace destroys it for the measurement", file=sys.stderr)
        return 2
    strategies = args.strategy or list(STRATEGIES)
    with tempfile.TemporaryDirectory(prefix="adg-converge-timing.") as tmp:
        workdir = Path(tmp)
        results = [measure(strategy, workdir) for strategy in strategies]
        failed = report(results)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        if failed:
            for r in results:
                keep = REPO / ".cache" / "reports" / f"converge-timing-{r['strategy']}.log"
                keep.parent.mkdir(parents=True, exist_ok=True)
                keep.write_text(Path(r["log"]).read_text(encoding="utf-8"), encoding="utf-8")
                print(f"log of {r['strategy']}: {keep}", file=sys.stderr)
        if not args.keep:
            run([*SANDBOX, "down"], dict(os.environ), workdir / "down.log")
    return failed


if __name__ == "__main__":
    sys.exit(main())
