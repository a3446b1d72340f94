"""Hostile input answers a 4xx with a JSON error, never a 500 or a traceback (issue 13)."""

from __future__ import annotations

import importlib
import json
import logging
import pkgutil
import typing

import pydantic
import pymongo.errors
import pytest
from appsupport import DEAL
from autodealgenie import api, types
from autodealgenie.app import create_app
from autodealgenie.services import services
from flask import abort

GARBAGE = [
    None,
    {},
    [],
    "text",
    42,
    {"x": None},
    {"deal_id": None},
    {"action": ["confirm"]},
    {"asking_price": 1e400},
    {"asking_price": "NaN"},
    {"max_results": 10**40},
    {"message": "x" * 5000},
    {"email": {"$gt": ""}, "password": {"$ne": None}},
    {"makes": [{"$where": "1"}]},
]


@pytest.fixture(autouse=True)
def no_tracebacks(caplog):
    caplog.set_level(logging.WARNING)
    yield
    failures = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not failures, [r.getMessage() for r in failures]


def assert_error(response, status: int, detail: str | None = None, field: str | None = None) -> dict:
    """The response is `status` with the JSON error shape {detail, status[, errors]}."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    assert response.mimetype == "application/json"
    body = json.loads(response.get_data(as_text=True), parse_constant=_strict)
    assert isinstance(body["detail"], str) and body["detail"] and body["status"] == status
    if detail is not None:
        assert detail in body["detail"], body
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
        assert all(isinstance(e["message"], str) and e["message"] for e in body["errors"])
    return body


def _strict(token):
    raise AssertionError(f"response carries the non-JSON token {token}")


def raw(client, method, path, text: str, headers=None):
    return client.open(path, method=method, data=text, content_type="application/json", headers=headers)


@pytest.fixture
def deal(client, user):
    return client.post("/api/v1/deals", json=DEAL, headers=user.headers).get_json()


@pytest.fixture
def session(client, user, deal):
    return client.post("/api/v1/negotiations", json={"deal_id": deal["id"]}, headers=user.headers).get_json()


# -- NUL and other control characters: 422 naming the field ---------------------------------------


def test_nul_in_login_email_is_422_without_authentication(client):
    response = client.post("/api/v1/auth/login", json={"email": "a\u0000@b.test", "password": "whatever1"})
    body = assert_error(response, 422, "Validation failed", field="email")
    message = next(e["message"] for e in body["errors"] if e["field"] == "email")
    assert "control character (U+0000 at position 1)" in message


@pytest.mark.parametrize(
    "value", ["Ada\u0000", "\u0000", "Ada\u0007Lovelace", "Ada\nLovelace", "Ada\u007f", "Ada\u0085", "\ud800"]
)
def test_signup_full_name_rejects_control_characters_and_surrogates(client, value):
    response = client.post(
        "/api/v1/auth/signup",
        json={
            "email": "nul@example.test",
            "username": "nulname",
            "password": "longenough1",
            "full_name": value,
        },
    )
    assert_error(response, 422, field="full_name")


def test_signup_accepts_ordinary_unicode(client):
    name = "Zoë Ölçer-Łukasz 🚗 \u200d日本"
    response = client.post(
        "/api/v1/auth/signup",
        json={
            "email": "uni@example.test",
            "username": "unicode_ok",
            "password": "longenough1",
            "full_name": name,
        },
    )
    assert response.status_code == 201 and response.get_json()["full_name"] == name


@pytest.mark.parametrize("field", ["customer_name", "notes", "vehicle_make"])
def test_nul_in_deal_fields_is_422(client, user, deal, field):
    response = client.post("/api/v1/deals", json={**DEAL, field: "a\x00b"}, headers=user.headers)
    assert_error(response, 422, field=field)
    response = client.put(f"/api/v1/deals/{deal['id']}", json={field: "a\x00b"}, headers=user.headers)
    assert_error(response, 422, field=field)


def test_deal_notes_keep_newlines_and_tabs(client, user):
    notes = "line one\n\tline two\r\n"
    response = client.post("/api/v1/deals", json={**DEAL, "notes": notes}, headers=user.headers)
    assert response.status_code == 201 and response.get_json()["notes"] == notes.strip()
    # free text still refuses the other controls
    response = client.post("/api/v1/deals", json={**DEAL, "notes": "a\x0bb"}, headers=user.headers)
    assert_error(response, 422, field="notes")


@pytest.mark.parametrize("message", ["hello\x00", "\x00", "a\x1bb", "\udfff lone"])
def test_nul_in_negotiation_chat_is_422(client, user, session, message):
    url = f"/api/v1/negotiations/{session['id']}/chat"
    assert_error(client.post(url, json={"message": message}, headers=user.headers), 422, field="message")
    # nothing was stored for the rejected message
    stored = client.get(f"/api/v1/negotiations/{session['id']}", headers=user.headers).get_json()
    assert len(stored["messages"]) == len(session["messages"])


@pytest.mark.parametrize("field", ["make", "model"])
def test_nul_in_car_search_is_422(client, user, field):
    response = client.post("/api/v1/cars/search", json={field: "Toy\x00ota"}, headers=user.headers)
    assert_error(response, 422, field=field)


def test_control_characters_in_preferences_and_tokens_are_422(client, user):
    url = "/api/v1/users/me/preferences"
    assert_error(client.put(url, json={"makes": ["To\x00yota"]}, headers=user.headers), 422, field="makes.0")
    assert_error(
        client.put(url, json={"features": ["\ud83d"]}, headers=user.headers), 422, field="features.0"
    )
    assert_error(
        client.post("/api/v1/auth/refresh", json={"refresh_token": "a\x00b"}), 422, field="refresh_token"
    )


def test_unknown_field_names_are_echoed_printable_and_short(client):
    response = client.post(
        "/api/v1/auth/login", json={"email": "a@b.test", "password": "x", "\x00\u00e9" + "k" * 500: 1}
    )
    body = assert_error(response, 422)
    field = body["errors"][0]["field"]
    assert field.isascii() and field.isprintable() and len(field) <= 103 and field.startswith("\\x00\\xe9kk")
    # a key pydantic cannot even read as a string (lone surrogate) fails the body as a whole
    response = client.post("/api/v1/auth/login", json={"email": "a@b.test", "password": "x", "\ud800": 1})
    assert_error(response, 422, field="body")


# -- deep nesting: 400 ------------------------------------------------------------------------------


def test_deeply_nested_login_body_is_400(client):
    response = raw(client, "POST", "/api/v1/auth/login", "[" * 100_000)
    assert_error(response, 400, "nested too deeply")


@pytest.mark.parametrize("depth", [100_000, 5_000])
def test_deeply_nested_field_is_4xx(client, depth):
    text = '{"email": ' + "[" * depth + "]" * depth + ', "password": "x"}'
    response = raw(client, "POST", "/api/v1/auth/login", text)
    assert response.status_code in (400, 422)
    assert_error(response, response.status_code)


def test_deeply_nested_logout_body_still_logs_out(client):
    response = raw(client, "POST", "/api/v1/auth/logout", "[" * 100_000)
    assert response.status_code == 200 and response.get_json()["message"] == "Logged out"


# -- integers beyond what the stores hold: 422 ------------------------------------------------------


@pytest.mark.parametrize("value", [2**63, 10**30, 2**31])
def test_car_search_mileage_beyond_the_column_is_422(client, user, value):
    response = client.post("/api/v1/cars/search", json={"mileage_max": value}, headers=user.headers)
    assert_error(response, 422, field="mileage_max")


def test_car_search_mileage_at_the_column_maximum_works(client, user):
    response = client.post("/api/v1/cars/search", json={"mileage_max": types.INT32_MAX}, headers=user.headers)
    assert (
        response.status_code == 200
        and response.get_json()["search_criteria"]["mileage_max"] == types.INT32_MAX
    )


@pytest.mark.parametrize("value", [2**63, 10**30])
def test_negotiation_deal_id_beyond_bigint_is_422(client, user, value):
    response = client.post("/api/v1/negotiations", json={"deal_id": value}, headers=user.headers)
    assert_error(response, 422, field="deal_id")


def test_integer_literal_beyond_the_digit_limit_is_400(client, user):
    response = raw(client, "POST", "/api/v1/cars/search", '{"mileage_max": ' + "9" * 5000 + "}", user.headers)
    assert_error(response, 400, "not valid JSON")


def test_path_ids_beyond_bigint_are_404(client, user):
    huge = 10**30
    assert_error(client.get(f"/api/v1/deals/{huge}", headers=user.headers), 404, "Deal not found")
    response = client.post(f"/api/v1/negotiations/{huge}/chat", json={"message": "hi"}, headers=user.headers)
    assert_error(response, 404)


# -- non-finite floats: refused everywhere ----------------------------------------------------------


@pytest.mark.parametrize("token", ["Infinity", "-Infinity", "NaN"])
def test_preferences_non_json_tokens_are_400(client, user, token):
    text = '{"budget_range": {"min": 0, "max": ' + token + "}}"
    response = raw(client, "PUT", "/api/v1/users/me/preferences", text, user.headers)
    assert_error(response, 400, "not valid JSON")


def test_preferences_overflowing_float_is_422_and_stored_preferences_stay_valid_json(client, user):
    url = "/api/v1/users/me/preferences"
    response = raw(client, "PUT", url, '{"budget_range": {"min": 0, "max": 1e400}}', user.headers)
    assert_error(response, 422, field="budget_range.max")
    assert (
        client.put(url, json={"budget_range": {"min": 0, "max": 5e4}}, headers=user.headers).status_code
        == 200
    )
    response = client.get(url, headers=user.headers)
    body = json.loads(response.get_data(as_text=True), parse_constant=_strict)
    assert body["preferences"]["budget_range"] == {"min": 0, "max": 5e4}


@pytest.mark.parametrize(
    "path,body",
    [
        ("/api/v1/deals", {**DEAL, "asking_price": "Infinity"}),
        ("/api/v1/deals", {**DEAL, "asking_price": "NaN"}),
        ("/api/v1/deals/evaluate", {"vehicle_vin": DEAL["vehicle_vin"], "asking_price": "inf", "mileage": 1}),
        ("/api/v1/cars/search", {"budget_max": "-inf"}),
        ("/api/v1/users/me/preferences", {"year_range": {"max": "nan"}}),
    ],
)
def test_non_finite_floats_as_strings_are_422(client, user, path, body):
    method = "PUT" if "preferences" in path else "POST"
    assert_error(client.open(path, method=method, json=body, headers=user.headers), 422)


# -- every request model uses the shared types ------------------------------------------------------

# every module of the api package, so a new one is checked too
API_MODULES = [
    importlib.import_module(f"{api.__name__}.{m.name}") for m in pkgutil.iter_modules(api.__path__)
]
REQUEST_MODELS = [
    model
    for module in API_MODULES
    for model in vars(module).values()
    if isinstance(model, type)
    and issubclass(model, pydantic.BaseModel)
    and model.__module__ == module.__name__
]


def _leaves(annotation, metadata=()):
    """(type, metadata) for every leaf type inside Optional/Union/list/Annotated."""
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        # a Field() inside Annotated keeps its constraints in its own metadata
        extra = [m for e in extra for m in (e.metadata if isinstance(e, pydantic.fields.FieldInfo) else [e])]
        yield from _leaves(base, (*metadata, *extra))
    elif typing.get_args(annotation) and typing.get_origin(annotation) is not typing.Literal:
        for arg in typing.get_args(annotation):
            yield from _leaves(arg, () if typing.get_origin(annotation) is list else metadata)
    else:
        yield annotation, metadata


def test_request_models_are_found():
    names = {m.__name__ for m in REQUEST_MODELS}
    assert {"SignupIn", "LoginIn", "DealIn", "SearchIn", "ChatIn", "PreferencesIn", "Range"} <= names


@pytest.mark.parametrize("model", REQUEST_MODELS, ids=lambda m: m.__name__)
def test_every_request_field_uses_the_shared_types(model):
    assert issubclass(model, types.RequestModel), "base on types.RequestModel (extra=forbid, finite floats)"
    for name, field in model.model_fields.items():
        for leaf, metadata in _leaves(field.rebuild_annotation()):
            where = f"{model.__name__}.{name}"
            if leaf is str:
                checks = [getattr(m, "func", None) for m in metadata]
                assert any(getattr(f, "rejects_control_characters", False) for f in checks), where
            elif leaf is int:
                bounds = [getattr(m, "le", None) or getattr(m, "lt", None) for m in metadata]
                assert any(b is not None and b <= types.INT64_MAX for b in bounds), f"{where}: unbounded int"
            elif leaf is float:
                finite = model.model_config.get("allow_inf_nan") is False
                assert finite or any(getattr(m, "allow_inf_nan", None) is False for m in metadata), where


# -- store errors on bad values and framework errors: 4xx JSON --------------------------------------


@pytest.fixture(scope="module")
def probe_app(migrated):
    """An app with routes that hand bad values straight to the stores, past the request types."""
    app = create_app(migrated)

    @app.get("/probe/postgres-range")
    def _postgres_range():
        services().db.query("SELECT %s::integer", (2**40,), operation="select", table="probe")

    @app.get("/probe/postgres-nul")
    def _postgres_nul():
        services().db.query("SELECT %s::text", ("a\x00b",), operation="select", table="probe")

    @app.get("/probe/mongo-int")
    def _mongo_int():
        services().mongo.call(lambda db: db.probe.insert_one({"n": 2**64}))

    @app.get("/probe/mongo-key")
    def _mongo_key():
        services().mongo.call(lambda db: db.probe.insert_one({"a\x00b": 1}))

    @app.get("/probe/surrogate")
    def _surrogate():
        services().mongo.call(lambda db: db.probe.insert_one({"s": "\ud800"}))

    @app.get("/probe/mongo-rejected")
    def _mongo_rejected():
        def rejected(_db):  # what a server answers for a document it will not store
            raise pymongo.errors.WriteError("Invalid JSON document", code=2)

        services().mongo.call(rejected)

    @app.get("/probe/abort/<int:code>")
    def _abort(code):
        abort(code)

    return app


@pytest.mark.parametrize(
    "probe", ["postgres-range", "postgres-nul", "mongo-int", "mongo-key", "surrogate", "mongo-rejected"]
)
def test_store_errors_on_bad_values_are_422(probe_app, probe):
    response = probe_app.test_client().get(f"/probe/{probe}")
    assert_error(response, 422)
    with probe_app.app_context():  # one refused value is not an outage: nobody else gets 503
        assert not services().mongo.breaker.is_open


@pytest.mark.parametrize("code", [400, 401, 403, 404, 405, 409, 413, 415, 422, 429])
def test_framework_errors_are_json(probe_app, code):
    assert_error(probe_app.test_client().get(f"/probe/abort/{code}"), code)


def test_routing_errors_are_json(client, user):
    assert_error(client.get("/no/such/path"), 404)
    response = client.delete("/api/v1/auth/login")
    assert_error(response, 405)
    assert "POST" in response.headers["Allow"]
    response = client.post(
        "/api/v1/deals", data="x" * (2 * 1024 * 1024), content_type="application/json", headers=user.headers
    )
    assert_error(response, 413)


def test_non_json_content_type_is_400(client, user):
    response = client.post(
        "/api/v1/deals", data=json.dumps(DEAL), content_type="text/plain", headers=user.headers
    )
    assert_error(response, 400, "JSON object")


# -- the garbage sweep ------------------------------------------------------------------------------


@pytest.fixture
def routes(client, user, deal, session):
    return [
        ("POST", "/api/v1/auth/signup"),
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/refresh"),
        ("POST", "/api/v1/auth/logout"),
        ("POST", "/api/v1/deals"),
        ("PUT", f"/api/v1/deals/{deal['id']}"),
        ("POST", "/api/v1/deals/evaluate"),
        ("POST", "/api/v1/cars/search"),
        ("POST", "/api/v1/negotiations"),
        ("POST", f"/api/v1/negotiations/{session['id']}/next"),
        ("POST", f"/api/v1/negotiations/{session['id']}/chat"),
        ("PUT", "/api/v1/users/me/preferences"),
    ]


def test_garbage_bodies_never_cause_server_errors(client, user, routes):
    for method, path in routes:
        for body in GARBAGE:
            kwargs = (
                {"data": "{broken", "content_type": "application/json"} if body is None else {"json": body}
            )
            response = client.open(path, method=method, headers=user.headers, **kwargs)
            assert response.status_code < 500, (method, path, body, response.status_code)
            assert response.is_json
            if response.status_code >= 400:
                assert "detail" in response.get_json()
