from __future__ import annotations

import time

import pymongo
import pytest
from appsupport import register, sample
from autodealgenie.app import create_app


def search(client, user, **criteria):
    return client.post("/api/v1/cars/search", json=criteria, headers=user.headers)


def test_search_filters_and_ranks(client, user):
    response = search(client, user, make="TOYOTA", budget_max=30000, sort_by="price", max_results=10)
    assert response.status_code == 200
    body = response.get_json()
    assert body["total_found"] >= len(body["vehicles"]) > 0
    prices = [v["price"] for v in body["vehicles"]]
    assert prices == sorted(prices) and max(prices) <= 30000
    assert {v["make"] for v in body["vehicles"]} == {"Toyota"}
    assert all(len(v["vin"]) == 17 for v in body["vehicles"])
    by_value = search(client, user, car_type="suv", max_results=5).get_json()["vehicles"]
    scores = [v["value_score"] for v in by_value]
    assert scores == sorted(scores, reverse=True)


def test_search_miss_then_hit_records_history_and_metrics(client, user, datastores):
    criteria = {"make": "Honda", "year_min": 2018, "max_results": 7}
    labels = {"cache_name": "car_search"}
    hits, misses = (
        sample("autodealgenie_cache_hits_total", labels),
        sample("autodealgenie_cache_misses_total", labels),
    )
    searches = sample("autodealgenie_vehicle_searches_total", {"search_type": "make_model"})
    durations = sample("autodealgenie_vehicle_search_duration_seconds_count")
    vehicle_selects = sample("autodealgenie_db_queries_total", {"operation": "select", "table": "vehicles"})
    first = search(client, user, **criteria).get_json()
    second = search(client, user, **criteria).get_json()
    assert first["cached"] is False and second["cached"] is True
    assert first["vehicles"] == second["vehicles"]
    assert sample("autodealgenie_cache_misses_total", labels) == misses + 1
    assert sample("autodealgenie_cache_hits_total", labels) == hits + 1
    assert sample("autodealgenie_vehicle_searches_total", {"search_type": "make_model"}) == searches + 2
    assert sample("autodealgenie_vehicle_search_duration_seconds_count") == durations + 2
    assert (
        sample("autodealgenie_db_queries_total", {"operation": "select", "table": "vehicles"})
        == vehicle_selects + 1
    )
    assert sample("autodealgenie_active_searches") == 0
    history = pymongo.MongoClient(datastores["mongo"].url)["autodealgenie_test"].search_history
    me = client.get("/api/v1/auth/me", headers=user.headers).get_json()["id"]
    records = list(history.find({"user_id": me}))
    assert len(records) == 2
    assert (
        records[0]["search_criteria"]["make"] == "Honda"
        and records[0]["result_count"] == first["total_found"]
    )
    assert records[0]["top_vehicles"][0]["vin"] == first["vehicles"][0]["vin"]


def test_search_types(client, user):
    for criteria, kind in (
        ({}, "browse"),
        ({"fuel_type": "electric"}, "filtered"),
        ({"model": "Civic"}, "make_model"),
    ):
        before = sample("autodealgenie_vehicle_searches_total", {"search_type": kind})
        assert search(client, user, **criteria).status_code == 200
        assert sample("autodealgenie_vehicle_searches_total", {"search_type": kind}) == before + 1


@pytest.mark.parametrize(
    "criteria",
    [
        {"max_results": 0},
        {"max_results": 101},
        {"budget_min": 5000, "budget_max": 1000},
        {"year_min": 2022, "year_max": 2020},
        {"car_type": "spaceship"},
        {"mileage_max": -1},
        {"colour": "red"},
        {"make": ""},
        {"sort_by": "random"},
    ],
)
def test_search_rejects_bad_input(client, user, criteria):
    assert search(client, user, **criteria).status_code == 422


def test_search_needs_auth(client):
    assert client.post("/api/v1/cars/search", json={}).status_code == 401


def test_search_rate_limit_sliding_window(make_config, migrated):
    client = create_app(make_config(SEARCH_RATE_LIMIT=3, SEARCH_RATE_WINDOW=2)).test_client()
    user = register(client)
    for _ in range(3):
        assert search(client, user, make="Kia").status_code == 200
    limited = search(client, user, make="Kia")
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 2
    assert "Rate limit exceeded" in limited.get_json()["detail"]
    other = register(client)
    assert search(client, other, make="Kia").status_code == 200, "limits are per user"
    time.sleep(2.1)
    assert search(client, user, make="Kia").status_code == 200, "the window slides"


def test_search_without_redis_fails_closed(make_config, client):
    """Redis down: the token's revocation and the rate limit cannot be checked, so 503, never unlimited."""
    from tests.support.datastores import free_port

    user = register(client)  # with the session's Redis
    down = create_app(make_config(REDIS_PORT=free_port(), SEARCH_RATE_LIMIT=1)).test_client()
    for _ in range(3):
        response = search(down, user, make="Mazda")
        assert response.status_code == 503 and int(response.headers["Retry-After"]) >= 1


def test_cars_health_is_static(client):
    body = client.get("/api/v1/cars/health").get_json()
    assert body == {"status": "healthy", "service": "car_search", "marketcheck_configured": False}
