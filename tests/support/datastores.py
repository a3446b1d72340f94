"""Real PostgreSQL, Redis and MongoDB-wire (nx-27017) servers for tests, on free loopback ports.

Each starter launches its server as a child process with its own new directory (below an optional
``base_dir``, e.g. pytest's ``tmp_path``) and returns an instance with ``host``, ``port``, ``url``
(and ``dsn`` for PostgreSQL) and ``stop()`` (idempotent; also removes the directory); ``pause()`` /
``resume()`` freeze a server (SIGSTOP) to simulate a hung dependency. Each starter also exists as a
context manager. Nothing here touches system services or fixed ports.

    from tests.support.datastores import postgres, redis_server, mongodb, start_postgres

    with postgres() as pg, redis_server() as rd, mongodb() as mg:
        psycopg2.connect(pg.dsn); redis.Redis.from_url(rd.url); pymongo.MongoClient(mg.url)

    @pytest.fixture(scope="session")
    def pg(tmp_path_factory):
        instance = start_postgres(tmp_path_factory.mktemp("pg"))
        yield instance
        instance.stop()

PostgreSQL refuses to run as root, so when the tests run as root the server runs as an unprivileged
user (``postgres`` if the Debian package created it, else a ``adg-test`` system user created here).
Binaries: PostgreSQL from /usr/lib/postgresql/<newest>/bin (Debian), ``redis-server`` and
``nx-27017`` from PATH or next to the running Python.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "MongoInstance",
    "PgInstance",
    "RedisInstance",
    "free_port",
    "mongodb",
    "postgres",
    "redis_server",
    "start_mongodb",
    "start_postgres",
    "start_redis",
]

FALLBACK_USER = "adg-test"
START_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, what: str, log: Path | None) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text()[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with {process.returncode} during start:\n{tail}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {START_TIMEOUT}s")


@dataclass
class _Server:
    process: subprocess.Popen
    directory: Path
    host: str
    port: int
    _stopped: bool = field(default=False, repr=False)

    def pause(self) -> None:
        """SIGSTOP the server: it keeps its port but answers nothing (a hung dependency)."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self, stop_signal: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Stop the server (idempotent) and remove its directory."""
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGCONT)
                self.process.send_signal(stop_signal)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# --- PostgreSQL -------------------------------------------------------------------------------------


@dataclass
class PgInstance(_Server):
    user: str = "autodealgenie"
    password: str = ""
    dbname: str = "autodealgenie"
    superuser_dsn: str = ""

    @property
    def dsn(self) -> str:
        return (
            f"host={self.host} port={self.port} dbname={self.dbname} user={self.user} "
            f"password={self.password}"
        )

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.dbname}"

    def stop(self, stop_signal: int = signal.SIGINT, timeout: float = 15.0) -> None:  # SIGINT = fast shutdown
        super().stop(stop_signal, timeout)


def pg_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not candidates:
        found = shutil.which("initdb")
        if not found:
            raise RuntimeError("PostgreSQL server binaries not found (Debian: apt-get install postgresql)")
        return Path(found).parent
    return Path(candidates[-1]).parent


