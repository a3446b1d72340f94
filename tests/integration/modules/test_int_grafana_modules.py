"""grafana_folder / grafana_dashboard / grafana_datasource against the Grafana API double."""

from __future__ import annotations

import json

from tests.integration.modules.adg_stack import ADMIN_PASSWORD, TOKEN
from tests.support.monitoring import http_json


def dashboard_model(uid="adg-test", title="ADG Test", expr='up{job="prometheus"}', **extra):
    model = {
        "uid": uid,
        "title": title,
        "tags": ["autodealgenie"],
        "schemaVersion": 39,
        "time": {"from": "now-1h", "to": "now"},
        "panels": [
            {
                "id": 1,
                "type": "timeseries",
                "title": "Up",
                "gridPos": {"x": 0, "y": 0, "w": 12, "h": 8},
                "datasource": {"type": "prometheus", "uid": "prometheus"},
                "targets": [{"refId": "A", "expr": expr}],
            }
        ],
    }
    model.update(extra)
    return model


def api(grafana, path, data=None, method=None):
    import base64

    auth = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    return http_json(grafana.url + path, data=data, method=method, headers={"Authorization": f"Basic {auth}"})


# -- folders --------------------------------------------------------------------------------------
def test_folder_create_rename_idempotent_and_safe_delete(run, grafana, grafana_args):
    args = dict(grafana_args, uid="adg", title="AutoDealGenie")
    check = run("grafana_folder", args, check_mode=True)
    assert check["changed"] and check["id"] is None
    assert run("grafana_folder", dict(grafana_args, uid="adg", state="absent"))["changed"] is False

    first = run("grafana_folder", args)
    assert first["changed"] and first["uid"] == "adg" and first["version"] == 1
    assert run("grafana_folder", args)["changed"] is False

    renamed = run("grafana_folder", dict(args, title="AutoDealGenie Ops"), diff=True)
    assert renamed["changed"] and renamed["version"] == 2
    assert renamed["diff"] == {"before": {"title": "AutoDealGenie"}, "after": {"title": "AutoDealGenie Ops"}}
    assert api(grafana, "/api/folders/adg")["title"] == "AutoDealGenie Ops"

    run("grafana_dashboard", dict(grafana_args, dashboard=dashboard_model(), folder_uid="adg"))
    refused = run("grafana_folder", dict(grafana_args, uid="adg", state="absent"))
    assert refused["failed"] and "adg-test" in refused["msg"] and "force" in refused["msg"]
    deleted = run("grafana_folder", dict(grafana_args, uid="adg", state="absent", force=True))
    assert deleted["changed"] and deleted["deleted_dashboards"] == ["adg-test"]
    assert run("grafana_folder", dict(grafana_args, uid="adg", state="absent"))["changed"] is False


def test_folder_title_clash_is_explained(run, grafana_args):
    run("grafana_folder", dict(grafana_args, uid="one", title="Same"))
    result = run("grafana_folder", dict(grafana_args, uid="two", title="Same"))
    assert result["failed"] and "uid=two" in result["msg"] and "another uid" in result["msg"]


# -- dashboards -----------------------------------------------------------------------------------
def test_dashboard_via_ansible_creates_folder_then_is_idempotent(run_ansible, grafana, grafana_args):
    """The real way: `ansible -m autodealgenie.ops.grafana_dashboard` resolves OUR module from the
    collections path and runs it under /usr/bin/python3 with only the standard library (and the
    ansible.module_utils it ships with)."""
    args = dict(
        grafana_args,
        dashboard=dashboard_model(),
        folder_uid="adg",
        folder_title="AutoDealGenie",
        create_folder=True,
    )
    first = run_ansible("autodealgenie.ops.grafana_dashboard", args)
    assert first.get("failed") is not True, first
    assert first["changed"] and first["folder_created"] and first["version"] == 1
    assert first["url"] == "/d/adg-test/adg-test"
    second = run_ansible("autodealgenie.ops.grafana_dashboard", args)
    assert second["changed"] is False and second["version"] == 1 and second["folder_created"] is False
    stored = api(grafana, "/api/dashboards/uid/adg-test")
    assert stored["meta"]["folderUid"] == "adg" and stored["meta"]["folderTitle"] == "AutoDealGenie"


