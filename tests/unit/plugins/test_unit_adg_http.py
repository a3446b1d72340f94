"""HttpClient edge cases: timeouts, retries with backoff, 5xx/429, malformed JSON, auth, secret masking,
and the urls options (TLS, proxy, netrc, unix socket, agent) reaching ansible.module_utils.urls."""

from __future__ import annotations

import base64
import ssl
import urllib.error

import pytest
from ansible_collections.autodealgenie.ops.plugins.module_utils.adg_http import (
    MASK,
    HttpClient,
    HttpError,
    get_or_none,
)


def client(**kwargs):
    sleeps = []
    kwargs.setdefault("retries", 3)
    base = kwargs.pop("base", "http://grafana.test:3000/")
    return HttpClient(base, sleep=sleeps.append, **kwargs), sleeps


def test_get_json_and_url_building(network):
    opener = network((200, {"ok": True}))
    http, _ = client()
    assert http.get_json("/api/search", params={"type": "dash-db", "tag": ["a", "b"], "skip": None}) == {
        "ok": True
    }
    method, url, headers, _ = opener.requests[0]
    assert method == "GET" and url == "http://grafana.test:3000/api/search?type=dash-db&tag=a&tag=b"
    assert headers["Accept"] == "application/json"
    assert headers["User-agent"] == "autodealgenie.ops", "http_agent is passed to urls"


def test_timeouts_are_retried_with_exponential_backoff_then_reported(network):
    opener = network(*(TimeoutError("timed out") for _ in range(4)))
    http, sleeps = client()
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


def test_5xx_retried_then_success(network):
    network((503, {"message": "starting"}), (502, b"bad gateway"), (200, {"version": "11"}))
    http, sleeps = client()
    assert http.get_json("/api/health") == {"version": "11"}
    assert sleeps == [0.5, 1.0]


def test_5xx_exhausted_shows_status_and_body(network):
    network(*((500, {"message": "database is locked"}) for _ in range(3)))
    http, _ = client(retries=2)
    with pytest.raises(HttpError) as caught:
        http.get_json("/api/folders")
    assert caught.value.status == 500 and caught.value.message == "database is locked"
    assert (
        'GET http://grafana.test:3000/api/folders -> HTTP 500 error: {"message": "database is locked"}'
        in str(caught.value)
    )


def test_429_is_retried_for_any_method_honouring_retry_after(network):
    opener = network(
        (429, {"message": "slow down"}, {"Retry-After": "3"}),
        (429, {"message": "slow down"}, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        (200, {"silenceID": "abc"}),
    )
    http, sleeps = client()
    assert http.send_json("POST", "/api/v2/silences", {"x": 1}) == {"silenceID": "abc"}
    assert sleeps == [3.0, 1.0], "a numeric Retry-After wins; a date falls back to the backoff"
    assert [m for m, *_ in opener.requests] == ["POST"] * 3

    network(*((429, {"message": "slow down"}, {"Retry-After": "600"}) for _ in range(2)))
    http, sleeps = client(retries=1)
    with pytest.raises(HttpError) as caught:
        http.get_json("/api/health")
    assert caught.value.status == 429 and sleeps == [8.0], "Retry-After is capped at max_backoff"


def test_post_is_not_retried_on_5xx_but_is_on_refused_connection(network):
    opener = network((500, {"message": "boom"}))
    http, sleeps = client()
    with pytest.raises(HttpError):
        http.send_json("POST", "/api/v2/silences", {"x": 1})
    assert len(opener.requests) == 1 and sleeps == []

    refused = urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
    opener = network(refused, (200, {"silenceID": "abc"}))
    http, sleeps = client()
    assert http.send_json("POST", "/api/v2/silences", {"x": 1}) == {"silenceID": "abc"}
    assert sleeps == [0.5]

    reset = urllib.error.URLError(ConnectionResetError(104, "reset"))
    opener = network(reset)
    http, _ = client()
    with pytest.raises(HttpError) as caught:
        http.send_json("POST", "/api/v2/silences", {"x": 1})
    assert "ConnectionResetError" in str(caught.value) and len(opener.requests) == 1


def test_4xx_not_retried_and_expected_statuses_pass(network):
    network((404, {"message": "Dashboard not found"}), (404, {"message": "nope"}))
    http, sleeps = client()
    with pytest.raises(HttpError) as caught:
        http.get_json("/api/dashboards/uid/x")
    assert caught.value.status == 404 and sleeps == []
    assert http.request("GET", "/api/x", expected=(200, 404)).status == 404


def test_malformed_json_names_the_request(network):
    network((200, b"<html>proxy error</html>"))
    http, _ = client()
    with pytest.raises(HttpError) as caught:
        http.get_json("/api/health")
    text = str(caught.value)
    assert text.startswith("GET http://grafana.test:3000/api/health -> HTTP 200 invalid JSON in response")
    assert text.endswith(": <html>proxy error</html>")


def test_get_or_none_maps_only_404_to_none(network):
    network((200, {"uid": "x"}), (404, {"message": "not found"}), (403, {"message": "denied"}))
    http, _ = client()
    assert get_or_none(http, "/api/folders/x") == {"uid": "x"}
    assert get_or_none(http, "/api/folders/y") is None
    with pytest.raises(HttpError) as caught:
        get_or_none(http, "/api/folders/z")
    assert caught.value.status == 403


def test_empty_body_is_none(network):
    network((200, b""))
    http, _ = client()
    assert http.request("POST", "/api/v2/alerts", json_body=[]).json() is None


def test_basic_auth_is_preemptive_and_bearer_wins(network):
    opener = network((200, {}), (200, {}), (200, {}))
    client(username="admin", password="pw")[0].get_json("/api/user")
    expected = "Basic " + base64.b64encode(b"admin:pw").decode()
    assert opener.requests[0][2]["Authorization"] == expected
    client(username="admin", password="pw", token="glsa_x")[0].get_json("/api/user")
    assert opener.requests[1][2]["Authorization"] == "Bearer glsa_x"
    # Credentials in the URL are sent the same way, and never as part of the URL.
    client(base="http://admin:p%40ss@grafana.test:3000")[0].get_json("/api/user")
    _, url, headers, _ = opener.requests[2]
    assert url == "http://grafana.test:3000/api/user"
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"admin:p@ss").decode()


