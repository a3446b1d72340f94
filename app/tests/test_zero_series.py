"""Series that rules and dashboards divide by exist at 0 from the start (Prometheus instrumentation
guidance), in a fresh process; their label values are the ones the code uses (gunicorn: test_gunicorn.py)."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import typing
from importlib import resources
from pathlib import Path

import pytest
from appsupport import env_for
from autodealgenie import advisor, db
from autodealgenie.api import cars, deals, loans, negotiations
from prometheus_client.parser import text_string_to_metric_families

# A fresh interpreter: the test process' registry already counts other tests' requests.
FRESH_APP = """
import json
from autodealgenie.app import create_app
from autodealgenie.config import Config

app = create_app(Config.from_env())
client = app.test_client()
routes = sorted(
    [method, rule.rule] for rule in app.url_map.iter_rules() for method in rule.methods - {"OPTIONS"}
)
fresh = client.get("/metrics").get_data(as_text=True)
assert client.get("/").status_code == 200
print(json.dumps({"routes": routes, "fresh": fresh, "after": client.get("/metrics").get_data(as_text=True)}))
"""
UNTRACKED = {"/health", "/api/v1/health", "/api/v1/health/detailed", "/api/v1/cars/health", "/metrics"}
GUIDE_ERROR_STATUS = re.compile("5..")  # the guide's status=~"5.." (PromQL regexes are anchored)


def samples(text: str) -> dict[tuple, float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def labelled(found: dict, name: str) -> dict[tuple, float]:
    return {labels: value for (n, labels), value in found.items() if n == name}


@pytest.fixture(scope="module")
def fresh(datastores):
    env = {k: v for k, v in os.environ.items() if k.lower() != "prometheus_multiproc_dir"}
    env.update(env_for(datastores["pg"], datastores["redis"], datastores["mongo"], LLM_MODEL="model-x"))
    result = subprocess.run(
        [sys.executable, "-c", FRESH_APP], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    return {"routes": out["routes"], "fresh": samples(out["fresh"]), "after": samples(out["after"])}


def test_every_route_and_method_has_its_5xx_series_at_zero(fresh):
    requests = labelled(fresh["fresh"], "http_requests_total")
    expected = {
        (("handler", rule), ("method", method), ("status", "5xx"))
        for method, rule in fresh["routes"]
        if rule not in UNTRACKED
    }
    assert {"/api/v1/loans", "/api/v1/deals/<int:deal_id>"} <= {dict(k)["handler"] for k in expected}
    assert set(requests) == expected  # nothing else before the first request, and no untracked route
    assert set(requests.values()) == {0.0}


def test_the_guides_error_ratio_is_zero_not_empty_on_a_healthy_app(fresh):
    requests = labelled(fresh["after"], "http_requests_total")
    errors = [v for labels, v in requests.items() if GUIDE_ERROR_STATUS.fullmatch(dict(labels)["status"])]
    assert errors, "no series for the numerator: the ratio would be empty"
    assert sum(errors) / sum(requests.values()) == 0.0
    assert requests[(("handler", "/"), ("method", "GET"), ("status", "2xx"))] == 1


def test_labelled_business_cache_db_and_llm_counters_start_at_zero(fresh):
    found = fresh["fresh"]
    expected = {
        "autodealgenie_deals_created_total": {
            (("status", s),) for s in ("pending", "in_progress", "completed", "cancelled")
        },
        "autodealgenie_loan_applications_total": {(("status", "approved"),), (("status", "declined"),)},
        "autodealgenie_cache_hits_total": {(("cache_name", "car_search"),), (("cache_name", "deal_eval"),)},
        "autodealgenie_cache_misses_total": {(("cache_name", "car_search"),), (("cache_name", "deal_eval"),)},
        "autodealgenie_vehicle_searches_total": {
            (("search_type", t),) for t in ("make_model", "filtered", "browse")
        },
        "autodealgenie_negotiation_messages_total": {(("role", r),) for r in ("user", "agent", "dealer_sim")},
        "autodealgenie_db_queries_total": {(("operation", o), ("table", t)) for o, t in db.QUERY_LABELS},
        "autodealgenie_db_query_errors_total": {(("operation", o), ("table", t)) for o, t in db.QUERY_LABELS},
        "autodealgenie_llm_requests_total": {
            (("model", "model-x"), ("prompt_type", p)) for p in ("opening", "counter", "chat")
        },
        "autodealgenie_llm_tokens_used_total": {
            (("model", "model-x"), ("token_type", t)) for t in ("prompt", "completion")
        },
        "autodealgenie_llm_errors_total": {
            (("error_type", e), ("model", "model-x")) for e in advisor.ERROR_TYPES
        },
        "autodealgenie_external_api_errors_total": {
            (("api_name", "llm"), ("error_type", e)) for e in advisor.ERROR_TYPES
        },
        "autodealgenie_external_api_requests_total": {(("api_name", "llm"), ("status", "error"))},
    }
    for name, label_sets in expected.items():
        series = labelled(found, name)
        assert set(series) == label_sets, name
        assert set(series.values()) == {0.0}, name
    # label-less counters exist at 0 by themselves
    for name in ("autodealgenie_user_signups_total", "autodealgenie_negotiation_sessions_total"):
        assert found[(name, ())] == 0.0


# -- the label values are the code's ----------------------------------------------------------------


def _queried_pairs() -> set[tuple[str, str]]:
    """Every (operation, table) literal passed to db.run / Database.query in the package, and the
    ("select", table) of every api.list_page(table, ...) call."""
    package = Path(db.__file__).parent
    pairs = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                keywords = {k.arg: k.value for k in node.keywords}
                if {"operation", "table"} <= set(keywords):
                    operation, table = keywords["operation"], keywords["table"]
                    if isinstance(operation, ast.Constant) and isinstance(table, ast.Constant):
                        pairs.add((operation.value, table.value))
                elif getattr(node.func, "id", None) == "list_page" and isinstance(node.args[0], ast.Constant):
                    pairs.add(("select", node.args[0].value))
    return pairs


def test_query_labels_list_every_query_in_the_code():
    found = _queried_pairs()
    assert ("insert", "loan_applications") in found
    assert found == set(db.QUERY_LABELS), "update db.QUERY_LABELS"
    assert len(set(db.QUERY_LABELS)) == len(db.QUERY_LABELS)


def _check_values(table: str, column: str) -> set[str]:
    """The values of the CHECK (column IN (...)) constraint of a table in the packaged migrations."""
    sql = "".join(
        entry.read_text()
        for entry in resources.files("autodealgenie.migrations").iterdir()
        if entry.name.endswith(".sql")
    )
    body = re.search(rf"CREATE TABLE {table} \((.*?)\n\);", sql, re.DOTALL)
    assert body, table
    match = re.search(rf"CHECK \({column} IN \(([^)]*)\)\)", body.group(1))
    assert match, (table, column)
    return set(re.findall(r"'([a-z_]+)'", match.group(1)))


def test_label_values_are_the_codes():
    assert set(typing.get_args(deals.Status)) == _check_values("deals", "status")
    assert len(typing.get_args(deals.Status)) == 4
    assert set(typing.get_args(loans.Status)) == _check_values("loan_applications", "status")
    assert set(negotiations.MESSAGE_ROLES) == _check_values("negotiation_messages", "role")
    search_types = {
        cars.SearchIn().search_type,
        cars.SearchIn(make="Toyota").search_type,
        cars.SearchIn(fuel_type="hybrid").search_type,
    }
    assert search_types == set(cars.SEARCH_TYPES)
    assert {cars.SEARCH_CACHE, deals.EVAL_CACHE} == {"car_search", "deal_eval"}


def test_advisor_error_types_are_the_ones_it_reports():
    import requests

    reported = {
        advisor._error_type(exc)
        for exc in (requests.Timeout(), requests.ConnectionError(), requests.HTTPError(), KeyError("x"))
    }
    assert reported == set(advisor.ERROR_TYPES)