def test_dashboard_update_uses_stored_version_after_ui_edit(run, grafana, grafana_args):
    args = dict(grafana_args, dashboard=dashboard_model(), folder_uid="adg", create_folder=True)
    assert run("grafana_dashboard", args)["version"] == 1
    # Someone edits the dashboard in the UI twice: the stored version is now 3.
    stored = api(grafana, "/api/dashboards/uid/adg-test")["dashboard"]
    for title in ("edited once", "edited twice"):
        stored = dict(stored, title=title)
        saved = api(grafana, "/api/dashboards/db", {"dashboard": stored, "folderUid": "adg"}, "POST")
        stored["version"] = saved["version"]
    result = run("grafana_dashboard", args, diff=True)
    assert result["changed"] and result["previous_version"] == 3 and result["version"] == 4
    assert (
        '"title": "edited twice"' in result["diff"]["before"]
        and '"title": "ADG Test"' in result["diff"]["after"]
    )
    assert api(grafana, "/api/dashboards/uid/adg-test")["dashboard"]["title"] == "ADG Test"
    assert run("grafana_dashboard", args)["changed"] is False


def test_dashboard_server_set_fields_are_ignored(run, grafana_args, tmp_path):
    exported = dashboard_model(id=42, version=17, iteration=1699999999999, gnetId=None)
    path = tmp_path / "exported.json"
    path.write_text(json.dumps({"dashboard": exported, "meta": {"folderUid": "x"}}))
    args = dict(grafana_args, path=str(path))
    assert run("grafana_dashboard", args)["changed"]
    assert run("grafana_dashboard", args)["changed"] is False


def test_dashboard_check_mode_diff_and_real_change(run, grafana, grafana_args):
    base = dict(grafana_args, folder_uid="adg", create_folder=True)
    run("grafana_dashboard", dict(base, dashboard=dashboard_model()))
    changed = dict(base, dashboard=dashboard_model(expr='up{job="grafana"}'))
    preview = run("grafana_dashboard", changed, check_mode=True, diff=True)
    assert preview["changed"] and preview["version"] == 1
    assert (
        'job=\\"prometheus\\"' in preview["diff"]["before"]
        and 'job=\\"grafana\\"' in preview["diff"]["after"]
    )
    assert api(grafana, "/api/dashboards/uid/adg-test")["dashboard"]["version"] == 1
    applied = run("grafana_dashboard", changed)
    assert applied["changed"] and applied["version"] == 2


def test_dashboard_moves_between_folders_and_keeps_folder_on_update(run, grafana, grafana_args):
    run(
        "grafana_dashboard",
        dict(grafana_args, dashboard=dashboard_model(), folder_uid="a", create_folder=True),
    )
    moved = run(
        "grafana_dashboard",
        dict(grafana_args, dashboard=dashboard_model(), folder_uid="b", create_folder=True),
    )
    assert moved["changed"] and moved["folder_uid"] == "b"
    assert api(grafana, "/api/dashboards/uid/adg-test")["meta"]["folderUid"] == "b"
    to_root = run("grafana_dashboard", dict(grafana_args, dashboard=dashboard_model()))
    assert to_root["changed"] and api(grafana, "/api/dashboards/uid/adg-test")["meta"]["folderUid"] == ""


def test_dashboard_bad_input_fails_before_any_change(run, grafana, grafana_args):
    no_uid = dashboard_model()
    del no_uid["uid"]
    result = run("grafana_dashboard", dict(grafana_args, dashboard=no_uid))
    assert result["failed"] and "no uid" in result["msg"]
    missing_folder = run(
        "grafana_dashboard", dict(grafana_args, dashboard=dashboard_model(), folder_uid="nope")
    )
    assert missing_folder["failed"] and "folder nope does not exist" in missing_folder["msg"]
    bad_json = run("grafana_dashboard", dict(grafana_args, dashboard="{not json"))
    assert bad_json["failed"] and "not valid JSON" in bad_json["msg"]
    assert api(grafana, "/api/search") == []


def test_dashboard_absent_and_provisioned(run, tmp_path, grafana_args):
    from tests.support.monitoring import GrafanaDouble

    run("grafana_dashboard", dict(grafana_args, dashboard=dashboard_model()))
    gone = run("grafana_dashboard", dict(grafana_args, uid="adg-test", state="absent"), check_mode=True)
    assert gone["changed"]
    assert run("grafana_dashboard", dict(grafana_args, uid="adg-test", state="absent"))["changed"]
    assert run("grafana_dashboard", dict(grafana_args, uid="adg-test", state="absent"))["changed"] is False

    provisioned = {"dashboards": [{"dashboard": dashboard_model(uid="prov"), "folderUid": ""}]}
    with GrafanaDouble(tmp_path / "prov", admin_password=ADMIN_PASSWORD, provisioning=provisioned) as double:
        args = dict(grafana_args, url=double.url, dashboard=dashboard_model(uid="prov", title="changed"))
        result = run("grafana_dashboard", args)
        assert result["failed"] and "provisioned" in result["msg"] and "provisioning file" in result["msg"]


