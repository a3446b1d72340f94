"""Application factory."""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from .api import auth, cars, deals, health, negotiations, users
from .config import Config
from .errors import register_error_handlers
from .instrumentation import init_metrics
from .services import EXTENSION, Services

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def create_app(config: Config | None = None) -> Flask:
    config = config or Config.from_env()
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    app = Flask(__name__, static_folder=None)
    app.config.update(SECRET_KEY=config.secret_key, MAX_CONTENT_LENGTH=1024 * 1024)
    app.json.sort_keys = False
    if config.trusted_proxy_count:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.trusted_proxy_count)
    app.extensions[EXTENSION] = Services.build(config)

    register_error_handlers(app)
    _register_request_headers(app)
    for blueprint in (health.bp, auth.bp, deals.bp, cars.bp, negotiations.bp, users.bp):
        app.register_blueprint(blueprint)
    init_metrics(app, config)  # after every route: untracked routes are collected from the url map
    return app


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
