# Shared HTTP client for the project's modules (Grafana, Prometheus, Alertmanager).
# Standard library only: the modules run on plain Debian targets that have nothing but python3.
"""JSON-over-HTTP client with timeouts, retries, auth, TLS switch and secret-masked errors."""

from __future__ import annotations

import base64
import errno
import http.client
import json
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

MASK = "********"
IDEMPOTENT_METHODS = frozenset(("GET", "HEAD", "PUT", "DELETE", "OPTIONS"))
BODY_EXCERPT = 2000
# Query parameters whose values are masked in URLs shown in errors.
SECRET_QUERY_KEYS = frozenset(("password", "token", "api_key", "apikey", "access_token", "key", "secret"))


def http_argument_spec():
    """Connection options shared by every module (documented in each module's DOCUMENTATION)."""
    spec = {
        "url": {"type": "str", "required": True},
        "url_username": {"type": "str", "aliases": ["username"]},
        "url_password": {"type": "str", "no_log": True, "aliases": ["password"]},
        "token": {"type": "str", "no_log": True},
        "validate_certs": {"type": "bool", "default": True},
        "ca_path": {"type": "path"},
        "timeout": {"type": "float", "default": 10.0},
        "retries": {"type": "int", "default": 3},
        "use_proxy": {"type": "bool", "default": True},
    }
    return spec


def client_from_module(module, secrets=(), headers=None):
    """Build an HttpClient from the standard connection options of an AnsibleModule."""
    p = module.params
    if not p["url"] or "://" not in p["url"]:
        module.fail_json(msg="url must be an absolute http(s) URL, got {!r}".format(p["url"]))
    return HttpClient(
        p["url"],
        username=p.get("url_username"),
        password=p.get("url_password"),
        token=p.get("token"),
        validate_certs=p.get("validate_certs", True),
        ca_path=p.get("ca_path"),
        timeout=p.get("timeout") or 10.0,
        retries=p.get("retries", 3),
        use_proxy=p.get("use_proxy", True),
        headers=headers,
        secrets=secrets,
    )


class ModuleFailure(Exception):
    """A failure explained for a human; ``result`` holds extra fields for fail_json."""

    def __init__(self, msg, **result):
        super().__init__(msg)
        self.result = result


def run_module(module, func, *args):
    """Call ``func(*args)`` and exit the module with its result, or fail with a readable message."""
    try:
        result = func(*args)
    except HttpError as exc:
        module.fail_json(msg=str(exc), **exc.as_result())
    except ModuleFailure as exc:
        module.fail_json(msg=str(exc), **exc.result)
    module.exit_json(**result)


class HttpError(Exception):
    """A failed request. ``str()`` shows method, URL, status and body with every secret masked."""

    def __init__(self, method, url, status=None, body=None, reason=None, masker=None, attempts=1):
        self.method = method
        self.status = status
        self.attempts = attempts
        mask = masker or (lambda text: text)
        self.url = mask(url)
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        self.body = mask(body) if body else body
        self.reason = mask(str(reason)) if reason else reason
        super().__init__(self._describe())

    def json(self):
        """The error body as JSON, or None."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    @property
    def message(self):
        """Grafana/Prometheus style error message from the body, or the raw body excerpt."""
        data = self.json()
        if isinstance(data, dict):
            return data.get("message") or data.get("error") or self.body
        return self.body

    @property
    def api_status(self):
        """Grafana's machine-readable ``status`` field (version-mismatch, not-found, ...), or None."""
        data = self.json()
        return data.get("status") if isinstance(data, dict) else None

    def _describe(self):
        where = f"{self.method} {self.url}"
        if self.status is None:
            text = f"{where} failed: {self.reason}"
        else:
            text = f"{where} -> HTTP {self.status}"
            if self.reason:
                text += " " + self.reason
            if self.body:
                excerpt = self.body if len(self.body) <= BODY_EXCERPT else self.body[:BODY_EXCERPT] + "..."
                text += ": " + excerpt.strip()
        if self.attempts > 1:
            text += f" (after {self.attempts} attempts)"
        return text

    def as_result(self):
        """Fields for fail_json."""
        return {"method": self.method, "url": self.url, "status": self.status, "body": self.body}


