#!/usr/bin/env python3
"""Profile the instrumentation on the request path of one worker (prints numbers; not a test).

Starts throw-away PostgreSQL, Redis and nx-27017 on loopback, then two child processes - metrics on
(multiprocess mode, as under gunicorn) and off - that each build the app exactly as a gunicorn worker
does and call the WSGI app directly in a loop (no sockets, no gunicorn: only the app's own CPU).
Prints CPU us/request per endpoint and mode, and with --profile the cProfile top lines of both
workers (cumulative time and own time), to compare on with off function by function.

    cd app && python bench/profile_requests.py [--requests 5000] [--profile]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

SEARCH = {"make": "Toyota", "max_results": 20, "sort_by": "price"}
ENDPOINTS = ("health", "search", "root")


def _request(app, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    from werkzeug.test import EnvironBuilder

    base = EnvironBuilder(
        path=path, method=method, data=body, headers=headers or {}, environ_base={"REMOTE_ADDR": "127.0.0.1"}
    ).get_environ()

    def call() -> int:
        environ = dict(base)
        environ["wsgi.input"] = io.BytesIO(body)
        status = []
        result = app(environ, lambda s, h, e=None: status.append(s))
        try:
            for _ in result:
                pass
        finally:
            if hasattr(result, "close"):
                result.close()
        return int(status[0].split()[0])

    return call


def worker(args) -> int:
    """Child: one app, as in a gunicorn worker; prints one JSON line of results."""
    from autodealgenie.app import create_app

    app = create_app()
    signup = _request(
        app,
        "POST",
        "/api/v1/auth/signup",
        json.dumps(
            {"email": f"p{os.getpid()}@example.test", "username": f"p{os.getpid()}", "password": "x" * 12}
        ).encode(),
        {"Content-Type": "application/json"},
    )
    signup()
    with app.test_client() as client:
        token = client.post(
            "/api/v1/auth/login", json={"email": f"p{os.getpid()}@example.test", "password": "x" * 12}
        ).get_json()["access_token"]
    calls = {
        "health": _request(app, "GET", "/health"),
        "root": _request(app, "GET", "/"),
        "search": _request(
            app,
            "POST",
            "/api/v1/cars/search",
            json.dumps(SEARCH).encode(),
            {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        ),
    }
    results = {}
    for name in args.endpoints:
        call = calls[name]
        for _ in range(200):  # warm: cache filled, children created, pools connected
            assert call() == 200
        if args.profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(args.requests):
                call()
            profiler.disable()
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats("cumulative").print_stats(args.top)
            stats.sort_stats("tottime").print_stats(args.top)
            Path(args.profile_out, f"{name}_{args.worker}.txt").write_text(out.getvalue())
            profiler.dump_stats(Path(args.profile_out, f"{name}_{args.worker}.pstats"))  # for pstats/snakeviz
        start = time.process_time()
        for _ in range(args.requests):
            call()
        results[name] = (time.process_time() - start) / args.requests * 1e6
    print(json.dumps(results))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--endpoints", nargs="+", default=list(ENDPOINTS), choices=ENDPOINTS)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile both workers (files <endpoint>_<on|off>.txt and .pstats)",
    )
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--profile-out", default="")
    parser.add_argument("--worker", choices=("on", "off"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    from tests.support.appenv import app_env
    from tests.support.datastores import start_mongodb, start_postgres, start_redis

    workdir = Path(tempfile.mkdtemp(prefix="adg-profile-"))
    stores = []
    try:
        for starter in (start_postgres, start_redis, start_mongodb):
            stores.append(starter())
        pg, redis_instance, mongo = stores
        env = {
            **os.environ,
            **app_env(
                pg,
                redis_instance,
                mongo.url,
                SEARCH_RATE_LIMIT=1_000_000_000,
                LOGIN_MAX_ATTEMPTS_PER_ADDRESS=1_000_000,
                SIGNUP_MAX_PER_ADDRESS=1_000_000,
                LOG_LEVEL="warning",
            ),
        }
        bin_dir = Path(sys.executable).parent
        for command in (["migrate"], ["seed", "--vehicles", "1000"]):
            subprocess.run(
                [str(bin_dir / "autodealgenie"), *command], env=env, check=True, stdout=subprocess.DEVNULL
            )
        results = {"on": [], "off": []}
        for round_number in range(args.rounds):
            # on and off run at the same time (one core each): other load on the machine hits both alike
            children = {}
            for mode in ("on", "off") if round_number % 2 == 0 else ("off", "on"):
                child_env = {**env, "METRICS_ENABLED": "true" if mode == "on" else "false"}
                child_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
                if mode == "on":
                    multiproc = workdir / f"metrics{round_number}"
                    multiproc.mkdir()
                    child_env["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc)
                command = [sys.executable, __file__, "--worker", mode, "--requests", str(args.requests)]
                command += ["--endpoints", *args.endpoints]
                if args.profile and round_number == 0:
                    # profiled before its timed loop; this round is left out of the ratios below
                    out = Path(args.profile_out or workdir)
                    out.mkdir(parents=True, exist_ok=True)
                    command += ["--profile", "--top", str(args.top), "--profile-out", str(out)]
                children[mode] = subprocess.Popen(command, env=child_env, stdout=subprocess.PIPE, text=True)
            for mode, child in children.items():
                output, _ = child.communicate()
                if child.returncode:
                    raise RuntimeError(f"{mode} worker failed")
                results[mode].append(json.loads(output.strip().splitlines()[-1]))
        if args.profile and args.rounds > 1:  # round 0 overlapped a profiled (slower) worker
            results = {mode: runs[1:] for mode, runs in results.items()}
        print(f"{'endpoint':<8}{'on us/req':>12}{'off us/req':>12}{'overhead':>10}   per-round ratios")
        for name in args.endpoints:
            ratios = [on[name] / off[name] - 1 for on, off in zip(results["on"], results["off"], strict=True)]
            on_us = sorted(r[name] for r in results["on"])[len(results["on"]) // 2]
            off_us = sorted(r[name] for r in results["off"])[len(results["off"]) // 2]
            print(
                f"{name:<8}{on_us:>12.1f}{off_us:>12.1f}{sorted(ratios)[len(ratios) // 2] * 100:>9.2f}%   "
                + " ".join(f"{r * 100:+.1f}%" for r in ratios)
            )
        if args.profile:
            print(f"profiles: {args.profile_out or workdir}/<endpoint>_<on|off>.txt and .pstats")
        return 0
    finally:
        for store in stores:
            store.stop()


if __name__ == "__main__":
    sys.exit(main())
