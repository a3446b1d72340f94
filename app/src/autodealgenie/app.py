"""Application factory."""

from __future__ import annotations

import ipaddress
import re
import time
import uuid

from flask import Flask, Response, g, request

from . import logs
from .api import auth, cars, deals, health, loans, negotiations, users
from .config import Config
from .errors import register_error_handlers
from .instrumentation import init_metrics
from .services import EXTENSION, Services

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def create_app(config: Config | None = None) -> Flask:
    config = config or Config.from_env()
    logs.configure(config.log_level, config.log_format)
    app = Flask(__name__, static_folder=None)
    app.config.update(SECRET_KEY=config.secret_key, MAX_CONTENT_LENGTH=1024 * 1024)
    app.json.sort_keys = False
    if config.trusted_proxy_count:
        app.wsgi_app = ForwardedFor(app.wsgi_app, config.trusted_proxy_count, config.trusted_proxy_networks)
    app.extensions[EXTENSION] = Services.build(config)

    register_error_handlers(app)
    _register_request_headers(app)
    for blueprint in (health.bp, auth.bp, deals.bp, cars.bp, negotiations.bp, loans.bp, users.bp):
        app.register_blueprint(blueprint)
    init_metrics(app, config)  # after every route: untracked routes are collected from the url map
    return app


class ForwardedFor:
    """REMOTE_ADDR from X-Forwarded-For, believed only as far as trusted proxies vouch for it.

    Walks the header from the right: while the address at hand (first the TCP peer) is a trusted
    proxy, and at most `count` times, the client is the next entry to the left. A peer outside
    `networks` is the client itself and its header is ignored (spoofing it changes nothing); an
    empty `networks` trusts any peer (allowed in development/test only, see config.py). The TCP
    peer stays in environ["werkzeug.proxy_fix.orig"] (what ProxyFix uses) for the /metrics allow list.
    """

    def __init__(self, wsgi_app, count: int, networks: tuple):
        self.wsgi_app = wsgi_app
        self.count = count
        self.networks = networks

    def _trusted(self, address: str) -> bool:
        if not self.networks:
            return True
        ip = _ip(address)
        return ip is not None and any(ip in network for network in self.networks)

    def client(self, peer: str, forwarded_for: str) -> str:
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        address = peer
        for _ in range(self.count):
            if not hops or not self._trusted(address):
                break
            hop = hops.pop()
            if _ip(hop) is None:  # garbage (or host:port) from a proxy: stop at the last good hop
                break
            address = hop
        return address

    def __call__(self, environ, start_response):
        peer = environ.get("REMOTE_ADDR", "")
        environ["werkzeug.proxy_fix.orig"] = {"REMOTE_ADDR": peer}
        environ["REMOTE_ADDR"] = self.client(peer, environ.get("HTTP_X_FORWARDED_FOR", ""))
        return self.wsgi_app(environ, start_response)


def _ip(address: str):
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    return ip.ipv4_mapped or ip if ip.version == 6 else ip


def _register_request_headers(app: Flask) -> None:
    @app.before_request
    def _request_id():
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID.match(incoming) else str(uuid.uuid4())
        g.request_start = time.perf_counter()

    @app.after_request
    def _headers(response: Response):
        response.headers["X-Request-ID"] = g.get("request_id") or str(uuid.uuid4())
        if "request_start" in g:
            response.headers["X-Process-Time"] = f"{time.perf_counter() - g.request_start:.6f}"
        response.headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
