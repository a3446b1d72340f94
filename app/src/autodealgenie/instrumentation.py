"""HTTP instrumentation and the /metrics endpoint (prometheus-flask-exporter + our own metric names).

prometheus-flask-exporter serves /metrics and provides the gunicorn multiprocess plumbing
(GunicornInternalPrometheusMetrics, mark_process_dead_on_child_exit). Its default metrics are
named flask_http_request_*, so they are turned off (export_defaults=False) and the catalogue's HTTP
metrics are recorded here, around the app's dispatch: unlike the exporter's register_default, that
also sees requests that match no route, counted under one fixed handler label.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import time
import typing
from functools import wraps

from flask import Flask, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_flask_exporter import PrometheusMetrics
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics
from werkzeug.wsgi import get_content_length  # request.content_length, without parsing the headers

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
    _zero_series(app, config, untracked_rules)


# Flask answers OPTIONS itself (automatic on every rule): no view runs, nothing to fail.
_NO_ZERO_SERIES_METHODS = frozenset({"OPTIONS"})


def _zero_series(app: Flask, config: Config, untracked_rules: set[str]) -> None:
    """Create at 0 every labelled series whose label values are known (Prometheus' instrumentation
    guidance): a ratio or rate over a series that appears only with its first increment misses that
    increment and is empty (not 0) until then, e.g. the error rate
    sum(rate(http_requests_total{status=~"5.."}[5m])) / sum(rate(http_requests_total[5m])).

    labels() creates the child at 0; in multiprocess mode each worker writes it into its own file
    and the scrape sums the workers, so a zero series is still one exported series.
    """
    # Imported here: the api modules import this one (untracked), metrics must not import them.
    from . import advisor, db
    from .api import cars, deals, loans, negotiations

    for rule in app.url_map.iter_rules():
        if rule.rule in untracked_rules:
            continue
        for method in sorted((rule.methods or set()) & (metrics.KNOWN_METHODS - _NO_ZERO_SERIES_METHODS)):
            # status is grouped (grouped_status): "5xx" is the series a 500 or 503 increments
            metrics.http_requests.labels(method, metrics.grouped_status(500), rule.rule)
    for status in typing.get_args(deals.Status):
        metrics.deals_created.labels(status)
    for status in typing.get_args(loans.Status):
        metrics.loan_applications.labels(status)
    for cache_name in (cars.SEARCH_CACHE, deals.EVAL_CACHE):
        metrics.cache_hits.labels(cache_name)
        metrics.cache_misses.labels(cache_name)
    for operation, table in db.QUERY_LABELS:
        metrics.db_queries.labels(operation, table)
        metrics.db_query_errors.labels(operation, table)
    for search_type in cars.SEARCH_TYPES:
        metrics.vehicle_searches.labels(search_type)
    for role in negotiations.MESSAGE_ROLES:
        metrics.negotiation_messages.labels(role)
    # The LLM advisor's series, for the configured model (0 while the built-in advisor answers).
    model = config.llm_model
    metrics.external_api_requests.labels(advisor.API_NAME, "error")  # status: the HTTP code, or "error"
    for error_type in advisor.ERROR_TYPES:
        metrics.external_api_errors.labels(advisor.API_NAME, error_type)
        metrics.llm_errors.labels(model, error_type)
    for prompt_type in advisor.PROMPT_TYPES:
        metrics.llm_requests.labels(model, prompt_type)
    for token_type in advisor.TOKEN_TYPES:
        metrics.llm_tokens_used.labels(model, token_type)


class _RouteSeries:
    """The metric children of one (method, handler), resolved once: labels() costs a lock per call."""

    __slots__ = (
        "duration",
        "handler",
        "inprogress",
        "method",
        "request_size",
        "requests_by_code",
        "response_size",
    )

    def __init__(self, method: str, handler: str):
        self.method = method
        self.handler = handler
        self.inprogress = metrics.requests_inprogress.labels(method, handler)
        self.duration = metrics.http_request_duration.labels(method, handler)
        self.request_size = metrics.http_request_size.labels(handler)
        self.response_size = metrics.http_response_size.labels(handler)
        # by raw status code (bounded: 100..599), filled on first use: no zero series for unseen statuses
        self.requests_by_code: dict = {}

    def record(self, seconds: float, status_code: int, request_bytes: int, response_bytes: int) -> None:
        self.duration.observe(seconds)
        counter = self.requests_by_code.get(status_code)
        if counter is None:
            counter = self.requests_by_code[status_code] = metrics.http_requests.labels(
                self.method, metrics.grouped_status(status_code), self.handler
            )
        counter.inc()
        self.request_size.observe(request_bytes)
        self.response_size.observe(response_bytes)


def _install_http_hooks(app: Flask, untracked_rules: set[str]) -> None:
    """Wrap the app's full_dispatch_request (before/after hooks, view, error handlers) in one call.

    One wrapper instead of before/after/teardown hooks: Flask runs each hook through ensure_sync
    and the state would go through `g`; here it stays in locals, and an untracked route costs one
    set lookup. Every request is still counted as it ends, in this worker's multiprocess file.
    """
    # Bounded: route templates x methods, plus one "unmatched" handler for any unknown path.
    series: dict[tuple[str, str], _RouteSeries] = {}
    dispatch = app.full_dispatch_request
    known_methods, other_method = metrics.KNOWN_METHODS, metrics.OTHER_METHOD
    unmatched = metrics.UNMATCHED_HANDLER
    clock = time.perf_counter

    def full_dispatch_request() -> Response:
        req = request._get_current_object()
        rule = req.url_rule
        handler = rule.rule if rule is not None else unmatched
        if handler in untracked_rules:
            return dispatch()
        method = req.method if req.method in known_methods else other_method
        route = series.get((method, handler))
        if route is None:
            route = series[(method, handler)] = _RouteSeries(method, handler)
        route.inprogress.inc()
        start = clock()
        try:
            response = dispatch()
        except Exception:
            # Only when an error handler itself fails: Flask answers 500 after this (handle_exception).
            # Counted as a 5xx; its body does not exist yet, so the response size observed is 0.
            route.record(clock() - start, 500, get_content_length(req.environ) or 0, 0)
            raise
        finally:
            route.inprogress.dec()
        request_bytes = get_content_length(req.environ) or 0
        route.record(
            clock() - start, response.status_code, request_bytes, response.calculate_content_length() or 0
        )
        return response

    app.full_dispatch_request = full_dispatch_request