def test_auth_failure_masks_password_token_and_basic_header_everywhere(network):
    secret = "S3cr3t!pw"
    echoed = {
        "message": f"Invalid username or password (got {secret})",
        "header": base64.b64encode(f"admin:{secret}".encode()).decode(),
    }
    network((401, echoed))
    http, _ = client(username="admin", password=secret)
    with pytest.raises(HttpError) as caught:
        http.get_json("/api/user?password=" + secret)
    text = str(caught.value) + str(caught.value.as_result())
    assert secret not in text and echoed["header"] not in text
    assert MASK in text and caught.value.status == 401


def test_registered_secrets_and_url_credentials_are_masked(network):
    network(urllib.error.URLError(OSError("cannot connect")))
    http = HttpClient("http://user:pass1234@am.test:9093", retries=0, secrets=[{"password": "db-pa$$word"}])
    with pytest.raises(HttpError) as caught:
        http.send_json("POST", "/api/x?token=tok-123456&page=2", {"password": "db-pa$$word"})
    text = str(caught.value)
    assert "pass1234" not in text and "tok-123456" not in text
    assert "page=2" in text and "token=" + MASK in text
    assert http.mask('{"password": "db-pa$$word"}') == '{"password": "' + MASK + '"}'
    assert (
        http.mask_url("http://u:pw-in-url@x.test/?apikey=k-123&a=1")
        == f"http://{MASK}@x.test/?apikey={MASK}&a=1"
    )


def test_tls_verification_switch(network):
    opener = network((200, {}), (200, {}))
    HttpClient("https://g.test").get_json("/")
    HttpClient("https://g.test", validate_certs=False).get_json("/")
    verified, insecure = (h["tls"] for h in opener.handlers)
    assert verified.verify_mode == ssl.CERT_REQUIRED and verified.check_hostname is True
    assert insecure.verify_mode == ssl.CERT_NONE and insecure.check_hostname is False


def test_unreadable_client_certificate_fails_at_once(network, tmp_path):
    opener = network()
    http, sleeps = client(base="https://g.test", client_cert=str(tmp_path / "missing.pem"))
    with pytest.raises(HttpError) as caught:
        http.get_json("/api/health")
    assert "cannot set up TLS" in str(caught.value) and "missing.pem" in str(caught.value)
    assert sleeps == [] and opener.requests == [], "a configuration error is not retried"


def test_proxy_and_unix_socket_options_reach_urls(network, monkeypatch, tmp_path):
    monkeypatch.setenv("http_proxy", "http://proxy.test:3128")
    opener = network((200, {}), (200, {}), (200, {}))
    client()[0].get_json("/")
    client(use_proxy=False)[0].get_json("/")
    client(unix_socket=str(tmp_path / "grafana.sock"))[0].get_json("/")
    with_proxy, without_proxy, socket = opener.handlers
    assert with_proxy["proxies"].get("http") == "http://proxy.test:3128"
    assert without_proxy["proxies"] == {}
    assert socket["unix_socket"] == str(tmp_path / "grafana.sock")


def test_netrc_is_used_only_without_credentials_and_when_allowed(network, monkeypatch, tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine grafana.test login reader password netrc-pw\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    opener = network((200, {}), (200, {}), (200, {}))
    client()[0].get_json("/")
    client(use_netrc=False)[0].get_json("/")
    client(token="glsa_tok")[0].get_json("/")
    from_netrc, disabled, explicit = (headers for _, _, headers, _ in opener.requests)
    assert from_netrc["Authorization"] == b"Basic " + base64.b64encode(b"reader:netrc-pw")  # urls' bytes
    assert "Authorization" not in disabled
    assert explicit["Authorization"] == "Bearer glsa_tok", "netrc never replaces the module's credentials"


def test_rejects_non_http_urls(network):
    network()
    with pytest.raises(ValueError):
        HttpClient("grafana.test:3000")
    http = HttpClient("http://g.test", retries=0)
    with pytest.raises(HttpError) as caught:
        http.get_json("file:///etc/passwd")
    assert "unsupported URL scheme" in str(caught.value)
