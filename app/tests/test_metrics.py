"""Metric names, labels and the /metrics access restriction (single process; gunicorn: test_gunicorn.py)."""

from __future__ import annotations

import base64

from appsupport import DEAL, register, sample
from autodealgenie import metrics
from autodealgenie.app import create_app
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

CATALOGUE = {  # every metric the dashboards and rules read from the app
    "http_requests_total",
    "http_request_duration_seconds",
    "http_request_size_bytes",
    "http_response_size_bytes",
    "autodealgenie_requests_inprogress",
    "autodealgenie_app_info",
    "autodealgenie_deals_created_total",
    "autodealgenie_user_signups_total",
    "autodealgenie_auth_success_total",
    "autodealgenie_auth_failures_total",
    "autodealgenie_vehicle_searches_total",
    "autodealgenie_vehicle_search_duration_seconds",
    "autodealgenie_negotiation_sessions_total",
    "autodealgenie_negotiation_messages_total",
    "autodealgenie_negotiation_duration_seconds",
    "autodealgenie_loan_applications_total",
    "autodealgenie_loan_processing_duration_seconds",
    "autodealgenie_db_query_duration_seconds",
    "autodealgenie_db_queries_total",
    "autodealgenie_db_query_errors_total",
    "autodealgenie_cache_hits_total",
    "autodealgenie_cache_misses_total",
    "autodealgenie_cache_operation_duration_seconds",
    "autodealgenie_external_api_requests_total",
    "autodealgenie_external_api_duration_seconds",
    "autodealgenie_external_api_errors_total",
    "autodealgenie_llm_requests_total",
    "autodealgenie_llm_tokens_used_total",
    "autodealgenie_llm_request_duration_seconds",
    "autodealgenie_llm_errors_total",
    "autodealgenie_active_users",
    "autodealgenie_active_negotiation_sessions",
    "autodealgenie_active_searches",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
}


