"""The service's own log lines: one JSON object per line (LOG_FORMAT=json, the default) or text.

Fields: time (RFC 3339, UTC, milliseconds), level, logger, message; request_id (the X-Request-ID
the response carries, also in the access log) and user_id (the authenticated user) when the line is
written during a request that has them; exception (the traceback) when there is one. The gunicorn
error log uses the same formatter (accesslog.JsonAccessLogger), so every line on stderr parses.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime

from flask import g, has_request_context  # the gunicorn master has no request context: no fields

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def rfc3339(seconds: float) -> str:
    """A time.time() value as RFC 3339 UTC with milliseconds (2026-01-31T12:00:00.123Z)."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def log_format_from_env(env=None) -> str:
    """LOG_FORMAT as gunicorn's logger reads it (before any app exists): json unless it says text."""
    value = (os.environ if env is None else env).get("LOG_FORMAT", "").strip().lower()
    return "text" if value == "text" else "json"


def _request_fields() -> dict:
    if not has_request_context():
        return {}
    fields = {}
    request_id = g.get("request_id")
    if request_id:
        fields["request_id"] = request_id
    user = g.get("user")
    if user:
        fields["user_id"] = user["id"]
    return fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": rfc3339(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_request_fields(),
        }
        if record.exc_info and not record.exc_text:
            # cached on the record, as logging.Formatter does: formatted once for all handlers
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # ASCII: a lone surrogate (from a hostile path) is escaped, never an encoding error on stderr
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """The plain format, with the request id appended when there is one."""

    def __init__(self):
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = _request_fields()
        if fields:
            line += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        return line


def formatter(log_format: str) -> logging.Formatter:
    return TextFormatter() if log_format == "text" else JsonFormatter()


class _AppHandler(logging.StreamHandler):
    """The handler configure() installs (recognised so a second app replaces it, never stacks).
    Without a given stream it writes to whatever sys.stderr is when a line is written."""

    def __init__(self, stream=None):
        super().__init__(stream)
        self._fixed = stream

    @property
    def stream(self):
        return self._fixed if self._fixed is not None else sys.stderr

    @stream.setter
    def stream(self, value):
        self._fixed = value


def configure(log_level: str, log_format: str, stream=None) -> logging.Handler:
    """Install the app's handler on the root logger (stderr: journald under systemd)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _AppHandler):
            root.removeHandler(handler)
    handler = _AppHandler(stream)
    handler.setFormatter(formatter(log_format))
    root.addHandler(handler)
    root.setLevel(log_level.upper())
    return handler
