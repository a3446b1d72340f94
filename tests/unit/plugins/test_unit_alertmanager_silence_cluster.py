"""alertmanager_silence's verify_urls: one write, then every other Alertmanager of the cluster must
show the result (gossip) before the module returns (issue 12, the monitoring pair)."""

from __future__ import annotations

import json

import pytest
from ansible_collections.autodealgenie.ops.plugins.module_utils import adg_http

from tests.unit.plugins.ansible_module_runner import run_in_process

AM1 = "http://am1.test:9093"
AM2 = "http://am2.test:9093"
BASE = {"url": AM1, "matchers": ['instance="app1"'], "duration": "1h", "comment": "upgrade"}


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(adg_http.HttpClient, "_pause", lambda self, attempt, retry_after=None: None)
    monkeypatch.setattr("time.sleep", lambda seconds: None)


def stored(ends_at, state="active", silence_id="s1"):
    return {
        "id": silence_id,
        "matchers": [{"name": "instance", "value": "app1", "isRegex": False, "isEqual": True}],
        "startsAt": "2026-01-01T00:00:00.000Z",
        "endsAt": ends_at,
        "createdBy": "ansible",
        "comment": "upgrade",
        "status": {"state": state},
    }


def ends_of(opener):
    posted = [json.loads(body) for method, _, _, body in opener.requests if method == "POST"]
    return posted[0]["endsAt"]


def test_new_silence_is_verified_on_the_peer_after_gossip(network):
    calls = {"peer": 0}

    def peer(request):
        calls["peer"] += 1
        if calls["peer"] == 1:  # not gossiped yet
            return (404, {"message": "silence not found"})
        return (200, stored(ends_of(opener)))

    opener = network((200, []), (200, {"silenceID": "s1"}), peer, peer)
    result = run_in_process("alertmanager_silence", dict(BASE, verify_urls=[AM1, AM2], verify_timeout=5))
    assert not result.get("failed"), result
    assert result["changed"] and result["silence_id"] == "s1"
    assert list(result["verified"]) == [AM2]  # its own URL is skipped
    peer_urls = [url for _, url, _, _ in opener.requests if url.startswith(AM2)]
    assert peer_urls == [AM2 + "/api/v2/silence/s1"] * 2


def test_a_peer_that_never_shows_it_fails_the_run(network):
    answers = [(200, []), (200, {"silenceID": "s1"})] + [(404, {"message": "silence not found"})] * 200
    network(*answers)
    result = run_in_process("alertmanager_silence", dict(BASE, verify_urls=[AM2], verify_timeout=0))
    assert result["failed"] and AM2 in result["msg"] and "s1" in result["msg"]
    assert result["verified"] == {}


def test_expired_silence_is_verified_gone_on_the_peer(network):
    live = stored("2026-01-01T01:00:00.000Z")
    network(
        (200, [live]),  # the lookup on AM1
        (200, {}),  # DELETE
        (200, dict(live, status={"state": "expired"})),  # AM2 already has the expiry
    )
    result = run_in_process(
        "alertmanager_silence",
        {"url": AM1, "matchers": ['instance="app1"'], "state": "absent", "verify_urls": [AM2]},
    )
    assert not result.get("failed"), result
    assert result["expired_ids"] == ["s1"] and AM2 in result["verified"]


def test_check_mode_verifies_nothing(network):
    opener = network((200, []))
    result = run_in_process("alertmanager_silence", dict(BASE, verify_urls=[AM2]), check_mode=True)
    assert result["changed"] and "verified" not in result
    assert len(opener.requests) == 1