def exposition(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == metrics_content_type()
    names = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for s in family.samples:
            names.setdefault(s.name, []).append(s)
    return names


def metrics_content_type():
    from prometheus_client import CONTENT_TYPE_LATEST

    return CONTENT_TYPE_LATEST


def test_catalogue_names_are_exposed_exactly(client, user):
    client.post("/api/v1/deals", json=DEAL, headers=user.headers)
    text = client.get("/metrics").get_data(as_text=True)
    declared = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    assert declared >= CATALOGUE, CATALOGUE - declared
    assert not [n for n in declared if n.startswith("flask_")], "exporter defaults must be off"


def test_status_is_grouped_and_handler_is_the_route_template(client, user):
    deal = client.post("/api/v1/deals", json=DEAL, headers=user.headers).get_json()
    labels = {"method": "GET", "status": "2xx", "handler": "/api/v1/deals/<int:deal_id>"}
    before = sample("http_requests_total", labels)
    client.get(f"/api/v1/deals/{deal['id']}", headers=user.headers)
    client.get(f"/api/v1/deals/{deal['id'] + 10**9}", headers=user.headers)  # 404 on a matched route
    assert sample("http_requests_total", labels) == before + 1
    assert sample("http_requests_total", {**labels, "status": "4xx"}) >= 1
    assert (
        sample(
            "http_request_duration_seconds_count", {"method": "GET", "handler": "/api/v1/deals/<int:deal_id>"}
        )
        >= 2
    )


def test_unmatched_probes_share_one_label_and_probes_are_not_counted(client):
    labels = {"method": "GET", "status": "4xx", "handler": metrics.UNMATCHED_HANDLER}
    before = sample("http_requests_total", labels)
    for path in ("/admin.php", "/.env", "/api/v1/nothing/1"):
        assert client.get(path).status_code == 404
    assert sample("http_requests_total", labels) == before + 3
    exposed = exposition(client)
    for path in ("/health", "/api/v1/health", "/api/v1/health/detailed", "/api/v1/cars/health", "/metrics"):
        client.get(path)
    handlers = {s.labels["handler"] for s in exposition(client)["http_requests_total"]}
    assert not handlers & {
        "/health",
        "/api/v1/health",
        "/api/v1/health/detailed",
        "/api/v1/cars/health",
        "/metrics",
    }
    assert all(h.startswith("/") or h == metrics.UNMATCHED_HANDLER for h in handlers)
    assert exposed


def test_arbitrary_methods_share_one_label(client):
    labels = {"method": "other", "status": "4xx", "handler": metrics.UNMATCHED_HANDLER}
    before = sample("http_requests_total", labels)
    for method in ("FOO", "BAR1", "PROPFIND"):
        assert client.open("/api/v1/deals", method=method).status_code == 405
    assert sample("http_requests_total", labels) == before + 3
    assert sample("http_requests_total", {**labels, "method": "FOO"}) == 0


def test_latency_buckets_reach_past_two_seconds_and_hold_the_slo_thresholds(client):
    client.get("/")
    buckets = {s.labels["le"] for s in exposition(client)["http_request_duration_seconds_bucket"]}
    assert {"2.5", "5.0", "10.0", "+Inf"} <= buckets
    # the SLO rules read le="0.5" and le="2.0": exact thresholds, no interpolation
    assert {"0.5", "2.0"} <= buckets
    assert 0.5 in metrics.HTTP_LATENCY_BUCKETS and 2.0 in metrics.HTTP_LATENCY_BUCKETS


def test_sizes_inprogress_and_db_metrics_move(client, user):
    size = sample("http_request_size_bytes_sum", {"handler": "/api/v1/deals"})
    resp = sample("http_response_size_bytes_count", {"handler": "/api/v1/deals"})
    inserts = sample("autodealgenie_db_queries_total", {"operation": "insert", "table": "deals"})
    durations = sample(
        "autodealgenie_db_query_duration_seconds_count", {"operation": "insert", "table": "deals"}
    )
    client.post("/api/v1/deals", json=DEAL, headers=user.headers)
    assert sample("http_request_size_bytes_sum", {"handler": "/api/v1/deals"}) > size
    assert sample("http_response_size_bytes_count", {"handler": "/api/v1/deals"}) == resp + 1
    assert sample("autodealgenie_db_queries_total", {"operation": "insert", "table": "deals"}) == inserts + 1
    assert (
        sample("autodealgenie_db_query_duration_seconds_count", {"operation": "insert", "table": "deals"})
        == durations + 1
    )
    assert sample("autodealgenie_requests_inprogress", {"method": "POST", "handler": "/api/v1/deals"}) == 0


def test_db_query_errors_are_counted(client, user, app):
    from autodealgenie.services import EXTENSION

    errors = sample("autodealgenie_db_query_errors_total", {"operation": "insert", "table": "users"})
    response = client.post(
        "/api/v1/auth/signup",
        json={"email": user.email, "username": "fresh_name_1", "password": "longenough1"},
    )
    assert response.status_code == 409
    assert (
        sample("autodealgenie_db_query_errors_total", {"operation": "insert", "table": "users"}) == errors + 1
    )
    assert app.extensions[EXTENSION]


def test_active_users_gauge_follows_recent_logins(client, datastores):
    import redis

    register(client)
    store = redis.Redis(port=datastores["redis"].port)
    assert sample("autodealgenie_active_users") == store.zcard("active_users") >= 1
    before = sample("autodealgenie_active_users")
    register(client)
    assert sample("autodealgenie_active_users") == before + 1


def test_server_errors_are_json_and_counted_as_5xx(make_config, migrated):
    app = create_app(make_config())

    @app.get("/boom-for-test")
    def boom():
        raise RuntimeError("bug")

    labels = {"method": "GET", "status": "5xx", "handler": "/boom-for-test"}
    before = sample("http_requests_total", labels)
    response = app.test_client().get("/boom-for-test")
    assert response.status_code == 500
    assert response.get_json() == {"detail": "Internal server error", "status": 500}
    assert sample("http_requests_total", labels) == before + 1


def test_app_info_carries_version_and_environment(make_config, migrated):
    create_app(
        make_config(
            APP_VERSION="9.9.9-test", ENVIRONMENT="staging", SECRET_KEY="s" * 32, JWT_SECRET_KEY="j" * 32
        )
    )
    assert sample("autodealgenie_app_info", {"version": "9.9.9-test", "environment": "staging"}) == 1


def test_metrics_allow_list(make_config, migrated):
    client = create_app(make_config(METRICS_ALLOWED_CIDRS="10.9.0.0/16")).test_client()
    assert client.get("/metrics").status_code == 403  # the test client's peer is 127.0.0.1
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.9.3.4"}).status_code == 200
    # X-Forwarded-For is not trusted for /metrics even behind a trusted proxy
    proxied = create_app(
        make_config(METRICS_ALLOWED_CIDRS="10.9.0.0/16", TRUSTED_PROXY_COUNT=1)
    ).test_client()
    assert proxied.get("/metrics", headers={"X-Forwarded-For": "10.9.3.4"}).status_code == 403
    open_client = create_app(make_config(METRICS_ALLOWED_CIDRS="")).test_client()
    assert open_client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 200


def test_metrics_basic_auth(make_config, migrated):
    client = create_app(
        make_config(METRICS_BASIC_AUTH_USERNAME="prom", METRICS_BASIC_AUTH_PASSWORD="s3cret")
    ).test_client()
    response = client.get("/metrics")
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Basic")
    wrong = base64.b64encode(b"prom:nope").decode()
    assert client.get("/metrics", headers={"Authorization": f"Basic {wrong}"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Basic %%%"}).status_code == 401
    right = base64.b64encode(b"prom:s3cret").decode()
    assert client.get("/metrics", headers={"Authorization": f"Basic {right}"}).status_code == 200


def test_instrumentation_switch_off(make_config, migrated):
    client = create_app(make_config(METRICS_ENABLED="false")).test_client()
    before = sample("http_requests_total", {"method": "GET", "status": "2xx", "handler": "/"})
    assert client.get("/").status_code == 200
    assert client.get("/metrics").status_code == 404
    assert sample("http_requests_total", {"method": "GET", "status": "2xx", "handler": "/"}) == before


def test_every_response_has_request_id_and_security_headers(client):
    response = client.get("/nope")
    assert len(response.headers["X-Request-ID"]) == 36
    assert float(response.headers["X-Process-Time"]) >= 0
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert (
        client.get("/", headers={"X-Request-ID": "bad id with spaces"}).headers["X-Request-ID"]
        != "bad id with spaces"
    )


def test_in_flight_and_failing_error_handler_are_counted(make_config, migrated):
    """The dispatch wrapper: in progress while the view runs, back to 0 after; a request whose error
    handler itself fails is still counted once, as a 5xx, with its duration and sizes."""
    app = create_app(make_config())
    seen = {}

    class HandlerBreaks(Exception):
        pass

    @app.errorhandler(HandlerBreaks)
    def _broken_handler(exc):
        raise RuntimeError("the error handler fails too")

    @app.get("/inflight-for-test")
    def inflight():
        seen["inprogress"] = sample(
            "autodealgenie_requests_inprogress", {"method": "GET", "handler": "/inflight-for-test"}
        )
        return {"ok": True}

    @app.get("/handler-breaks-for-test")
    def breaks():
        raise HandlerBreaks

    client = app.test_client()
    assert client.get("/inflight-for-test").status_code == 200
    assert seen["inprogress"] == 1
    inflight_labels = {"method": "GET", "handler": "/inflight-for-test"}
    assert sample("autodealgenie_requests_inprogress", inflight_labels) == 0

    handler = "/handler-breaks-for-test"
    assert client.get(handler).status_code == 500
    assert sample("http_requests_total", {"method": "GET", "status": "5xx", "handler": handler}) == 1
    assert sample("http_request_duration_seconds_count", {"method": "GET", "handler": handler}) == 1
    assert sample("http_request_size_bytes_count", {"handler": handler}) == 1
    assert sample("http_response_size_bytes_count", {"handler": handler}) == 1
    assert sample("autodealgenie_requests_inprogress", {"method": "GET", "handler": handler}) == 0


def test_untracked_routes_create_no_series(client):
    """/health and /metrics skip the instrumentation entirely: not even zero series for them."""
    for path in ("/health", "/api/v1/health", "/metrics"):
        assert client.get(path).status_code == 200
    for name in ("autodealgenie_requests_inprogress", "http_request_duration_seconds_count"):
        for handler in ("/health", "/api/v1/health", "/metrics"):
            assert REGISTRY.get_sample_value(name, {"method": "GET", "handler": handler}) is None
    for handler in ("/health", "/metrics"):
        assert REGISTRY.get_sample_value("http_request_size_bytes_count", {"handler": handler}) is None
