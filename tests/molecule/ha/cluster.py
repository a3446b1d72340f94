"""What the HA drills watch, read from the controller: Patroni's REST API, the Sentinels, the VIP
and HAProxy's server states (molecule/ha/group_vars/all/controller.yml opens those ports to the
controller), plus the bounds each drill is held to, derived from the roles' settings.

Every probe answers "unknown" (None) instead of raising while its target is powered off: a drill
polls until the answer it waits for, or until its deadline.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
import yaml
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.molecule.fault_drills.drills import parse_duration
from tests.molecule.rolling_upgrade.hammer import Hammer, HammerStats

REPO = Path(__file__).resolve().parents[3]
TESTHOSTS = REPO / "tests" / "tools" / "testhosts" / "testhosts.py"
ROLE_DEFAULTS = REPO / "roles"
# What the drills' clients request through the VIP: the app's health and a blueprint's.
API_PATHS = ["/api/v1/health", "/api/v1/cars/health"]


def role_default(role: str, name: str):
    """A role's default (roles/<role>/defaults/main.yml): the drills' bounds come from there."""
    return yaml.safe_load((ROLE_DEFAULTS / role / "defaults" / "main.yml").read_text())[name]


@dataclass(frozen=True)
class Bounds:
    """Each drill's bound, from the settings the roles deploy (the scenario overrides none)."""

    patroni_ttl: float
    patroni_loop_wait: float
    sentinel_down_after: float
    haproxy_inter: float
    haproxy_fall: int
    haproxy_check_timeout: float
    vrrp_advert: float
    vrrp_backup_priority: int

    @classmethod
    def load(cls, vrrp_backup_priority: int) -> Bounds:
        """vrrp_backup_priority: the priority the taking-over host runs with (its keepalived.conf)."""
        return cls(
            patroni_ttl=float(role_default("postgresql", "postgresql_patroni_ttl")),
            patroni_loop_wait=float(role_default("postgresql", "postgresql_patroni_loop_wait")),
            sentinel_down_after=role_default("redis_sentinel", "redis_sentinel_down_after_milliseconds")
            / 1000,
            haproxy_inter=role_default("haproxy", "haproxy_check_inter_ms") / 1000,
            haproxy_fall=int(role_default("haproxy", "haproxy_check_fall")),
            haproxy_check_timeout=role_default("haproxy", "haproxy_check_timeout_ms") / 1000,
            vrrp_advert=float(role_default("keepalived", "keepalived_advert_int")),
            vrrp_backup_priority=vrrp_backup_priority,
        )

    @property
    def patroni_failover(self) -> float:
        # The leader key expires at most ttl after the last renewal; a replica notices in its next
        # loop (loop_wait) and takes the key.
        return self.patroni_ttl + self.patroni_loop_wait

    @property
    def sentinel_failover(self) -> float:
        # down-after to agree the master is down (odown), then the election and the promotion of
        # the chosen replica, which Sentinel's own failover takes a few seconds for.
        return self.sentinel_down_after + 5.0

    @property
    def haproxy_down(self) -> float:
        # A check of a host that is gone waits out its timeout; HAProxy schedules the next one
        # `inter` after the previous one ended, so `fall` failures take fall * (inter + timeout).
        return self.haproxy_fall * (self.haproxy_inter + self.haproxy_check_timeout)

    @property
    def vrrp_takeover(self) -> float:
        # VRRP (RFC 5798): master down interval = 3 * advert + skew, skew = (256 - priority)/256 * advert
        return 3 * self.vrrp_advert + (256 - self.vrrp_backup_priority) / 256 * self.vrrp_advert


