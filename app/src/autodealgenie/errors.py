"""JSON errors: every failure answers {"detail": ...} with a 4xx/5xx status, never an HTML page."""

from __future__ import annotations

import logging
from typing import TypeVar

import psycopg2
from flask import Flask, jsonify, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)


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


def validation_errors(exc: ValidationError) -> list[dict]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def parse_body(model: type[M]) -> M:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ApiError(400, "Request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "Validation failed", errors=validation_errors(exc)) from None


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

    @app.errorhandler(psycopg2.DataError)
    def _data_error(exc: psycopg2.DataError):
        # Values that pass validation but not the column type (e.g. an id beyond bigint).
        return _response(422, "A value is out of range for the database")

    @app.errorhandler(psycopg2.IntegrityError)
    def _integrity_error(exc: psycopg2.IntegrityError):
        return _response(409, "The request conflicts with existing data")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _response(500, "Internal server error")
