#!/usr/bin/env python3
"""Instrumentation overhead and /metrics render time under gunicorn (prints numbers; not a test).

Starts throw-away PostgreSQL, Redis and nx-27017 on loopback (tests/support/datastores.py), four
gunicorn servers with 4 workers each from the same code - two with METRICS_ENABLED=true
(multiprocess mode), two with METRICS_ENABLED=false, started on, off, off, on - and measures an
on/off pair side by side with wrk (Debian package) in rounds that alternate between the pairs: per
endpoint and round, both servers loaded at the same time, one wrk each (--schedule alternate: back
to back), order flipped every other round, so that other load on the machine hits both alike. The
figure is the servers' CPU time per request (master and workers, ns-precise from
/proc/<pid>/task/*/schedstat), steadier than req/s on a shared machine. For each endpoint it prints the
per-round overhead (on / off - 1), its median (the result), min/max and stdev across rounds (the
noise), req/s, and PASS/FAIL against the bound in ENDPOINTS. Then it drives the instrumented server
past 100k counted requests and times /metrics renders (p50/p95).

    cd app && python bench/bench.py [--rounds 12] [--duration 4] [--connections 16] [--schedule alternate]

Runtime about 6-8 minutes. --control runs the same with all four servers instrumented (an A/A check
of the bench: its overhead column is then the bench's own bias). Exit status 1 when an endpoint is
over its bound.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from autodealgenie.process_metrics import children, read_stat  # noqa: E402

from tests.support.appenv import app_env  # noqa: E402
from tests.support.datastores import free_port, start_mongodb, start_postgres, start_redis  # noqa: E402

BIN = Path(sys.executable).parent
SEARCH = {"make": "Toyota", "max_results": 20, "sort_by": "price"}
WARMUP_SECONDS = 2
TARGET_REQUESTS = 100_000
METRICS_P95_BOUND_MS = 30.0


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    bound_percent: float  # max CPU/request overhead, metrics on vs off (median of the rounds)
    what: str
    search: bool = False  # POST the search body with the bench user's token (cached after the first)


# The bounds, defined once (issue 16): <= 3 % on /health and the cached search, <= 1 % on an
# untracked endpoint. /health is untracked (it records no metric), so it is held to the 1 %.
ENDPOINTS = (
    Endpoint("health", "/health", 1.0, "untracked probe"),
    Endpoint("search", "/api/v1/cars/search", 3.0, "tracked, cached POST", search=True),
    Endpoint("root", "/", 3.0, "tracked, cheapest route"),
)


def base_env(pg, redis_instance, mongo) -> dict:
    return {
        **os.environ,
        **app_env(
            pg,
            redis_instance,
            mongo.url,
            SEARCH_RATE_LIMIT=1_000_000_000,
            LOGIN_MAX_ATTEMPTS_PER_ADDRESS=1_000_000,
            GUNICORN_WORKERS=4,
            GUNICORN_ACCESS_LOG="",
            GUNICORN_LOG_LEVEL="warning",
        ),
    }


def start_gunicorn(env: dict, instrumented: bool, workdir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "METRICS_ENABLED": str(instrumented).lower()}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if instrumented:
        multiproc = workdir / "metrics"
        multiproc.mkdir()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc)
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "-c", "python:autodealgenie.gunicorn_conf", "autodealgenie.wsgi:app"],
        env=env,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2):  # noqa: S310 - loopback
                return process, base
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                stop_gunicorn(process)
                raise RuntimeError("gunicorn did not start") from None
            time.sleep(0.3)


def stop_gunicorn(process: subprocess.Popen) -> None:
    """Graceful stop; the whole process group is killed if that does not finish in time."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(40)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def post(url: str, body: dict, token: str | None = None) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")  # noqa: S310
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


def login(base: str) -> str:
    name = f"bench{int(time.time() * 1000)}"
    post(
        f"{base}/api/v1/auth/signup",
        {"email": f"{name}@example.test", "username": name, "password": "bench-pass-1"},
    )
    return post(f"{base}/api/v1/auth/login", {"email": f"{name}@example.test", "password": "bench-pass-1"})[
        "access_token"
    ]


