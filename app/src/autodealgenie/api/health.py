"""Liveness, readiness and the API root."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from flask import Blueprint, jsonify

from .. import db
from ..instrumentation import untracked
from ..services import services

bp = Blueprint("health", __name__)


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


@bp.get("/")
def root():
    return jsonify(
        message="Welcome to AutoDealGenie API", version=services().config.app_version, docs="/docs"
    )


@bp.get("/health")
@untracked
def liveness():
    return jsonify(status="healthy")


@bp.get("/api/v1/health")
@untracked
def liveness_with_time():
    return jsonify(status="healthy", timestamp=now_iso())


@bp.get("/api/v1/health/detailed")
@untracked
def detailed():
    """All dependency checks run in parallel under one deadline; anything not healthy -> 503 degraded."""
    svc = services()
    timeout = svc.config.health_check_timeout
    checks = {
        "postgres": lambda: db.check(svc.config, timeout),
        "redis": lambda: svc.redis.check(timeout),
        "mongodb": lambda: svc.mongo.check(timeout),
    }
    futures = {name: svc.health_pool.submit(check) for name, check in checks.items()}
    deadline = time.monotonic() + timeout
    results = {}
    for name, future in futures.items():
        try:
            healthy = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except Exception:  # a failed check, or no answer before the deadline (TimeoutError)
            healthy = False
        results[name] = "healthy" if healthy else "unhealthy"
    status = "healthy" if all(v == "healthy" for v in results.values()) else "degraded"
    response = jsonify(status=status, timestamp=now_iso(), services=results)
    response.status_code = 200 if status == "healthy" else 503
    return response
