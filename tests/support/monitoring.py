"""Real Prometheus and Alertmanager (the Debian binaries), the Grafana API double, and a webhook sink,
started on free loopback ports with their own temporary data directories -- for tests.

Small API (all classes are context managers; ``stop()`` is idempotent)::

    from tests.support.monitoring import Alertmanager, GrafanaDouble, Prometheus, WebhookSink

    with WebhookSink() as sink, Alertmanager(tmp_path / "am", config=am_config(sink.url)) as am:
        with Prometheus(tmp_path / "prom", scrape_configs=[...], rule_files={"r.yml": rules},
                        alertmanagers=[am.address]) as prom:
            prom.url         # http://127.0.0.1:<port>
            prom.reload()    # after prom.write_config(...) / rule changes
        sink.wait_for(lambda n: ..., timeout=30)

* ``Prometheus(workdir, scrape_configs, rule_files, alertmanagers, evaluation_interval, scrape_interval)``:
  writes prometheus.yml (JSON is valid YAML, so no PyYAML is needed) and rule files into ``workdir``,
  runs ``prometheus`` with the lifecycle API enabled, waits for ``/-/ready``.
* ``Alertmanager(workdir, config)``: ``config`` is a dict or the path of a written config file;
  runs ``prometheus-alertmanager`` (no clustering), waits for ``/-/ready``.
* ``GrafanaDouble(workdir, admin_password=..., token=..., provisioning=...)``: runs
  tests/tools/grafana_double/server.py (a TEST DOUBLE, not Grafana).
* ``LoopbackServer(handler_class)``: a ThreadingHTTPServer on a free loopback port, served from a
  daemon thread (``url``, ``port``, ``stop()``); ``respond(handler, body, ...)`` writes a complete
  answer from a handler's ``do_GET``/``do_POST`` -- for small fakes (an LLM API, a metrics target).
* ``WebhookSink()``: in-process HTTP server; POST (any path) records an Alertmanager webhook payload,
  GET (any path) returns ``{"notifications": [{"path", "received_at", "payload"}]}`` -- the format
  the ``alertmanager_delivery_check`` module's ``sink_url`` understands.

Binaries come from PATH (``prometheus``, ``prometheus-alertmanager`` or ``alertmanager``) unless
ADG_PROMETHEUS_BIN / ADG_ALERTMANAGER_BIN name them. Everything listens on 127.0.0.1 only.
Run ``python3 -m tests.support.monitoring sink --listen 127.0.0.1:9199`` (from the repository root)
for a standalone sink.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.support.datastores import free_port

LOOPBACK = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]
GRAFANA_DOUBLE = REPO / "tests" / "tools" / "grafana_double" / "server.py"

__all__ = [
    "Alertmanager",
    "GrafanaDouble",
    "LoopbackServer",
    "Prometheus",
    "WebhookSink",
    "free_port",
    "http_json",
    "respond",
]


def http_json(url, data=None, method=None, timeout=5.0, headers=None):
    """Small helper for tests: request ``url`` and decode the JSON answer (None for an empty body)."""
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))  # noqa: S310
    if body is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback test URLs
        raw = response.read()
    return json.loads(raw) if raw.strip() else None


def respond(handler, body, status=200, content_type="application/json"):
    """Write a whole answer (status, type, length, ``body`` bytes) from a BaseHTTPRequestHandler."""
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class LoopbackServer:
    """``handler_class`` served on a free 127.0.0.1 port from a daemon thread until ``stop()``."""

    def __init__(self, handler_class, host=LOOPBACK, port=0):
        self.server = ThreadingHTTPServer((host, port), handler_class)
        self.host, self.port = self.server.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self):
        if self._thread is not None:
            self.server.shutdown()
            self.server.server_close()
            self._thread = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _binary(env, *names):
    if os.environ.get(env):
        return os.environ[env]
    for name in names:
        found = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None)
        if found:
            return found
    raise FileNotFoundError(f"none of {names} found on PATH (set {env})")


class _Process:
    """A child process on a free loopback port, logged to ``workdir/<name>.log``."""

    name = "process"
    ready_path = "/-/ready"

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.address = f"{LOOPBACK}:{self.port}"
        self.url = f"http://{self.address}"
        self.log_path = self.workdir / f"{self.name}.log"
        self.proc = None

    def command(self):
        raise NotImplementedError

    def start(self, timeout=30.0):
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed in stop()
        self._log = log
        self.proc = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, start_new_session=True
        )
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()  # a process that never became ready is not left running
            raise
        return self

    def wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + self.ready_path, timeout=2):  # noqa: S310
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready on {self.url} after {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines=30):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def signal(self, signum):
        self.proc.send_signal(signum)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Prometheus(_Process):
    """Real Prometheus with a generated config; ``reload()`` applies ``write_config()`` changes."""

    name = "prometheus"

    def __init__(
        self,
        workdir,
        scrape_configs=(),
        rule_files=None,
        alertmanagers=(),
        scrape_interval="1s",
        evaluation_interval="1s",
        extra_args=(),
    ):
        super().__init__(workdir)
        self.binary = _binary("ADG_PROMETHEUS_BIN", "prometheus")
        self.extra_args = list(extra_args)
        self.config_path = self.workdir / "prometheus.yml"
        self.write_config(
            scrape_configs, rule_files or {}, alertmanagers, scrape_interval, evaluation_interval
        )

    def write_config(
        self,
        scrape_configs=(),
        rule_files=None,
        alertmanagers=(),
        scrape_interval="1s",
        evaluation_interval="1s",
        remote_write=(),
    ):
        """(Re)write prometheus.yml and the rule files ({file name: rules dict}); call reload() after.
        ``remote_write``: URLs to send every sample to."""
        names = []
        for file_name, content in (rule_files or {}).items():
            (self.workdir / file_name).write_text(json.dumps(content, indent=1))
            names.append(str(self.workdir / file_name))
        config = {
            "global": {
                "scrape_interval": scrape_interval,
                "evaluation_interval": evaluation_interval,
                "scrape_timeout": scrape_interval,
            },
            "rule_files": names,
            "scrape_configs": list(scrape_configs),
        }
        if alertmanagers:
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]}
        if remote_write:
            config["remote_write"] = [{"url": url} for url in remote_write]
        self.config_path.write_text(json.dumps(config, indent=1))

    def command(self):
        return [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address={self.address}",
            "--web.enable-lifecycle",
            "--log.level=warn",
            *self.extra_args,
        ]

    def reload(self):
        request = urllib.request.Request(self.url + "/-/reload", method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310
            pass

    def api(self, path, **params):
        query = urllib.parse.urlencode(params)
        return http_json(f"{self.url}{path}" + (f"?{query}" if query else ""))["data"]


class Alertmanager(_Process):
    """Real Alertmanager with the given config: a dict, or the path of a configuration file that
    is already written (e.g. a rendered template). Clustering is off unless ``gossip`` is true: then
    it gossips on a loopback port as a one-member cluster (its cluster metrics exist)."""

    name = "alertmanager"

    def __init__(self, workdir, config, gossip=False):
        super().__init__(workdir)
        self.cluster_listen = f"{LOOPBACK}:{free_port()}" if gossip else ""
        self.binary = _binary("ADG_ALERTMANAGER_BIN", "prometheus-alertmanager", "alertmanager")
        if isinstance(config, (str, os.PathLike)):
            self.config_path = Path(config)
        else:
            self.config_path = self.workdir / "alertmanager.yml"
            self.config_path.write_text(json.dumps(config, indent=1))

    def command(self):
        return [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address={self.address}",
            f"--cluster.listen-address={self.cluster_listen}",
            "--log.level=warn",
        ]


class GrafanaDouble(_Process):
    """The project's Grafana HTTP API TEST DOUBLE (not Grafana) as a child process."""

    name = "grafana-double"
    ready_path = "/api/health"

    def __init__(
        self,
        workdir,
        admin_user="admin",
        admin_password=None,
        token=None,
        provisioning=None,
        state_file=True,
    ):
        super().__init__(workdir)
        self.admin_user = admin_user
        self.admin_password = admin_password or secrets.token_urlsafe(16)
        self.token = token
        password_file = self.workdir / "admin_password"
        password_file.write_text(self.admin_password)
        password_file.chmod(0o600)
        self.args = [
            "--listen",
            self.address,
            "--admin-user",
            admin_user,
            "--admin-password-file",
            str(password_file),
        ]
        if state_file:
            self.args += ["--state-file", str(self.workdir / "state.json")]
        if token:
            token_file = self.workdir / "token"
            token_file.write_text(token)
            token_file.chmod(0o600)
            self.args += ["--token-file", str(token_file)]
        if provisioning:
            prov = self.workdir / "provisioning.json"
            prov.write_text(json.dumps(provisioning))
            self.args += ["--provisioning", str(prov)]

    def command(self):
        return [sys.executable, str(GRAFANA_DOUBLE), *self.args]