class Response:
    """A completed HTTP response."""

    def __init__(self, method, url, status, headers, body, masker):
        self.method = method
        self.url = url
        self.status = status
        self.headers = headers
        self.body = body
        self._mask = masker

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        """Decode the body as JSON; malformed JSON raises HttpError that names the request."""
        if not self.body or not self.body.strip():
            return None
        try:
            return json.loads(self.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(
                self.method,
                self.url,
                self.status,
                self.body,
                reason=f"invalid JSON in response ({exc})",
                masker=self._mask,
            ) from None


class HttpClient:
    """Minimal JSON HTTP client.

    * ``timeout`` seconds per attempt; ``retries`` extra attempts with exponential backoff
      (``backoff`` * 2**n, capped at ``max_backoff``) on connection errors and HTTP 5xx.
      Non-idempotent requests (POST) are retried only when the connection was refused, i.e. the
      request cannot have reached the server; pass ``idempotent=True`` to retry them anyway.
    * Basic auth (sent pre-emptively) or a bearer token; extra headers.
    * ``validate_certs=False`` disables TLS verification; ``ca_path`` adds a CA bundle.
    * Every error message masks the password, the token, the basic-auth header value and any
      extra ``secrets`` registered by the caller.
    """

    def __init__(
        self,
        base_url,
        username=None,
        password=None,
        token=None,
        validate_certs=True,
        ca_path=None,
        timeout=10.0,
        retries=3,
        backoff=0.5,
        max_backoff=8.0,
        use_proxy=True,
        headers=None,
        secrets=(),
        opener=None,
        sleep=time.sleep,
    ):
        if not base_url or "://" not in base_url:
            raise ValueError(f"url must be an absolute http(s) URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sleep = sleep
        self.headers = {"Accept": "application/json", "User-Agent": "adg-ansible-modules"}
        self.headers.update(headers or {})
        self._secrets = set()
        for secret in (password, token, *secrets):
            self.add_secret(secret)
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        elif username is not None and password is not None:
            raw = (f"{username}:{password}").encode()
            encoded = base64.b64encode(raw).decode("ascii")
            self.add_secret(encoded)
            self.headers["Authorization"] = f"Basic {encoded}"
        context = None
        if self.base_url.startswith("https"):
            context = ssl.create_default_context(cafile=ca_path)
            if not validate_certs:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        handlers = [urllib.request.HTTPSHandler(context=context)] if context else []
        if not use_proxy:
            handlers.append(urllib.request.ProxyHandler({}))
        self._opener = opener or urllib.request.build_opener(*handlers)

    # -- secrets --------------------------------------------------------------------------------
    def add_secret(self, value):
        """Register a value that must never appear in error messages."""
        if value is None:
            return
        if isinstance(value, (dict, list)):
            for item in value.values() if isinstance(value, dict) else value:
                self.add_secret(item)
            return
        text = str(value)
        if len(text) >= 3:
            self._secrets.add(text)
            quoted = urllib.parse.quote(text, safe="")
            if quoted != text:
                self._secrets.add(quoted)
            dumped = json.dumps(text)[1:-1]
            if dumped != text:
                self._secrets.add(dumped)

    def mask(self, text):
        if not text:
            return text
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text

    def _mask_url(self, url):
        parts = urllib.parse.urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = MASK + "@" + netloc.rsplit("@", 1)[1]
        query = parts.query
        if query:
            pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
            query = urllib.parse.urlencode(
                [(k, MASK if k.lower() in SECRET_QUERY_KEYS else v) for k, v in pairs], safe="*"
            )
        return self.mask(urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))

    # -- requests -------------------------------------------------------------------------------
    def url_for(self, path, params=None):
        url = path if "://" in path else self.base_url + "/" + path.lstrip("/")
        if params:
            items = []
            for key, value in params.items() if isinstance(params, dict) else params:
                if value is None:
                    continue
                if isinstance(value, (list, tuple)):
                    items.extend((key, v) for v in value)
                else:
                    items.append((key, value))
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(items)
        return url

    def request(
        self,
        method,
        path,
        params=None,
        json_body=None,
        form=None,
        headers=None,
        expected=(200,),
        idempotent=None,
        timeout=None,
    ):
        """Send a request; return a Response whose status is in ``expected`` or raise HttpError."""
        method = method.upper()
        url = self.url_for(path, params)
        shown_url = self._mask_url(url)
        data = None
        req_headers = dict(self.headers)
        if json_body is not None:
            data = json.dumps(json_body).encode("utf-8")
            req_headers["Content-Type"] = "application/json"
        elif form is not None:
            data = urllib.parse.urlencode(form, doseq=True).encode("utf-8")
            req_headers["Content-Type"] = "application/x-www-form-urlencoded"
        req_headers.update(headers or {})
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        attempts = 0
        while True:
            attempts += 1
            retry_allowed = attempts <= self.retries
            try:
                status, resp_headers, body = self._send(method, url, data, req_headers, timeout)
            except _TransportError as exc:
                if retry_allowed and (idempotent or exc.refused):
                    self._pause(attempts)
                    continue
                raise HttpError(
                    method, shown_url, reason=exc.reason, masker=self.mask, attempts=attempts
                ) from None
            if status >= 500 and status not in expected and retry_allowed and idempotent:
                self._pause(attempts)
                continue
            if status not in expected:
                raise HttpError(
                    method,
                    shown_url,
                    status,
                    body,
                    reason=resp_headers.get("_reason"),
                    masker=self.mask,
                    attempts=attempts,
                )
            return Response(method, shown_url, status, resp_headers, body, self.mask)

    def _pause(self, attempt):
        self.sleep(min(self.max_backoff, self.backoff * (2 ** (attempt - 1))))

    def _send(self, method, url, data, headers, timeout):
        if not url.startswith(("http://", "https://")):
            raise _TransportError(f"unsupported URL scheme in {url!r}")
        req = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 - scheme checked above
        try:
            resp = self._opener.open(req, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as exc:
            try:
                body = exc.read()
            except (OSError, http.client.HTTPException):
                body = b""
            hdrs = dict(exc.headers.items()) if exc.headers else {}
            hdrs["_reason"] = exc.reason
            return exc.code, hdrs, body
        except urllib.error.URLError as exc:
            raise _TransportError(exc.reason) from None
        except TimeoutError as exc:
            raise _TransportError(exc or "timed out") from None
        except (OSError, http.client.HTTPException) as exc:
            raise _TransportError(exc) from None
        try:
            with resp:
                body = resp.read()
                return resp.status, dict(resp.headers.items()), body
        except TimeoutError as exc:
            raise _TransportError(f"timed out reading response: {exc}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise _TransportError(exc) from None

    # -- JSON helpers ---------------------------------------------------------------------------
    def get_json(self, path, params=None, expected=(200,)):
        return self.request("GET", path, params=params, expected=expected).json()

    def send_json(self, method, path, body, expected=(200,), idempotent=None):
        return self.request(method, path, json_body=body, expected=expected, idempotent=idempotent).json()


def get_or_none(client, path):
    """GET a JSON object, None on 404 (the object does not exist)."""
    response = client.request("GET", path, expected=(200, 404))
    return None if response.status == 404 else response.json()


class _TransportError(Exception):
    def __init__(self, reason):
        self.reason = reason if isinstance(reason, str) else _describe_reason(reason)
        self.refused = _is_refused(reason)
        super().__init__(self.reason)


def _is_refused(reason):
    if isinstance(reason, ConnectionRefusedError):
        return True
    return isinstance(reason, OSError) and reason.errno == errno.ECONNREFUSED


def _describe_reason(reason):
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return "timed out (%s)" % (reason or "no response")
    return f"{type(reason).__name__}: {reason}"
