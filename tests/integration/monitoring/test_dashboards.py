"""Every dashboard query (and every rule expression) parses in a real Prometheus and names only
metrics that our app and exporters actually expose; exporter-backed panels return data.

Real parts: Debian's prometheus, node/postgres/redis exporters and the project's MongoDB exporter
(tests/support/exporters.py) against PostgreSQL, Redis and a MongoDB stand-in started on loopback
by tests/support/datastores.py, scraped by a Prometheus on loopback under the topology's job
names. The app's metric names come from its registry (autodealgenie.metrics and the gunicorn
process-tree collector, which is what production exposes). The app runs with the OpenAI-compatible
negotiation advisor against a fake completions server on loopback, so the LLM and external-API
panels have data too, and the Prometheus loads the project's rule files (evaluated every second),
so the SLO dashboard's recorded series exist. Panel queries are run as Grafana runs them: the
dashboard's template variables resolved (All) and substituted."""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from ansible_collections.autodealgenie.ops.plugins.module_utils.adg_grafana import (
    builtin_variables,
    interpolate,
    resolve_template_variables,
)

from tests.support import content, datastores, exporters, monitoring
from tests.support.appenv import app_env
from tests.support.paths import REPO
from tests.support.promql import selectors


def pgbackrest_metrics_sample(repository_path: Path) -> str:
    """What roles/pgbackrest/files/pgbackrest_metrics.py writes for a stanza with a full backup
    an hour old and a differential one a minute old."""
    spec = importlib.util.spec_from_file_location(
        "pgbackrest_metrics", REPO / "roles/pgbackrest/files/pgbackrest_metrics.py"
    )
    writer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(writer)
    now = time.time()

    def backup(kind: str, stop: float) -> dict:
        return {
            "type": kind,
            "timestamp": {"start": int(stop) - 30, "stop": int(stop)},
            "info": {"size": 32 << 20, "repository": {"delta": 4 << 20}},
        }

    info = [
        {
            "name": "main",  # the panel shows every stanza
            "status": {"code": 0},
            "backup": [backup("full", now - 3600), backup("diff", now - 60)],
        }
    ]
    return writer.render(info, str(repository_path), now)


BACKEND = "autodealgenie-backend"
LLM_MODEL = "test-model"
EXPORTER_JOBS = ("node", "postgres", "redis", "mongodb")
SCRAPE_INTERVAL = 1  # seconds; rate() windows need two samples
# Series Prometheus itself attaches to every target.
SYNTHETIC = {
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
}
# From node_exporter's systemd collector, which start_node_exporter turns off (it needs systemd's
# bus, which a controller lacks); molecule's crash-loop drill (test_32_self_heal) sees them on hosts.
NEEDS_SYSTEMD_BUS = {"node_systemd_unit_state"}
# Jobs of the topology this stack does not run (no binary on a controller): their selectors are
# checked by promtool's tests and on the molecule lab, not here.
NOT_RUN_HERE = {
    "grafana": "Grafana is not installed on a controller (the tests use an API double)",
    "blackbox-exporter": "the blackbox exporter is not installed on a controller",
    "blackbox-api": "the blackbox exporter is not installed on a controller",
    # The HA topology's clusters: their rules are promtool-tested, their panels checked with data by
    # verify.yml on the ha molecule lab.
    **dict.fromkeys(
        ("patroni", "etcd", "redis-sentinel", "haproxy", "victoriametrics"),
        "an HA cluster engine, not installed on a controller (checked on the ha lab)",
    ),
}
# Suffixes of the samples a metric family exposes, by type (multiprocess mode drops *_created).
SAMPLE_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count", ""),
    "info": ("_info",),
    "untyped": ("",),
}


def _import_app_module(name):
    """A module of the app, installed in the venv by tests/tools/bootstrap.sh."""
    return importlib.import_module(name)


def app_metric_names() -> set[str]:
    """Sample names the backend exposes: every metric of its registry module plus process_*."""
    from prometheus_client.metrics import MetricWrapperBase

    metrics = _import_app_module("autodealgenie.metrics")
    process_metrics = _import_app_module("autodealgenie.process_metrics")
    names = set()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                names |= {family.name + suffix for suffix in SAMPLE_SUFFIXES[family.type]}
    for family in process_metrics.ProcessTreeCollector(root_pid=os.getpid).collect():
        names |= {sample.name for sample in family.samples}
    return names