class WebhookSink:
    """In-process webhook receiver that records Alertmanager notifications."""

    def __init__(self, host=LOOPBACK, port=0):
        self.notifications = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    payload = json.loads(raw)
                except ValueError:
                    payload = {"raw": raw.decode(errors="replace")}
                with sink._lock:
                    sink.notifications.append(
                        {"path": self.path, "received_at": time.time(), "payload": payload}
                    )
                respond(self, b"{}")

            def do_GET(self):
                with sink._lock:
                    body = json.dumps({"notifications": sink.notifications}).encode()
                respond(self, body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.address = "{}:{}".format(*self.server.server_address[:2])
        self.url = f"http://{self.address}"
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._thread is not None:
            self.server.shutdown()
            self.server.server_close()
            self._thread = None

    def received(self, receiver=None, **labels):
        """Recorded payloads, optionally only those from ``receiver`` carrying an alert with ``labels``."""
        with self._lock:
            items = [n["payload"] for n in self.notifications]
        result = []
        for payload in items:
            if receiver and payload.get("receiver") != receiver:
                continue
            alerts = payload.get("alerts") or []
            if labels and not any(
                all(a.get("labels", {}).get(k) == v for k, v in labels.items()) for a in alerts
            ):
                continue
            result.append(payload)
        return result

    def wait_for(self, receiver=None, timeout=30.0, **labels):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.received(receiver, **labels)
            if found:
                return found
            time.sleep(0.2)
        return []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _serve_sink(listen):
    host, _, port = listen.rpartition(":")
    sink = WebhookSink(host or LOOPBACK, int(port)).start()
    sys.stderr.write(f"webhook sink (test tool) listening on {sink.url}\n")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    sink.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description="test monitoring helpers")
    sub = parser.add_subparsers(dest="command", required=True)
    sink = sub.add_parser("sink", help="run a standalone webhook sink")
    sink.add_argument("--listen", default=f"{LOOPBACK}:9199")
    args = parser.parse_args(argv)
    if args.command == "sink":
        _serve_sink(args.listen)


if __name__ == "__main__":
    main()
