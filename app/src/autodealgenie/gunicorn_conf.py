"""gunicorn configuration shipped with the package: gunicorn -c python:autodealgenie.gunicorn_conf ...

Every setting comes from a GUNICORN_* environment variable (see autodealgenie.env.sample).
Metrics run in prometheus_client multiprocess mode: PROMETHEUS_MULTIPROC_DIR must be in the
environment before gunicorn starts (prometheus_client reads it at import), is emptied when the
master starts, and dead workers are marked in child_exit.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _metrics_enabled() -> bool:
    return _env("METRICS_ENABLED", "true").lower() in ("1", "true", "yes", "on")


def _multiproc_dir() -> Path | None:
    if not _metrics_enabled():
        return None
    raw = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not raw:
        sys.exit(
            "autodealgenie: PROMETHEUS_MULTIPROC_DIR must be set before gunicorn starts "
            "(or METRICS_ENABLED=false); counts across workers would be wrong without it"
        )
    path = Path(raw)
    if not path.is_dir() or not os.access(path, os.W_OK):
        sys.exit(f"autodealgenie: PROMETHEUS_MULTIPROC_DIR={raw} is not a writable directory")
    return path


MULTIPROC_DIR = _multiproc_dir()

bind = [part.strip() for part in _env("GUNICORN_BIND", "127.0.0.1:8000").split(",") if part.strip()]
workers = int(_env("GUNICORN_WORKERS", "4"))
threads = int(_env("GUNICORN_THREADS", "1"))
timeout = int(_env("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(_env("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(_env("GUNICORN_KEEPALIVE", "5"))
max_requests = int(_env("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = max_requests // 10
loglevel = _env("GUNICORN_LOG_LEVEL", "info")
errorlog = "-"
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-").strip() or None
# JSON access records; the error log (stderr) formatted like the app's own lines (LOG_FORMAT)
logger_class = "autodealgenie.accesslog.JsonAccessLogger"
proc_name = "autodealgenie"
# The app is imported in each worker, after fork: pools and clients are never shared across processes.
preload_app = False


def on_starting(server):
    """Master, before any worker: files from a previous run would be summed into the new counters."""
    if MULTIPROC_DIR is None:
        return
    removed = 0
    for stale in MULTIPROC_DIR.glob("*.db"):
        stale.unlink(missing_ok=True)
        removed += 1
    server.log.info("metrics: multiprocess dir %s emptied (%d stale files)", MULTIPROC_DIR, removed)


def child_exit(server, worker):
    """Master, after a worker exited: drop its live gauges (its counters stay, totals never go back)."""
    if MULTIPROC_DIR is not None:
        GunicornInternalPrometheusMetrics.mark_process_dead_on_child_exit(worker.pid)
