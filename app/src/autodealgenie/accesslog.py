"""gunicorn logger: one JSON object per request in the access log (with the X-Request-ID the app
returned), and the error log in the app's format (logs.py: JSON unless LOG_FORMAT=text)."""

from __future__ import annotations

import json
import os
import time

from gunicorn.glogging import Logger

from . import logs


class JsonAccessLogger(Logger):
    def setup(self, cfg):
        super().setup(cfg)
        # gunicorn's own handlers (marked _gunicorn; re-created on every reload, which calls setup)
        log_formatter = logs.formatter(logs.log_format_from_env())
        for handler in self.error_log.handlers:
            if getattr(handler, "_gunicorn", False):
                handler.setFormatter(log_formatter)

    def access(self, resp, req, environ, request_time):
        enabled = getattr(self, "access_log_enabled", None)
        if enabled is None:  # gunicorn < 23
            enabled = bool(self.cfg.accesslog or self.cfg.logconfig or self.cfg.syslog)
        if not enabled:
            return
        headers = {name.lower(): value for name, value in (resp.headers or [])}
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        record = {
            "time": logs.rfc3339(time.time()),  # as in the app's own log lines
            "request_id": headers.get("x-request-id"),
            "remote_addr": environ.get("REMOTE_ADDR"),
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),
            "query": environ.get("QUERY_STRING") or None,
            "status": int(status),
            "bytes": getattr(resp, "sent", None),
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
            "user_agent": environ.get("HTTP_USER_AGENT"),
            "pid": os.getpid(),
        }
        try:
            self.access_log.info(json.dumps(record))
        except Exception:
            self.exception("access log failed")
