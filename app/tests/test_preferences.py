from __future__ import annotations

import pytest
from appsupport import register
from autodealgenie.app import create_app

from tests.support.datastores import free_port

PREFS = {
    "makes": ["Toyota", "Honda"],
    "budget_range": {"min": 15000, "max": 30000},
    "year_range": {"min": 2018, "max": 2024},
    "body_types": ["suv"],
    "features": ["awd", "carplay"],
}


def test_defaults_then_latest_document_wins(client, user):
    empty = client.get("/api/v1/users/me/preferences", headers=user.headers).get_json()
    assert empty["preferences"]["makes"] == [] and empty["created_at"] is None
    assert client.put("/api/v1/users/me/preferences", json=PREFS, headers=user.headers).status_code == 200
    second = client.put(
        "/api/v1/users/me/preferences", json={**PREFS, "makes": ["Kia"]}, headers=user.headers
    )
    assert second.get_json()["preferences"]["makes"] == ["Kia"]
    latest = client.get("/api/v1/users/me/preferences", headers=user.headers).get_json()
    assert latest["preferences"]["makes"] == ["Kia"] and latest["preferences"]["budget_range"]["max"] == 30000
    other = register(client)
    assert (
        client.get("/api/v1/users/me/preferences", headers=other.headers).get_json()["preferences"]["makes"]
        == []
    )


@pytest.mark.parametrize(
    "payload",
    [
        {"makes": "Toyota"},
        {"budget_range": {"min": 5, "max": 1}},
        {"body_types": ["boat"]},
        {"year_range": {"min": -1}},
        {"colour": "red"},
        {"makes": [""]},
    ],
)
def test_bad_preferences_are_422(client, user, payload):
    assert client.put("/api/v1/users/me/preferences", json=payload, headers=user.headers).status_code == 422


def test_preferences_need_auth(client):
    assert client.get("/api/v1/users/me/preferences").status_code == 401


def test_mongodb_down_is_503_not_500(make_config, migrated):
    client = create_app(
        make_config(MONGODB_URL=f"mongodb://127.0.0.1:{free_port()}", MONGODB_TIMEOUT_MS=300)
    ).test_client()
    user = register(client)
    response = client.get("/api/v1/users/me/preferences", headers=user.headers)
    assert response.status_code == 503 and response.is_json
    assert client.put("/api/v1/users/me/preferences", json=PREFS, headers=user.headers).status_code == 503
    # searches still work: their history record is dropped, not the request
    assert client.post("/api/v1/cars/search", json={"make": "Kia"}, headers=user.headers).status_code == 200
