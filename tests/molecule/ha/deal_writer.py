"""Clients that create deals through the API's one address while a drill breaks something, and
remember exactly which writes the API acknowledged (201 with an id) and when writes failed.

After the drill every acknowledged deal is read back through the API: a deal the API confirmed
and cannot find again is a lost write.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field

DEAL = {
    "customer_name": "HA Drill Buyer",
    "customer_email": "drill@example.test",
    "vehicle_make": "Toyota",
    "vehicle_model": "Corolla",
    "vehicle_year": 2022,
    "vehicle_mileage": 12000,
    "vehicle_vin": "2T1BURHE5NC123456",
    "asking_price": 21000,
}


def call(host: str, port: int, method: str, path: str, body=None, token: str = "", timeout: float = 10.0):
    """(status, JSON body); status 0 when the request got no answer."""
    headers = {"Connection": "close", "Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        conn.close()
    except OSError:
        return 0, {}
    try:
        return response.status, json.loads(raw or b"{}")
    except json.JSONDecodeError:
        return response.status, {}


def sign_in(host: str, port: int, name: str, password: str) -> str:
    """A new user's access token (the drills' writes are that user's deals)."""
    email = f"{name}@example.test"
    status, body = call(
        host, port, "POST", "/api/v1/auth/signup", {"email": email, "username": name, "password": password}
    )
    assert status == 201, f"signup {name}: HTTP {status} {body}"
    status, body = call(host, port, "POST", "/api/v1/auth/login", {"email": email, "password": password})
    assert status == 200, f"login {name}: HTTP {status} {body}"
    return body["access_token"]


@dataclass
class WriteLog:
    acknowledged: list[str] = field(default_factory=list)  # deal ids the API confirmed
    failures: list[tuple[float, str]] = field(default_factory=list)  # (monotonic time, what)
    attempts: int = 0

    def failure_window(self) -> tuple[float, float] | None:
        """(first, last) monotonic time of a failed write."""
        if not self.failures:
            return None
        return self.failures[0][0], self.failures[-1][0]


class DealWriter:
    """`threads` clients, each creating deals one after another (new connection per request)."""

    def __init__(
        self, host: str, port: int, token: str, threads: int = 2, timeout: float = 10.0, pause: float = 0.05
    ):
        self.host, self.port, self.token = host, port, token
        self.threads, self.timeout, self.pause = threads, timeout, pause
        self.log = WriteLog()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def _run(self, worker: int) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            body = {**DEAL, "notes": f"drill writer {worker} #{n}"}
            status, answer = call(
                self.host, self.port, "POST", "/api/v1/deals", body, self.token, self.timeout
            )
            with self._lock:
                self.log.attempts += 1
                if status == 201 and answer.get("id") is not None:
                    self.log.acknowledged.append(str(answer["id"]))
                else:
                    self.log.failures.append((time.monotonic(), f"HTTP {status or 'no answer'}"))
            self._stop.wait(self.pause)

    def start(self) -> DealWriter:
        for i in range(self.threads):
            worker = threading.Thread(target=self._run, args=(i,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def stop(self) -> WriteLog:
        self._stop.set()
        for worker in self._workers:
            worker.join(self.timeout + 5)
        return self.log


def missing_deals(host: str, port: int, token: str, ids: list[str]) -> list[str]:
    """The acknowledged deals the API cannot return now (each read back by id)."""
    missing = []
    for deal_id in ids:
        status, _ = call(host, port, "GET", f"/api/v1/deals/{deal_id}", token=token)
        if status != 200:
            missing.append(f"{deal_id} (HTTP {status})")
    return missing
