#!/usr/bin/env python3
"""Exercise every AutoDealGenie endpoint against one or more running app instances, and report.

Standard library only, so it runs from any Python >= 3.9 on the controller:

    python3 tests/molecule/traffic/traffic.py --base-url http://10.77.0.11:8000 [--iterations 2]

Per base URL and iteration: health probes, signup (new user, duplicate, invalid), logins (bad and
good), token refresh, /me by header and by cookie, deals CRUD, deal evaluation (cache miss then
hit), car searches of every search type (make/model miss then hit, filtered, browse, invalid), a
negotiation (start, counter, chat, confirm, a refused round), loans on the negotiated deal
(estimates by price and by deal, invalid terms, one approved and one declined application, read
back and listed), preferences, a few 404s and logout. Needs a migrated database with vehicles from
`autodealgenie seed`. Prints one table row per endpoint and exits 1 if any response had an
unexpected status (or an unexpected cache flag), 2 on usage errors. Bounded: at most
--iterations rounds (<= 50) and --max-seconds overall; each round logs in twice per account.

Traffic goes only where --base-url points: use loopback or the project's own test hosts.
"""

from __future__ import annotations

import argparse
import http.cookies
import json
import random
import statistics
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field

MAX_ITERATIONS = 50
MAKES = ("Toyota", "Honda", "Ford", "Chevrolet", "Hyundai", "Kia", "Subaru", "Nissan")


class Unexpected(Exception):
    pass


@dataclass
class Stats:
    statuses: dict = field(default_factory=lambda: defaultdict(int))
    latencies: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)


class Client:
    def __init__(self, base_url: str, timeout: float, stats: dict[str, Stats], deadline: float):
        self.base = base_url.rstrip("/")
        self.timeout = timeout
        self.stats = stats
        self.deadline = deadline
        self.token: str | None = None

    def call(
        self,
        method: str,
        path: str,
        label: str,
        expect: int | tuple,
        body=None,
        *,
        auth: bool = True,
        headers: dict | None = None,
    ):
        """One request; records status and latency under `label`; returns (status, json|None, headers)."""
        if time.monotonic() > self.deadline:
            raise TimeoutError("--max-seconds reached")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)  # noqa: S310 - http(s) only
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if auth and self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                status, raw, response_headers = response.status, response.read(), response.headers
        except urllib.error.HTTPError as error:
            status, raw, response_headers = error.code, error.read(), error.headers
        except (urllib.error.URLError, OSError) as error:
            status, raw, response_headers = 0, str(error).encode(), {}
        elapsed = time.perf_counter() - start
        key = f"{method} {label}"
        entry = self.stats[key]
        entry.statuses[status] += 1
        entry.latencies.append(elapsed)
        expected = expect if isinstance(expect, tuple) else (expect,)
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = None
        if status not in expected:
            detail = payload.get("detail") if isinstance(payload, dict) else raw[:120]
            entry.unexpected.append(f"{self.base}{path}: {status} (expected {expected}) {detail}")
        return status, payload, response_headers

    def check(self, label: str, condition: bool, message: str) -> None:
        if not condition:
            self.stats[label].unexpected.append(f"{self.base}: {message}")


