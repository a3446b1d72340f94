"""The app's own log lines (LOG_FORMAT) and gunicorn's error log: one JSON object per line, carrying
the request's id and user (under gunicorn with 4 workers: test_gunicorn.py)."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from appsupport import register
from autodealgenie import logs
from autodealgenie.accesslog import JsonAccessLogger
from autodealgenie.api import login_required
from autodealgenie.app import create_app
from autodealgenie.config import Config, ConfigError
from gunicorn.config import Config as GunicornConfig

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def app_log(make_config, migrated):
    """(app factory, the StringIO its log lines go to); the root logger is put back afterwards."""
    stream = io.StringIO()

    def factory(**env):
        app = create_app(make_config(**env))
        handler = next(h for h in logging.getLogger().handlers if isinstance(h, logs._AppHandler))
        handler.setStream(stream)
        log = logging.getLogger("autodealgenie.test_logs")

        @app.get("/log-for-test")
        @login_required
        def logged():
            log.info("looked at %s", "the loan desk")
            return {"ok": True}

        @app.get("/anonymous-log-for-test")
        def anonymous():
            log.warning("no user here")
            return {"ok": True}

        @app.get("/crash-for-test")
        def crash():
            raise RuntimeError("the crash for the log test")

        return app

    yield factory, stream
    logs.configure("INFO", "json")


def test_a_requests_lines_are_json_with_its_request_id_and_user(app_log):
    factory, stream = app_log
    app = factory()
    client = app.test_client()
    user = register(client)
    me = client.get("/api/v1/auth/me", headers=user.headers).get_json()
    stream.truncate(0)
    stream.seek(0)
    response = client.get("/log-for-test", headers={**user.headers, "X-Request-ID": "log-test.1"})
    assert response.status_code == 200 and response.headers["X-Request-ID"] == "log-test.1"
    client.get("/anonymous-log-for-test", headers={"X-Request-ID": "log-test.2"})
    logging.getLogger("autodealgenie.test_logs").info("outside any request")
    records = [json.loads(line) for line in stream.getvalue().splitlines()]  # every line parses
    by_message = {r["message"]: r for r in records}
    assert by_message["looked at the loan desk"] == {
        "time": by_message["looked at the loan desk"]["time"],
        "level": "INFO",
        "logger": "autodealgenie.test_logs",
        "message": "looked at the loan desk",
        "request_id": "log-test.1",
        "user_id": me["id"],
    }
    assert RFC3339_UTC.match(by_message["looked at the loan desk"]["time"])
    anonymous = by_message["no user here"]
    assert anonymous["request_id"] == "log-test.2" and "user_id" not in anonymous
    outside = by_message["outside any request"]
    assert "request_id" not in outside and "user_id" not in outside


def test_an_exception_is_one_json_line_with_its_traceback(app_log):
    factory, stream = app_log
    client = factory().test_client()
    response = client.get("/crash-for-test", headers={"X-Request-ID": "log-test.crash"})
    assert response.status_code == 500
    lines = stream.getvalue().splitlines()
    crash = [json.loads(line) for line in lines if "log-test.crash" in line]
    assert len(crash) == 1, lines
    assert crash[0]["level"] == "ERROR" and crash[0]["logger"] == "autodealgenie.errors"
    assert crash[0]["message"] == "unhandled error on GET /crash-for-test"
    assert crash[0]["exception"].startswith("Traceback")
    assert "RuntimeError: the crash for the log test" in crash[0]["exception"]


def test_text_format_on_request(app_log):
    factory, stream = app_log
    client = factory(LOG_FORMAT="text").test_client()
    client.get("/anonymous-log-for-test", headers={"X-Request-ID": "log-test.text"})
    (line,) = [line for line in stream.getvalue().splitlines() if "no user here" in line]
    assert " WARNING autodealgenie.test_logs no user here request_id=log-test.text" in line
    with pytest.raises(ValueError):
        json.loads(line)


def test_hostile_text_stays_one_parseable_line():
    record = logging.LogRecord(
        "autodealgenie.x", logging.WARNING, __file__, 1, "bad %s", ("\ud800\n\x00é",), None
    )
    line = logs.JsonFormatter().format(record)
    assert "\n" not in line and line.isascii()
    assert json.loads(line)["message"] == "bad \ud800\n\x00é"


def test_log_format_is_validated():
    assert Config.from_env({}).log_format == "json"
    assert Config.from_env({"LOG_FORMAT": "text"}).log_format == "text"
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        Config.from_env({"LOG_FORMAT": "xml"})


def test_creating_apps_never_stacks_handlers(app_log):
    factory, _ = app_log
    factory()
    factory()
    assert sum(isinstance(h, logs._AppHandler) for h in logging.getLogger().handlers) == 1


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_gunicorn_error_logger_uses_the_apps_format(monkeypatch, capsys, log_format):
    monkeypatch.setenv("LOG_FORMAT", log_format)
    logger = JsonAccessLogger(GunicornConfig())  # errorlog "-": stderr
    try:
        logger.info("Booting worker with pid: %s", 4242)
        try:
            raise OSError("socket trouble")
        except OSError:
            logger.exception("worker failed")
        err = capsys.readouterr().err.splitlines()
    finally:
        for handler in list(logger.error_log.handlers):
            logger.error_log.removeHandler(handler)
    if log_format == "text":
        assert err[0].endswith(" INFO gunicorn.error Booting worker with pid: 4242")
        return
    first, second = (json.loads(line) for line in err if line.startswith("{"))
    assert first["logger"] == "gunicorn.error" and first["level"] == "INFO"
    assert first["message"] == "Booting worker with pid: 4242" and RFC3339_UTC.match(first["time"])
    assert second["level"] == "ERROR" and "OSError: socket trouble" in second["exception"]
    assert len(err) == 2, "the traceback belongs to its line"
