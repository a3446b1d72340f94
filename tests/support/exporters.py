"""Launch the real Prometheus exporters on loopback for tests, and read the metric names they expose.

Debian's binaries (apt: prometheus-node-exporter, prometheus-postgres-exporter,
prometheus-redis-exporter) and the project's MongoDB exporter
(roles/mongodb_exporter/files/mongodb_exporter.py, needs pymongo) run as child processes bound to
127.0.0.1 on free ports, with the same flags the roles use where it matters (the postgres
exporter gets roles/postgres_exporter/files/queries.yml). Credentials go through the environment, never
the command line. Point them at the datastores of tests/support/datastores.py.

    with start_redis_exporter("redis://127.0.0.1:6390", workdir) as exporter:
        names = exporter.metric_names()
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.datastores import free_port

REPO = Path(__file__).resolve().parents[2]
POSTGRES_EXPORTER_QUERIES = REPO / "roles/postgres_exporter/files/queries.yml"
MONGODB_EXPORTER_SCRIPT = REPO / "roles/mongodb_exporter/files/mongodb_exporter.py"

_SAMPLE_NAME = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)")


class ExporterError(RuntimeError):
    """An exporter could not be started or scraped."""


def metric_names(exposition: str) -> set[str]:
    """Sample names in a text exposition (histograms appear as _bucket/_sum/_count, as queried)."""
    names = set()
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            match = _SAMPLE_NAME.match(line)
            if match:
                names.add(match.group(1))
    return names


def _binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if not path:
        raise ExporterError(f"{name} not found: apt-get install {package}")
    return path


@dataclass
class Exporter:
    """A running exporter process and where to scrape it."""

    name: str
    port: int
    process: subprocess.Popen
    log_path: Path
    _log: object = field(repr=False, default=None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def scrape(self, timeout: float = 10) -> str:
        with urllib.request.urlopen(self.url, timeout=timeout) as response:  # noqa: S310 (loopback)
            return response.read().decode()

    def metric_names(self) -> set[str]:
        return metric_names(self.scrape())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()

    def __enter__(self) -> Exporter:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _start(
    name: str, argv: list[str], port: int, workdir: Path, env: dict | None = None, timeout: float = 30
) -> Exporter:
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{name}.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, cwd=workdir
    )
    exporter = Exporter(name, port, process, log_path, log)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            exporter.stop()
            raise ExporterError(f"{name} exited with {process.returncode}:\n{exporter.log()}")
        try:
            exporter.scrape(timeout=2)
            return exporter
        except OSError:
            if time.monotonic() > deadline:
                exporter.stop()
                raise ExporterError(
                    f"{name} did not serve {exporter.url} within {timeout}s:\n{exporter.log()}"
                ) from None
            time.sleep(0.2)


def start_node_exporter(workdir: Path, textfile_dir: Path | None = None) -> Exporter:
    """Debian's node_exporter. The systemd collector (on by Debian's default) needs a system bus,
    which a controller without systemd lacks, so it is turned off here. `textfile_dir`: the
    textfile collector's directory (what the backup jobs write on a backup host)."""
    port = free_port()
    argv = [
        _binary("prometheus-node-exporter", "prometheus-node-exporter"),
        f"--web.listen-address=127.0.0.1:{port}",
        "--no-collector.systemd",
    ]
    if textfile_dir is not None:
        argv.append(f"--collector.textfile.directory={textfile_dir}")
    return _start("node_exporter", argv, port, workdir)


def start_postgres_exporter(dsn: str, workdir: Path, queries: Path = POSTGRES_EXPORTER_QUERIES) -> Exporter:
    """Debian's postgres_exporter with the project's custom queries; ``dsn`` is a libpq URL."""
    port = free_port()
    argv = [
        _binary("prometheus-postgres-exporter", "prometheus-postgres-exporter"),
        f"--web.listen-address=127.0.0.1:{port}",
        f"--extend.query-path={queries}",
    ]
    return _start("postgres_exporter", argv, port, workdir, env={"DATA_SOURCE_NAME": dsn})


def start_redis_exporter(
    address: str, workdir: Path, user: str | None = None, password: str | None = None
) -> Exporter:
    """Debian's redis_exporter; ``address`` like redis://127.0.0.1:6379."""
    port = free_port()
    env = {"REDIS_ADDR": address}
    if user:
        env["REDIS_USER"] = user
    if password:
        env["REDIS_PASSWORD"] = password
    argv = [
        _binary("prometheus-redis-exporter", "prometheus-redis-exporter"),
        f"-web.listen-address=127.0.0.1:{port}",
    ]
    return _start("redis_exporter", argv, port, workdir, env=env)


def start_mongodb_exporter(uri: str, workdir: Path, python: str = sys.executable) -> Exporter:
    """The project's MongoDB exporter (roles/mongodb_exporter), run by ``python`` (needs pymongo)."""
    if not MONGODB_EXPORTER_SCRIPT.exists():
        raise ExporterError(f"{MONGODB_EXPORTER_SCRIPT} is missing")
    port = free_port()
    env = {
        "MONGODB_URI": uri,
        "MONGODB_EXPORTER_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "MONGODB_EXPORTER_TIMEOUT_SECONDS": "2",
    }
    return _start("mongodb_exporter", [python, str(MONGODB_EXPORTER_SCRIPT)], port, workdir, env=env)