def wrk_script(workdir: Path, token: str) -> Path:
    script = workdir / "search.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(SEARCH))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
    )
    return script


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def _schedstat_seconds(pid: int) -> float | None:
    """On-CPU time of every thread of pid, in ns precision (/proc/<pid>/stat counts 10 ms ticks)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        return (
            sum(int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0]) for task in tasks)
            / 1e9
        )
    except (OSError, ValueError, IndexError):
        return None


def tree_cpu_seconds(master: int) -> float:
    """CPU time of the gunicorn master and its live workers (no worker exits during a run)."""
    pids = [master, *children(master)]
    precise = [_schedstat_seconds(pid) for pid in pids]
    if all(value is not None for value in precise):
        return sum(precise)
    stats = [read_stat(pid) for pid in pids]  # kernel without schedstat: 10 ms resolution
    return sum(s["cpu_ticks"] for s in stats if s) / os.sysconf("SC_CLK_TCK")


def _wrk_args(url: str, seconds: int, connections: int, threads: int, script: Path | None) -> list[str]:
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if script:
        args[1:1] = ["-s", str(script)]
    return args


def _parse_wrk(output: str, cpu: float) -> dict:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p99_value, p99_unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", output).groups()
    total = int(re.search(r"(\d+) requests in", output).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": rps,
        "p99": float(p99_value) * _UNITS[p99_unit],
        "requests": total,
        "errors": int(errors.group(1)) if errors else 0,
        "cpu_us": cpu / total * 1e6 if total else 0.0,
    }


def wrk(
    url: str, seconds: int, connections: int, script: Path | None = None, server_pid: int | None = None
) -> dict:
    """One wrk run; with server_pid also the server's CPU time per request (robust to other load)."""
    cpu_before = tree_cpu_seconds(server_pid) if server_pid else 0.0
    output = subprocess.run(
        _wrk_args(url, seconds, connections, 2, script),
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    cpu = tree_cpu_seconds(server_pid) - cpu_before if server_pid else 0.0
    return _parse_wrk(output, cpu)


def wrk_together(
    runs: list[tuple[str, int]], seconds: int, connections: int, script: Path | None
) -> list[dict]:
    """wrk against several servers at the same time (one thread each): (url, server_pid) per run."""
    cpu_before = [tree_cpu_seconds(pid) for _, pid in runs]
    processes = [
        subprocess.Popen(_wrk_args(url, seconds, connections, 1, script), stdout=subprocess.PIPE, text=True)
        for url, _ in runs
    ]
    outputs = [process.communicate(timeout=seconds + 60)[0] for process in processes]
    for process in processes:
        if process.returncode:
            raise RuntimeError(f"wrk failed: {process.args}")
    return [
        _parse_wrk(output, tree_cpu_seconds(pid) - before)
        for output, (_, pid), before in zip(outputs, runs, cpu_before, strict=True)
    ]


def counted_requests(base: str) -> float:
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as response:  # noqa: S310 - loopback
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("http_requests_total{")
    )


