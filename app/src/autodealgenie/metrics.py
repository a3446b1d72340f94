"""The metrics registry: every metric the service exposes, defined once (names from the monitoring guide).

This module is the only process-wide state of the application. Under gunicorn, prometheus_client runs
in multiprocess mode (PROMETHEUS_MULTIPROC_DIR set before start): values live in per-worker mmap files
that each scrape merges. Gauge multiprocess modes are chosen per gauge, see the comments.
"""

from __future__ import annotations

import os

from prometheus_client import Counter, Gauge, Histogram, Summary, values

from . import multiprocess_values

# --- multiprocess values --------------------------------------------------------------------------
# In multiprocess mode (PROMETHEUS_MULTIPROC_DIR set when prometheus_client was imported) every
# value is written through multiprocess_values.LeanMmapedValue: the library's files and layout, one
# Python call per write instead of five and no getpid syscall. Swapped before any metric exists
# (this module defines them all; a value made with the old class would map the same file twice).
if getattr(values.ValueClass, "_multiprocess", False):
    values.ValueClass = multiprocess_values.value_class()


def cached_labels(metric):
    """metric.labels(*values) remembered per label values: labels() takes a lock and builds keys on
    every call. Only for label values that come from code (bounded), never from a request."""
    children: dict[tuple, object] = {}

    def child(*labelvalues):
        found = children.get(labelvalues)
        if found is None:
            found = children[labelvalues] = metric.labels(*labelvalues)
        return found

    return child


# 0.5 and 2.0 exactly: the latency SLOs (95 % < 500 ms, 99 % < 2 s) read those buckets, not an
# interpolation; buckets past 2 s so that "p95 > 2 s" (HighAPILatency) can be observed.
HTTP_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0)
# Label value for requests that matched no route: bounded cardinality under 404 probes.
UNMATCHED_HANDLER = "unmatched"
# Any other request method is counted as "other": clients choose the method, and labels must stay bounded.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"

# --- HTTP (guide: "HTTP Metrics (Auto-instrumented)") -------------------------------------------------
http_requests = Counter(
    "http_requests_total",
    "Total HTTP requests by method, grouped status (2xx..5xx) and route template",
    ["method", "status", "handler"],
)
http_request_duration = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency in seconds",
    ["method", "handler"],
    buckets=HTTP_LATENCY_BUCKETS,
)
http_request_size = Summary("http_request_size_bytes", "HTTP request body size in bytes", ["handler"])
http_response_size = Summary("http_response_size_bytes", "HTTP response body size in bytes", ["handler"])
# livesum: a dead worker's in-flight requests are gone, so its value must drop out of the sum.
requests_inprogress = Gauge(
    "autodealgenie_requests_inprogress",
    "HTTP requests currently being processed",
    ["method", "handler"],
    multiprocess_mode="livesum",
)

# --- application ------------------------------------------------------------------------------------
# max: the same constant 1 in every worker; max collapses the per-worker files into one series.
app_info = Gauge(
    "autodealgenie_app_info",
    "Application version and environment (constant 1)",
    ["version", "environment"],
    multiprocess_mode="max",
)
deals_created = Counter("autodealgenie_deals_created_total", "Deals created", ["status"])
user_signups = Counter("autodealgenie_user_signups_total", "User registrations")
auth_success = Counter("autodealgenie_auth_success_total", "Successful logins")
auth_failures = Counter("autodealgenie_auth_failures_total", "Failed login attempts")
vehicle_searches = Counter("autodealgenie_vehicle_searches_total", "Vehicle searches", ["search_type"])
vehicle_search_duration = Histogram(
    "autodealgenie_vehicle_search_duration_seconds",
    "Vehicle search processing time",
    buckets=(0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
negotiation_sessions = Counter("autodealgenie_negotiation_sessions_total", "Negotiation sessions started")
negotiation_messages = Counter(
    "autodealgenie_negotiation_messages_total", "Negotiation messages stored", ["role"]
)
negotiation_duration = Histogram(
    "autodealgenie_negotiation_duration_seconds",
    "Negotiation session duration from start to end",
    buckets=(10, 30, 60, 120, 300, 600),
)
loan_applications = Counter("autodealgenie_loan_applications_total", "Loan applications decided", ["status"])
loan_processing_duration = Histogram(
    "autodealgenie_loan_processing_duration_seconds",
    "Loan application processing time (validation, schedule, decision, storage)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
db_query_duration = Histogram(
    "autodealgenie_db_query_duration_seconds",
    "PostgreSQL query duration",
    ["operation", "table"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
db_queries = Counter("autodealgenie_db_queries_total", "PostgreSQL queries", ["operation", "table"])
db_query_errors = Counter(
    "autodealgenie_db_query_errors_total", "Failed PostgreSQL queries", ["operation", "table"]
)
cache_hits = Counter("autodealgenie_cache_hits_total", "Cache hits", ["cache_name"])
cache_misses = Counter("autodealgenie_cache_misses_total", "Cache misses", ["cache_name"])
cache_operation_duration = Histogram(
    "autodealgenie_cache_operation_duration_seconds",
    "Redis cache operation duration",
    ["operation", "cache_name"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1),
)
external_api_requests = Counter(
    "autodealgenie_external_api_requests_total", "Outgoing API calls", ["api_name", "status"]
)
external_api_duration = Histogram(
    "autodealgenie_external_api_duration_seconds",
    "Outgoing API call duration",
    ["api_name"],
    buckets=(0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
external_api_errors = Counter(
    "autodealgenie_external_api_errors_total", "Failed outgoing API calls", ["api_name", "error_type"]
)
llm_requests = Counter(
    "autodealgenie_llm_requests_total", "LLM completions requested", ["model", "prompt_type"]
)
llm_tokens_used = Counter("autodealgenie_llm_tokens_used_total", "LLM tokens used", ["model", "token_type"])
llm_request_duration = Histogram(
    "autodealgenie_llm_request_duration_seconds",
    "LLM request duration",
    ["model"],
    buckets=(0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
llm_errors = Counter("autodealgenie_llm_errors_total", "Failed LLM requests", ["model", "error_type"])
# mostrecent: both values are read from the shared stores (Redis / PostgreSQL) by whichever worker
# touched them last, so the newest reading is the truth; summing workers would multiply it.
active_users = Gauge(
    "autodealgenie_active_users",
    "Users who logged in or refreshed a token within the access-token lifetime",
    multiprocess_mode="mostrecent",
)
active_negotiation_sessions = Gauge(
    "autodealgenie_active_negotiation_sessions",
    "Negotiation sessions in status active",
    multiprocess_mode="mostrecent",
)
# livesum: searches in flight per worker; a dead worker's searches are gone.
active_searches = Gauge(
    "autodealgenie_active_searches", "Vehicle searches in progress", multiprocess_mode="livesum"
)


def grouped_status(code: int) -> str:
    return f"{code // 100}xx"


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR")