def _psql(conninfo, sql, password=None):
    env = {**os.environ, "PGCONNECT_TIMEOUT": "5", **({"PGPASSWORD": password} if password else {})}
    run = subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-tA", conninfo, "-c", sql],
        env=env,
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        raise RuntimeError(f"psql {sql!r} failed: {run.stderr}")
    return run.stdout.strip()


def _redis_cli(instance, *args):
    command = ["redis-cli", "-h", instance.host, "-p", str(instance.port)]
    env = {**os.environ, **({"REDISCLI_AUTH": instance.password} if instance.password else {})}
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, env=env, check=True
    ).stdout.strip()


def rule_files_every_second() -> dict[str, dict]:
    """The project's rule files with every group evaluated each second (recording rules included)."""
    return {
        name: {"groups": [dict(group, interval=f"{SCRAPE_INTERVAL}s") for group in rules["groups"]]}
        for name, rules in content.rule_files().items()
    }


def recorded_names() -> set[str]:
    return {
        rule["record"]
        for rules in content.rule_files().values()
        for group in rules["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


class FakeCompletions(BaseHTTPRequestHandler):
    """An OpenAI-compatible /chat/completions answering every prompt with the same advice."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps(
            {
                "model": LLM_MODEL,
                "choices": [{"message": {"role": "assistant", "content": "Counter at $19,900."}}],
                "usage": {"prompt_tokens": 42, "completion_tokens": 7},
            }
        ).encode()
        monitoring.respond(self, body)

    def log_message(self, *args):
        pass


class RemoteWriteSink(BaseHTTPRequestHandler):
    """Accepts remote_write requests (and drops them), as a storage that keeps up would."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


class Prometheus(monitoring.Prometheus):
    """The support Prometheus scraping ``targets`` ({job: address}) and itself (job prometheus),
    sending alerts to ``alertmanager``, with query helpers."""

    def __init__(self, workdir, targets: dict[str, str], alertmanager: str, remote_write=()):
        super().__init__(workdir)
        targets["prometheus"] = self.address
        self.write_config(
            scrape_configs=[
                {"job_name": job, "static_configs": [{"targets": [target]}]}
                for job, target in targets.items()
            ],
            rule_files=rule_files_every_second(),
            alertmanagers=[alertmanager],
            scrape_interval=f"{SCRAPE_INTERVAL}s",
            evaluation_interval=f"{SCRAPE_INTERVAL}s",
            remote_write=remote_write,
        )
        self.start(timeout=60)

    def metric_names(self) -> set[str]:
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as response:  # noqa: S310 (loopback)
            return exporters.metric_names(response.read().decode())

    def _wait(self, probe, what, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            try:
                if probe():
                    return
            except OSError:
                pass
            assert self.proc.poll() is None, "prometheus exited"
            assert time.monotonic() < deadline, f"prometheus: {what} not reached in {timeout}s"
            time.sleep(0.25)

    def query(self, expr):
        """(HTTP status, decoded body) of an instant query."""
        url = self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback)
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def label_values(self, label, match):
        """Values of ``label`` (optionally of the series ``match`` selects), as Grafana's label_values()."""
        params = urllib.parse.urlencode({"match[]": match} if match else {})
        url = f"{self.url}/api/v1/label/{label}/values?{params}"
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback)
            return json.loads(response.read())["data"]

    def wait_for_samples(self, expr, count, what):
        def enough():
            status, body = self.query(expr)
            return (
                status == 200
                and body["data"]["result"]
                and float(body["data"]["result"][0]["value"][1]) >= count
            )

        self._wait(enough, what)


class App:
    """The backend under gunicorn (production mode: multiprocess metrics, process-tree collector),
    migrated and seeded, against the test datastores. ADG_APP_BIN names the directory holding its
    `gunicorn` and `autodealgenie` scripts (default: next to this Python)."""

    def __init__(self, workdir, pg, redis_instance, mongo_url, llm_base_url):
        bindir = Path(os.environ.get("ADG_APP_BIN") or Path(sys.executable).parent)
        self.port = datastores.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        multiproc = workdir / "app-metrics"
        multiproc.mkdir()
        self.env = {
            **os.environ,
            **app_env(
                pg,
                redis_instance,
                mongo_url,
                METRICS_ENABLED="true",
                PROMETHEUS_MULTIPROC_DIR=multiproc,
                GUNICORN_BIND=f"127.0.0.1:{self.port}",
                GUNICORN_WORKERS=2,
                GUNICORN_ACCESS_LOG="",
                NEGOTIATION_ADVISOR="openai",
                LLM_API_BASE_URL=llm_base_url,
                LLM_API_KEY="sk-test",
                LLM_MODEL=LLM_MODEL,
            ),
        }
        for command in (["migrate"], ["seed", "--vehicles", "200"]):
            run = subprocess.run(
                [str(bindir / "autodealgenie"), *command], env=self.env, capture_output=True, text=True
            )
            if run.returncode != 0:
                raise RuntimeError(f"autodealgenie {command[0]} failed: {run.stderr}")
        self.log = (workdir / "gunicorn.log").open("w")
        self.process = subprocess.Popen(
            [str(bindir / "gunicorn"), "-c", "python:autodealgenie.gunicorn_conf", "autodealgenie.wsgi:app"],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.base + "/health", timeout=2).close()  # noqa: S310 (loopback)
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    log = (workdir / "gunicorn.log").read_text()
                    raise RuntimeError(f"the backend did not start:\n{log[-3000:]}") from None
                time.sleep(0.3)

    @property
    def target(self):
        return f"127.0.0.1:{self.port}"

    def traffic(self):
        """One round of tests/molecule/traffic/traffic.py: every endpoint, logins good and bad, cache hits."""
        run = subprocess.run(
            [
                sys.executable,
                str(REPO / "tests/molecule/traffic/traffic.py"),
                "--base-url",
                self.base,
                "--iterations",
                "1",
                "--max-seconds",
                "120",
            ],
            capture_output=True,
            text=True,
        )
        assert run.returncode in (0, 1), f"traffic.py failed to run: {run.stderr}"

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("monitoring-stack")
    started = []
    try:
        # pg_stat_statements preloaded, as the data tier configures it (SlowQueries needs it)
        pg = datastores.start_postgres(settings={"shared_preload_libraries": "pg_stat_statements"})
        started.append(pg)
        database = content.topology()["postgresql_app_database"]
        monitor_user = content.topology()["postgresql_monitor_user"]
        monitor_password = "exporter-test-password"
        superuser = pg.superuser_dsn  # local socket, trust
        exists = f"SELECT 1 FROM pg_database WHERE datname = '{database}'"  # noqa: S608 (topology's name)
        if _psql(superuser, exists) != "1":
            _psql(superuser, f'CREATE DATABASE "{database}"')
        # As the data tier sets it up: the extension in the exporter's database, a pg_monitor role.
        _psql(superuser, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        _psql(
            superuser,
            f"CREATE ROLE \"{monitor_user}\" LOGIN PASSWORD '{monitor_password}' IN ROLE pg_monitor",
        )
        app_conninfo = f"host={pg.host} port={pg.port} dbname={database} user={pg.user}"
        redis_instance = datastores.start_redis()
        started.append(redis_instance)
        _redis_cli(redis_instance, "CONFIG", "SET", "maxmemory", "64mb")  # the redis role always sets one
        mongo = datastores.start_mongodb()
        started.append(mongo)

        dsn = f"postgresql://{monitor_user}:{monitor_password}@{pg.host}:{pg.port}/postgres?sslmode=disable"
        # The backup host's textfile metrics, as the pgbackrest role's writer renders them for a
        # repository with a full and a differential backup (pgBackRest itself needs a repository).
        textfile_dir = workdir / "textfile"
        textfile_dir.mkdir()
        (textfile_dir / "pgbackrest.prom").write_text(pgbackrest_metrics_sample(textfile_dir))
        running = {
            "node": exporters.start_node_exporter(workdir, textfile_dir),
            "postgres": exporters.start_postgres_exporter(dsn, workdir),
            "redis": exporters.start_redis_exporter(
                f"redis://{redis_instance.host}:{redis_instance.port}",
                workdir,
                password=redis_instance.password,
            ),
            "mongodb": exporters.start_mongodb_exporter(mongo.url, workdir),
        }
        started.extend(running.values())
        targets = {job: exporter.target for job, exporter in running.items()}
        llm = monitoring.LoopbackServer(FakeCompletions)
        started.append(llm)
        try:
            app = App(workdir, pg, redis_instance, mongo.url, f"{llm.url}/v1")
            started.append(app)
            targets[BACKEND] = app.target
            app_error = None
        except (OSError, RuntimeError) as exc:
            app, app_error = None, str(exc)
        # The self-monitoring rules read Alertmanager's and Prometheus' own metrics.
        # Gossip on (a one-member cluster) for the cluster metrics the HA alerts read.
        alertmanager = monitoring.Alertmanager(
            workdir / "alertmanager",
            {"route": {"receiver": "null"}, "receivers": [{"name": "null"}]},
            gossip=True,
        ).start()
        started.append(alertmanager)
        targets["alertmanager"] = alertmanager.address
        # remote_write to a sink (as to VictoriaMetrics) for the queue series the HA panels read
        sink = monitoring.LoopbackServer(RemoteWriteSink)
        started.append(sink)
        prometheus = Prometheus(
            workdir, targets, alertmanager.address, remote_write=[f"{sink.url}/api/v1/write"]
        )
        started.append(prometheus)

        names = {job: exporter.metric_names() for job, exporter in running.items()}
        names[BACKEND] = app_metric_names()
        with urllib.request.urlopen(alertmanager.url + "/metrics", timeout=10) as response:  # noqa: S310
            names["alertmanager"] = exporters.metric_names(response.read().decode())

        # Work for the rate() panels, in two rounds between scrapes: a per-database series only
        # appears with the database's first statement, and rate() needs it to move afterwards.
        prometheus.wait_for_samples("count(up == 1)", len(targets), "every target scraped")
        _redis_cli(redis_instance, "SET", "car_search:test", "x", "EX", "900")
        for _ in range(2):
            time.sleep(2 * SCRAPE_INTERVAL)
            for key in ("car_search:test", "car_search:test", "car_search:test", "car_search:missing"):
                _redis_cli(redis_instance, "GET", key)
            for _ in range(3):
                _psql(app_conninfo, "SELECT count(*) FROM pg_class", password=pg.password)
            if app is not None:
                app.traffic()
        time.sleep(3 * SCRAPE_INTERVAL)
        # after the first samples went out: the remote_write queue series exist from then on
        names["prometheus"] = prometheus.metric_names()
        yield {"prometheus": prometheus, "names": names, "app_error": app_error}
    finally:
        for thing in reversed(started):
            thing.stop()


@pytest.mark.parametrize(("where", "expr"), [pytest.param(w, e, id=w) for w, e in content.all_expressions()])
def test_query_parses_in_prometheus(stack, where, expr):
    status, body = stack["prometheus"].query(expr)
    assert status == 200 and body.get("status") == "success", f"{where}: {expr}\n{body}"


def _allowed_names(names, selector):
    """What the selector's fixed job exposes (the dashboards' $job filter narrows it further),
    plus the series the rule files record."""
    fixed = [(op, value) for label, op, value in selector.matchers if label == "job" and "$" not in value]
    if not fixed:
        return set().union(*names.values()) | recorded_names()
    op, value = fixed[0]
    jobs = [value] if op == "=" else value.split("|")
    if set(jobs) <= set(NOT_RUN_HERE):
        return None
    return set().union(*(names[j] for j in jobs if j in names)) | recorded_names()


@pytest.mark.parametrize(("where", "expr"), [pytest.param(w, e, id=w) for w, e in content.all_expressions()])
def test_query_names_only_exposed_metrics(stack, where, expr):
    names = stack["names"]
    for selector in selectors(expr):
        assert selector.name, f"{where}: selector without a metric name"
        if selector.name in SYNTHETIC:
            continue
        if selector.name in NEEDS_SYSTEMD_BUS:
            continue
        allowed = _allowed_names(names, selector)
        if allowed is None:
            continue  # a job of NOT_RUN_HERE
        assert selector.name in allowed, (
            f"{where}: {selector.name} is not exposed by job {selector.label('job')}"
        )


def test_app_registry_has_the_http_metrics():
    """Guards the name collection itself: an empty or wrong set would make the test above vacuous."""
    names = app_metric_names()
    assert {
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "autodealgenie_user_signups_total",
    } <= names
    assert "http_requests" not in names and "http_request_duration_seconds" not in names


def test_exporters_expose_what_the_rules_need(stack):
    names = stack["names"]
    assert {
        "pg_up",
        "pg_stat_database_numbackends",
        "pg_settings_max_connections",
        "pg_stat_statements_db_calls_total",
        "pg_stat_statements_db_exec_seconds_total",
    } <= names["postgres"]
    assert {
        "redis_up",
        "redis_memory_used_bytes",
        "redis_memory_max_bytes",
        "redis_keyspace_hits_total",
    } <= names["redis"]
    assert {"node_memory_MemAvailable_bytes", "node_filesystem_avail_bytes"} <= names["node"]
    assert "mongodb_up" in names["mongodb"]


def test_every_app_metric_is_on_a_dashboard():
    """Each metric family of the app's registry is read by at least one panel."""
    from prometheus_client.metrics import MetricWrapperBase

    metrics = _import_app_module("autodealgenie.metrics")
    read = {s.name for _, _, _, expr in content.panel_queries() for s in selectors(expr)}
    missing = []
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                if not {family.name + suffix for suffix in SAMPLE_SUFFIXES[family.type]} & read:
                    missing.append(family.name)
    assert not missing, f"no panel reads {sorted(missing)}"


@pytest.fixture(scope="module")
def dashboard_variables(stack):
    """Per dashboard uid, its template variables as Grafana resolves them by default (All)."""
    builtins = builtin_variables(900, 15, SCRAPE_INTERVAL)
    resolved = {}
    for model in content.dashboards().values():
        variables, notes = resolve_template_variables(model, {}, stack["prometheus"].label_values, builtins)
        assert not notes, (model["uid"], notes)
        resolved[model["uid"]] = variables
    return resolved


def test_variables_resolve_to_all(dashboard_variables):
    for uid, variables in dashboard_variables.items():
        assert {"job", "instance"} <= set(variables), uid
        job = variables["job"]
        assert job["all_value"] == ".+" and BACKEND in job["values"] and "postgres" in job["values"], uid
        assert variables["instance"]["values"], uid


def _served_here(expr: str) -> bool:
    """False for a query whose every selector names fixed jobs that are not run here."""
    for selector in selectors(expr):
        fixed = selector.label("job")
        if not fixed or "$" in fixed[1]:
            return True
        jobs = [fixed[1]] if fixed[0] == "=" else fixed[1].split("|")
        if not set(jobs) <= set(NOT_RUN_HERE):
            return True
    return False


@pytest.mark.parametrize(
    ("uid", "where", "expr"),
    [
        pytest.param(u, f"{u} / {t} / {r}", e, id=f"{u} / {t} / {r}")
        for u, t, r, e in content.panel_queries()
        if _served_here(e)
    ],
)
def test_every_panel_query_shows_data(stack, dashboard_variables, uid, where, expr):
    """Each panel target, its variables substituted, returns a number (not nothing, not NaN) on a
    live stack with traffic."""
    if any(s.label("job") == ("=", BACKEND) for s in selectors(expr)):
        assert stack["app_error"] is None, stack["app_error"]
    query = interpolate(expr, dashboard_variables[uid])
    assert "$" not in query, query
    status, body = stack["prometheus"].query(query)
    assert status == 200, body
    values = [float(sample["value"][1]) for sample in body["data"]["result"]]
    assert values and not all(math.isnan(v) for v in values), f"{where}: no data for {query}: {body['data']}"
