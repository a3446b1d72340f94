"""HttpClient edge cases: timeouts, retries with backoff, 5xx, malformed JSON, auth, secret masking."""

from __future__ import annotations

import base64
import ssl
import urllib.error

import pytest
from ansible.module_utils.adg_http import MASK, HttpClient, HttpError, get_or_none
from fake_http import FakeOpener


def client(opener, **kwargs):
    sleeps = []
    kwargs.setdefault("retries", 3)
    made = HttpClient("http://grafana.test:3000/", opener=opener, sleep=sleeps.append, **kwargs)
    return made, sleeps


def test_get_json_and_url_building():
    opener = FakeOpener((200, {"ok": True}))
    http, _ = client(opener)
    assert http.get_json("/api/search", params={"type": "dash-db", "tag": ["a", "b"], "skip": None}) == {
        "ok": True
    }
    method, url, headers, _ = opener.requests[0]
    assert method == "GET" and url == "http://grafana.test:3000/api/search?type=dash-db&tag=a&tag=b"
    assert headers["Accept"] == "application/json"


def test_timeouts_are_retried_with_exponential_backoff_then_reported():
    opener = FakeOpener(*(TimeoutError("timed out") for _ in range(4)))
    http, sleeps = client(opener)
    with pytest.raises(HttpError) as caught:
        http.get_json("/api/health")
    assert sleeps == [0.5, 1.0, 2.0]
    assert len(opener.requests) == 4
    text = str(caught.value)
    assert (
        text.startswith("GET http://grafana.test:3000/api/health failed: timed out")
        and "after 4 attempts" in text
    )
    assert caught.value.status is None


def test_5xx_retried_then_success():
    opener = FakeOpener((503, {"message": "starting"}), (502, b"bad gateway"), (200, {"version": "11"}))
    http, sleeps = client(opener)
    assert http.get_json("/api/health") == {"version": "11"}
    assert sleeps == [0.5, 1.0]


def test_5xx_exhausted_shows_status_and_body():
    opener = FakeOpener(*((500, {"message": "database is locked"}) for _ in range(3)))
    http, _ = client(opener, retries=2)
    with pytest.raises(HttpError) as caught:
        http.get_json("/api/folders")
    assert caught.value.status == 500 and caught.value.message == "database is locked"
    assert (
        'GET http://grafana.test:3000/api/folders -> HTTP 500 error: {"message": "database is locked"}'
        in str(caught.value)
    )


def test_post_is_not_retried_on_5xx_but_is_on_refused_connection():
    opener = FakeOpener((500, {"message": "boom"}))
    http, sleeps = client(opener)
    with pytest.raises(HttpError):
        http.send_json("POST", "/api/v2/silences", {"x": 1})
    assert len(opener.requests) == 1 and sleeps == []

    refused = urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
    opener = FakeOpener(refused, (200, {"silenceID": "abc"}))
    http, sleeps = client(opener)
    assert http.send_json("POST", "/api/v2/silences", {"x": 1}) == {"silenceID": "abc"}
    assert sleeps == [0.5]

    reset = urllib.error.URLError(ConnectionResetError(104, "reset"))
    opener = FakeOpener(reset)
    http, _ = client(opener)
    with pytest.raises(HttpError) as caught:
        http.send_json("POST", "/api/v2/silences", {"x": 1})
    assert "ConnectionResetError" in str(caught.value) and len(opener.requests) == 1


def test_4xx_not_retried_and_expected_statuses_pass():
    opener = FakeOpener((404, {"message": "Dashboard not found"}), (404, {"message": "nope"}))
    http, sleeps = client(opener)
    with pytest.raises(HttpError) as caught:
        http.get_json("/api/dashboards/uid/x")
    assert caught.value.status == 404 and sleeps == []
    assert http.request("GET", "/api/x", expected=(200, 404)).status == 404


def test_malformed_json_names_the_request():
    opener = FakeOpener((200, b"<html>proxy error</html>"))
    http, _ = client(opener)
    with pytest.raises(HttpError) as caught:
        http.get_json("/api/health")
    text = str(caught.value)
    assert text.startswith("GET http://grafana.test:3000/api/health -> HTTP 200 invalid JSON in response")
    assert text.endswith(": <html>proxy error</html>")


def test_get_or_none_maps_only_404_to_none():
    opener = FakeOpener((200, {"uid": "x"}), (404, {"message": "not found"}), (403, {"message": "denied"}))
    http, _ = client(opener)
    assert get_or_none(http, "/api/folders/x") == {"uid": "x"}
    assert get_or_none(http, "/api/folders/y") is None
    with pytest.raises(HttpError) as caught:
        get_or_none(http, "/api/folders/z")
    assert caught.value.status == 403


def test_empty_body_is_none():
    http, _ = client(FakeOpener((200, b"")))
    assert http.request("POST", "/api/v2/alerts", json_body=[]).json() is None


def test_basic_auth_is_preemptive_and_bearer_wins():
    opener = FakeOpener((200, {}), (200, {}))
    client(opener, username="admin", password="pw")[0].get_json("/api/user")
    expected = "Basic " + base64.b64encode(b"admin:pw").decode()
    assert opener.requests[0][2]["Authorization"] == expected
    client(opener, username="admin", password="pw", token="glsa_x")[0].get_json("/api/user")
    assert opener.requests[1][2]["Authorization"] == "Bearer glsa_x"


def test_auth_failure_masks_password_token_and_basic_header_everywhere():
    secret = "S3cr3t!pw"
    echoed = {
        "message": f"Invalid username or password (got {secret})",
        "header": base64.b64encode(f"admin:{secret}".encode()).decode(),
    }
    opener = FakeOpener((401, echoed))
    http, _ = client(opener, username="admin", password=secret)
    with pytest.raises(HttpError) as caught:
        http.get_json("/api/user?password=" + secret)
    text = str(caught.value) + str(caught.value.as_result())
    assert secret not in text and echoed["header"] not in text
    assert MASK in text and caught.value.status == 401


def test_registered_secrets_and_url_credentials_are_masked():
    opener = FakeOpener(urllib.error.URLError(OSError("cannot connect")))
    http = HttpClient(
        "http://user:pass1234@am.test:9093", opener=opener, retries=0, secrets=[{"password": "db-pa$$word"}]
    )
    with pytest.raises(HttpError) as caught:
        http.send_json("POST", "/api/x?token=tok-123456&page=2", {"password": "db-pa$$word"})
    text = str(caught.value)
    assert "pass1234" not in text and "tok-123456" not in text
    assert "page=2" in text and "token=" + MASK in text
    assert http.mask('{"password": "db-pa$$word"}') == '{"password": "' + MASK + '"}'


def test_tls_verification_switch():
    def context_of(http):
        handler = next(h for h in http._opener.handlers if hasattr(h, "_context"))
        return handler._context

    assert context_of(HttpClient("https://g.test")).verify_mode == ssl.CERT_REQUIRED
    insecure = context_of(HttpClient("https://g.test", validate_certs=False))
    assert insecure.verify_mode == ssl.CERT_NONE and insecure.check_hostname is False


def test_rejects_non_http_urls():
    with pytest.raises(ValueError):
        HttpClient("grafana.test:3000")
    http = HttpClient("http://g.test", opener=FakeOpener(), retries=0)
    with pytest.raises(HttpError) as caught:
        http.get_json("file:///etc/passwd")
    assert "unsupported URL scheme" in str(caught.value)
