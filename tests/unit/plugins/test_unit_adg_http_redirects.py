"""Redirects: followed by HttpClient (urls runs with follow_redirects='none'), at most max_redirects
hops; credentials only ever go to the origin (scheme, host, port) of the configured url."""

from __future__ import annotations

import base64
import urllib.parse

import pytest
from ansible_collections.autodealgenie.ops.plugins.module_utils.adg_http import MASK, HttpClient, HttpError

BASIC = "Basic " + base64.b64encode(b"admin:Adm1n-pw").decode()
CREDENTIALS = {
    "basic": ({"username": "admin", "password": "Adm1n-pw"}, BASIC),
    "token": ({"token": "glsa_redirect_token"}, "Bearer glsa_redirect_token"),
}


def redirect(status, location):
    return (status, b"", {"Location": location})


def client(base="http://grafana.test:3000", **kwargs):
    kwargs.setdefault("retries", 0)
    return HttpClient(base, sleep=lambda _: None, **kwargs)


def auth_of(request):
    return request[2].get("Authorization")


@pytest.mark.parametrize("kind", sorted(CREDENTIALS))
@pytest.mark.parametrize(
    "location",
    [
        "http://other.test:3000/api/user",  # another host
        "http://grafana.test:3001/api/user",  # another port
        "https://grafana.test:3000/api/user",  # another scheme
        "//other.test:3000/api/user",  # scheme-relative
    ],
)
def test_credentials_are_dropped_on_a_redirect_to_another_origin(network, kind, location):
    options, header = CREDENTIALS[kind]
    opener = network(redirect(302, location), (200, {"ok": True}))
    assert client(**options).get_json("/api/user") == {"ok": True}
    first, second = opener.requests
    assert auth_of(first) == header
    assert auth_of(second) is None, f"{kind} credentials followed a redirect to {second[1]}"
    assert second[1] == urllib.parse.urljoin("http://grafana.test:3000/api/user", location)


@pytest.mark.parametrize("kind", sorted(CREDENTIALS))
def test_same_origin_redirect_keeps_credentials_and_a_return_re_adds_them(network, kind):
    options, header = CREDENTIALS[kind]
    opener = network(
        redirect(301, "/grafana/api/user"),  # relative: same origin
        redirect(302, "http://GRAFANA.test:3000/x"),  # host names compare case-insensitively
        redirect(307, "http://cdn.test/y"),
        redirect(308, "http://grafana.test:3000/api/user"),  # back to the configured origin
        (200, {"ok": True}),
    )
    assert client(**options).get_json("/api/user") == {"ok": True}
    urls = [r[1] for r in opener.requests]
    assert urls == [
        "http://grafana.test:3000/api/user",
        "http://grafana.test:3000/grafana/api/user",
        "http://GRAFANA.test:3000/x",
        "http://cdn.test/y",
        "http://grafana.test:3000/api/user",
    ]
    assert [auth_of(r) for r in opener.requests] == [header, header, header, None, header]


def test_default_port_is_the_same_origin(network):
    opener = network(redirect(302, "https://grafana.test/b"), (200, {}))
    client("https://grafana.test:443", token="glsa_t").get_json("/a")
    assert auth_of(opener.requests[1]) == "Bearer glsa_t"


def test_netrc_credentials_follow_the_same_rule(network, monkeypatch, tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text(
        "machine grafana.test login reader password netrc-pw\nmachine other.test login x password y\n"
    )
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    opener = network(redirect(302, "http://other.test/api"), (200, {}))
    client().get_json("/api")
    assert auth_of(opener.requests[0]) is not None and auth_of(opener.requests[1]) is None


@pytest.mark.parametrize(
    ("status", "method", "then", "body_kept"),
    [
        (301, "POST", "GET", False),
        (302, "POST", "GET", False),
        (303, "POST", "GET", False),
        (303, "PUT", "GET", False),
        (302, "PUT", "PUT", True),  # only POST is rewritten by 301/302
        (301, "DELETE", "DELETE", False),
        (307, "POST", "POST", True),
        (308, "PUT", "PUT", True),
    ],
)
def test_method_semantics(network, status, method, then, body_kept):
    opener = network(redirect(status, "/moved"), (200, {"ok": 1}))
    response = client(token="glsa_t").request(
        method, "/api/x", json_body={"a": 1} if method != "DELETE" else None
    )
    assert response.status == 200 and response.url == "http://grafana.test:3000/moved"
    (m1, _, _, b1), (m2, _, h2, b2) = opener.requests
    assert (m1, m2) == (method, then)
    if method != "DELETE":
        assert b1 == '{"a": 1}'
        assert (b2 == b1) is body_kept and (("Content-type" in h2) is body_kept)


def test_redirect_hops_are_bounded(network):
    opener = network(*(redirect(302, f"/hop{i}") for i in range(1, 5)))
    with pytest.raises(HttpError) as caught:
        client(max_redirects=3).get_json("/api/x?token=tok-secret-1")
    assert len(opener.requests) == 4 and caught.value.status == 302
    text = str(caught.value)
    assert (
        "max_redirects=3" in text and "redirected from http://grafana.test:3000/api/x?token=" + MASK in text
    )
    assert "tok-secret-1" not in text

    opener = network(redirect(302, "/elsewhere"))
    with pytest.raises(HttpError) as caught:
        client(max_redirects=0).get_json("/api/x")
    assert len(opener.requests) == 1 and "max_redirects=0" in str(caught.value)


def test_expected_redirect_status_is_returned_not_followed(network):
    opener = network(redirect(302, "http://other.test/"))
    response = client().request("GET", "/login", expected=(302,))
    assert response.status == 302 and response.headers["Location"] == "http://other.test/"
    assert len(opener.requests) == 1


def test_redirect_to_another_scheme_is_refused(network):
    opener = network(redirect(302, "file:///etc/passwd"))
    with pytest.raises(HttpError) as caught:
        client(token="glsa_t").get_json("/api/x")
    assert "non-http(s) URL file:///etc/passwd not followed" in str(caught.value)
    assert len(opener.requests) == 1


def test_errors_after_a_redirect_name_both_urls(network):
    network(redirect(302, "http://other.test/api"), (500, {"message": "boom"}))
    with pytest.raises(HttpError) as caught:
        client(username="admin", password="Adm1n-pw").get_json("/api")
    assert str(caught.value).startswith("GET http://other.test/api -> HTTP 500")
    assert caught.value.as_result()["redirected_from"] == "http://grafana.test:3000/api"


def test_retries_apply_per_hop_with_the_hop_method(network):
    opener = network(
        redirect(303, "/result"),
        (503, {"message": "starting"}),
        (200, {"done": True}),
    )
    http = client(retries=2)
    assert http.send_json("POST", "/api/v2/silences", {"x": 1}) == {"done": True}
    assert [m for m, *_ in opener.requests] == ["POST", "GET", "GET"], "the POST is never repeated"
