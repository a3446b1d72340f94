#!/usr/bin/env python3
"""Instrumentation overhead and /metrics render time under gunicorn (prints numbers; not a test).

Starts throw-away PostgreSQL, Redis and nx-27017 on loopback (tests/support/datastores.py), two
gunicorn servers with 4 workers each from the same code - METRICS_ENABLED=true (multiprocess mode)
and METRICS_ENABLED=false - and measures them alternately with wrk (Debian package) against
/health and a cached POST /api/v1/cars/search. Reports requests/s and p99 per mode, the overhead
ratio (median of the rounds), then drives the instrumented server past 100k counted requests and
times /metrics renders (p50/p95).

    cd app && python bench/bench.py [--rounds 3] [--duration 8] [--connections 16]

Targets: overhead <= 3 %, /metrics p95 <= 30 ms. Runtime about 3-5 minutes.
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


def tree_cpu_seconds(master: int) -> float:
    """CPU time of the gunicorn master and its workers (reaped workers included via cutime)."""
    stats = [read_stat(master), *(read_stat(pid) for pid in children(master))]
    return sum(s["cpu_ticks"] for s in stats if s) / os.sysconf("SC_CLK_TCK")


def wrk(
    url: str, seconds: int, connections: int, script: Path | None = None, server_pid: int | None = None
) -> dict:
    """One wrk run; with server_pid also the server's CPU time per request (robust to other load)."""
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if script:
        args[1:1] = ["-s", str(script)]
    cpu_before = tree_cpu_seconds(server_pid) if server_pid else 0.0
    output = subprocess.run(args, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    cpu = tree_cpu_seconds(server_pid) - cpu_before if server_pid else 0.0
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


def main() -> int:
    parser = argparse.ArgumentParser(description="instrumentation overhead benchmark")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--render-samples", type=int, default=200)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk not found (apt-get install wrk)", file=sys.stderr)
        return 2

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
        on_dir, off_dir = workdir / "on", workdir / "off"
        on_dir.mkdir()
        off_dir.mkdir()
        on, on_base = start_gunicorn(env, True, on_dir)
        servers.append(on)
        off, off_base = start_gunicorn(env, False, off_dir)
        servers.append(off)
        token = login(on_base)
        script = wrk_script(workdir, token)
        for base in (on_base, off_base):  # warm caches, pools and imports in every worker
            post(f"{base}/api/v1/cars/search", SEARCH, token)
            wrk(f"{base}/api/v1/cars/search", WARMUP_SECONDS, args.connections, script)
            wrk(f"{base}/health", WARMUP_SECONDS, args.connections)

        results = {(ep, mode): [] for ep in ("health", "search") for mode in ("on", "off")}
        print(
            f"gunicorn 4 workers, wrk -t2 -c{args.connections} -d{args.duration}s, {args.rounds} rounds, "
            "modes alternated (order flipped each round); load average before: "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n"
        )
        print(
            f"{'round':<6}{'endpoint':<9}{'mode':<5}{'req/s':>10}{'p99 ms':>9}"
            f"{'CPU us/req':>12}{'non-2xx':>9}"
        )
        pids = {"on": on.pid, "off": off.pid}
        for round_number in range(args.rounds):
            order = [("on", on_base), ("off", off_base)]
            if round_number % 2:
                order.reverse()
            for endpoint, path, lua in (
                ("health", "/health", None),
                ("search", "/api/v1/cars/search", script),
            ):
                for mode, base in order:
                    result = wrk(base + path, args.duration, args.connections, lua, pids[mode])
                    results[(endpoint, mode)].append(result)
                    print(
                        f"{round_number + 1:<6}{endpoint:<9}{mode:<5}{result['rps']:>10.1f}"
                        f"{result['p99'] * 1000:>9.2f}{result['cpu_us']:>12.0f}{result['errors']:>9}"
                    )

        def median(endpoint, mode, key):
            return statistics.median(r[key] for r in results[(endpoint, mode)])

        print("\nsummary (median of rounds; overhead = on vs off)")
        print(
            f"{'endpoint':<9}{'req/s on':>10}{'req/s off':>11}{'overhead':>10}{'CPU us on':>11}"
            f"{'CPU us off':>12}{'overhead':>10}{'p99 on':>10}{'p99 off':>10}"
        )
        for endpoint in ("health", "search"):
            rps_on, rps_off = median(endpoint, "on", "rps"), median(endpoint, "off", "rps")
            cpu_on, cpu_off = median(endpoint, "on", "cpu_us"), median(endpoint, "off", "cpu_us")
            p99_on, p99_off = median(endpoint, "on", "p99"), median(endpoint, "off", "p99")
            print(
                f"{endpoint:<9}{rps_on:>10.1f}{rps_off:>11.1f}{(rps_off - rps_on) / rps_off * 100:>9.2f}%"
                f"{cpu_on:>11.0f}{cpu_off:>12.0f}{(cpu_on - cpu_off) / cpu_off * 100:>9.2f}%"
                f"{p99_on * 1000:>8.2f}ms{p99_off * 1000:>8.2f}ms"
            )

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
            f"over {len(timings)} sequential scrapes"
        )
        return 0
    finally:
        for server in servers:
            stop_gunicorn(server)
        for store in stores:
            store.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
