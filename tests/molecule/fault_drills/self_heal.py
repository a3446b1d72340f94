"""Self-healing drills: `kill -9` a service's main process and measure how long systemd takes to
have it active again (a new MainPID, an automatic restart) and how long until Prometheus has a
scrape after the kill that shows the service healthy again; drive one unit into its start limit.

Bounds:
  active again       <= RESTART_BOUND_SECONDS (issue 11: 15 s)
  healthy in scrape  <= RESTART_BOUND_SECONDS + scrape_interval(job)
    (the first scrape that starts after the service is back is at most one interval later)
  crash loop         ends `failed` (result start-limit-hit) after at most burst + 1 kills,
                     within StartLimitIntervalSec
The restart policy the units must show comes from the restart_policy entry point of
autodealgenie.ops.shared (its documented defaults; tests/unit/selfheal proves the entry point
renders exactly those).

The kills and the waits for systemd run ON the test host (one Python script per drill, timed with
the host's clock, which is the controller's: systemd-nspawn shares the kernel), so the figures do
not include the latency of reaching the host.
"""

from __future__ import annotations

import json
import re
import shlex
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from tests.molecule.fault_drills.drills import SLACK_SECONDS

ROOT = Path(__file__).resolve().parents[3]
RESTART_BOUND_SECONDS = 15.0
_SPEC = ROOT / "roles" / "shared" / "meta" / "argument_specs.yml"

_TIMESPAN_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1, "min": 60, "h": 3600, "d": 86400}


def restart_policy_defaults() -> dict:
    """The entry point's documented defaults: restart_sec, start_limit_interval, start_limit_burst."""
    options = yaml.safe_load(_SPEC.read_text())["argument_specs"]["restart_policy"]["options"]
    prefix = "shared_restart_policy_"
    return {name[len(prefix) :]: option["default"] for name, option in options.items() if "default" in option}


def parse_timespan(text: str) -> float:
    """A systemd time span as `systemctl show` prints it ("2s", "2min", "1min 30s", "100ms")."""
    if text.strip() == "0":
        return 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(us|ms|min|s|h|d)", text)
    if not parts or re.sub(r"[\d.\s]|us|ms|min|s|h|d", "", text):
        raise ValueError(f"not a systemd time span: {text!r}")
    return sum(float(n) * _TIMESPAN_UNITS[u] for n, u in parts)


# --- on the test host ---------------------------------------------------------------------------

_HOST_COMMON = r"""
import json, os, signal, subprocess, sys, time

def show(unit, *props):
    out = subprocess.run(["systemctl", "show", unit] + ["--property=" + p for p in props],
                         capture_output=True, text=True, check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
"""

# argv: unit, epoch time to kill at (0: now), timeout. Kills MainPID, waits until active with a new one.
_HOST_KILL = (
    _HOST_COMMON
    + r"""
unit, at, timeout = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
before = show(unit, "MainPID", "ActiveState", "NRestarts")
old = int(before["MainPID"])
if before["ActiveState"] != "active" or old == 0:
    print(json.dumps({"error": "not running before the kill", "show": before}))
    sys.exit(0)
if at > 0:
    time.sleep(max(0.0, at - time.time()))
killed = time.time()
os.kill(old, signal.SIGKILL)
active = None
while time.time() < killed + timeout:
    now = show(unit, "MainPID", "ActiveState", "NRestarts", "Result")
    if now["ActiveState"] == "active" and now["MainPID"] not in ("0", str(old)):
        active = time.time()
        break
    time.sleep(0.05)
print(json.dumps({"old_pid": old, "new_pid": int(now["MainPID"]), "killed": killed, "active": active,
                  "restarts": int(now["NRestarts"]) - int(before["NRestarts"]), "state": now["ActiveState"]}))
"""
)

# argv: unit, max kills, timeout, hold. Kills each new MainPID until the unit is failed, then checks
# it is still failed `hold` s later (systemd refuses the restart: an automatic restart never passes
# through `failed`; systemd 252 keeps the crash's Result and logs "Start request repeated too quickly").
_HOST_CRASH_LOOP = (
    _HOST_COMMON
    + r"""
unit, max_kills, timeout, hold = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
kills, first, failed, last = 0, None, None, None
started = time.time()
while time.time() < started + timeout:
    now = show(unit, "MainPID", "ActiveState", "Result")
    if now["ActiveState"] == "failed":
        failed = time.time()
        break
    pid = now["MainPID"]
    if now["ActiveState"] == "active" and pid not in ("0", last):
        if kills >= max_kills:
            break
        os.kill(int(pid), signal.SIGKILL)
        kills, last = kills + 1, pid
        first = first or time.time()
    time.sleep(0.05)
still = None
if failed:
    time.sleep(hold)
    still = show(unit, "ActiveState")["ActiveState"]
print(json.dumps({"kills": kills, "first_kill": first, "failed": failed,
                  "state": now["ActiveState"], "result": now["Result"], "later": still}))
"""
)