def http_json(url: str, timeout: float = 2.0) -> tuple[int, object] | None:
    """(status, JSON body) of a GET, None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (lab http URL)
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        try:
            return err.code, json.loads(err.read() or b"{}")
        except json.JSONDecodeError:
            return err.code, {}
    except (OSError, json.JSONDecodeError):
        return None


def wait_until(what: str, probe: Callable[[], object], timeout: float, interval: float = 0.25):
    """Poll `probe` until it returns something truthy; (value, seconds waited). Fails the test with
    `what` when the deadline passes."""
    started = time.monotonic()
    while True:
        value = probe()
        if value:
            return value, time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


class Patroni:
    def __init__(self, addresses: dict[str, str], members: list[str], rest_port: int):
        self.addresses = addresses
        self.members = members
        self.port = rest_port

    def cluster(self, exclude: tuple[str, ...] = ()) -> dict | None:
        """GET /cluster from the first member that answers (any member's view is the DCS's)."""
        for name in self.members:
            if name in exclude:
                continue
            answer = http_json(f"http://{self.addresses[name]}:{self.port}/cluster")
            if answer and answer[0] == 200:
                return answer[1]
        return None

    def leader(self, exclude: tuple[str, ...] = ()) -> str | None:
        view = self.cluster(exclude)
        leaders = [
            m["name"]
            for m in (view or {}).get("members", [])
            # The DCS still names a dead leader until its key expires: `exclude` drops it too.
            if m["role"] == "leader" and m["state"] == "running" and m["name"] not in exclude
        ]
        return leaders[0] if len(leaders) == 1 else None

    def streaming_replicas(self) -> list[str]:
        view = self.cluster() or {}
        return sorted(
            m["name"]
            for m in view.get("members", [])
            if m["role"] in ("replica", "sync_standby") and m["state"] in ("streaming", "running")
        )


def sentinel_fields(raw) -> dict[str, str]:
    """One entry of SENTINEL REPLICAS as {field: text}: redis-py parses the reply into a dict
    (its SENTINEL SLAVES callback) or leaves the flat [field, value, ...] list, by version."""
    pairs = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2], strict=True)
    decoded = {}
    for key, value in pairs:
        key = key.decode() if isinstance(key, bytes) else str(key)
        if isinstance(value, bytes):
            value = value.decode()
        elif key == "flags" and isinstance(value, (set, frozenset, list, tuple)):
            value = ",".join(sorted(value))
        decoded[key] = value if isinstance(value, str) else str(value)
    return decoded


class Sentinels:
    def __init__(
        self,
        addresses: dict[str, str],
        hosts: list[str],
        port: int,
        master_name: str,
        user: str,
        password: str,
    ):
        self.endpoints = [(addresses[h], port) for h in hosts]
        self.by_address = {addresses[h]: h for h in hosts}
        self.master_name = master_name
        self.user = user
        self.password = password
        self._answering: tuple[str, int] | None = None

    def _ask(self, *command):
        """The reply of the first Sentinel that answers, the one that answered last asked first:
        a powered-off Sentinel costs one connect timeout once, not one on every poll.
        No retries (redis-py retries 3 times by default), so a poll takes what it measures."""
        for endpoint in sorted(self.endpoints, key=lambda e: e != self._answering):
            client = redis.Redis(
                host=endpoint[0],
                port=endpoint[1],
                username=self.user,
                password=self.password,
                socket_timeout=1,
                socket_connect_timeout=1,
                retry=Retry(NoBackoff(), 0),
            )
            try:
                reply = client.execute_command(*command)
            except redis.RedisError:
                continue
            finally:
                client.close()
            self._answering = endpoint
            return True, reply
        return False, None

    def master(self) -> str | None:
        """The master's host as the first Sentinel that answers names it."""
        answered, address = self._ask("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
        if answered and address:
            return self.by_address.get(address[0].decode())
        return None

    def replicas_ok(self) -> int:
        """Replicas a Sentinel sees linked and not down (what a failover can promote)."""
        answered, replicas = self._ask("SENTINEL", "REPLICAS", self.master_name)
        if not answered:
            return 0
        ok = 0
        for raw in replicas:
            fields = sentinel_fields(raw)
            flags = fields.get("flags", "")
            linked = fields.get("master-link-status") == "ok"
            if linked and "s_down" not in flags and "disconnected" not in flags:
                ok += 1
        return ok


def testhosts(lab: str, *args: str) -> None:
    subprocess.run(["python3", str(TESTHOSTS), *args[:1], "--lab", lab, *args[1:]], check=True, cwd=REPO)


def power_off(lab: str, host: str) -> float:
    """Pull the plug (SIGKILL of everything, no shutdown); the monotonic time of the cut."""
    started = time.monotonic()
    testhosts(lab, "poweroff", "--hard", host)
    return started


def power_on(lab: str, host: str) -> None:
    testhosts(lab, "poweron", host)


@dataclass
class Outage:
    cut: float  # monotonic time of the power cut
    stats: HammerStats | None = None  # the clients' figures, once the host is back on


@contextmanager
def powered_off_under_load(lab: str, host: str, api: tuple[str, int], threads: int) -> Iterator[Outage]:
    """`threads` clients hammer the API's VIP; `host` loses power 3 s in; the body waits for what
    the drill measures; the clients go on 5 s more (requests after the failover count too), then
    stop and `host` is powered on again, whatever the body raised."""
    hammer = Hammer([api[0]], api[1], API_PATHS, threads=threads, timeout=30).start()
    time.sleep(3)
    outage = Outage(cut=power_off(lab, host))
    try:
        yield outage
        time.sleep(5)
    finally:
        outage.stats = hammer.stop()
        power_on(lab, host)


def group_wait(settings: dict, severity: str) -> float:
    """Alertmanager's group_wait of the alert's route: the drills' override for critical
    (drill_vars.yml), the role's default for the others."""
    if severity == "critical":
        return settings["group_wait"]
    routing = yaml.safe_load(
        (ROLE_DEFAULTS / "alertmanager" / "defaults" / "main" / "routing.yml").read_text()
    )
    return parse_duration(routing[f"alertmanager_{severity}_group_wait"])


def alert_bounds(settings: dict, job: str, alertname: str, severity: str) -> tuple[float, float]:
    """(firing, resolved) bound of an alert from the moment its condition starts/ends: the next
    scrape shows it, the next evaluation sees it, `for` passes, then the route's group_wait
    (firing) or group_interval (resolved)."""
    seen = settings["scrape"][job] + settings["interval"]
    return seen + settings["for"][alertname] + group_wait(settings, severity), seen + settings[
        "group_interval"
    ]


def haproxy_server_down(address: str, metrics_port: int, backend: str, server: str) -> bool | None:
    """Whether HAProxy on `address` marks `server` of `backend` DOWN (its Prometheus endpoint);
    None when that HAProxy does not answer."""
    try:
        with urllib.request.urlopen(f"http://{address}:{metrics_port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return None
    wanted = f'haproxy_server_status{{proxy="{backend}",server="{server}",state="DOWN"}}'
    for line in text.splitlines():
        if line.startswith(wanted):
            return float(line.split()[-1]) == 1
    return None
