"""HTTP instrumentation and the /metrics endpoint (prometheus-flask-exporter + our own metric names).

prometheus-flask-exporter serves /metrics and provides the gunicorn multiprocess plumbing
(GunicornInternalPrometheusMetrics, mark_process_dead_on_child_exit). Its default metrics are
named flask_http_request_*, so they are turned off (export_defaults=False) and the catalogue's HTTP
metrics are recorded by request hooks here: unlike the exporter's register_default, hooks also see
requests that match no route, counted under one fixed handler label.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import time
from functools import wraps

from flask import Flask, Response, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_flask_exporter import PrometheusMetrics
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

from . import metrics
from .config import Config
from .process_metrics import ProcessTreeCollector

METRICS_PATH = "/metrics"


def untracked(view):
    """Mark a view as not counted in the HTTP metrics (health probes)."""
    view.untracked = True
    return view


class _TextExpositionMixin:
    """Always answer in the Prometheus text format (CONTENT_TYPE_LATEST), whatever Accept says."""

    def generate_metrics(self, accept_header=None, names=None):
        registry = self.scrape_registry()
        if names:
            registry = registry.restricted_registry(names)
        return generate_latest(registry).decode("utf-8"), CONTENT_TYPE_LATEST


class SingleProcessExporter(_TextExpositionMixin, PrometheusMetrics):
    """One process (flask run, tests): the default registry already has process_* collectors."""

    def scrape_registry(self):
        return REGISTRY


class GunicornExporter(_TextExpositionMixin, GunicornInternalPrometheusMetrics):
    """gunicorn workers: merge every worker's files and add process_* for the whole process tree."""

    def scrape_registry(self):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        registry.register(ProcessTreeCollector())
        return registry


def _restrict_metrics(config: Config):
    networks = config.metrics_networks
    credentials = None
    if config.metrics_basic_auth_username:
        credentials = f"{config.metrics_basic_auth_username}:{config.metrics_basic_auth_password}".encode()

    def decorator(view):
        @wraps(view)
        def guarded(*args, **kwargs):
            if networks:
                # The TCP peer, never X-Forwarded-For: ProxyFix keeps the original address here.
                original = request.environ.get("werkzeug.proxy_fix.orig", {})
                peer = original.get("REMOTE_ADDR") or request.environ.get("REMOTE_ADDR", "")
                try:
                    address = ipaddress.ip_address(peer)
                except ValueError:
                    address = None
                if address is None or not any(address in net for net in networks):
                    return jsonify(detail="Metrics are not available from this address"), 403
            if credentials is not None:
                supplied = _basic_credentials(request.headers.get("Authorization", ""))
                if supplied is None or not hmac.compare_digest(supplied, credentials):
                    response = jsonify(detail="Authentication required")
                    response.status_code = 401
                    response.headers["WWW-Authenticate"] = 'Basic realm="metrics"'
                    return response
            return view(*args, **kwargs)

        return guarded

    return decorator


def _basic_credentials(header: str) -> bytes | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(value.strip(), validate=True)
    except ValueError:
        return None


def init_metrics(app: Flask, config: Config) -> None:
    """Register /metrics and the HTTP hooks. Call after every blueprint is registered."""
    if not config.metrics_enabled:
        return
    metrics.app_info.labels(version=config.app_version, environment=config.environment).set(1)
    exporter_class = GunicornExporter if metrics.multiprocess_dir() else SingleProcessExporter
    exporter_class(app, path=METRICS_PATH, export_defaults=False, metrics_decorator=_restrict_metrics(config))
    untracked_rules = {METRICS_PATH} | {
        rule.rule
        for rule in app.url_map.iter_rules()
        if getattr(app.view_functions.get(rule.endpoint), "untracked", False)
    }
    _install_http_hooks(app, untracked_rules)


class _RouteSeries:
    """The metric children of one (method, handler), resolved once: labels() costs a lock per call."""

    __slots__ = (
        "duration",
        "handler",
        "inprogress",
        "method",
        "request_size",
        "requests_by_status",
        "response_size",
    )

    def __init__(self, method: str, handler: str):
        self.method = method
        self.handler = handler
        self.inprogress = metrics.requests_inprogress.labels(method, handler)
        self.duration = metrics.http_request_duration.labels(method, handler)
        self.request_size = metrics.http_request_size.labels(handler)
        self.response_size = metrics.http_response_size.labels(handler)
        self.requests_by_status: dict = {}  # filled on first use: no zero series for unseen statuses

    def count(self, status_code: int) -> None:
        status = metrics.grouped_status(status_code)
        counter = self.requests_by_status.get(status)
        if counter is None:
            counter = self.requests_by_status[status] = metrics.http_requests.labels(
                self.method, status, self.handler
            )
        counter.inc()


def _install_http_hooks(app: Flask, untracked_rules: set[str]) -> None:
    # Bounded: route templates x methods, plus one "unmatched" handler for any unknown path.
    series: dict[tuple[str, str], _RouteSeries] = {}

    @app.before_request
    def _start_timer():
        rule = request.url_rule
        handler = rule.rule if rule is not None else metrics.UNMATCHED_HANDLER
        if handler in untracked_rules:
            return
        method = request.method if request.method in metrics.KNOWN_METHODS else metrics.OTHER_METHOD
        key = (method, handler)
        route = series.get(key)
        if route is None:
            route = series[key] = _RouteSeries(*key)
        route.inprogress.inc()
        g.metrics_route = route
        g.metrics_start = time.perf_counter()

    @app.after_request
    def _record(response: Response):
        route = g.get("metrics_route")
        if route is None:
            return response
        route.duration.observe(time.perf_counter() - g.metrics_start)
        route.count(response.status_code)
        route.request_size.observe(request.content_length or 0)
        route.response_size.observe(response.calculate_content_length() or 0)
        return response

    @app.teardown_request
    def _finish(_exc):
        route = g.pop("metrics_route", None)
        if route is not None:
            route.inprogress.dec()
