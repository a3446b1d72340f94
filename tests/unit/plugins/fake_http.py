"""A scripted fake of the network below HttpClient (its opener), for unit tests."""

from __future__ import annotations

import email.message
import io
import json
import urllib.error


class FakeResponse(io.BytesIO):
    def __init__(self, status, body=b"", headers=None):
        super().__init__(body if isinstance(body, bytes) else json.dumps(body).encode())
        self.status = status
        self.headers = email.message.Message()
        for key, value in (headers or {"Content-Type": "application/json"}).items():
            self.headers[key] = value


class FakeOpener:
    """Answers requests from a script: each item is (status, body), an exception instance, or a callable
    taking the urllib Request. ``requests`` records (method, url, headers, body) of every call."""

    def __init__(self, *script):
        self.script = list(script)
        self.requests = []

    def open(self, request, timeout=None):
        body = request.data.decode() if request.data else None
        self.requests.append((request.get_method(), request.full_url, dict(request.header_items()), body))
        if not self.script:
            raise AssertionError(f"unexpected request {request.get_method()} {request.full_url}")
        step = self.script.pop(0)
        if callable(step) and not isinstance(step, BaseException):
            step = step(request)
        if isinstance(step, BaseException):
            raise step
        status, payload = step
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        if status >= 400:
            headers = email.message.Message()
            headers["Content-Type"] = "application/json"
            raise urllib.error.HTTPError(request.full_url, status, "error", headers, io.BytesIO(raw))
        return FakeResponse(status, raw)
