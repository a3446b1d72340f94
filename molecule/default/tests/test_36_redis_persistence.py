"""(3.6) What the app keeps in Redis survives a Redis restart, through the real API: a refresh token
revoked by logout stays revoked (401 "Token revoked"), a login lock-out window (5 failed logins:
429 for the account) stays in force, and a fresh login still works. The roles/redis README
(Persistence) says why: AOF with appendfsync everysec, keys and TTLs reloaded at start."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from conftest import report, run_on

PASSWORD = "persistence-Drill-0425"  # noqa: S105 - a test user's password on the lab only


def api(base: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict, dict]:
    """One JSON request; (status, body, headers) for errors too."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 (lab http URL from the inventory)
        base + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"{}"), dict(response.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}"), dict(err.headers)


def signup(base: str, name: str) -> str:
    email = f"{name}@example.test"
    status, body, _ = api(
        base, "POST", "/api/v1/auth/signup", {"email": email, "username": name, "password": PASSWORD}
    )
    assert status == 201, body
    return email


def login(base: str, email: str, password: str = PASSWORD) -> tuple[int, dict, dict]:
    return api(base, "POST", "/api/v1/auth/login", {"email": email, "password": password})


def refresh(base: str, token: str) -> tuple[int, dict]:
    status, body, _ = api(base, "POST", "/api/v1/auth/refresh", {"refresh_token": token})
    return status, body


def wait_redis_healthy(app_urls: list[str], timeout: float = 60) -> float:
    """Seconds until every app host's detailed health sees Redis again (its probe also closes the
    worker's circuit breaker, so the next requests use Redis rather than the degraded path)."""
    started = time.monotonic()
    pending = list(app_urls)
    while pending and time.monotonic() - started < timeout:
        pending = [u for u in pending if api(u, "GET", "/api/v1/health/detailed")[0] != 200]
        if pending:
            time.sleep(1)
    assert not pending, f"Redis not healthy again for {pending}"
    return time.monotonic() - started


@pytest.fixture(scope="module")
def restarted(app_urls, groups, remote) -> dict:
    """Revoke a token and lock an account out, then restart redis-server on the redis host."""
    base = app_urls[0]
    stamp = time.time_ns()
    revoked_email = signup(base, f"persist{stamp}")
    status, tokens, _ = login(base, revoked_email)
    assert status == 200, tokens
    status, body, _ = api(base, "POST", "/api/v1/auth/logout", {"refresh_token": tokens["refresh_token"]})
    assert status == 200, body
    status, body = refresh(base, tokens["refresh_token"])
    assert (status, body.get("detail")) == (401, "Token revoked"), body

    locked_email = signup(base, f"lockout{stamp}")
    for _ in range(5):  # login_max_failures_per_account (app default)
        status, body, _ = login(base, locked_email, PASSWORD + "-wrong")
        assert status == 401, body
    status, body, headers = login(base, locked_email)
    assert status == 429 and "for this account" in body["detail"], body
    retry_after_before = int(headers["Retry-After"])

    redis_host = groups["redis"][0]
    pid_before = run_on(remote, redis_host, "systemctl show -P MainPID redis-server").strip()
    run_on(remote, redis_host, "systemctl restart redis-server")
    pid_after = run_on(remote, redis_host, "systemctl show -P MainPID redis-server").strip()
    assert pid_after not in ("0", pid_before), f"redis-server was not restarted: {pid_before} -> {pid_after}"
    back_after = wait_redis_healthy(app_urls)
    report(
        f"redis restart: PID {pid_before} -> {pid_after}, app hosts healthy again after {back_after:.1f} s"
    )
    return {
        "revoked_email": revoked_email,
        "revoked_refresh_token": tokens["refresh_token"],
        "locked_email": locked_email,
        "retry_after_before": retry_after_before,
    }


def test_revoked_token_stays_revoked_on_every_app_host(restarted, app_urls):
    for base in app_urls:
        status, body = refresh(base, restarted["revoked_refresh_token"])
        assert (status, body.get("detail")) == (401, "Token revoked"), f"{base}: {status} {body}"


def test_login_lockout_window_survives(restarted, app_urls):
    status, body, headers = login(app_urls[-1], restarted["locked_email"])
    assert status == 429 and "for this account" in body["detail"], body
    retry_after = int(headers["Retry-After"])
    # The same window, still counting down (TTLs are absolute expiry times in the AOF).
    assert 0 < retry_after <= restarted["retry_after_before"], (retry_after, restarted)
    before = restarted["retry_after_before"]
    report(
        f"  login lock-out after the restart: Retry-After {retry_after} s (before the restart: {before} s)"
    )


def test_fresh_login_and_refresh_work_after_the_restart(restarted, app_urls):
    status, tokens, _ = login(app_urls[0], restarted["revoked_email"])
    assert status == 200, tokens
    status, body = refresh(app_urls[-1], tokens["refresh_token"])
    assert status == 200 and body["access_token"], body