def _unprivileged_user() -> pwd.struct_passwd | None:
    """None when not root; otherwise the account the server runs as (created if needed)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", FALLBACK_USER):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", FALLBACK_USER], check=True
    )
    return pwd.getpwnam(FALLBACK_USER)


def _traversable(path: Path, owner: pwd.struct_passwd | None) -> bool:
    """Whether ``owner`` (None = the current user) can reach files below ``path``."""
    if owner is None:
        return os.access(path, os.W_OK | os.X_OK)
    for part in [path, *path.parents]:
        info = part.stat()
        if info.st_uid != owner.pw_uid and not info.st_mode & stat.S_IXOTH:
            return False
    return True


def _private_dir(prefix: str, owner: pwd.struct_passwd | None, base_dir: Path | str | None) -> Path:
    """A fresh directory for one server, below ``base_dir`` when the server's user can reach it.

    pytest's tmp_path lies below a 0700 root-only directory, which an unprivileged PostgreSQL
    cannot traverse; then the directory goes to the system temp dir instead.
    """
    parent = Path(base_dir) if base_dir is not None else None
    if parent is None or not _traversable(parent, owner):
        parent = Path(tempfile.gettempdir())
    directory = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    if owner is not None:
        os.chown(directory, owner.pw_uid, owner.pw_gid)
    return directory


def start_postgres(
    base_dir: Path | str | None = None,
    *,
    user: str = "autodealgenie",
    dbname: str = "autodealgenie",
    password: str | None = None,
    settings: dict[str, str] | None = None,
) -> PgInstance:
    """initdb into a new directory (below ``base_dir`` if reachable) and run postgres on a free port.

    Creates role ``user`` (password auth, scram-sha-256) owning database ``dbname``. The superuser
    ``postgres`` is reachable only through the instance's private Unix socket (``superuser_dsn``).
    ``settings`` are extra server settings passed as ``-c name=value`` (e.g.
    ``{"shared_preload_libraries": "pg_stat_statements"}``).
    """
    bindir = pg_bindir()
    owner = _unprivileged_user()
    directory = _private_dir("adg-pg-", owner, base_dir)
    data, sockets, log = directory / "data", directory / "sockets", directory / "postgres.log"
    password = password or secrets.token_urlsafe(16)
    run_as = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []} if owner else {}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    try:
        subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-instructions",
            ],
            check=True,
            capture_output=True,
            env=env,
            **run_as,
        )
        for path in (sockets, log):
            path.mkdir() if path is sockets else path.touch()
            if owner:
                os.chown(path, owner.pw_uid, owner.pw_gid)
        port = free_port()
        with open(log, "ab") as log_handle:
            process = subprocess.Popen(
                [
                    str(bindir / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(port),
                    "-k",
                    str(sockets),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                    "-c",
                    "ssl=off",
                    *(arg for name, value in (settings or {}).items() for arg in ("-c", f"{name}={value}")),
                ],
                stdout=log_handle,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                **run_as,
            )
        _wait_for_port(port, process, "postgres", log)
        superuser_dsn = f"host={sockets} port={port} dbname=postgres user=postgres"
        _psql(bindir, superuser_dsn, f"CREATE ROLE \"{user}\" LOGIN PASSWORD '{password}'", env, run_as)
        _psql(bindir, superuser_dsn, f'CREATE DATABASE "{dbname}" OWNER "{user}"', env, run_as)
    except BaseException:
        if "process" in locals():
            process.kill()
            process.wait()
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return PgInstance(
        process=process,
        directory=directory,
        host="127.0.0.1",
        port=port,
        user=user,
        password=password,
        dbname=dbname,
        superuser_dsn=superuser_dsn,
    )


def _psql(bindir: Path, dsn: str, sql: str, env: dict, run_as: dict) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:  # the port opens a moment before the server accepts connections
        result = subprocess.run(
            [str(bindir / "psql"), dsn, "-v", "ON_ERROR_STOP=1", "-qc", sql],
            capture_output=True,
            text=True,
            env=env,
            **run_as,
        )
        if result.returncode == 0:
            return
        if "starting up" not in result.stderr or time.monotonic() > deadline:
            raise RuntimeError(f"psql failed: {result.stderr.strip()}")
        time.sleep(0.1)


@contextlib.contextmanager
def postgres(base_dir: Path | str | None = None, **kwargs):
    instance = start_postgres(base_dir, **kwargs)
    try:
        yield instance
    finally:
        instance.stop()


# --- Redis ------------------------------------------------------------------------------------------


@dataclass
class RedisInstance(_Server):
    password: str = ""

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"


def start_redis(base_dir: Path | str | None = None, *, password: str | None = None) -> RedisInstance:
    """redis-server on a free 127.0.0.1 port, no persistence, its own directory.

    ``password`` sets ``requirepass`` (default user); None = no auth.
    """
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    directory = _private_dir("adg-redis-", None, base_dir)
    port = free_port()
    log = directory / "redis.log"
    args = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(directory),
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--logfile",
        str(log),
        "--protected-mode",
        "yes",
    ]
    if password:
        args += ["--requirepass", password]
    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        _wait_for_port(port, process, "redis-server", log)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return RedisInstance(
        process=process, directory=directory, host="127.0.0.1", port=port, password=password or ""
    )


@contextlib.contextmanager
def redis_server(base_dir: Path | str | None = None, **kwargs):
    instance = start_redis(base_dir, **kwargs)
    try:
        yield instance
    finally:
        instance.stop()


# --- MongoDB wire protocol (nx-27017) -----------------------------------------------------------------


@dataclass
class MongoInstance(_Server):
    @property
    def url(self) -> str:
        return f"mongodb://{self.host}:{self.port}"


def _nx_binary() -> str:
    beside_python = Path(sys.executable).parent / "nx-27017"
    found = str(beside_python) if beside_python.exists() else shutil.which("nx-27017")
    if not found:
        raise RuntimeError("nx-27017 not found: pip install nx-27017")
    return found


def start_mongodb(base_dir: Path | str | None = None) -> MongoInstance:
    """nx-27017 (MongoDB wire-protocol server over SQLite, a test stand-in) on a free 127.0.0.1 port."""
    directory = _private_dir("adg-mongo-", None, base_dir)
    port = free_port()
    log = directory / "nx-27017.log"
    process = subprocess.Popen(
        [
            _nx_binary(),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(directory / "data"),
            "--log-file",
            str(log),
            "--pid-file",
            str(directory / "nx.pid"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=directory,
    )
    try:
        _wait_for_port(port, process, "nx-27017", log)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return MongoInstance(process=process, directory=directory, host="127.0.0.1", port=port)


@contextlib.contextmanager
def mongodb(base_dir: Path | str | None = None):
    instance = start_mongodb(base_dir)
    try:
        yield instance
    finally:
        instance.stop()
