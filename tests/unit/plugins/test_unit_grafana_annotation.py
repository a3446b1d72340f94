"""grafana_annotation and its adg_grafana helpers against a scripted network: the requests it sends."""

from __future__ import annotations

import json
import urllib.parse

import pytest
from ansible_collections.autodealgenie.ops.plugins.module_utils import adg_grafana, adg_http

from tests.unit.plugins.ansible_module_runner import run_in_process

GRAFANA = {"url": "http://grafana.test:3000", "url_username": "admin", "url_password": "Adm1n-secret"}
T0 = 1_764_633_600_000  # 2025-12-02T00:00:00Z


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(adg_http.HttpClient, "_pause", lambda self, attempt, retry_after=None: None)


def stored(annotation_id=7, start=T0, end=T0, tags=("adg-key:k", "deploy"), text="t", **extra):
    return {
        "id": annotation_id,
        "alertId": 0,
        "dashboardId": 0,
        "dashboardUID": None,
        "panelId": 0,
        "time": start,
        "timeEnd": end,
        "text": text,
        "tags": list(tags),
        **extra,
    }


def query_of(url):
    return urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query)


def writes(opener):
    return [
        (m, urllib.parse.urlsplit(u).path, json.loads(b) if b else None)
        for m, u, _, b in opener.requests
        if m != "GET"
    ]


def test_create_looks_up_by_key_tag_then_posts_once(network):
    opener = network((200, []), (200, {"message": "Annotation added", "id": 41}))
    result = run_in_process(
        "grafana_annotation", dict(GRAFANA, key="k", text="t", tags=["deploy", "deploy "], time=T0)
    )
    assert result["changed"] and result["id"] == 41 and result["tags"] == ["adg-key:k", "deploy"]
    assert query_of(opener.requests[0][1]) == [
        ("tags", "adg-key:k"),
        ("type", "annotation"),
        ("limit", "100"),
    ]
    assert writes(opener) == [
        (
            "POST",
            "/api/annotations",
            {"text": "t", "tags": ["adg-key:k", "deploy"], "time": T0, "timeEnd": T0},
        )
    ]


def test_unchanged_sends_nothing_and_check_mode_never_writes(network):
    opener = network((200, [stored()]))
    result = run_in_process("grafana_annotation", dict(GRAFANA, key="k", text="t", tags=["deploy"], time=T0))
    assert result["changed"] is False and writes(opener) == []
    opener = network((200, [stored()]))
    check = run_in_process("grafana_annotation", dict(GRAFANA, key="k", time_end=T0 + 5000), check_mode=True)
    assert check["changed"] and check["time_end"] == T0 + 5000 and writes(opener) == []
    opener = network((200, []))
    created = run_in_process("grafana_annotation", dict(GRAFANA, key="k", text="t"), check_mode=True)
    assert created["changed"] and created["id"] is None and writes(opener) == []


def test_patch_sends_only_what_differs_and_both_times_when_they_move(network):
    opener = network((200, [stored()]), (200, {"message": "Annotation patched"}))
    run_in_process("grafana_annotation", dict(GRAFANA, key="k", text="new"))
    assert writes(opener) == [("PATCH", "/api/annotations/7", {"text": "new"})]
    # a point whose start moves stays a point: the end is sent too (Grafana would otherwise swap)
    opener = network((200, [stored()]), (200, {"message": "Annotation patched"}))
    moved = run_in_process("grafana_annotation", dict(GRAFANA, key="k", time=T0 + 1000))
    assert writes(opener) == [("PATCH", "/api/annotations/7", {"time": T0 + 1000, "timeEnd": T0 + 1000})]
    assert moved["region"] is False
    opener = network((200, [stored(end=T0 + 9000)]), (200, {"message": "Annotation patched"}))
    run_in_process("grafana_annotation", dict(GRAFANA, key="k", tags=["maintenance"]))
    assert writes(opener) == [("PATCH", "/api/annotations/7", {"tags": ["adg-key:k", "maintenance"]})]


def test_duplicates_are_an_error_but_absent_deletes_all(network):
    network((200, [stored(7), stored(8)]))
    result = run_in_process("grafana_annotation", dict(GRAFANA, key="k", text="t"))
    assert result["failed"] and "7, 8" in result["msg"]
    opener = network(
        (200, [stored(7), stored(8)]),
        (200, {"message": "Annotation deleted"}),
        (404, {"message": "Annotation not found"}),
    )
    gone = run_in_process("grafana_annotation", dict(GRAFANA, key="k", state="absent"))
    assert gone["changed"] and gone["deleted_ids"] == [7, 8] and not gone.get("failed")
    assert [w[:2] for w in writes(opener)] == [
        ("DELETE", "/api/annotations/7"),
        ("DELETE", "/api/annotations/8"),
    ]


def test_keyless_lookup_filters_by_time_and_exact_tags(network):
    opener = network((200, [stored(3, tags=["deploy", "extra"]), stored(4, tags=["deploy"])]))
    result = run_in_process("grafana_annotation", dict(GRAFANA, tags=["deploy"], time=T0, text="t"))
    assert result["changed"] is False and result["id"] == 4
    assert ("from", str(T0)) in query_of(opener.requests[0][1]) and ("to", str(T0)) in query_of(
        opener.requests[0][1]
    )


def test_warn_only_turns_failures_into_a_warning(network):
    network(*[(503, {"message": "down"})] * 4)
    result = run_in_process("grafana_annotation", dict(GRAFANA, key="k", text="t", warn_only=True))
    assert not result.get("failed") and result["changed"] is False and "503" in result["warning"]
    network(*[(503, {"message": "down"})] * 4)
    failed = run_in_process("grafana_annotation", dict(GRAFANA, key="k", text="t"))
    assert failed["failed"] and failed["status"] == 503 and "Adm1n-secret" not in json.dumps(failed)


def test_post_is_not_repeated_after_a_5xx(network):
    """A POST Grafana may have processed is never retried: a retry could store a second annotation."""
    opener = network((200, []), (502, b"Bad Gateway"))
    result = run_in_process("grafana_annotation", dict(GRAFANA, key="k", text="t"))
    assert result["failed"] and [m for m, *_ in opener.requests] == ["GET", "POST"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (T0, T0),
        (str(T0), T0),
        (float(T0), T0),
        ("2025-12-02T00:00:00Z", T0),
        ("2025-12-02T00:00:00.123456789Z", T0 + 123),  # Go's nanoseconds (Alertmanager)
        ("2025-12-02T01:30:00+01:30", T0),
        ("2025-12-01T23:00:00-0100", T0),
        ("now", 42 * 10**11),
        (None, None),
    ],
)
def test_epoch_ms_formats(value, expected):
    assert adg_grafana.epoch_ms(value, "time", 42 * 10**11) == expected


@pytest.mark.parametrize(
    "value", ["2025-12-02T00:00:00", "tomorrow", 1764633600, True, [1], "2025-13-02T00:00:00Z"]
)
def test_epoch_ms_refuses_ambiguous_or_invalid(value):
    with pytest.raises(adg_grafana.GrafanaError):
        adg_grafana.epoch_ms(value, "time", 0)


def test_tags_are_normalised_as_grafana_stores_them():
    assert adg_grafana.annotation_tags([" deploy ", "release: 1.0 ", "release:1.0", "empty:"]) == [
        "deploy",
        "release:1.0",
        "empty",
    ]
    for bad in ("a:b:c", " :x", ""):
        with pytest.raises(adg_grafana.GrafanaError):
            adg_grafana.annotation_tag(bad)
    assert adg_grafana.iso_from_ms(T0 + 5) == "2025-12-02T00:00:00.005Z"