def host_python(script: str, *args: object) -> str:
    return "python3 -c " + shlex.quote(script) + "".join(" " + shlex.quote(str(a)) for a in args)


def kill_command(unit: str, at: float = 0.0, timeout: float = RESTART_BOUND_SECONDS * 3) -> str:
    return host_python(_HOST_KILL, unit, f"{at:.3f}", timeout)


def crash_loop_command(unit: str, max_kills: int, timeout: float, hold: float) -> str:
    return host_python(_HOST_CRASH_LOOP, unit, max_kills, timeout, hold)


def unit_properties(text: str) -> dict[str, str]:
    """`systemctl show -p A -p B` output as a dict."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


# --- Prometheus ---------------------------------------------------------------------------------


class Prometheus:
    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def get(self, path: str, **params) -> dict:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as response:  # noqa: S310 (lab URL)
            body = json.load(response)
        if body.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        return self.get("/api/v1/query", query=expr)["result"]

    def samples(self, selector: str, window: float) -> list[tuple[float, float]]:
        """Every (timestamp, value) of the series matching selector in the last `window` seconds."""
        result = self.query(f"{selector}[{int(window) + 1}s]")
        return sorted((float(t), float(v)) for series in result for t, v in series["values"])

    def wait_for_sample(
        self, selector: str, value: float, after: float, timeout: float, poll: float = 1.0
    ) -> float | None:
        """Timestamp of the first sample of selector with `value` taken after `after` (epoch), or
        None after `timeout` s. Prometheus being down for a moment (its own drill) is retried."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                found = [
                    t for t, v in self.samples(selector, time.time() - after + 5) if t > after and v == value
                ]
            except (urllib.error.URLError, ConnectionError, TimeoutError, RuntimeError):
                found = []
            if found:
                return found[0]
            time.sleep(poll)
        return None

    def target(self, job: str, instance: str) -> dict | None:
        for target in self.get("/api/v1/targets", state="active")["activeTargets"]:
            if target["labels"].get("job") == job and target["labels"].get("instance") == instance:
                return target
        return None

    def alert_rule(self, name: str) -> dict | None:
        for group in self.get("/api/v1/rules", type="alert")["groups"]:
            for rule in group["rules"]:
                if rule.get("name") == name:
                    return dict(rule, group_interval=group.get("interval"))
        return None


def rfc3339(text: str) -> float:
    """Epoch seconds of Prometheus' lastScrape ("2026-12-01T11:55:02.123456789Z" or with an offset)."""
    match = re.match(r"(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text)
    if not match:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    base, fraction, zone = match.groups()
    zone = "+00:00" if zone == "Z" else zone
    return datetime.fromisoformat(base + zone).timestamp() + float(fraction or 0)


# --- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    unit: str
    host: str
    job: str  # scrape job that shows the service's health
    health: str  # metric whose sample is 1 when the service is healthy: "up" or the exporter's
    policy: str  # Restart= the unit must show
    # Scrapes after the service is back that may still show it down, and why (exporter quirks).
    stale_scrapes: int = 0
    stale_reason: str = ""

    def health_bound(self, scrape_interval: float) -> float:
        """Kill to the first healthy scrape: back within the restart bound, then the next scrape
        (plus any stale ones)."""
        return RESTART_BOUND_SECONDS + (1 + self.stale_scrapes) * scrape_interval

    @property
    def selector(self) -> str:
        return f'{self.health}{{job="{self.job}",instance="{self.host}"}}'


@dataclass
class HealResult:
    service: Service
    up_bound: float
    killed: float | None = None
    active_delay: float | None = None
    up_delay: float | None = None
    restarts: int = 0
    pids: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return (
            not self.error
            and self.restarts == 1
            and self.active_delay is not None
            and self.active_delay <= RESTART_BOUND_SECONDS
            and self.up_delay is not None
            and self.up_delay <= self.up_bound + SLACK_SECONDS
        )

    def row(self) -> str:
        def fmt(value: float | None) -> str:
            return "  never" if value is None else f"{value:5.1f} s"

        name = f"{self.service.unit} ({self.service.host})"
        return (
            f"{name:<46} active {fmt(self.active_delay)} / {RESTART_BOUND_SECONDS:.0f} s   "
            f"{self.service.health}==1 {fmt(self.up_delay)} / {self.up_bound:4.0f} s   "
            f"Restart={self.service.policy} {self.pids}"
            + (
                f"  (bound +{self.service.stale_scrapes} scrape: {self.service.stale_reason})"
                if self.service.stale_scrapes
                else ""
            )
            + (f"  {self.error}" if self.error else "")
        )