def scenario(client: Client, password: str, rng: random.Random) -> None:
    c = client
    for path in ("/health", "/api/v1/health", "/api/v1/health/detailed", "/api/v1/cars/health", "/"):
        c.call("GET", path, path, 200, auth=False)

    name = f"traffic{int(time.time() * 1000)}{rng.randrange(10**6)}"
    email = f"{name}@example.test"
    c.call(
        "POST",
        "/api/v1/auth/signup",
        "/api/v1/auth/signup",
        201,
        {"email": email, "username": name, "password": password, "full_name": "Traffic Generator"},
        auth=False,
    )
    c.call(
        "POST",
        "/api/v1/auth/signup",
        "/api/v1/auth/signup",
        409,
        {"email": email, "username": name + "x", "password": password},
        auth=False,
    )
    c.call(
        "POST",
        "/api/v1/auth/signup",
        "/api/v1/auth/signup",
        422,
        {"email": "not-an-email", "username": "x", "password": "short"},
        auth=False,
    )
    c.call(
        "POST",
        "/api/v1/auth/login",
        "/api/v1/auth/login",
        401,
        {"email": email, "password": password + "-wrong"},
        auth=False,
    )
    status, tokens, headers = c.call(
        "POST",
        "/api/v1/auth/login",
        "/api/v1/auth/login",
        200,
        {"email": email, "password": password},
        auth=False,
    )
    if status != 200:
        raise Unexpected("login failed: the rest of the scenario needs a token")
    c.token = tokens["access_token"]
    c.call("GET", "/api/v1/auth/me", "/api/v1/auth/me", 200)
    c.call("GET", "/api/v1/auth/me", "/api/v1/auth/me", 401, auth=False)
    cookies = http.cookies.SimpleCookie()
    for header in headers.get_all("Set-Cookie") or []:
        cookies.load(header)
    cookie_header = "; ".join(f"{k}={v.value}" for k, v in cookies.items())
    c.call("GET", "/api/v1/auth/me", "/api/v1/auth/me", 200, auth=False, headers={"Cookie": cookie_header})
    status, refreshed, _ = c.call(
        "POST",
        "/api/v1/auth/refresh",
        "/api/v1/auth/refresh",
        200,
        {"refresh_token": tokens["refresh_token"]},
        auth=False,
    )
    if status == 200:
        c.token = refreshed["access_token"]
    c.call(
        "POST",
        "/api/v1/auth/refresh",
        "/api/v1/auth/refresh",
        401,
        {"refresh_token": tokens["refresh_token"]},
        auth=False,
    )  # rotated: single use

    make = rng.choice(MAKES)
    deal_body = {
        "customer_name": "Traffic Buyer",
        "customer_email": email,
        "vehicle_make": "Toyota",
        "vehicle_model": "Camry",
        "vehicle_year": 2021,
        "vehicle_mileage": 40000,
        "vehicle_vin": "4T1BF1FK5MU123456",
        "asking_price": 26000,
    }
    _, deal, _ = c.call("POST", "/api/v1/deals", "/api/v1/deals", 201, deal_body)
    _, spare, _ = c.call(
        "POST", "/api/v1/deals", "/api/v1/deals", 201, {**deal_body, "status": "in_progress"}
    )
    c.call("POST", "/api/v1/deals", "/api/v1/deals", 422, {**deal_body, "asking_price": -1})
    c.call("GET", "/api/v1/deals?skip=0&limit=10", "/api/v1/deals", 200)
    c.call("GET", "/api/v1/deals?limit=1000", "/api/v1/deals", 422)
    deal_id = deal["id"] if deal else 0
    spare_id = spare["id"] if spare else 0
    c.call("GET", f"/api/v1/deals/{deal_id}", "/api/v1/deals/<id>", 200)
    c.call("PUT", f"/api/v1/deals/{deal_id}", "/api/v1/deals/<id>", 200, {"notes": "via traffic generator"})
    c.call("PUT", f"/api/v1/deals/{deal_id}", "/api/v1/deals/<id>", 422, {"status": "sold"})
    evaluation = {
        "vehicle_vin": "4T1BF1FK5MU123456",
        "asking_price": 20000 + rng.randrange(100000) / 10,
        "condition": "good",
        "mileage": 38000,
        "make": "Toyota",
        "model": "Camry",
        "year": 2021,
    }
    _, first, _ = c.call("POST", "/api/v1/deals/evaluate", "/api/v1/deals/evaluate", 200, evaluation)
    _, second, _ = c.call("POST", "/api/v1/deals/evaluate", "/api/v1/deals/evaluate", 200, evaluation)
    c.check(
        "POST /api/v1/deals/evaluate",
        bool(first) and first.get("cached") is False,
        "first evaluation not a miss",
    )
    c.check(
        "POST /api/v1/deals/evaluate",
        bool(second) and second.get("cached") is True,
        "second evaluation not a hit",
    )
    c.call(
        "POST", "/api/v1/deals/evaluate", "/api/v1/deals/evaluate", 422, {**evaluation, "vehicle_vin": "BAD"}
    )

    # a random budget makes the first search a cache miss, its repeat a hit
    criteria = {"make": make, "budget_max": 20000 + rng.randrange(40000), "max_results": rng.randrange(5, 50)}
    _, miss, _ = c.call("POST", "/api/v1/cars/search", "/api/v1/cars/search", 200, criteria)
    _, hit, _ = c.call("POST", "/api/v1/cars/search", "/api/v1/cars/search", 200, criteria)
    c.check("POST /api/v1/cars/search", bool(miss) and miss.get("cached") is False, "first search not a miss")
    c.check("POST /api/v1/cars/search", bool(hit) and hit.get("cached") is True, "repeated search not a hit")
    c.check(
        "POST /api/v1/cars/search",
        bool(miss) and miss.get("total_found", 0) > 0,
        f"no {make} vehicles: was `autodealgenie seed` run?",
    )
    c.call(
        "POST",
        "/api/v1/cars/search",
        "/api/v1/cars/search",
        200,
        {"car_type": "suv", "sort_by": "value", "max_results": 10},
    )
    c.call("POST", "/api/v1/cars/search", "/api/v1/cars/search", 200, {"sort_by": "price", "max_results": 5})
    c.call("POST", "/api/v1/cars/search", "/api/v1/cars/search", 422, {"max_results": 0})

    _, session, _ = c.call(
        "POST",
        "/api/v1/negotiations",
        "/api/v1/negotiations",
        201,
        {"deal_id": deal_id, "target_price": 23000},
    )
    c.call("POST", "/api/v1/negotiations", "/api/v1/negotiations", 409, {"deal_id": deal_id})
    session_id = session["id"] if session else 0
    base = f"/api/v1/negotiations/{session_id}"
    c.call(
        "POST",
        f"{base}/next",
        "/api/v1/negotiations/<id>/next",
        200,
        {"action": "counter", "counter_offer": 22000},
    )
    c.call("POST", f"{base}/next", "/api/v1/negotiations/<id>/next", 422, {"action": "counter"})
    c.call(
        "POST", f"{base}/chat", "/api/v1/negotiations/<id>/chat", 200, {"message": "Is this a fair price?"}
    )
    c.call("GET", base, "/api/v1/negotiations/<id>", 200)
    c.call("POST", f"{base}/next", "/api/v1/negotiations/<id>/next", 200, {"action": "confirm"})
    c.call(
        "POST",
        f"{base}/next",
        "/api/v1/negotiations/<id>/next",
        409,
        {"action": "counter", "counter_offer": 100},
    )

    loans(c, deal_id, rng)

    preferences = {
        "makes": [make],
        "budget_range": {"min": 10000, "max": 40000},
        "year_range": {"min": 2018, "max": 2025},
        "body_types": ["suv"],
        "features": ["awd"],
    }
    c.call("PUT", "/api/v1/users/me/preferences", "/api/v1/users/me/preferences", 200, preferences)
    _, stored, _ = c.call("GET", "/api/v1/users/me/preferences", "/api/v1/users/me/preferences", 200)
    c.check(
        "GET /api/v1/users/me/preferences",
        bool(stored) and stored["preferences"]["makes"] == [make],
        "preferences not read back",
    )
    c.call(
        "PUT", "/api/v1/users/me/preferences", "/api/v1/users/me/preferences", 422, {"body_types": ["boat"]}
    )

    c.call("GET", "/api/v1/deals/999999999", "/api/v1/deals/<id>", 404)
    c.call("GET", "/api/v1/negotiations/999999999", "/api/v1/negotiations/<id>", 404)
    c.call("GET", f"/no-such-page-{rng.randrange(1000)}", "(unmatched)", 404, auth=False)
    c.call("DELETE", f"/api/v1/deals/{spare_id}", "/api/v1/deals/<id>", 204)
    c.call("GET", f"/api/v1/deals/{spare_id}", "/api/v1/deals/<id>", 404)
    c.call("POST", "/api/v1/auth/logout", "/api/v1/auth/logout", 200, {})
    c.token = None