def test_token_auth_and_auth_failure_masks_secret(run, grafana):
    ok = run("grafana_folder", {"url": grafana.url, "token": TOKEN, "uid": "tok", "title": "Token"})
    assert ok["changed"]
    bad = run(
        "grafana_folder",
        {
            "url": grafana.url,
            "url_username": "admin",
            "url_password": "Wr0ng-Secret!",
            "uid": "x",
            "title": "X",
            "retries": 0,
        },
    )
    assert bad["failed"] and bad["status"] == 401 and "Invalid username or password" in bad["msg"]
    assert "Wr0ng-Secret!" not in json.dumps(bad)


# -- datasources ----------------------------------------------------------------------------------
def ds_args(grafana_args, **extra):
    args = dict(
        grafana_args,
        uid="prometheus",
        name="Prometheus",
        type="prometheus",
        datasource_url="http://127.0.0.1:9090",
        is_default=True,
        json_data={"timeInterval": "15s", "httpMethod": "POST"},
    )
    args.update(extra)
    return args


def test_datasource_lifecycle_and_secrets(run, grafana, grafana_args):
    args = ds_args(
        grafana_args,
        basic_auth=True,
        basic_auth_user="grafana",
        secure_json_data={"basicAuthPassword": "ds-S3cret-value"},
    )
    created = run("grafana_datasource", args)
    assert created["changed"] and created["secrets_sent"] == ["basicAuthPassword"]
    assert created["secure_json_fields"] == ["basicAuthPassword"] and created["secrets_compared"] is False
    assert "ds-S3cret-value" not in json.dumps(created)

    again = run("grafana_datasource", args)
    assert again["changed"] is False and again["secrets_sent"] == []
    assert "cannot be compared" in again["secrets_note"] and "update_secrets" in again["secrets_note"]

    rotated = run("grafana_datasource", dict(args, update_secrets=True))
    assert rotated["changed"] and rotated["secrets_sent"] == ["basicAuthPassword"]

    # A key the server added to jsonData is neither a difference nor lost on update.
    stored = api(grafana, "/api/datasources/uid/prometheus")
    api(
        grafana,
        "/api/datasources/uid/prometheus",
        dict(stored, jsonData=dict(stored["jsonData"], extra="kept")),
        "PUT",
    )
    assert run("grafana_datasource", args)["changed"] is False
    moved = run("grafana_datasource", dict(args, datasource_url="http://127.0.0.1:9091"), diff=True)
    assert moved["changed"] and moved["differences"] == ["url"]
    after = api(grafana, "/api/datasources/uid/prometheus")
    assert after["url"] == "http://127.0.0.1:9091" and after["jsonData"]["extra"] == "kept"
    assert after["secureJsonFields"] == {"basicAuthPassword": True}

    assert run("grafana_datasource", dict(grafana_args, uid="prometheus", state="absent"))["changed"]
    assert run("grafana_datasource", dict(grafana_args, uid="prometheus", state="absent"))["changed"] is False


def test_datasource_check_mode_and_name_clash(run, grafana, grafana_args):
    preview = run("grafana_datasource", ds_args(grafana_args), check_mode=True)
    assert preview["changed"] and api(grafana, "/api/datasources") == []
    run("grafana_datasource", ds_args(grafana_args))
    clash = run("grafana_datasource", ds_args(grafana_args, uid="other"))
    assert clash["failed"] and "already exists with uid 'prometheus'" in clash["msg"]


def test_provisioned_datasource_reported_clearly(run, tmp_path, grafana_args):
    from tests.support.monitoring import GrafanaDouble

    prov = {
        "datasources": [
            {
                "uid": "prometheus",
                "name": "Prometheus",
                "type": "prometheus",
                "url": "http://127.0.0.1:9090",
                "access": "proxy",
                "isDefault": True,
                "jsonData": {"timeInterval": "15s", "httpMethod": "POST"},
            }
        ]
    }
    with GrafanaDouble(tmp_path / "prov", admin_password=ADMIN_PASSWORD, provisioning=prov) as double:
        args = ds_args(dict(grafana_args, url=double.url))
        unchanged = run("grafana_datasource", args)
        assert unchanged["changed"] is False and unchanged["read_only"] is True
        result = run("grafana_datasource", dict(args, datasource_url="http://127.0.0.1:9999"))
        assert (
            result["failed"] and "provisioned and read-only" in result["msg"] and "403" not in result["msg"]
        )
        delete = run(
            "grafana_datasource", dict(grafana_args, url=double.url, uid="prometheus", state="absent")
        )
        assert delete["failed"] and "cannot be deleted" in delete["msg"]
