"""JSON errors: every failure answers {"detail": ...} with a 4xx/5xx status, never an HTML page."""

from __future__ import annotations

import json
import logging
from typing import TypeVar

import bson.errors
import psycopg2
import pymongo.errors
from flask import Flask, jsonify, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
_PSYCOPG2_NUL = "A string literal cannot contain NUL"  # psycopg2's ValueError (not a DataError)


class ApiError(Exception):
    def __init__(self, status: int, detail: str, *, headers: dict | None = None, errors: list | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}
        self.errors = errors


class ServiceUnavailable(ApiError):
    """A backing store needed for this request is down (503, not 500)."""

    def __init__(self, service: str):
        super().__init__(503, f"{service} is unavailable, try again later", headers={"Retry-After": "5"})


def _response(status: int, detail: str, headers: dict | None = None, errors: list | None = None):
    body = {"detail": detail, "status": status}
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _field_name(loc: tuple) -> str:
    # An unknown field's name comes from the client: echo it short and printable.
    name = ".".join(str(p) for p in loc) or "body"
    name = name.encode("unicode_escape").decode("ascii")
    return name if len(name) <= 100 else name[:100] + "..."


def validation_errors(exc: ValidationError) -> list[dict]:
    return [
        {"field": _field_name(err["loc"]), "message": err["msg"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def _not_json(token: str):
    raise ValueError(f"{token} is not JSON")


def json_body(*, silent: bool = False):
    """The request body parsed as strict JSON (no NaN/Infinity tokens); 400 (silent: None) if it is not.

    Not Flask's get_json: that lets RecursionError (deep nesting) escape as a 500 and accepts the
    non-standard tokens, which jsonify would later echo as invalid JSON.
    """
    try:
        if not request.is_json:
            raise ApiError(400, "Request body must be a JSON object")
        try:
            return json.loads(request.get_data(cache=True), parse_constant=_not_json)
        except RecursionError:
            raise ApiError(400, "Request body is nested too deeply") from None
        except ValueError:  # JSONDecodeError, UnicodeDecodeError, integers beyond the digit limit
            raise ApiError(400, "Request body must be a JSON object (it is not valid JSON)") from None
    except ApiError:
        if silent:
            return None
        raise


def parse_body(model: type[M]) -> M:
    data = json_body()
    if not isinstance(data, dict):
        raise ApiError(400, "Request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "Validation failed", errors=validation_errors(exc)) from None
    except RecursionError:  # a field nested just below the parser's limit
        raise ApiError(400, "Request body is nested too deeply") from None


def parse_query(model: type[M]) -> M:
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as exc:
        raise ApiError(422, "Invalid query parameters", errors=validation_errors(exc)) from None


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return _response(exc.status, exc.detail, exc.headers, exc.errors)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        headers = {}
        if exc.code == 405 and exc.valid_methods:
            headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        return _response(exc.code or 500, exc.description or exc.name, headers)

    # Values that pass validation but not the store (request types should stop them first; this
    # keeps a missed one a 4xx): PostgreSQL column types, BSON (int64, key names), UTF-8.
    @app.errorhandler(psycopg2.DataError)
    def _data_error(exc: psycopg2.DataError):
        log.warning("rejected a value PostgreSQL cannot store on %s: %s", request.path, exc.pgcode)
        return _response(422, "A value is out of range for the database")

    @app.errorhandler(bson.errors.BSONError)
    @app.errorhandler(pymongo.errors.WriteError)
    @app.errorhandler(OverflowError)
    @app.errorhandler(UnicodeEncodeError)
    def _unstorable(exc: Exception):
        log.warning("rejected a value a store cannot encode on %s: %s", request.path, type(exc).__name__)
        return _response(422, "A value cannot be stored")

    @app.errorhandler(ValueError)
    def _value_error(exc: ValueError):
        if str(exc).startswith(_PSYCOPG2_NUL):
            log.warning("rejected a NUL character on %s", request.path)
            return _response(422, "A value cannot be stored")
        return _unexpected(exc)

    @app.errorhandler(psycopg2.IntegrityError)
    def _integrity_error(exc: psycopg2.IntegrityError):
        return _response(409, "The request conflicts with existing data")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _response(500, "Internal server error")