def loans(c: Client, deal_id: int, rng: random.Random) -> None:
    """Estimates and two applications on the (negotiated) deal: one approved, one declined."""
    estimate = {
        "price": 15000 + rng.randrange(20000),
        "down_payment": 3000,
        "term_months": rng.choice((36, 48, 60, 72)),
        "apr": rng.randrange(0, 120) / 10,
    }
    _, plan, _ = c.call("POST", "/api/v1/loans/estimate", "/api/v1/loans/estimate", 200, estimate)
    c.check(
        "POST /api/v1/loans/estimate",
        bool(plan) and len(plan.get("schedule", [])) == estimate["term_months"],
        "estimate without one schedule row per month",
    )
    terms = {"deal_id": deal_id, "down_payment": 10000, "term_months": 60, "apr": 6.9}
    c.call("POST", "/api/v1/loans/estimate", "/api/v1/loans/estimate", 200, terms)
    c.call("POST", "/api/v1/loans/estimate", "/api/v1/loans/estimate", 422, {**estimate, "term_months": 0})
    # the decision rule (app/README.md): 10 % down, <= 84 months, APR <= 25 %, <= 1.2 x fair value
    _, approved, _ = c.call("POST", "/api/v1/loans", "/api/v1/loans", 201, terms)
    _, declined, _ = c.call(
        "POST",
        "/api/v1/loans",
        "/api/v1/loans",
        201,
        {"deal_id": deal_id, "down_payment": 0, "term_months": 96, "apr": 29.5},
    )
    c.check("POST /api/v1/loans", bool(approved) and approved.get("status") == "approved", "not approved")
    c.check("POST /api/v1/loans", bool(declined) and declined.get("status") == "declined", "not declined")
    c.call("POST", "/api/v1/loans", "/api/v1/loans", 422, {"deal_id": deal_id})
    approved_id = approved["id"] if approved else 0
    c.call("GET", f"/api/v1/loans/{approved_id}", "/api/v1/loans/<id>", 200)
    _, listed, _ = c.call("GET", "/api/v1/loans?limit=10", "/api/v1/loans", 200)
    c.check("GET /api/v1/loans", bool(listed) and listed.get("total") == 2, "own applications not listed")
    c.call("GET", "/api/v1/loans/999999999", "/api/v1/loans/<id>", 404)


