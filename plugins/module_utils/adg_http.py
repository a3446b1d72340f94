# Shared HTTP client of the collection's modules (Grafana, Prometheus, Alertmanager).
# The transport is ansible.module_utils.urls (shipped with every module payload: TLS contexts, client
# certificates, CA bundles, proxies, netrc, unix sockets, gzip); this layer adds only what it lacks:
# retries with backoff, redirects that never carry credentials to another origin, JSON helpers and
# error messages with every secret masked.
"""JSON-over-HTTP client on top of ansible.module_utils.urls."""

from __future__ import annotations

import contextlib
import errno
import http.client
import json
import socket
import time
import urllib.error
import urllib.parse
from http.cookiejar import CookieJar, DefaultCookiePolicy

from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
from ansible.module_utils.urls import Request, basic_auth_header, make_context

MASK = "********"
IDEMPOTENT_METHODS = frozenset(("GET", "HEAD", "PUT", "DELETE", "OPTIONS"))
REDIRECT_STATUSES = frozenset((301, 302, 303, 307, 308))
BODY_EXCERPT = 2000
DEFAULT_AGENT = "autodealgenie.ops"
# Query parameters whose values are masked in URLs shown in errors.
SECRET_QUERY_KEYS = frozenset(("password", "token", "api_key", "apikey", "access_token", "key", "secret"))
_DEFAULT_PORTS = {"http": 80, "https": 443}


def http_argument_spec():
    """Connection options shared by every module (doc fragment autodealgenie.ops.adg_http)."""
    return {
        "url": {"type": "str", "required": True},
        "url_username": {"type": "str", "aliases": ["username"]},
        "url_password": {"type": "str", "no_log": True, "aliases": ["password"]},
        "token": {"type": "str", "no_log": True},
        "validate_certs": {"type": "bool", "default": True},
        "ca_path": {"type": "path"},
        "client_cert": {"type": "path"},
        "client_key": {"type": "path"},
        "timeout": {"type": "float", "default": 10.0},
        "retries": {"type": "int", "default": 3},
        "max_redirects": {"type": "int", "default": 5},
        "use_proxy": {"type": "bool", "default": True},
        "use_netrc": {"type": "bool", "default": True},
        "unix_socket": {"type": "path"},
        "http_agent": {"type": "str", "default": DEFAULT_AGENT},
    }


def client_options(params):
    """HttpClient keyword arguments from the standard connection options (module params)."""
    return {
        "username": params.get("url_username"),
        "password": params.get("url_password"),
        "token": params.get("token"),
        "validate_certs": params.get("validate_certs", True),
        "ca_path": params.get("ca_path"),
        "client_cert": params.get("client_cert"),
        "client_key": params.get("client_key"),
        "timeout": params.get("timeout") or 10.0,
        "retries": params.get("retries", 3),
        "max_redirects": params.get("max_redirects", 5),
        "use_proxy": params.get("use_proxy", True),
        "use_netrc": params.get("use_netrc", True),
        "unix_socket": params.get("unix_socket"),
        "http_agent": params.get("http_agent") or DEFAULT_AGENT,
    }


def client_from_module(module, secrets=(), headers=None):
    """Build an HttpClient from the standard connection options of an AnsibleModule."""
    p = module.params
    if not p["url"] or not p["url"].startswith(("http://", "https://")):
        module.fail_json(msg="url must be an absolute http(s) URL, got {!r}".format(p["url"]))
    return HttpClient(p["url"], headers=headers, secrets=secrets, **client_options(p))


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

    def __init__(
        self, method, url, status=None, body=None, reason=None, masker=None, attempts=1, redirected_from=None
    ):
        self.method = method
        self.status = status
        self.attempts = attempts
        mask = masker or (lambda text: text)
        self.url = mask(url)
        self.redirected_from = mask(redirected_from) if redirected_from else None
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
        notes = []
        if self.redirected_from:
            notes.append(f"redirected from {self.redirected_from}")
        if self.attempts > 1:
            notes.append(f"after {self.attempts} attempts")
        if notes:
            text += " (" + "; ".join(notes) + ")"
        return text

    def as_result(self):
        """Fields for fail_json."""
        result = {"method": self.method, "url": self.url, "status": self.status, "body": self.body}
        if self.redirected_from:
            result["redirected_from"] = self.redirected_from
        return result


class Response:
    """A completed HTTP response (``url`` is the masked URL of the last hop)."""

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