def time_metrics(base: str, samples: int) -> list[float]:
    timings = []
    for _ in range(samples):
        start = time.perf_counter()
        with urllib.request.urlopen(f"{base}/metrics", timeout=30) as response:  # noqa: S310 - loopback
            body = response.read()
        timings.append(time.perf_counter() - start)
    timings.sort()
    return timings, body


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def measure(args, endpoint: Endpoint, servers: dict, script: Path, round_number: int) -> dict:
    """One round of one endpoint: {mode: wrk result}. Rounds alternate between the two pairs of
    servers, and every pair sees both orders of the modes (start order and load order balanced)."""
    pair = round_number % 2
    order = ["on", "off"] if (round_number // 2) % 2 == 0 else ["off", "on"]
    lua = script if endpoint.search else None
    targets = {mode: servers[(mode, pair)] for mode in order}  # mode -> (base url, master pid)
    if args.schedule == "concurrent":
        results = wrk_together(
            [(base + endpoint.path, pid) for base, pid in targets.values()],
            args.duration,
            args.connections // 2,
            lua,
        )
        return dict(zip(order, results, strict=True))
    return {
        mode: wrk(base + endpoint.path, args.duration, args.connections, lua, pid)
        for mode, (base, pid) in targets.items()
    }


def summarize(results: dict) -> list[str]:
    """Per endpoint: medians on/off, overhead (median of per-round ratios), its spread, verdict."""
    lines = [
        f"{'endpoint':<8}{'bound':>7}{'CPU us on':>11}{'off':>7}{'overhead':>10}{'min':>8}{'max':>8}"
        f"{'stdev':>7}{'s.e.':>6}{'req/s on':>10}{'off':>8}{'p99 on':>9}{'off':>8}  verdict",
    ]
    failed = []
    for endpoint in ENDPOINTS:
        rounds = results[endpoint.name]
        ratios = [(r["on"]["cpu_us"] / r["off"]["cpu_us"] - 1) * 100 for r in rounds]
        overhead = statistics.median(ratios)

        def median(mode, key, rounds=rounds):
            return statistics.median(r[mode][key] for r in rounds)

        stdev = statistics.stdev(ratios) if len(ratios) > 1 else 0.0
        stderr = stdev / len(ratios) ** 0.5
        errors = sum(r[mode]["errors"] for r in rounds for mode in ("on", "off"))
        verdict = "PASS" if overhead <= endpoint.bound_percent and not errors else "FAIL"
        if stderr > endpoint.bound_percent:
            verdict += " (noise > bound)"
        if verdict == "FAIL":
            failed.append(endpoint.name)
        lines.append(
            f"{endpoint.name:<8}{endpoint.bound_percent:>6.1f}%{median('on', 'cpu_us'):>11.0f}"
            f"{median('off', 'cpu_us'):>7.0f}{overhead:>+9.2f}%{min(ratios):>+7.1f}%{max(ratios):>+7.1f}%"
            f"{stdev:>6.1f}%{stderr:>5.1f}%{median('on', 'rps'):>10.0f}{median('off', 'rps'):>8.0f}"
            f"{median('on', 'p99') * 1000:>7.1f}ms{median('off', 'p99') * 1000:>6.1f}ms  {verdict}"
            + (f" ({errors} non-2xx)" if errors else "")
            + f"  [{endpoint.what}]"
        )
        by_pair = [statistics.mean(ratios[pair::2]) for pair in (0, 1)]
        lines.append(
            f"{'':<8}per pair (mean): on started 1st {by_pair[0]:+.2f}%, on started 4th {by_pair[1]:+.2f}%"
        )
    lines.append(
        "overhead = median over rounds of (CPU us/req on / off - 1); min/max/stdev: that ratio's spread "
        "across rounds, s.e. = stdev / sqrt(rounds)"
    )
    lines.append("result: " + ("PASS" if not failed else f"FAIL ({', '.join(failed)} over the bound)"))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description="instrumentation overhead benchmark")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--schedule",
        choices=("alternate", "concurrent"),
        default="concurrent",
        help="both at once, one wrk each (default: other load on the machine hits both alike), or "
        "back to back in each round",
    )
    parser.add_argument(
        "--control",
        action="store_true",
        help="A/A check of the bench itself: the off servers are instrumented too (any overhead is bias)",
    )
    parser.add_argument("--render-samples", type=int, default=200)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk not found (apt-get install wrk)", file=sys.stderr)
        return 2
    if args.rounds < 4 or args.rounds % 4:
        parser.error("--rounds must be a multiple of 4 (2 server pairs x 2 orders)")

    workdir = Path(tempfile.mkdtemp(prefix="adg-bench-"))
    stores, servers = [], []
    try:
        for starter in (start_postgres, start_redis, start_mongodb):
            stores.append(starter())  # one by one: whatever started is stopped in `finally`
        pg, redis_instance, mongo = stores
        env = base_env(pg, redis_instance, mongo)
        for command in (["migrate"], ["seed", "--vehicles", "1000"]):
            subprocess.run(
                [str(BIN / "autodealgenie"), *command], env=env, check=True, stdout=subprocess.DEVNULL
            )
        # Two servers per mode, started on, off, off, on: in an A/A check (--control) the server
        # started first came out a few % dearer per request, so each mode gets one early and one late.
        by_mode: dict = {}
        for index, (mode, pair) in enumerate((("on", 0), ("off", 0), ("off", 1), ("on", 1))):
            server_dir = workdir / f"{mode}{pair}"
            server_dir.mkdir()
            process, base = start_gunicorn(env, mode == "on" or args.control, server_dir)
            servers.append(process)
            by_mode[(mode, pair)] = (base, process.pid)
            if index == 0:
                on_base, on_dir = base, server_dir
        token = login(on_base)
        script = wrk_script(workdir, token)
        for base, _ in by_mode.values():  # warm caches, pools and imports in every worker
            post(f"{base}/api/v1/cars/search", SEARCH, token)
            for endpoint in ENDPOINTS:
                wrk(
                    base + endpoint.path,
                    WARMUP_SECONDS,
                    args.connections,
                    script if endpoint.search else None,
                )

        results = {endpoint.name: [] for endpoint in ENDPOINTS}
        connections = args.connections if args.schedule == "alternate" else args.connections // 2
        print(
            f"gunicorn 4 workers per server, 2 servers per mode (started on, off, off, on; rounds alternate "
            f"between the pairs), wrk -c{connections} -d{args.duration}s per run, {args.rounds} rounds, "
            f"schedule {args.schedule} (order flipped every other round)"
            + (", CONTROL RUN: all four servers instrumented" if args.control else "")
            + "; load average before: "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n"
        )
        print(
            f"{'round':<6}{'endpoint':<9}{'mode':<5}{'req/s':>10}{'p99 ms':>9}{'CPU us/req':>12}"
            f"{'non-2xx':>9}"
        )
        for round_number in range(args.rounds):
            for endpoint in ENDPOINTS:
                pair = measure(args, endpoint, by_mode, script, round_number)
                results[endpoint.name].append(pair)
                for mode, result in pair.items():
                    print(
                        f"{round_number + 1:<6}{endpoint.name:<9}{mode:<5}{result['rps']:>10.1f}"
                        f"{result['p99'] * 1000:>9.2f}{result['cpu_us']:>12.0f}{result['errors']:>9}"
                    )
                ratio = (pair["on"]["cpu_us"] / pair["off"]["cpu_us"] - 1) * 100
                print(f"{'':<6}{endpoint.name:<9}{'on/off CPU per request':<24}{ratio:>+12.2f}%")

        print(f"\nsummary ({args.rounds} rounds; load average after: {os.getloadavg()[0]:.1f})")
        summary = summarize(results)
        print("\n".join(summary))
        over_bound = summary[-1] != "result: PASS"

        counted = counted_requests(on_base)
        started = time.monotonic()
        while counted < TARGET_REQUESTS and time.monotonic() - started < 600:
            wrk(f"{on_base}/", 10, args.connections)
            counted = counted_requests(on_base)
        timings, body = time_metrics(on_base, args.render_samples)
        files = len(list((on_dir / "metrics").glob("*.db")))
        series = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
        print(
            f"\n/metrics after {counted:,.0f} counted requests ({files} multiprocess files, {series} series, "
            f"{len(body) / 1024:.0f} KiB): p50 {percentile(timings, 0.5) * 1000:.1f} ms, "
            f"p95 {percentile(timings, 0.95) * 1000:.1f} ms, max {timings[-1] * 1000:.1f} ms "
            f"over {len(timings)} sequential scrapes (bound p95 <= {METRICS_P95_BOUND_MS:.0f} ms)"
        )
        over_bound = over_bound or percentile(timings, 0.95) * 1000 > METRICS_P95_BOUND_MS
        return 1 if over_bound else 0
    finally:
        for server in servers:
            stop_gunicorn(server)
        for store in stores:
            store.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
