"""/api/v1/cars: inventory search (rate-limited, cached in Redis, recorded in MongoDB)."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Annotated, Literal

from flask import Blueprint, g, jsonify
from pydantic import Field, model_validator

from .. import metrics
from ..db import run
from ..errors import parse_body
from ..instrumentation import untracked
from ..services import services
from ..types import INT32_MAX, RequestModel, finite, line
from . import jsonable, login_required

bp = Blueprint("cars", __name__, url_prefix="/api/v1/cars")
SEARCH_CACHE = "car_search"
_searches = metrics.cached_labels(metrics.vehicle_searches)
SEARCH_TYPES = ("make_model", "filtered", "browse")  # SearchIn.search_type (zero-initialised series)
Name = line(min_length=1, max_length=60)
Money = finite(ge=0, lt=10_000_000)
Year = Annotated[int, Field(ge=1900, le=2100)]
ORDER = {
    # value: furthest below the model's fair value first
    "value": "(fair_value - price) / fair_value DESC, id",
    "price": "price ASC, id",
    "mileage": "mileage ASC, id",
    "year": "year DESC, id",
}
RESULT_COLUMNS = (
    "vin, make, model, trim, year, body_type, price, fair_value, mileage, exterior_color, "
    "fuel_type, transmission, drivetrain, dealer_name, dealer_city, dealer_state, listed_at"
)


class SearchIn(RequestModel):
    make: Name | None = None
    model: Name | None = None
    car_type: Literal["sedan", "suv", "truck", "coupe", "hatchback", "minivan", "wagon"] | None = None
    fuel_type: Literal["gasoline", "hybrid", "electric"] | None = None
    budget_min: Money | None = None
    budget_max: Money | None = None
    year_min: Year | None = None
    year_max: Year | None = None
    mileage_max: Annotated[int, Field(ge=0, le=INT32_MAX)] | None = None  # the integer column
    sort_by: Literal["value", "price", "mileage", "year"] = "value"
    max_results: Annotated[int, Field(ge=1, le=100)] = 50

    @model_validator(mode="after")
    def ranges(self):
        if self.budget_min is not None and self.budget_max is not None and self.budget_min > self.budget_max:
            raise ValueError("budget_min must not exceed budget_max")
        if self.year_min is not None and self.year_max is not None and self.year_min > self.year_max:
            raise ValueError("year_min must not exceed year_max")
        return self

    @property
    def search_type(self) -> str:
        if self.make or self.model:
            return "make_model"
        filters = (
            self.car_type,
            self.fuel_type,
            self.budget_min,
            self.budget_max,
            self.year_min,
            self.year_max,
            self.mileage_max,
        )
        return "filtered" if any(f is not None for f in filters) else "browse"


def _query(criteria: SearchIn, conn) -> tuple[int, list[dict]]:
    conditions, params = [], []
    for column, value in (("lower(make)", criteria.make), ("lower(model)", criteria.model)):
        if value:
            conditions.append(f"{column} = %s")
            params.append(value.lower())
    for column, op, value in (
        ("body_type", "=", criteria.car_type),
        ("fuel_type", "=", criteria.fuel_type),
        ("price", ">=", criteria.budget_min),
        ("price", "<=", criteria.budget_max),
        ("year", ">=", criteria.year_min),
        ("year", "<=", criteria.year_max),
        ("mileage", "<=", criteria.mileage_max),
    ):
        if value is not None:
            conditions.append(f"{column} {op} %s")
            params.append(value)
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    rows = run(
        conn,
        f"SELECT {RESULT_COLUMNS}, count(*) OVER () AS total_found FROM vehicles {where} "  # noqa: S608 - identifiers from code, values bound
        f"ORDER BY {ORDER[criteria.sort_by]} LIMIT %s",
        [*params, criteria.max_results],
        operation="select",
        table="vehicles",
    )
    total = rows[0]["total_found"] if rows else 0
    vehicles = []
    for row in rows:
        vehicle = jsonable({k: v for k, v in row.items() if k != "total_found"})
        vehicle["value_score"] = round(
            (vehicle["fair_value"] - vehicle["price"]) / vehicle["fair_value"] * 100, 1
        )
        vehicles.append(vehicle)
    return total, vehicles


@bp.post("/search")
@login_required
def search():
    criteria = parse_body(SearchIn)
    svc = services()
    svc.limiter.search(g.user["id"])
    params = criteria.model_dump()
    metrics.active_searches.inc()
    start = time.perf_counter()
    try:
        digest = hashlib.md5(json.dumps(params, sort_keys=True).encode(), usedforsecurity=False).hexdigest()
        key = f"{SEARCH_CACHE}:{digest}"
        cached = svc.redis.cache_get(SEARCH_CACHE, key)
        if cached is not None:
            result = json.loads(cached)
        else:
            with svc.db.connection() as conn:
                total, vehicles = _query(criteria, conn)
            result = {"search_criteria": params, "total_found": total, "vehicles": vehicles}
            svc.redis.cache_set(SEARCH_CACHE, key, json.dumps(result), svc.config.car_search_cache_ttl)
        svc.mongo.record(
            "search_history",
            {
                "user_id": g.user["id"],
                "search_criteria": params,
                "result_count": result["total_found"],
                "top_vehicles": [
                    {"vin": v["vin"], "make": v["make"], "model": v["model"], "price": v["price"]}
                    for v in result["vehicles"][:5]
                ],
                "session_id": None,
            },
        )
        _searches(criteria.search_type).inc()
    finally:
        metrics.vehicle_search_duration.observe(time.perf_counter() - start)
        metrics.active_searches.dec()
    return jsonify({**result, "cached": cached is not None})


@bp.get("/health")
@untracked
def cars_health():
    return jsonify(status="healthy", service="car_search", marketcheck_configured=False)