def print_summary(stats: dict[str, Stats], elapsed: float) -> int:
    rows = []
    for key in sorted(stats):
        entry = stats[key]
        statuses = " ".join(f"{code}x{n}" for code, n in sorted(entry.statuses.items()))
        latencies = sorted(entry.latencies)
        p50 = statistics.median(latencies) * 1000 if latencies else 0.0
        worst = latencies[-1] * 1000 if latencies else 0.0
        rows.append(
            (
                key,
                str(sum(entry.statuses.values())),
                statuses,
                str(len(entry.unexpected)),
                f"{p50:.1f}",
                f"{worst:.1f}",
            )
        )
    header = ("endpoint", "requests", "statuses", "unexpected", "p50 ms", "max ms")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*header))
    print(line.format(*("-" * w for w in widths)))
    for row in rows:
        print(line.format(*row))
    total = sum(int(r[1]) for r in rows)
    problems = [p for entry in stats.values() for p in entry.unexpected]
    print(f"\n{total} requests in {elapsed:.1f}s, {len(problems)} unexpected")
    for problem in problems[:50]:
        print(f"  UNEXPECTED {problem}")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--base-url", action="append", required=True, help="app URL; repeat for several hosts"
    )
    parser.add_argument("--iterations", type=int, default=1, help=f"rounds per base URL (1-{MAX_ITERATIONS})")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="overall time bound")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout in seconds")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: time based)")
    args = parser.parse_args(argv)
    if not 1 <= args.iterations <= MAX_ITERATIONS:
        parser.error(f"--iterations must be 1-{MAX_ITERATIONS}")
    if not all(url.startswith(("http://", "https://")) for url in args.base_url):
        parser.error("--base-url must be an http(s) URL")
    rng = random.Random(args.seed)
    password = f"Traffic-{rng.randrange(10**9)}-pw"
    stats: dict[str, Stats] = defaultdict(Stats)
    start = time.monotonic()
    deadline = start + args.max_seconds
    aborted = None
    try:
        for _ in range(args.iterations):
            for url in args.base_url:
                try:
                    scenario(Client(url, args.timeout, stats, deadline), password, rng)
                except Unexpected as error:
                    stats["(scenario)"].unexpected.append(f"{url}: {error}")
    except TimeoutError as error:
        aborted = str(error)
    code = print_summary(stats, time.monotonic() - start)
    if aborted:
        print(f"aborted: {aborted}")
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
