from __future__ import annotations

import pytest
from appsupport import DEAL, register, sample
from autodealgenie.admin import ensure_admin


def create(client, user, **changes):
    response = client.post("/api/v1/deals", json={**DEAL, **changes}, headers=user.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_crud_round_trip_and_metric(client, user):
    before = sample("autodealgenie_deals_created_total", {"status": "in_progress"})
    deal = create(client, user, status="in_progress", vehicle_vin="4t1bf1fk5mu123456")
    assert deal["vehicle_vin"] == "4T1BF1FK5MU123456" and deal["asking_price"] == 24500.0
    assert sample("autodealgenie_deals_created_total", {"status": "in_progress"}) == before + 1
    url = f"/api/v1/deals/{deal['id']}"
    assert client.get(url, headers=user.headers).get_json()["customer_name"] == "Ada Buyer"
    updated = client.put(
        url, json={"offer_price": 23000, "status": "completed", "notes": "signed"}, headers=user.headers
    )
    assert updated.status_code == 200
    assert updated.get_json()["offer_price"] == 23000.0 and updated.get_json()["status"] == "completed"
    assert client.put(url, json={"notes": None}, headers=user.headers).get_json()["notes"] is None
    assert client.delete(url, headers=user.headers).status_code == 204
    assert client.get(url, headers=user.headers).status_code == 404
    assert client.delete(url, headers=user.headers).status_code == 404


def test_trailing_slash_is_the_same_route(client, user):
    assert client.post("/api/v1/deals/", json=DEAL, headers=user.headers).status_code == 201
    assert client.get("/api/v1/deals/", headers=user.headers).status_code == 200


def test_list_is_paginated_and_scoped_to_owner(client, user):
    other = register(client)
    ids = [create(client, user, customer_name=f"C{i}")["id"] for i in range(5)]
    create(client, other)
    page = client.get("/api/v1/deals?skip=1&limit=2", headers=user.headers).get_json()
    assert page["total"] == 5 and page["skip"] == 1 and page["limit"] == 2
    assert [d["id"] for d in page["items"]] == sorted(ids, reverse=True)[1:3]
    assert client.get("/api/v1/deals?status=cancelled", headers=user.headers).get_json()["total"] == 0


def test_other_users_deal_is_forbidden_but_admin_sees_all(client, user, migrated):
    deal = create(client, user)
    other = register(client)
    assert client.get(f"/api/v1/deals/{deal['id']}", headers=other.headers).status_code == 403
    assert (
        client.put(f"/api/v1/deals/{deal['id']}", json={"notes": "x"}, headers=other.headers).status_code
        == 403
    )
    assert client.delete(f"/api/v1/deals/{deal['id']}", headers=other.headers).status_code == 403
    admin = register(client)
    ensure_admin(
        migrated, email=admin.email, username=admin.username, full_name=None, password=admin.password
    )
    assert client.get(f"/api/v1/deals/{deal['id']}", headers=admin.headers).status_code == 200
    assert client.get("/api/v1/deals?limit=100", headers=admin.headers).get_json()["total"] >= 1 + 1


@pytest.mark.parametrize(
    "changes",
    [
        {"asking_price": 0},
        {"asking_price": -5},
        {"asking_price": "cheap"},
        {"status": "sold"},
        {"vehicle_vin": "SHORT"},
        {"vehicle_vin": "4T1BF1FK5MU12345I"},
        {"vehicle_year": 1800},
        {"vehicle_mileage": -1},
        {"customer_email": "nope"},
        {"unknown_field": 1},
    ],
)
def test_create_rejects_bad_input(client, user, changes):
    response = client.post("/api/v1/deals", json={**DEAL, **changes}, headers=user.headers)
    assert response.status_code == 422, response.get_json()


@pytest.mark.parametrize("query", ["skip=-1", "limit=0", "limit=101", "limit=abc", "status=sold", "foo=1"])
def test_list_rejects_bad_query(client, user, query):
    assert client.get(f"/api/v1/deals?{query}", headers=user.headers).status_code == 422


def test_update_rejects_bad_input_and_missing_deal(client, user):
    deal = create(client, user)
    url = f"/api/v1/deals/{deal['id']}"
    assert client.put(url, json={"status": None}, headers=user.headers).status_code == 422
    assert client.put(url, json={"asking_price": 0}, headers=user.headers).status_code == 422
    assert client.put(url, data="x", content_type="application/json", headers=user.headers).status_code == 400
    assert client.put("/api/v1/deals/999999999", json={"notes": "x"}, headers=user.headers).status_code == 404
    assert client.get("/api/v1/deals/not-a-number", headers=user.headers).status_code == 404
    assert client.patch(url, json={}, headers=user.headers).status_code == 405


def test_out_of_range_ids_are_client_errors(client, user):
    assert client.get(f"/api/v1/deals/{10**30}", headers=user.headers).status_code == 404
    assert client.get("/api/v1/deals?skip=99999999999", headers=user.headers).status_code == 422


def test_deals_need_authentication(client):
    assert client.get("/api/v1/deals").status_code == 401
    assert client.post("/api/v1/deals", json=DEAL).status_code == 401


EVALUATION = {
    "vehicle_vin": "4T1BF1FK5MU123456",
    "asking_price": 21000,
    "condition": "good",
    "mileage": 36000,
    "make": "Toyota",
    "model": "Camry",
    "year": 2021,
}


def test_evaluate_is_deterministic_and_cached(client, user, datastores):
    payload = {**EVALUATION, "asking_price": 21000 + (user.access.__hash__() % 1000)}
    hits = sample("autodealgenie_cache_hits_total", {"cache_name": "deal_eval"})
    misses = sample("autodealgenie_cache_misses_total", {"cache_name": "deal_eval"})
    first = client.post("/api/v1/deals/evaluate", json=payload, headers=user.headers)
    assert first.status_code == 200 and first.get_json()["cached"] is False
    second = client.post("/api/v1/deals/evaluate", json=payload, headers=user.headers)
    assert second.get_json()["cached"] is True
    a, b = first.get_json(), second.get_json()
    for key in ("fair_value", "score", "insights", "talking_points"):
        assert a[key] == b[key]
    assert 1 <= a["score"] <= 10 and a["fair_value"] > 0 and a["insights"] and a["talking_points"]
    assert sample("autodealgenie_cache_misses_total", {"cache_name": "deal_eval"}) == misses + 1
    assert sample("autodealgenie_cache_hits_total", {"cache_name": "deal_eval"}) == hits + 1
    assert (
        sample(
            "autodealgenie_cache_operation_duration_seconds_count",
            {"operation": "get", "cache_name": "deal_eval"},
        )
        >= 2
    )
    import redis

    ttl = [
        redis.Redis(port=datastores["redis"].port).ttl(k)
        for k in redis.Redis(port=datastores["redis"].port).keys("deal_eval:*")
    ]
    assert ttl and all(0 < t <= 3600 for t in ttl)


def test_evaluate_scores_cheaper_asks_higher(client, user):
    cheap = client.post(
        "/api/v1/deals/evaluate", json={**EVALUATION, "asking_price": 12000}, headers=user.headers
    )
    dear = client.post(
        "/api/v1/deals/evaluate", json={**EVALUATION, "asking_price": 40000}, headers=user.headers
    )
    assert cheap.get_json()["score"] > dear.get_json()["score"]
    assert cheap.get_json()["fair_value"] == dear.get_json()["fair_value"]


@pytest.mark.parametrize(
    "changes",
    [
        {"vehicle_vin": "123"},
        {"asking_price": 0},
        {"mileage": -1},
        {"condition": "mint"},
        {"year": 3000},
    ],
)
def test_evaluate_rejects_bad_input(client, user, changes):
    assert (
        client.post(
            "/api/v1/deals/evaluate", json={**EVALUATION, **changes}, headers=user.headers
        ).status_code
        == 422
    )
