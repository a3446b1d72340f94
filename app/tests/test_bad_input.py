"""Every write endpoint answers garbage with JSON, never a 500."""

from __future__ import annotations

import pytest
from appsupport import DEAL

GARBAGE = [
    None,
    {},
    [],
    "text",
    42,
    {"x": None},
    {"deal_id": None},
    {"action": ["confirm"]},
    {"asking_price": 1e400},
    {"asking_price": "NaN"},
    {"max_results": 10**40},
    {"message": "x" * 5000},
    {"email": {"$gt": ""}, "password": {"$ne": None}},
    {"makes": [{"$where": "1"}]},
]


@pytest.fixture
def routes(client, user):
    deal = client.post("/api/v1/deals", json=DEAL, headers=user.headers).get_json()
    session = client.post(
        "/api/v1/negotiations", json={"deal_id": deal["id"]}, headers=user.headers
    ).get_json()
    return [
        ("POST", "/api/v1/auth/signup"),
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/refresh"),
        ("POST", "/api/v1/auth/logout"),
        ("POST", "/api/v1/deals"),
        ("PUT", f"/api/v1/deals/{deal['id']}"),
        ("POST", "/api/v1/deals/evaluate"),
        ("POST", "/api/v1/cars/search"),
        ("POST", "/api/v1/negotiations"),
        ("POST", f"/api/v1/negotiations/{session['id']}/next"),
        ("POST", f"/api/v1/negotiations/{session['id']}/chat"),
        ("PUT", "/api/v1/users/me/preferences"),
    ]


def test_garbage_bodies_never_cause_server_errors(client, user, routes):
    for method, path in routes:
        for body in GARBAGE:
            kwargs = (
                {"data": "{broken", "content_type": "application/json"} if body is None else {"json": body}
            )
            response = client.open(path, method=method, headers=user.headers, **kwargs)
            assert response.status_code < 500, (method, path, body, response.status_code)
            assert response.is_json
            if response.status_code >= 400:
                assert "detail" in response.get_json()


def test_oversized_body_is_413(client, user):
    response = client.post(
        "/api/v1/deals", data="x" * (2 * 1024 * 1024), content_type="application/json", headers=user.headers
    )
    assert response.status_code == 413 and response.is_json
