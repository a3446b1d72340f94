"""The modules' HTTP against real servers on loopback: redirects between two origins (two ports of
127.0.0.1) never carry credentials to the other origin, and TLS with a CA bundle and a client
certificate goes through ansible.module_utils.urls."""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

LOOPBACK = "127.0.0.1"
PASSWORD = "redirect-Adm1n-pw"
TOKEN = "glsa_redirect_integration_token"
FOLDER = {"id": 7, "uid": "adg", "title": "AutoDealGenie", "url": "/dashboards/f/adg/x", "version": 3}
CREDENTIALS = {
    "basic": (
        {"url_username": "admin", "url_password": PASSWORD},
        "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode(),
    ),
    "token": ({"token": TOKEN}, f"Bearer {TOKEN}"),
}


class Server:
    """A loopback HTTP(S) server that records every request and answers with ``route(path, headers)``
    -> (status, headers, body)."""

    def __init__(self, route, tls=None):
        self.requests = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))  # drain the request body
                peer = self.connection.getpeercert() if tls else None
                owner.requests.append(
                    {"method": self.command, "path": self.path, "headers": dict(self.headers), "peer": peer}
                )
                status, headers, payload = route(self.path, self.headers)
                raw = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        if tls:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = f"{'https' if tls else 'http'}://{LOOPBACK}:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def authorizations(self):
        return [r["headers"].get("Authorization") for r in self.requests]


def folder_api(path, headers, require=None):
    if path != "/api/folders/adg":
        return 404, {}, {"message": "not found"}
    if require and headers.get("Authorization") != require:
        return 401, {}, {"message": "Unauthorized"}
    return 200, {}, FOLDER


@pytest.fixture
def origins():
    """Origin B (anything: it records what it got) and origin A, which redirects /cross/* to B, /same/*
    to itself, and serves the folder API only to authenticated requests."""
    expected_auth = {}
    with Server(lambda path, headers: folder_api(path, headers)) as other:

        def route_a(path, headers):
            if path.startswith("/cross/"):
                # A session cookie is a credential too: cookies are not port-scoped, so none is kept.
                cookie = "grafana_session=cookie-s3cr3t; Path=/"
                return 302, {"Location": other.url + path[len("/cross") :], "Set-Cookie": cookie}, None
            if path.startswith("/same/"):
                return 302, {"Location": path[len("/same") :]}, None
            return folder_api(path, headers, require=expected_auth["value"])

        with Server(route_a) as first:
            yield first, other, expected_auth


@pytest.mark.parametrize("kind", sorted(CREDENTIALS))
def test_cross_origin_redirect_drops_credentials(run, origins, kind):
    first, other, expected_auth = origins
    options, header = CREDENTIALS[kind]
    expected_auth["value"] = header
    args = dict(options, url=first.url + "/cross", uid="adg", title="AutoDealGenie", retries=0)
    result = run("grafana_folder", args)
    assert result.get("failed") is not True and result["changed"] is False and result["version"] == 3, result
    assert [r["path"] for r in first.requests] == ["/cross/api/folders/adg"]
    assert first.authorizations() == [header]
    assert [r["path"] for r in other.requests] == ["/api/folders/adg"]
    assert other.authorizations() == [None], f"{kind} credentials reached the other origin"
    assert "Cookie" not in other.requests[0]["headers"]
    seen = json.dumps(other.requests)
    assert PASSWORD not in seen and TOKEN not in seen and "cookie-s3cr3t" not in seen


@pytest.mark.parametrize("kind", sorted(CREDENTIALS))
def test_same_origin_redirect_keeps_credentials(run, origins, kind):
    first, other, expected_auth = origins
    options, header = CREDENTIALS[kind]
    expected_auth["value"] = header
    args = dict(options, url=first.url + "/same", uid="adg", title="AutoDealGenie", retries=0)
    result = run("grafana_folder", args)
    assert result.get("failed") is not True and result["uid"] == "adg", result
    assert [r["path"] for r in first.requests] == ["/same/api/folders/adg", "/api/folders/adg"]
    assert first.authorizations() == [header, header]
    assert other.requests == []


def test_cross_origin_redirect_drops_credentials_in_a_real_module_run(run_ansible, origins):
    """Same, through `ansible -m` (AnsiballZ payload with ansible.module_utils.urls, /usr/bin/python3)."""
    first, other, expected_auth = origins
    options, header = CREDENTIALS["basic"]
    expected_auth["value"] = header
    args = dict(options, url=first.url + "/cross", uid="adg", title="AutoDealGenie", retries=0)
    result = run_ansible("autodealgenie.ops.grafana_folder", args)
    assert result.get("failed") is not True and result["version"] == 3, result
    assert first.authorizations() == [header] and other.authorizations() == [None]


# -- TLS: CA bundle and client certificate -----------------------------------------------------------
def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A throw-away CA, a server certificate for 127.0.0.1 and a client certificate, all from openssl."""
    base = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=adg-test-ca",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=base)  # fmt: skip
    (base / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, cn in (("server", "127.0.0.1"), ("client", "adg-client")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=base)  # fmt: skip
        extra = ["-extfile", "server.ext"] if name == "server" else []
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "1", "-out", f"{name}.pem", *extra, cwd=base)  # fmt: skip
    return base


@pytest.fixture
def mtls_server(pki):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki / "server.pem", pki / "server.key")
    context.load_verify_locations(pki / "ca.pem")
    context.verify_mode = ssl.CERT_REQUIRED
    with Server(lambda path, headers: folder_api(path, headers), tls=context) as server:
        yield server


def test_client_certificate_and_ca_path_reach_the_server(run, pki, mtls_server):
    args = {
        "url": mtls_server.url,
        "uid": "adg",
        "title": "AutoDealGenie",
        "ca_path": str(pki / "ca.pem"),
        "client_cert": str(pki / "client.pem"),
        "client_key": str(pki / "client.key"),
        "retries": 0,
    }
    result = run("grafana_folder", args)
    assert result.get("failed") is not True and result["version"] == 3, result
    (request,) = mtls_server.requests
    subject = dict(item for rdn in request["peer"]["subject"] for item in rdn)
    assert subject["commonName"] == "adg-client"

    no_client_cert = run("grafana_folder", {k: v for k, v in args.items() if not k.startswith("client_")})
    assert no_client_cert["failed"] and no_client_cert["status"] is None
    untrusted = run("grafana_folder", {k: v for k, v in args.items() if k != "ca_path"})
    assert untrusted["failed"] and "CERTIFICATE_VERIFY_FAILED" in untrusted["msg"]
    assert len(mtls_server.requests) == 1, "no request got through without a client certificate or trust"
