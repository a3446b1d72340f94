"""A scripted fake of the network below ansible.module_utils.urls, for unit tests.

It replaces ``urllib.request.urlopen``, the call urls' ``Request.open`` ends with, so everything our
client and urls do above it (headers, credentials, netrc, TLS context, proxy and unix-socket handlers)
runs for real and is recorded. Like urls with ``follow_redirects='none'``, a 3xx answer is raised as an
HTTPError carrying its Location header.
"""

from __future__ import annotations

import email.message
import io
import json
import urllib.error
import urllib.request

from ansible.module_utils.urls import UnixHTTPHandler


def _message(headers):
    message = email.message.Message()
    for key, value in headers.items():
        message[key] = value
    return message


class FakeResponse(io.BytesIO):
    def __init__(self, status, body=b"", headers=None):
        super().__init__(body if isinstance(body, bytes) else json.dumps(body).encode())
        self.status = status
        self.headers = _message(headers or {"Content-Type": "application/json"})


class FakeOpener:
    """Answers requests from a script: each item is (status, body), (status, body, headers), an exception
    instance, or a callable taking the urllib Request. ``requests`` records (method, url, headers, body) of
    every call; ``handlers`` what urls set up for it: {"tls": ssl context or None, "proxies": dict,
    "unix_socket": path or None}."""

    def __init__(self, *script):
        self.script = list(script)
        self.requests = []
        self.handlers = []

    def install(self, monkeypatch):
        monkeypatch.setattr(urllib.request, "urlopen", self.urlopen)
        return self

    def urlopen(self, request, data=None, timeout=None):
        self.handlers.append(_installed_handlers())
        body = request.data.decode() if request.data else None
        self.requests.append((request.get_method(), request.full_url, dict(request.header_items()), body))
        if not self.script:
            raise AssertionError(f"unexpected request {request.get_method()} {request.full_url}")
        step = self.script.pop(0)
        if callable(step) and not isinstance(step, BaseException):
            step = step(request)
        if isinstance(step, BaseException):
            raise step
        status, payload, *extra = step
        headers = {"Content-Type": "application/json", **(extra[0] if extra else {})}
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        if status >= 300:
            raise urllib.error.HTTPError(
                request.full_url, status, "error", _message(headers), io.BytesIO(raw)
            )
        return FakeResponse(status, raw, headers)


def _installed_handlers():
    """What urls' Request.open installed as the global opener just before calling urlopen."""
    opener = urllib.request._opener  # set by urls (install_opener) for this very request
    # A ProxyHandler without proxies (use_proxy=false) handles nothing, so build_opener drops it.
    found = {"tls": None, "proxies": {}, "unix_socket": None}
    for handler in opener.handlers if opener else ():
        if isinstance(handler, urllib.request.HTTPSHandler):
            found["tls"] = handler._context
        elif isinstance(handler, urllib.request.ProxyHandler):
            found["proxies"] = handler.proxies
        elif isinstance(handler, UnixHTTPHandler):
            found["unix_socket"] = handler._unix_socket
    return found
