#!/usr/bin/env python3
"""A webhook receiver for Alertmanager notifications, run on the controller.

Alertmanager POSTs one JSON message per notification (`alerts[]`, each with `status`, `labels`,
`startsAt`, `endsAt`). The receiver records every alert with the time it arrived, so a test can
wait for "alert X with labels Y is firing / resolved" and measure the delay.

Listen on the lab bridge's gateway address only (tests talk only to their own bridge):

    python3 tests/molecule/fault_drills/webhook_receiver.py --listen 172.30.10.1 --port 19099  # prints
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Notification:
    received: float  # time.monotonic() at arrival
    wall: float  # time.time() at arrival
    receiver: str
    status: str  # firing | resolved (of this alert)
    labels: dict
    starts_at: str
    ends_at: str
    # The message this alert came in: its sequence number here, Alertmanager's groupKey and the
    # sending Alertmanager's external URL (what tells a pair's duplicate sends apart).
    message: int = 0
    group_key: str = ""
    external_url: str = ""


class WebhookReceiver:
    """Threaded HTTP server collecting Alertmanager webhook notifications."""

    def __init__(self, host: str, port: int, on_notification: Callable[[Notification], None] | None = None):
        self._notifications: list[Notification] = []
        self._messages = 0
        self._cond = threading.Condition()
        self._on_notification = on_notification
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    message = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError:
                    self.send_response(400)
                    self.end_headers()
                    return
                receiver._record(message)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/alerts"

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _record(self, message: dict) -> None:
        now, wall = time.monotonic(), time.time()
        with self._cond:
            self._messages += 1
            sequence = self._messages
        found = [
            Notification(
                received=now,
                wall=wall,
                receiver=message.get("receiver", ""),
                status=alert.get("status", ""),
                labels=alert.get("labels", {}),
                starts_at=alert.get("startsAt", ""),
                ends_at=alert.get("endsAt", ""),
                message=sequence,
                group_key=message.get("groupKey", ""),
                external_url=message.get("externalURL", ""),
            )
            for alert in message.get("alerts", [])
        ]
        with self._cond:
            self._notifications.extend(found)
            self._cond.notify_all()
        if self._on_notification:
            for notification in found:
                self._on_notification(notification)

    def notifications(self) -> list[Notification]:
        with self._cond:
            return list(self._notifications)

    def wait_for(self, status: str, labels: dict, after: float, timeout: float) -> Notification | None:
        """First notification received after `after` (monotonic) with this status whose labels
        include `labels`; None when `timeout` seconds pass first."""
        deadline = time.monotonic() + timeout

        def match() -> Notification | None:
            for n in self._notifications:
                if n.received >= after and n.status == status and labels.items() <= n.labels.items():
                    return n
            return None

        with self._cond:
            while (found := match()) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True, help="address to bind (the lab bridge's gateway)")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    def show(n: Notification) -> None:
        labels = ",".join(f"{k}={v}" for k, v in sorted(n.labels.items()))
        print(f"{time.strftime('%H:%M:%S')} {n.receiver:<16} {n.status:<8} {labels}", flush=True)

    receiver = WebhookReceiver(args.listen, args.port, on_notification=show).start()
    print(f"listening on {receiver.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        receiver.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