def origin(url):
    """(scheme, host, port) of a URL: what must match for credentials to be sent."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


def redirect_method(status, method):
    """Method of the request that follows a redirect, as browsers and the Fetch standard do it.

    303 turns everything but GET/HEAD into GET, 301/302 turn POST into GET (the body is dropped in
    both cases); 307/308, and 301/302 of other methods, repeat the request as it was.
    """
    if (status == 303 and method not in ("GET", "HEAD")) or (status in (301, 302) and method == "POST"):
        return "GET"
    return method


class HttpClient:
    """JSON HTTP client over ``ansible.module_utils.urls.Request``.

    * ``timeout`` seconds per attempt; ``retries`` extra attempts with exponential backoff
      (``backoff`` * 2**n, capped at ``max_backoff``; a numeric ``Retry-After`` wins) on connection
      errors, HTTP 5xx and HTTP 429. Non-idempotent requests (POST) are retried only when they cannot
      have been processed: connection refused, or 429. Pass ``idempotent=True`` to retry them anyway.
    * Basic auth (sent pre-emptively; credentials in the URL are used the same way) or a bearer token.
      Without either, ``use_netrc`` lets urls take credentials from ~/.netrc ($NETRC).
    * Redirects are followed here, at most ``max_redirects`` hops: credentials (ours or netrc's) are
      sent only to the origin (scheme, host, port) of ``base_url``, never to another one.
    * TLS: ``validate_certs``, ``ca_path``, ``client_cert``/``client_key`` (one context, built by urls'
      make_context). ``use_proxy``, ``unix_socket``, ``http_agent`` are passed to urls.
    * Every error message masks the password, the token, the basic-auth header value and any extra
      ``secrets`` registered by the caller.
    """

    def __init__(
        self,
        base_url,
        username=None,
        password=None,
        token=None,
        validate_certs=True,
        ca_path=None,
        client_cert=None,
        client_key=None,
        timeout=10.0,
        retries=3,
        backoff=0.5,
        max_backoff=8.0,
        max_redirects=5,
        use_proxy=True,
        use_netrc=True,
        unix_socket=None,
        http_agent=DEFAULT_AGENT,
        headers=None,
        secrets=(),
        sleep=time.sleep,
    ):
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"url must be an absolute http(s) URL, got {base_url!r}")
        self._secrets = set()
        base_url, url_user, url_password = _split_credentials(base_url)
        if username is None and url_user is not None:
            username, password = url_user, url_password
        self.base_url = base_url.rstrip("/")
        self.origin = origin(self.base_url)
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_redirects = max(0, int(max_redirects))
        self.use_netrc = use_netrc
        self.sleep = sleep
        self.headers = {"Accept": "application/json"}
        self.headers.update(headers or {})
        for secret in (password, token, url_password, *secrets):
            self.add_secret(secret)
        self._authorization = None
        if token:
            self._authorization = f"Bearer {token}"
        elif username is not None and password is not None:
            self._authorization = basic_auth_header(username, password).decode("ascii")  # urls gives bytes
            self.add_secret(self._authorization.split(" ", 1)[1])
        self._tls = {
            "validate_certs": validate_certs,
            "cafile": ca_path,
            "client_cert": client_cert,
            "client_key": client_key,
        }
        self._context = None
        # urls handles proxies, sockets and TLS; it never follows redirects itself (we do), and keeps no
        # cookies: the APIs need none, and a session cookie would otherwise reach other ports of a host.
        self._request = Request(
            use_proxy=use_proxy,
            timeout=timeout,
            http_agent=http_agent,
            follow_redirects="none",
            unix_socket=unix_socket,
            cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),
        )

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

    def mask_url(self, url):
        """The URL with userinfo, secret query parameters and registered secrets masked."""
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
        """Send a request; return a Response whose status is in ``expected`` or raise HttpError.

        A redirect (301/302/303/307/308 with a Location, unless listed in ``expected``) is followed.
        """
        method = method.upper()
        url = self.url_for(path, params)
        first_url = url
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
        hops = 0
        while True:
            came_from = self.mask_url(first_url) if hops else None
            status, resp_headers, body, attempts = self._exchange(
                method, url, data, req_headers, idempotent, expected, timeout, came_from
            )
            location = _header(resp_headers, "Location")
            if status in REDIRECT_STATUSES and status not in expected and location:
                next_url = urllib.parse.urljoin(url, location.strip())
                refused = (
                    f"redirect not followed: more than max_redirects={self.max_redirects} hops"
                    if hops >= self.max_redirects
                    else f"redirect to a non-http(s) URL {self.mask_url(next_url)} not followed"
                    if not next_url.startswith(("http://", "https://"))
                    else None
                )
                if refused:
                    raise HttpError(
                        method,
                        self.mask_url(url),
                        status,
                        reason=refused,
                        masker=self.mask,
                        redirected_from=came_from,
                    )
                new_method = redirect_method(status, method)
                if new_method != method:
                    data = None
                    req_headers = {k: v for k, v in req_headers.items() if k.lower() != "content-type"}
                    idempotent = new_method in IDEMPOTENT_METHODS or idempotent
                method, url, hops = new_method, next_url, hops + 1
                continue
            if status not in expected:
                raise HttpError(
                    method,
                    self.mask_url(url),
                    status,
                    body,
                    reason=resp_headers.get("_reason"),
                    masker=self.mask,
                    attempts=attempts,
                    redirected_from=came_from,
                )
            return Response(method, self.mask_url(url), status, resp_headers, body, self.mask)

    def _exchange(self, method, url, data, headers, idempotent, expected, timeout, came_from):
        """One hop, with retries. Returns (status, headers, body, attempts)."""
        attempts = 0
        while True:
            attempts += 1
            retry_allowed = attempts <= self.retries
            try:
                status, resp_headers, body = self._send(method, url, data, headers, timeout)
            except _TransportError as exc:
                if retry_allowed and exc.retryable and (idempotent or exc.refused):
                    self._pause(attempts)
                    continue
                raise HttpError(
                    method,
                    self.mask_url(url),
                    reason=exc.reason,
                    masker=self.mask,
                    attempts=attempts,
                    redirected_from=came_from,
                ) from None
            # 429: the server refused to process the request, so repeating it is safe for any method.
            transient = status == 429 or (status >= 500 and idempotent)
            if transient and status not in expected and retry_allowed:
                self._pause(attempts, _header(resp_headers, "Retry-After"))
                continue
            return status, resp_headers, body, attempts

    def _pause(self, attempt, retry_after=None):
        delay = self.backoff * (2 ** (attempt - 1))
        if retry_after is not None:
            with contextlib.suppress(ValueError):  # an HTTP date: keep the backoff
                delay = max(0.0, float(retry_after))
        self.sleep(min(self.max_backoff, delay))

    def _tls_context(self):
        if self._context is None:
            try:
                self._context = make_context(**self._tls)
            except (OSError, ValueError) as exc:
                names = {"cafile": "ca_path", "client_cert": "client_cert", "client_key": "client_key"}
                files = ", ".join(f"{names[k]}={v}" for k, v in self._tls.items() if v and k in names)
                raise _TransportError(
                    "cannot set up TLS{}: {}".format(f" ({files})" if files else "", exc), retryable=False
                ) from None
        return self._context

    def _send(self, method, url, data, headers, timeout):
        """One attempt through urls. Returns (status, headers, body); HTTP errors are statuses."""
        if not url.startswith(("http://", "https://")):
            raise _TransportError(f"unsupported URL scheme in {url!r}", retryable=False)
        headers = dict(headers)
        trusted = origin(url) == self.origin
        if trusted and self._authorization:
            headers["Authorization"] = self._authorization
        elif not trusted:
            headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        options = {
            "data": data,
            "headers": headers,
            "timeout": timeout or self.timeout,
            # netrc credentials follow the same rule as ours, and never replace ours.
            "use_netrc": bool(self.use_netrc and trusted and not self._authorization),
        }
        if url.startswith("https://"):
            options["context"] = self._tls_context()
        try:
            resp = self._request.open(method, url, **options)
        except urllib.error.HTTPError as exc:
            try:
                body = exc.read()
            except (OSError, http.client.HTTPException):
                body = b""
            finally:
                exc.close()
            hdrs = dict(exc.headers.items()) if exc.headers else {}
            hdrs["_reason"] = exc.reason
            return exc.code, hdrs, body
        except urllib.error.URLError as exc:
            raise _TransportError(exc.reason) from None
        except TimeoutError as exc:
            raise _TransportError(exc or "timed out") from None
        except UrlsConnectionError as exc:
            raise _TransportError(str(exc)) from None
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


def _header(headers, name):
    name = name.lower()
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value
    return None


def _split_credentials(url):
    """(url without userinfo, user, password): credentials in the URL are sent like url_username's."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, host = parts.netloc.rsplit("@", 1)
    user, _, password = userinfo.partition(":")
    bare = urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return bare, urllib.parse.unquote(user), urllib.parse.unquote(password)


class _TransportError(Exception):
    def __init__(self, reason, retryable=True):
        self.reason = reason if isinstance(reason, str) else _describe_reason(reason)
        self.refused = _is_refused(reason)
        self.retryable = retryable
        super().__init__(self.reason)


def _is_refused(reason):
    if isinstance(reason, ConnectionRefusedError):
        return True
    return isinstance(reason, OSError) and reason.errno == errno.ECONNREFUSED


def _describe_reason(reason):
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return "timed out (%s)" % (reason or "no response")
    return f"{type(reason).__name__}: {reason}"
