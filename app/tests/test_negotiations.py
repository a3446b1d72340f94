from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pymongo
import pytest
from appsupport import DEAL, register, sample
from autodealgenie.app import create_app


def start_deal(client, user, **deal_changes):
    deal = client.post("/api/v1/deals", json={**DEAL, **deal_changes}, headers=user.headers).get_json()
    response = client.post(
        "/api/v1/negotiations", json={"deal_id": deal["id"], "target_price": 21000}, headers=user.headers
    )
    assert response.status_code == 201, response.get_json()
    return deal, response.get_json()


def test_full_negotiation_to_agreement(client, user, datastores):
    sessions = sample("autodealgenie_negotiation_sessions_total")
    agent_msgs = sample("autodealgenie_negotiation_messages_total", {"role": "agent"})
    durations = sample("autodealgenie_negotiation_duration_seconds_count")
    deal, session = start_deal(client, user)
    assert session["status"] == "active" and session["current_round"] == 1
    assert [m["role"] for m in session["messages"]] == ["user", "dealer_sim", "agent"]
    assert sample("autodealgenie_negotiation_sessions_total") == sessions + 1
    assert sample("autodealgenie_active_negotiation_sessions") >= 1
    url = f"/api/v1/negotiations/{session['id']}"
    assert (
        client.get(f"/api/v1/deals/{deal['id']}", headers=user.headers).get_json()["status"] == "in_progress"
    )

    countered = client.post(
        f"{url}/next", json={"action": "counter", "counter_offer": 20000}, headers=user.headers
    )
    assert countered.status_code == 200
    body = countered.get_json()
    assert body["current_round"] == 2 and 20000 <= body["dealer_offer"] < 24500
    assert [m["role"] for m in body["messages"][-3:]] == ["user", "dealer_sim", "agent"]

    chat = client.post(f"{url}/chat", json={"message": "Is this a good price?"}, headers=user.headers)
    assert chat.status_code == 200
    assert chat.get_json()["reply"]["role"] == "agent" and "$" in chat.get_json()["reply"]["content"]

    final = client.post(f"{url}/next", json={"action": "confirm"}, headers=user.headers).get_json()
    assert final["status"] == "completed" and final["agreed_price"] == body["dealer_offer"]
    deal_after = client.get(f"/api/v1/deals/{deal['id']}", headers=user.headers).get_json()
    assert deal_after["status"] == "completed" and deal_after["offer_price"] == body["dealer_offer"]
    assert sample("autodealgenie_negotiation_duration_seconds_count") == durations + 1
    assert sample("autodealgenie_negotiation_messages_total", {"role": "agent"}) == agent_msgs + 4

    again = client.post(f"{url}/next", json={"action": "counter", "counter_offer": 100}, headers=user.headers)
    assert again.status_code == 409
    assert client.post(f"{url}/chat", json={"message": "hi"}, headers=user.headers).status_code == 409
    full = client.get(url, headers=user.headers).get_json()
    assert len(full["messages"]) == len(final["messages"])
    logged = pymongo.MongoClient(datastores["mongo"].url)["autodealgenie_test"].ai_responses
    calls = list(logged.find({"session_id": session["id"], "feature": "negotiation"}))
    assert {c["prompt_id"] for c in calls} == {
        "negotiation_opening",
        "negotiation_counter",
        "negotiation_chat",
    }
    assert all(c["model_used"] == "builtin-negotiator" and c["llm_used"] is False for c in calls)


def test_reject_cancels_and_deal_can_be_renegotiated(client, user):
    deal, session = start_deal(client, user)
    url = f"/api/v1/negotiations/{session['id']}"
    duplicate = client.post("/api/v1/negotiations", json={"deal_id": deal["id"]}, headers=user.headers)
    assert duplicate.status_code == 409
    assert (
        client.post(f"{url}/next", json={"action": "reject"}, headers=user.headers).get_json()["status"]
        == "cancelled"
    )
    assert (
        client.post("/api/v1/negotiations", json={"deal_id": deal["id"]}, headers=user.headers).status_code
        == 201
    )


def test_builtin_advisor_is_deterministic(client, user):
    _, one = start_deal(client, user)
    _, two = start_deal(client, user)
    assert one["messages"][-1]["content"] == two["messages"][-1]["content"]


@pytest.mark.parametrize(
    "payload",
    [
        {"action": "counter"},
        {"action": "confirm", "counter_offer": 100},
        {"action": "haggle"},
        {"action": "counter", "counter_offer": -1},
        {"action": "counter", "counter_offer": 99999},
    ],
)
def test_next_rejects_bad_input(client, user, payload):
    _, session = start_deal(client, user)
    response = client.post(f"/api/v1/negotiations/{session['id']}/next", json=payload, headers=user.headers)
    assert response.status_code == 422


