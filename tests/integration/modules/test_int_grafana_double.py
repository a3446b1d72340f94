"""The Grafana API double behaves like Grafana's documented API where the project relies on it."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import urllib.error

import pytest

from tests.integration.modules.adg_stack import ADMIN_PASSWORD, TOKEN
from tests.support.monitoring import GRAFANA_DOUBLE, GrafanaDouble, http_json


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


ADMIN = basic("admin", ADMIN_PASSWORD)


def call(grafana, path, data=None, method=None, headers=ADMIN):
    """(status, JSON body) without raising on HTTP errors."""
    try:
        return 200, http_json(grafana.url + path, data=data, method=method, headers=headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_health_metrics_and_loud_banner(grafana):
    status, health = call(grafana, "/api/health", headers={})
    assert status == 200 and health["database"] == "ok" and health["version"]
    import urllib.request

    with urllib.request.urlopen(grafana.url + "/metrics") as response:  # noqa: S310 - loopback
        text = response.read().decode()
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert response.headers["X-Test-Double"] == "grafana-api"
    assert "grafana_build_info{" in text and "grafana_test_double 1" in text
    assert "NOT GRAFANA" in grafana.log_path.read_text()


def test_auth_basic_bearer_and_roles(grafana):
    assert call(grafana, "/api/user", headers={})[0] == 401
    assert (
        call(grafana, "/api/user", headers=basic("admin", "wrong"))[1]["message"]
        == "Invalid username or password"
    )
    assert (
        call(grafana, "/api/user", headers={"Authorization": "Bearer nope"})[1]["message"]
        == "Invalid API key"
    )
    assert call(grafana, "/api/folders", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200

    status, account = call(grafana, "/api/serviceaccounts", {"name": "viewer", "role": "Viewer"}, "POST")
    assert status == 200 and account["login"] == "sa-viewer"
    status, token = call(grafana, f"/api/serviceaccounts/{account['id']}/tokens", {"name": "t"}, "POST")
    assert token["key"].startswith("glsa_")
    viewer = {"Authorization": f"Bearer {token['key']}"}
    assert call(grafana, "/api/search", headers=viewer)[0] == 200
    assert call(grafana, "/api/folders", {"title": "x"}, "POST", headers=viewer)[0] == 403
    status, key = call(grafana, "/api/auth/keys", {"name": "legacy", "role": "Editor"}, "POST")
    assert status == 200
    assert (
        call(
            grafana, "/api/folders", {"title": "y"}, "POST", headers={"Authorization": f"Bearer {key['key']}"}
        )[0]
        == 200
    )
    # server-admin endpoints need basic auth from a server admin
    assert (
        call(grafana, "/api/users/lookup?loginOrEmail=admin", headers={"Authorization": f"Bearer {TOKEN}"})[0]
        == 403
    )


def test_admin_password_enforcement_endpoints(grafana):
    status, user = call(grafana, "/api/users/lookup?loginOrEmail=admin")
    assert status == 200 and user["isGrafanaAdmin"] is True
    assert call(grafana, "/api/users/lookup?loginOrEmail=ghost")[0] == 404
    assert call(grafana, f"/api/admin/users/{user['id']}/password", {"password": "abc"}, "PUT")[0] == 400
    status, body = call(
        grafana, f"/api/admin/users/{user['id']}/password", {"password": "N3w-password"}, "PUT"
    )
    assert (status, body["message"]) == (200, "User password updated")
    assert call(grafana, "/api/user")[0] == 401, "the old password no longer works"
    new = basic("admin", "N3w-password")
    assert call(grafana, "/api/user", headers=new)[1]["login"] == "admin"
    bad = {"oldPassword": "x", "newPassword": "again-1", "confirmNew": "again-1"}
    assert call(grafana, "/api/user/password", bad, "PUT", headers=new)[0] == 401
    good = dict(bad, oldPassword="N3w-password")
    assert call(grafana, "/api/user/password", good, "PUT", headers=new)[0] == 200


def test_state_survives_restart_and_startup_password_applies_only_once(tmp_path):
    with GrafanaDouble(tmp_path / "g", admin_password="first-Passw0rd") as double:
        call(
            double,
            "/api/folders",
            {"uid": "keep", "title": "Keep"},
            "POST",
            headers=basic("admin", "first-Passw0rd"),
        )
        user = call(double, "/api/users/lookup?loginOrEmail=admin", headers=basic("admin", "first-Passw0rd"))[
            1
        ]
        call(
            double,
            f"/api/admin/users/{user['id']}/password",
            {"password": "changed-Passw0rd"},
            "PUT",
            headers=basic("admin", "first-Passw0rd"),
        )
    state = tmp_path / "g" / "state.json"
    assert oct(state.stat().st_mode & 0o777) == "0o600"
    # restarted with another start-up password: like Grafana, the existing admin keeps its password
    with GrafanaDouble(tmp_path / "g", admin_password="other-Passw0rd") as double:
        assert call(double, "/api/user", headers=basic("admin", "other-Passw0rd"))[0] == 401
        assert (
            call(double, "/api/folders/keep", headers=basic("admin", "changed-Passw0rd"))[1]["title"]
            == "Keep"
        )
        assert "start-up admin password is ignored" in double.log_path.read_text()


def test_folder_and_dashboard_semantics(grafana):
    assert call(grafana, "/api/folders", {"uid": "f", "title": "F"}, "POST")[0] == 200
    assert call(grafana, "/api/folders", {"uid": "f", "title": "Other"}, "POST")[0] == 409
    assert call(grafana, "/api/folders/nope")[1] == {"message": "folder not found", "status": "not-found"}
    assert (
        call(grafana, "/api/folders/f", {"title": "G", "version": 7}, "PUT")[1]["status"]
        == "version-mismatch"
    )
    model = {"uid": "d", "title": "D", "panels": []}
    status, saved = call(grafana, "/api/dashboards/db", {"dashboard": model, "folderUid": "f"}, "POST")
    assert (status, saved["version"], saved["url"]) == (200, 1, "/d/d/d")
    status, body = call(grafana, "/api/dashboards/db", {"dashboard": model, "folderUid": "f"}, "POST")
    assert (status, body["status"]) == (412, "version-mismatch"), "an update without version needs overwrite"
    assert (
        call(grafana, "/api/dashboards/db", {"dashboard": dict(model, version=1), "folderUid": "f"}, "POST")[
            1
        ]["version"]
        == 2
    )
    assert (
        call(
            grafana, "/api/dashboards/db", {"dashboard": model, "folderUid": "f", "overwrite": True}, "POST"
        )[1]["version"]
        == 3
    )
    clash = {"uid": "d2", "title": "D", "panels": []}
    assert (
        call(grafana, "/api/dashboards/db", {"dashboard": clash, "folderUid": "f"}, "POST")[1]["status"]
        == "name-exists"
    )
    assert call(grafana, "/api/dashboards/db", {"dashboard": clash, "folderUid": "missing"}, "POST")[0] == 400
    no_folder = call(grafana, "/api/dashboards/db", {"dashboard": dict(clash, uid="d3")}, "POST")[1]
    assert no_folder["folderUid"] == "", "no folderUid means the General folder"
    assert call(grafana, "/api/dashboards/uid/zzz") == (404, {"message": "Dashboard not found"})
    assert [h["uid"] for h in call(grafana, "/api/search?type=dash-db&folderUIDs=f")[1]] == ["d"]
    assert call(grafana, "/api/folders/f", method="DELETE")[1]["message"] == "Folder deleted"
    assert call(grafana, "/api/dashboards/uid/d")[0] == 404, "deleting a folder deletes its dashboards"


def test_datasource_semantics(grafana):
    body = {
        "uid": "p",
        "name": "P",
        "type": "prometheus",
        "url": "http://127.0.0.1:9090",
        "access": "proxy",
        "secureJsonData": {"password": "s3cret"},
    }
    status, created = call(grafana, "/api/datasources", body, "POST")
    assert status == 200 and created["message"] == "Datasource added"
    assert created["datasource"]["secureJsonFields"] == {"password": True}
    assert "s3cret" not in json.dumps(call(grafana, "/api/datasources/uid/p")[1])
    assert (
        call(grafana, "/api/datasources", dict(body, uid="q"), "POST")[1]["message"]
        == "data source with the same name already exists"
    )
    assert (
        call(grafana, "/api/datasources", dict(body, name="Q"), "POST")[1]["message"]
        == "data source with the same uid already exists"
    )
    stale = dict(body, version=0, secureJsonData=None)
    assert call(grafana, "/api/datasources/uid/p", dict(stale, url="http://x:1"), "PUT")[0] == 200
    assert call(grafana, "/api/datasources/uid/p", dict(stale, version=1), "PUT")[0] == 409
    assert call(grafana, "/api/datasources/uid/p")[1]["secureJsonFields"] == {"password": True}, (
        "secrets kept"
    )
    assert call(grafana, "/api/datasources/id/P")[1] == {"id": created["id"]}
    assert call(grafana, "/api/datasources/uid/p", method="DELETE")[1]["message"] == "Data source deleted"
    assert call(grafana, "/api/datasources/uid/p") == (404, {"message": "Data source not found"})


def test_provisioned_datasource_is_read_only(tmp_path):
    prov = {"datasources": [{"uid": "p", "name": "P", "type": "prometheus", "url": "http://x:9090"}]}
    with GrafanaDouble(tmp_path / "g", admin_password=ADMIN_PASSWORD, provisioning=prov) as double:
        assert call(double, "/api/datasources/uid/p")[1]["readOnly"] is True
        status, body = call(double, "/api/datasources/uid/p", {"name": "P", "type": "prometheus"}, "PUT")
        assert (status, body["message"]) == (403, "Cannot update read-only data source")


@pytest.mark.parametrize("argv", [["--help"]])
def test_command_line(argv):
    run = subprocess.run(
        [sys.executable, str(GRAFANA_DOUBLE), *argv], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0 and "--admin-password-file" in run.stdout and "NOT Grafana" in run.stdout
