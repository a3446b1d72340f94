#!/usr/bin/env python3
"""Minimal Prometheus exporter for MongoDB.

Why it exists: Debian's prometheus-mongodb-exporter is a 2018 snapshot built on the unmaintained
mgo driver, which cannot talk to current servers (it reports mongodb_up 0 against MongoDB 6+ and the
nx-27017 stand-in), and no maintained exporter is packaged in Debian, on PyPI or on npm. This one uses
PyMongo (MongoDB's official driver, pinned by the role) and exports the metrics our alerts and
dashboards use, under the names Percona's mongodb_exporter uses in compatible mode.

Configuration comes from the environment (a 0600 EnvironmentFile, never the command line):
  MONGODB_URI                       connection string, credentials included (required)
  MONGODB_EXPORTER_LISTEN_ADDRESS   host:port to serve /metrics on (required)
  MONGODB_EXPORTER_TIMEOUT_SECONDS  per-scrape server selection/socket timeout (default 5)

mongodb_up is 1 only when an authenticated `ping` succeeds: a refused login, an unreachable server
or a timeout all give 0, and the exporter itself keeps answering.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

LOG = logging.getLogger("mongodb_exporter")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """Collects one scrape's samples in the text exposition format."""

    def __init__(self) -> None:
        self._families: dict[str, tuple[str, str, list[str]]] = {}

    def add(
        self, name: str, kind: str, help_text: str, value: float, labels: dict[str, str] | None = None
    ) -> None:
        family = self._families.setdefault(name, (kind, help_text, []))
        label_text = ""
        if labels:
            label_text = "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(labels.items())) + "}"
        family[2].append(f"{name}{label_text} {float(value)!r}")

    def render(self) -> bytes:
        lines = []
        for name, (kind, help_text, samples) in self._families.items():
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(samples)
        return ("\n".join(lines) + "\n").encode()


class Collector:
    """Owns one MongoClient (connection pool) and turns server answers into metrics."""

    def __init__(self, uri: str, timeout_seconds: float) -> None:
        timeout_ms = int(timeout_seconds * 1000)
        self._client: MongoClient = MongoClient(
            uri,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            socketTimeoutMS=timeout_ms,
            appname="adg-mongodb-exporter",
        )
        self._lock = threading.Lock()

    def collect(self) -> Metrics:
        metrics = Metrics()
        started = time.monotonic()
        with self._lock:
            up = self._collect_server(metrics)
        metrics.add(
            "mongodb_up", "gauge", "Whether an authenticated ping to MongoDB succeeded.", 1 if up else 0
        )
        metrics.add(
            "mongodb_exporter_scrape_duration_seconds",
            "gauge",
            "Time this scrape spent talking to MongoDB.",
            time.monotonic() - started,
        )
        return metrics

    def _collect_server(self, metrics: Metrics) -> bool:
        admin = self._client.admin
        try:
            admin.command("ping")
        except Exception as exc:
            # Any failure means "not usable": PyMongo errors, but also a server that answers the
            # SCRAM handshake with something malformed (the driver then raises KeyError & co.).
            LOG.warning("ping failed: %s: %s", type(exc).__name__, exc)
            return False
        try:
            status = admin.command("serverStatus")
        except OperationFailure as exc:
            # Reachable and authenticated, but the user lacks clusterMonitor: still up.
            LOG.warning("serverStatus refused: %s", exc)
            return True
        except (PyMongoError, KeyError, TypeError, ValueError) as exc:
            LOG.warning("serverStatus failed: %s: %s", type(exc).__name__, exc)
            return False
        _add_server_status(metrics, status)
        return True


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _add_server_status(metrics: Metrics, status: dict) -> None:
    version = str(status.get("version", "unknown"))
    metrics.add("mongodb_version_info", "gauge", "MongoDB server version.", 1, {"mongodb": version})
    uptime = _number(status.get("uptime"))
    if uptime is not None:
        metrics.add("mongodb_instance_uptime_seconds", "counter", "Seconds since the server started.", uptime)
    for state, value in (status.get("connections") or {}).items():
        number = _number(value)
        if number is not None and state in ("current", "available", "totalCreated", "active"):
            metrics.add("mongodb_connections", "gauge", "Connections by state.", number, {"state": state})
    for kind, value in (status.get("opcounters") or {}).items():
        number = _number(value)
        if number is not None:
            metrics.add(
                "mongodb_op_counters_total",
                "counter",
                "Operations since start by type.",
                number,
                {"type": kind},
            )
    for kind, value in (status.get("mem") or {}).items():
        number = _number(value)
        if number is not None and kind in ("resident", "virtual"):
            # serverStatus reports MiB; Percona's compatible name keeps MiB too.
            metrics.add("mongodb_memory", "gauge", "Memory use in MiB by type.", number, {"type": kind})


def make_handler(collector: Collector) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "adg-mongodb-exporter"

        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] == "/metrics":
                self._send(200, collector.collect().render(), CONTENT_TYPE)
            elif self.path == "/":
                self._send(200, b"MongoDB exporter: see /metrics\n", "text/plain; charset=utf-8")
            else:
                self._send(404, b"not found\n", "text/plain; charset=utf-8")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            LOG.debug(format, *args)

    return Handler


def parse_listen_address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"listen address must be host:port, got {value!r}")
    return host.strip("[]"), int(port)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    uri = os.environ.get("MONGODB_URI", "")
    listen = os.environ.get("MONGODB_EXPORTER_LISTEN_ADDRESS", "")
    if not uri or not listen:
        LOG.error("MONGODB_URI and MONGODB_EXPORTER_LISTEN_ADDRESS must be set (EnvironmentFile)")
        return 2
    timeout = float(os.environ.get("MONGODB_EXPORTER_TIMEOUT_SECONDS", "5"))
    host, port = parse_listen_address(listen)
    server = ThreadingHTTPServer((host, port), make_handler(Collector(uri, timeout)))
    LOG.info("serving /metrics on %s:%d", host, port)
    # systemd stops the service with SIGTERM (default action: exit), so nothing else to clean up.
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