def test_max_rounds_and_ownership(client, user):
    deal = client.post("/api/v1/deals", json=DEAL, headers=user.headers).get_json()
    session = client.post(
        "/api/v1/negotiations", json={"deal_id": deal["id"], "max_rounds": 2}, headers=user.headers
    ).get_json()
    url = f"/api/v1/negotiations/{session['id']}"
    assert (
        client.post(
            f"{url}/next", json={"action": "counter", "counter_offer": 15000}, headers=user.headers
        ).status_code
        == 200
    )
    assert (
        client.post(
            f"{url}/next", json={"action": "counter", "counter_offer": 15500}, headers=user.headers
        ).status_code
        == 409
    )
    other = register(client)
    assert client.get(url, headers=other.headers).status_code == 403
    assert client.post(f"{url}/chat", json={"message": "x"}, headers=other.headers).status_code == 403
    assert (
        client.post("/api/v1/negotiations", json={"deal_id": deal["id"]}, headers=other.headers).status_code
        == 403
    )
    assert client.get("/api/v1/negotiations/999999999", headers=user.headers).status_code == 404
    assert (
        client.post("/api/v1/negotiations", json={"deal_id": 999999999}, headers=user.headers).status_code
        == 404
    )
    assert client.post("/api/v1/negotiations", json={"deal_id": "x"}, headers=user.headers).status_code == 422
    assert client.post(f"{url}/chat", json={"message": ""}, headers=user.headers).status_code == 422


class FakeCompletions(BaseHTTPRequestHandler):
    """OpenAI-compatible /v1/chat/completions on loopback; replies or fails as the server is told."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, self.headers.get("Authorization"), body))
        if self.server.fail:
            self.send_response(500)
            self.end_headers()
            return
        payload = json.dumps(
            {
                "model": body["model"],
                "choices": [{"message": {"role": "assistant", "content": "Counter at $19,900."}}],
                "usage": {"prompt_tokens": 42, "completion_tokens": 7},
            }
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def llm_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeCompletions)
    server.requests, server.fail = [], False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def test_openai_compatible_advisor_metrics_and_fallback(make_config, migrated, llm_server, datastores):
    base = f"http://127.0.0.1:{llm_server.server_address[1]}/v1"
    client = create_app(
        make_config(
            NEGOTIATION_ADVISOR="openai", LLM_API_BASE_URL=base, LLM_API_KEY="sk-test", LLM_MODEL="test-model"
        )
    ).test_client()
    user = register(client)
    requests_before = sample(
        "autodealgenie_llm_requests_total", {"model": "test-model", "prompt_type": "opening"}
    )
    prompt_tokens = sample(
        "autodealgenie_llm_tokens_used_total", {"model": "test-model", "token_type": "prompt"}
    )
    ok_calls = sample("autodealgenie_external_api_requests_total", {"api_name": "llm", "status": "200"})
    durations = sample("autodealgenie_llm_request_duration_seconds_count", {"model": "test-model"})
    _, session = start_deal(client, user)
    assert session["messages"][-1]["content"] == "Counter at $19,900."
    path, auth, body = llm_server.requests[-1]
    assert path == "/v1/chat/completions" and auth == "Bearer sk-test" and body["model"] == "test-model"
    assert (
        sample("autodealgenie_llm_requests_total", {"model": "test-model", "prompt_type": "opening"})
        == requests_before + 1
    )
    assert (
        sample("autodealgenie_llm_tokens_used_total", {"model": "test-model", "token_type": "prompt"})
        == prompt_tokens + 42
    )
    assert (
        sample("autodealgenie_external_api_requests_total", {"api_name": "llm", "status": "200"})
        == ok_calls + 1
    )
    assert sample("autodealgenie_external_api_duration_seconds_count", {"api_name": "llm"}) >= 1
    assert (
        sample("autodealgenie_llm_request_duration_seconds_count", {"model": "test-model"}) == durations + 1
    )

    llm_server.fail = True
    errors = sample("autodealgenie_llm_errors_total", {"model": "test-model", "error_type": "http_status"})
    api_errors = sample(
        "autodealgenie_external_api_errors_total", {"api_name": "llm", "error_type": "http_status"}
    )
    chat = client.post(
        f"/api/v1/negotiations/{session['id']}/chat",
        json={"message": "what about financing?"},
        headers=user.headers,
    )
    assert chat.status_code == 200 and "pre-approved" in chat.get_json()["reply"]["content"]
    assert chat.get_json()["reply"]["metadata"]["fallback"] is True
    assert (
        sample("autodealgenie_llm_errors_total", {"model": "test-model", "error_type": "http_status"})
        == errors + 1
    )
    assert (
        sample("autodealgenie_external_api_errors_total", {"api_name": "llm", "error_type": "http_status"})
        == api_errors + 1
    )
    logged = pymongo.MongoClient(datastores["mongo"].url)["autodealgenie_test"].ai_responses
    calls = list(logged.find({"session_id": session["id"]}).sort("timestamp", 1))
    assert [c["llm_used"] for c in calls] == [True, False]
    assert calls[0]["tokens_used"] == 49 and calls[0]["model_used"] == "test-model"
