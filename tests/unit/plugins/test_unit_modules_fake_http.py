"""Modules run in-process against a scripted fake network: races, read-only objects, 5xx, bad JSON."""

from __future__ import annotations

import json

import pytest
from ansible_collections.autodealgenie.ops.plugins.module_utils import adg_http

from tests.unit.plugins.ansible_module_runner import run_in_process

GRAFANA = {"url": "http://grafana.test:3000", "url_username": "admin", "url_password": "Adm1n-secret"}


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    """Backoff sleeps are skipped (the fake network of conftest.py answers at once)."""
    monkeypatch.setattr(adg_http.HttpClient, "_pause", lambda self, attempt, retry_after=None: None)


def stored_dashboard(version, title="old"):
    return {
        "dashboard": {"id": 5, "uid": "d", "title": title, "version": version, "panels": []},
        "meta": {"folderUid": "", "provisioned": False, "url": "/d/d/x"},
    }


DESIRED = {"uid": "d", "title": "new", "panels": []}


def test_dashboard_concurrent_edit_is_reread_and_saved_on_top(network):
    opener = network(
        (200, stored_dashboard(3)),
        (412, {"status": "version-mismatch", "message": "The dashboard has been changed by someone else"}),
        (200, stored_dashboard(4, "someone else")),
        (200, {"id": 5, "uid": "d", "url": "/d/d/new", "status": "success", "version": 5}),
    )
    result = run_in_process("grafana_dashboard", dict(GRAFANA, dashboard=DESIRED))
    assert result["changed"] and result["version"] == 5 and not result.get("failed")
    posts = [json.loads(body) for method, _, _, body in opener.requests if method == "POST"]
    assert [p["dashboard"]["version"] for p in posts] == [3, 4]
    assert all(p["folderUid"] == "" and p["overwrite"] is False and p["dashboard"]["id"] == 5 for p in posts)


def test_dashboard_persistent_conflict_fails_clearly(network):
    conflict = (412, {"status": "version-mismatch", "message": "changed"})
    network((200, stored_dashboard(3)), conflict, (200, stored_dashboard(4, "x")), conflict)
    result = run_in_process("grafana_dashboard", dict(GRAFANA, dashboard=DESIRED))
    assert result["failed"] and "keeps changing" in result["msg"] and result["status"] == 412


def test_dashboard_name_exists_is_explained(network):
    network(
        (404, {"message": "Dashboard not found"}),
        (
            412,
            {
                "status": "name-exists",
                "message": "A dashboard with the same name in the folder already exists",
            },
        ),
    )
    result = run_in_process("grafana_dashboard", dict(GRAFANA, dashboard=DESIRED))
    assert result["failed"] and "another dashboard titled 'new'" in result["msg"]


def test_dashboard_overwrite_is_sent_when_asked(network):
    opener = network(
        (200, stored_dashboard(3)), (200, {"id": 5, "uid": "d", "url": "/d/d/new", "version": 4})
    )
    run_in_process("grafana_dashboard", dict(GRAFANA, dashboard=DESIRED, overwrite=True))
    assert json.loads(opener.requests[1][3])["overwrite"] is True


def test_grafana_5xx_is_retried_then_succeeds(network):
    opener = network(
        (502, b"Bad Gateway"),
        (503, {"message": "starting"}),
        (404, {"message": "folder not found"}),
        (200, {"id": 1, "uid": "f", "title": "F", "url": "/dashboards/f/f/f", "version": 1}),
    )
    result = run_in_process("grafana_folder", dict(GRAFANA, uid="f", title="F"))
    assert result["changed"] and result["version"] == 1
    assert [m for m, *_ in opener.requests] == ["GET", "GET", "GET", "POST"]


def test_grafana_malformed_json_fails_with_request_details(network):
    network((200, b"<html>login page</html>"))
    result = run_in_process("grafana_folder", dict(GRAFANA, uid="f", title="F"))
    assert result["failed"] and result["method"] == "GET"
    assert result["url"] == "http://grafana.test:3000/api/folders/f" and "invalid JSON" in result["msg"]


def test_grafana_auth_failure_never_leaks_secrets(network):
    network((401, {"message": "Invalid username or password for admin:Adm1n-secret"}))
    result = run_in_process(
        "grafana_datasource",
        dict(GRAFANA, uid="p", name="P", type="prometheus", secure_json_data={"password": "ds-pass-123"}),
    )
    assert result["failed"] and result["status"] == 401
    dumped = json.dumps(result)
    assert "Adm1n-secret" not in dumped and "ds-pass-123" not in dumped


def stored_datasource(**fields):
    """A datasource as Grafana returns it, uid p at version 2, not provisioned."""
    stored = {
        "id": 1,
        "uid": "p",
        "name": "P",
        "type": "prometheus",
        "access": "proxy",
        "url": "http://old",
        "jsonData": {},
        "secureJsonFields": {},
        "version": 2,
        "readOnly": False,
    }
    stored.update(fields)
    return stored


def test_datasource_403_on_update_is_reported_as_read_only(network):
    stored = stored_datasource()
    network((200, stored), (403, {"message": "Cannot update read-only data source"}))
    result = run_in_process(
        "grafana_datasource", dict(GRAFANA, uid="p", name="P", type="prometheus", datasource_url="http://new")
    )
    assert result["failed"] and "provisioned and read-only" in result["msg"] and result["read_only"] is True


def test_datasource_put_sends_full_object_with_merged_json_data(network):
    stored = stored_datasource(
        user="",
        database="",
        basicAuth=False,
        basicAuthUser="",
        withCredentials=False,
        isDefault=True,
        jsonData={"httpMethod": "POST", "serverAdded": 1},
        secureJsonFields={"password": True},
    )
    opener = network((200, stored), (200, {"datasource": dict(stored, version=3), "id": 1}))
    result = run_in_process(
        "grafana_datasource",
        dict(
            GRAFANA,
            uid="p",
            name="P",
            type="prometheus",
            datasource_url="http://new",
            is_default=True,
            json_data={"httpMethod": "GET"},
            secure_json_data={"password": "x-secret"},
        ),
    )
    assert result["changed"] and result["differences"] == ["url", "jsonData.httpMethod"]
    body = json.loads(opener.requests[1][3])
    assert opener.requests[1][0] == "PUT" and opener.requests[1][1].endswith("/api/datasources/uid/p")
    assert body["jsonData"] == {"httpMethod": "GET", "serverAdded": 1} and body["version"] == 2
    assert body["secureJsonData"] == {}, "stored secrets are not re-sent unless update_secrets"
    assert {"name", "type", "access", "url", "user", "database", "basicAuth", "isDefault"} <= set(body)


def test_prometheus_error_envelope_is_readable(network):
    network(
        (200, {"status": "success", "data": {"activeTargets": []}}),
        (422, {"status": "error", "errorType": "execution", "error": "query timed out"}),
    )
    result = run_in_process(
        "prometheus_verify", {"url": "http://prom.test:9090", "wait_timeout": 0, "check_alertmanagers": False}
    )
    assert result["failed"] and "execution: query timed out" in result["msg"]


def test_silence_post_is_never_retried(network):
    opener = network((200, []), (500, {"message": "boom"}))
    result = run_in_process(
        "alertmanager_silence",
        {"url": "http://am.test:9093", "matchers": ['a="b"'], "duration": "1h", "comment": "c"},
    )
    assert result["failed"] and len(opener.requests) == 2
