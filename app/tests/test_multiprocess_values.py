"""Multiprocess mode as the workers run it (metrics.py's value class, cached label children): every
increment lands in its own process's file, and the merged totals are exact, across a fork too."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# What MultiProcessCollector reads from every process file: (name, sorted labels) -> value.
COLLECT = textwrap.dedent(
    """
    def collect():
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in registry.collect()
            for s in family.samples
        }
    """
)

SCRIPT = COLLECT + textwrap.dedent(
    """
    import json, os, sys
    from autodealgenie import metrics  # imported before the fork, like a worker's later forks
    from prometheus_client import CollectorRegistry, values
    from prometheus_client.multiprocess import MultiProcessCollector

    queries = metrics.cached_labels(metrics.db_queries)
    assert queries("select", "vehicles") is queries("select", "vehicles")
    assert queries("select", "vehicles") is metrics.db_queries.labels("select", "vehicles")
    for _ in range(3):
        queries("select", "vehicles").inc()
    metrics.http_request_duration.labels("GET", "/").observe(0.003)
    child = os.fork()
    if child == 0:  # the child writes to its own file, not into the parent's mapping
        for _ in range(5):
            queries("select", "vehicles").inc()
        metrics.http_request_duration.labels("GET", "/").observe(0.2)
        os._exit(0)
    os.waitpid(child, 0)
    for _ in range(7):
        queries("select", "vehicles").inc()
    samples = collect()
    select = (("operation", "select"), ("table", "vehicles"))
    root = (("handler", "/"), ("method", "GET"))
    print(json.dumps({
        "queries": samples[("autodealgenie_db_queries_total", select)],
        "duration_count": samples[("http_request_duration_seconds_count", root)],
        "files": sorted(os.listdir(os.environ["PROMETHEUS_MULTIPROC_DIR"])),
        "pids": [os.getpid(), child],
        "multiprocess": values.ValueClass._multiprocess,
    }))
    """
)


def test_counts_are_exact_per_process_file_across_a_fork(tmp_path):
    import json
    import os

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["multiprocess"] is True
    assert found["queries"] == 3 + 5 + 7
    assert found["duration_count"] == 2
    parent, child = found["pids"]
    assert {f"counter_{parent}.db", f"counter_{child}.db", f"histogram_{child}.db"} <= set(found["files"])


def test_cached_labels_count_exactly_in_one_process():
    from appsupport import sample
    from autodealgenie import metrics

    hits = metrics.cached_labels(metrics.cache_hits)
    labels = {"cache_name": "test_cached_labels"}
    before = sample("autodealgenie_cache_hits_total", labels)
    for _ in range(4):
        hits("test_cached_labels").inc()
    assert hits("test_cached_labels") is metrics.cache_hits.labels("test_cached_labels")
    assert sample("autodealgenie_cache_hits_total", labels) == before + 4


GROWTH_SCRIPT = COLLECT + textwrap.dedent(
    """
    import json, os
    from autodealgenie import metrics
    from prometheus_client import CollectorRegistry, values
    from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

    early = metrics.db_queries.labels("select", "early")  # its record is written before the file grows
    early.inc(2)
    for i in range(3000):  # ~3000 records of ~90 bytes: the 64 KiB file is grown and remapped
        metrics.db_queries.labels("select", f"table{i}").inc(i % 7)
    early.inc(3)  # written through the new map
    metrics.active_users.set(42)  # mostrecent: value and timestamp
    metrics.active_searches.inc()  # livesum
    samples = collect()
    total = sum(v for (name, _), v in samples.items() if name == "autodealgenie_db_queries_total")
    live_before = samples.get(("autodealgenie_active_searches", ()))
    mark_process_dead(os.getpid())  # what gunicorn's child_exit does for a dead worker
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    live_after = [
        s.value for f in registry.collect() for s in f.samples if s.name == "autodealgenie_active_searches"
    ]
    print(json.dumps({
        "early": samples[("autodealgenie_db_queries_total", (("operation", "select"), ("table", "early")))],
        "total": total,
        "active_users": samples[("autodealgenie_active_users", ())],
        "live_before": live_before,
        "live_after": live_after,
        "class": values.ValueClass.__name__,
        "size": os.path.getsize(f"{os.environ['PROMETHEUS_MULTIPROC_DIR']}/counter_{os.getpid()}.db"),
    }))
    """
)


def test_values_survive_file_growth_and_gauge_modes_merge(tmp_path):
    import json
    import os

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", GROWTH_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["class"] == "LeanMmapedValue"
    assert found["size"] > 1 << 16, "the file must have grown past its first map"
    assert found["early"] == 5
    assert found["total"] == 5 + sum(i % 7 for i in range(3000))
    assert found["active_users"] == 42
    assert found["live_before"] == 1
    assert found["live_after"] == [], "a dead worker's livesum gauge drops out"
