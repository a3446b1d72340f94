"""Under gunicorn with 4 workers: exact counts in multiprocess mode, process_* and app_info, access log."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from appsupport import env_for
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from tests.support.datastores import free_port

WORKERS = 4
GUNICORN = [
    str(Path(sys.executable).parent / "gunicorn"),
    "-c",
    "python:autodealgenie.gunicorn_conf",
    "autodealgenie.wsgi:app",
]


def scrape(base: str) -> dict[tuple, float]:
    response = requests.get(f"{base}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def worker_pids(master: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()]


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.fixture
def gunicorn(datastores, migrated, tmp_path):
    with running_gunicorn(datastores, tmp_path) as server:
        yield server


@contextlib.contextmanager
def running_gunicorn(datastores, tmp_path, **extra_env):
    """gunicorn with WORKERS workers on a free port; extra_env overrides the test environment."""
    multiproc = tmp_path / "metrics"
    multiproc.mkdir()
    (multiproc / "counter_999999.db").write_bytes(b"stale file from a previous run")
    port = free_port()
    access_log = tmp_path / "access.log"
    env = {
        **os.environ,
        **env_for(
            datastores["pg"],
            datastores["redis"],
            datastores["mongo"],
            GUNICORN_WORKERS=WORKERS,
            GUNICORN_BIND=f"127.0.0.1:{port}",
            GUNICORN_ACCESS_LOG=access_log,
            PROMETHEUS_MULTIPROC_DIR=multiproc,
            **extra_env,
        ),
    }
    process = subprocess.Popen(
        GUNICORN,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "error.log", "wb"),  # noqa: SIM115
        start_new_session=True,  # own process group: the cleanup below reaches the workers too
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60  # 4 workers importing on a busy 2-core machine
        while True:
            try:
                if (
                    requests.get(f"{base}/health", timeout=2).status_code == 200
                    and len(worker_pids(process.pid)) == WORKERS
                ):
                    break
            except requests.RequestException:
                pass
            assert process.poll() is None, (tmp_path / "error.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "error.log").read_text()
            time.sleep(0.2)
        yield {
            "base": base,
            "process": process,
            "access_log": access_log,
            "multiproc": multiproc,
            "error_log": tmp_path / "error.log",
        }
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, "SIGTERM must stop gunicorn gracefully"
    finally:
        if process.poll() is None:  # startup failed or the graceful stop hung: never leak a server
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def _get_concurrently(url: str, count: int, clients: int = 8) -> int:
    """GET url count times from several clients at once (a new connection each); returns count."""
    with ThreadPoolExecutor(clients) as pool:
        statuses = list(pool.map(lambda _: requests.get(url, timeout=5).status_code, range(count)))
    assert statuses == [200] * count
    return count


def _pids_in(access_log: Path) -> set[int]:
    return {json.loads(line)["pid"] for line in access_log.read_text().splitlines()}


def _wait_workers(master: int, count: int) -> None:
    deadline = time.monotonic() + 20
    while len(worker_pids(master)) != count:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_counts_are_exact_across_workers_and_survive_a_killed_worker(gunicorn):
    base, master = gunicorn["base"], gunicorn["process"].pid
    assert not (gunicorn["multiproc"] / "counter_999999.db").exists(), "stale files must be removed at start"
    # Sequential requests may all land on one worker (whichever is awake wins the accept), so they
    # go out concurrently, in batches, until the access log shows several workers served them.
    k = 0
    while k < 2000:
        k += _get_concurrently(f"{base}/", 100)
        if k >= 200 and len(_pids_in(gunicorn["access_log"])) >= 2:
            break
    for _ in range(20):  # probes and scrapes are not counted
        requests.get(f"{base}/health", timeout=5)
        requests.get(f"{base}/api/v1/health", timeout=5)
    samples = scrape(base)
    assert value(samples, "http_requests_total", handler="/", method="GET", status="2xx") == k
    assert value(samples, "http_request_duration_seconds_count", handler="/", method="GET") == k
    assert not [
        key for key in samples if key[0] == "http_requests_total" and ("handler", "/health") in key[1]
    ]
    assert not [
        key for key in samples if key[0] == "http_requests_total" and ("handler", "/metrics") in key[1]
    ]

    assert len(_pids_in(gunicorn["access_log"])) >= 2, f"{k} requests, all served by one worker"

    cpu_before = value(samples, "process_cpu_seconds_total")
    victim = worker_pids(master)[0]
    os.kill(victim, signal.SIGKILL)
    time.sleep(0.5)
    _wait_workers(master, WORKERS)
    assert victim not in worker_pids(master)
    m = 50
    for _ in range(m):
        assert requests.get(f"{base}/", timeout=5).status_code == 200
    for _ in range(3):  # every worker must report the same totals
        samples = scrape(base)
        assert value(samples, "http_requests_total", handler="/", method="GET", status="2xx") == k + m
    assert value(samples, "process_cpu_seconds_total") >= cpu_before
    # in-progress gauge is livesum: nothing in flight but the scrape itself (excluded)
    assert value(samples, "autodealgenie_requests_inprogress", handler="/", method="GET") == 0


def test_unmatched_paths_share_one_label_and_status_is_grouped(gunicorn):
    base = gunicorn["base"]
    for path in ("/nope", "/wp-login.php", "/api/v1/unknown/123"):
        assert requests.get(f"{base}{path}", timeout=5).status_code == 404
    samples = scrape(base)
    assert value(samples, "http_requests_total", handler="unmatched", method="GET", status="4xx") == 3
    handlers = {dict(key[1]).get("handler") for key in samples if key[0] == "http_requests_total"}
    assert "/nope" not in handlers and "/wp-login.php" not in handlers


def test_process_metrics_cover_master_and_workers(gunicorn):
    base, master = gunicorn["base"], gunicorn["process"].pid
    samples = scrape(base)
    expected_rss = sum(rss_bytes(pid) for pid in [master, *worker_pids(master)])
    reported = value(samples, "process_resident_memory_bytes")
    single_worker = rss_bytes(worker_pids(master)[0])
    assert reported > 2 * single_worker, "must sum the process tree, not one worker"
    assert abs(reported - expected_rss) / expected_rss < 0.2
    assert value(samples, "process_cpu_seconds_total") > 0
    start = value(samples, "process_start_time_seconds")
    assert abs(start - time.time()) < 600
    assert value(samples, "process_open_fds") > WORKERS
    assert value(samples, "autodealgenie_app_info", version="1.0.0", environment="test") == 1


def test_access_log_is_json_with_the_request_id(gunicorn):
    base = gunicorn["base"]
    response = requests.get(f"{base}/", headers={"X-Request-ID": "trace-abc.123"}, timeout=5)
    assert response.headers["X-Request-ID"] == "trace-abc.123"
    generated = requests.get(f"{base}/", timeout=5).headers["X-Request-ID"]
    deadline = time.monotonic() + 5  # a worker writes the access record after the response has gone
    while True:
        records = [json.loads(line) for line in gunicorn["access_log"].read_text().splitlines()]
        if {"trace-abc.123", generated} <= {r["request_id"] for r in records}:
            break
        assert time.monotonic() < deadline, f"request ids missing from the access log: {records}"
        time.sleep(0.1)
    record = next(r for r in records if r["request_id"] == "trace-abc.123")
    assert record["method"] == "GET" and record["path"] == "/" and record["status"] == 200


def _worker_files_with(multiproc: Path, pids: list[int], metric: str, labels: dict) -> dict[int, float]:
    """pid -> the value of one series in that worker's own counter file (absent: not in the dict)."""
    found = {}
    for pid in pids:
        path = multiproc / f"counter_{pid}.db"
        if not path.exists():
            continue
        for key, value, _timestamp, _pos in MmapedDict.read_all_values_from_file(str(path)):
            _name, sample_name, sample_labels, _help = json.loads(key)
            if sample_name == metric and sample_labels == labels:
                found[pid] = value
    return found


RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_zero_series_are_in_every_worker_count_exactly_and_stderr_is_json(datastores, migrated, tmp_path):
    """PostgreSQL unreachable: every signup answers 503. Its 5xx series existed at 0 in each worker's
    file from the start, is one exported series, and counts every failure exactly; each line on
    gunicorn's stderr (its error log and the app's log) is a JSON object, the app's carrying the
    request's X-Request-ID."""
    signup_5xx = {"handler": "/api/v1/auth/signup", "method": "POST", "status": "5xx"}
    with running_gunicorn(datastores, tmp_path, POSTGRES_PORT=free_port()) as server:
        base, master = server["base"], server["process"].pid
        pids = worker_pids(master)
        deadline = time.monotonic() + 30  # /health answered: the other workers may still be booting
        while len(_worker_files_with(server["multiproc"], pids, "http_requests_total", signup_5xx)) < WORKERS:
            assert time.monotonic() < deadline, "a worker has no zero series"
            time.sleep(0.2)
        assert set(
            _worker_files_with(server["multiproc"], pids, "http_requests_total", signup_5xx).values()
        ) == {0.0}
        before = requests.get(f"{base}/metrics", timeout=10).text
        exported = [
            s
            for family in text_string_to_metric_families(before)
            for s in family.samples
            if s.name == "http_requests_total" and s.labels == signup_5xx
        ]
        assert [s.value for s in exported] == [0.0], "one series at 0, not one per worker"

        count = 40

        def signup(i: int) -> int:
            body = {"email": f"zero{i}@example.test", "username": f"zero{i}", "password": "longenough1"}
            headers = {"X-Request-ID": f"zero-series-{i}"}
            return requests.post(
                f"{base}/api/v1/auth/signup", json=body, headers=headers, timeout=10
            ).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(signup, range(count))) == {503}
        samples = scrape(base)
        assert value(samples, "http_requests_total", **signup_5xx) == count
        errors = sum(
            v
            for (n, labels), v in samples.items()
            if n == "http_requests_total" and dict(labels)["status"] == "5xx"
        )
        total = sum(v for (n, _labels), v in samples.items() if n == "http_requests_total")
        assert errors / total == 1.0
        # the series of routes nobody called are still there, at 0
        loans_5xx = (("handler", "/api/v1/loans"), ("method", "POST"), ("status", "5xx"))
        assert samples[("http_requests_total", loans_5xx)] == 0
        per_worker = _worker_files_with(server["multiproc"], pids, "http_requests_total", signup_5xx)
        assert sum(per_worker.values()) == count
    lines = [line for line in server["error_log"].read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line parses
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert all(RFC3339_UTC.match(r["time"]) for r in records)
    loggers = {r["logger"] for r in records}
    assert "gunicorn.error" in loggers and "autodealgenie.db" in loggers, loggers
    assert any("Booting worker" in r["message"] for r in records if r["logger"] == "gunicorn.error")
    failed = [r for r in records if r["logger"] == "autodealgenie.db"]
    assert {r["request_id"] for r in failed} == {f"zero-series-{i}" for i in range(count)}
    assert all(r["level"] == "WARNING" and "postgres unavailable" in r["message"] for r in failed)


def test_gunicorn_refuses_to_start_without_multiproc_dir(datastores, migrated):
    env = {k: v for k, v in os.environ.items() if k.lower() != "prometheus_multiproc_dir"}
    env.update(
        env_for(
            datastores["pg"],
            datastores["redis"],
            datastores["mongo"],
            GUNICORN_BIND=f"127.0.0.1:{free_port()}",
        )
    )
    result = subprocess.run(
        GUNICORN,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "PROMETHEUS_MULTIPROC_DIR" in result.stderr


def test_traffic_generator_passes_against_gunicorn(gunicorn):
    """tests/molecule/traffic/traffic.py: every endpoint, expected statuses, and the HTTP metrics moved."""
    script = Path(__file__).resolve().parents[2] / "tests" / "molecule" / "traffic" / "traffic.py"
    before = scrape(gunicorn["base"])
    result = subprocess.run(
        [sys.executable, str(script), "--base-url", gunicorn["base"], "--iterations", "2", "--seed", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 unexpected" in result.stdout
    after = scrape(gunicorn["base"])
    for handler, method, status in (
        ("/api/v1/auth/login", "POST", "2xx"),
        ("/api/v1/auth/login", "POST", "4xx"),
        ("/api/v1/cars/search", "POST", "2xx"),
        ("unmatched", "GET", "4xx"),
        ("/api/v1/negotiations/<int:session_id>/next", "POST", "2xx"),
        ("/api/v1/loans", "POST", "2xx"),
        ("/api/v1/loans/estimate", "POST", "2xx"),
    ):
        labels = {"handler": handler, "method": method, "status": status}
        assert value(after, "http_requests_total", **labels) > value(before, "http_requests_total", **labels)
    assert (
        value(after, "autodealgenie_user_signups_total")
        == value(before, "autodealgenie_user_signups_total") + 2
    )
    assert value(after, "autodealgenie_cache_hits_total", cache_name="car_search") >= 2
    for status in ("approved", "declined"):  # one of each per round
        assert value(after, "autodealgenie_loan_applications_total", status=status) == 2
    assert value(after, "autodealgenie_loan_processing_duration_seconds_count") == 4
    for search_type in ("make_model", "filtered", "browse"):
        assert value(after, "autodealgenie_vehicle_searches_total", search_type=search_type) >= 2
    # a failing expectation is reported with exit code 1
    bad = subprocess.run(
        [
            sys.executable,
            str(script),
            "--base-url",
            gunicorn["base"].replace(str(gunicorn["base"].rsplit(":", 1)[1]), str(free_port())),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1 and "UNEXPECTED" in bad.stdout
