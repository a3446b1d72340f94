"""A client that hammers the API on every app host while a rolling upgrade runs.

Each worker thread sends GET requests round-robin over the app hosts and paths, a new connection
per request, with a per-request timeout and a short pause between requests.
A request fails on a connection error, a timeout or any status other than 200.
"""

from __future__ import annotations

import http.client
import itertools
import threading
import time
from dataclasses import dataclass, field


@dataclass
class HammerStats:
    ok: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)  # first few, for the report
    latencies: list[float] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> str:
        return (
            f"{self.ok + self.failed} requests, {self.failed} failed; latency p50 "
            f"{self.percentile(0.5) * 1000:.0f} ms, p99 {self.percentile(0.99) * 1000:.0f} ms, "
            f"max {max(self.latencies, default=0) * 1000:.0f} ms"
        )


class Hammer:
    def __init__(
        self,
        hosts: list[str],
        port: int,
        paths: list[str],
        threads: int = 4,
        timeout: float = 15.0,
        pause: float = 0.02,
    ):
        self.targets = [(h, p) for h in hosts for p in paths]
        self.port = port
        self.threads = threads
        self.timeout = timeout
        # a short pause per request keeps the client from starving the deploy on a 2-core CI machine
        self.pause = pause
        self.stats = HammerStats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def _one(self, host: str, path: str) -> None:
        started = time.monotonic()
        error = None
        try:
            conn = http.client.HTTPConnection(host, self.port, timeout=self.timeout)
            conn.request("GET", path, headers={"Connection": "close"})
            response = conn.getresponse()
            response.read()
            conn.close()
            if response.status != 200:
                error = f"{host}{path}: HTTP {response.status}"
        except OSError as exc:
            error = f"{host}{path}: {type(exc).__name__}: {exc}"
        elapsed = time.monotonic() - started
        with self._lock:
            self.stats.latencies.append(elapsed)
            if error:
                self.stats.failed += 1
                if len(self.stats.failures) < 20:
                    self.stats.failures.append(f"{time.strftime('%H:%M:%S')} {error}")
            else:
                self.stats.ok += 1

    def _run(self, offset: int) -> None:
        targets = itertools.islice(itertools.cycle(self.targets), offset, None)
        for host, path in targets:
            if self._stop.is_set():
                return
            self._one(host, path)
            self._stop.wait(self.pause)

    def start(self) -> Hammer:
        for i in range(self.threads):
            worker = threading.Thread(target=self._run, args=(i,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def stop(self) -> HammerStats:
        self._stop.set()
        for worker in self._workers:
            worker.join(self.timeout + 5)
        return self.stats
