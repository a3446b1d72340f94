"""/api/v1/deals: CRUD (owner-scoped, admins see all) and the cached fair-value evaluation."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Literal

from flask import Blueprint, g, jsonify
from pydantic import BeforeValidator, Field, StringConstraints

from .. import metrics, pricing
from ..db import run
from ..errors import ApiError, parse_body, parse_query
from ..services import services
from ..types import Email, RequestModel, finite, line, reject_in_line, text
from . import PageQuery, jsonable, list_page, login_required, owned

bp = Blueprint("deals", __name__, url_prefix="/api/v1/deals")

Status = Literal["pending", "in_progress", "completed", "cancelled"]
Condition = Literal["excellent", "good", "fair", "poor"]
Text = line(min_length=1, max_length=200)
Notes = text(max_length=5000)
# Upper-cased before the pattern check (StringConstraints would check the pattern first).
Vin = Annotated[
    str,
    BeforeValidator(lambda v: v.strip().upper() if isinstance(v, str) else v),
    StringConstraints(pattern=r"^[A-HJ-NPR-Z0-9]{17}$"),
    BeforeValidator(reject_in_line),
]
Price = finite(gt=0, lt=10_000_000)  # numeric(12, 2)
Year = Annotated[int, Field(ge=1900, le=pricing.REFERENCE_YEAR + 2)]
Mileage = Annotated[int, Field(ge=0, le=2_000_000)]
EVAL_CACHE = "deal_eval"
DEAL_COLUMNS = (
    "id, user_id, customer_name, customer_email, vehicle_make, vehicle_model, vehicle_year, "
    "vehicle_mileage, vehicle_vin, asking_price, offer_price, status, notes, created_at, updated_at"
)


class DealIn(RequestModel):
    customer_name: Text
    customer_email: Email
    vehicle_make: Text
    vehicle_model: Text
    vehicle_year: Year
    vehicle_mileage: Mileage = 0
    vehicle_vin: Vin | None = None
    asking_price: Price
    offer_price: Price | None = None
    status: Status = "pending"
    notes: Notes | None = None


class DealUpdate(RequestModel):
    customer_name: Text | None = None
    customer_email: Email | None = None
    vehicle_make: Text | None = None
    vehicle_model: Text | None = None
    vehicle_year: Year | None = None
    vehicle_mileage: Mileage | None = None
    vehicle_vin: Vin | None = None
    asking_price: Price | None = None
    offer_price: Price | None = None
    status: Status | None = None
    notes: Notes | None = None


class ListQuery(PageQuery):
    status: Status | None = None


class EvaluateIn(RequestModel):
    vehicle_vin: Vin
    asking_price: Price
    condition: Annotated[Condition, Field()] = "good"
    mileage: Mileage
    make: Text | None = None
    model: Text | None = None
    year: Year | None = None


def load_deal(conn, deal_id: int, *, for_update: bool = False, admins: bool = True) -> dict:
    """The deal if the caller may see it: 404 when missing, 403 when someone else's (admins see all
    unless admins=False)."""
    deal = run(
        conn,
        f"SELECT {DEAL_COLUMNS} FROM deals WHERE id = %s{' FOR UPDATE' if for_update else ''}",  # noqa: S608 - identifiers from code, values bound
        (deal_id,),
        operation="select",
        table="deals",
        fetch="one",
    )
    return owned(deal, "Deal not found", "Not allowed to access this deal", admins=admins)


def deal_fair_value(deal: dict) -> float:
    """The pricing model's fair value of a deal's vehicle (as /deals/evaluate values it)."""
    return pricing.vehicle_fair_value(
        vin=deal["vehicle_vin"] or "",
        mileage=deal["vehicle_mileage"],
        make=deal["vehicle_make"],
        model=deal["vehicle_model"],
        year=deal["vehicle_year"],
    )


@bp.post("", strict_slashes=False)
@login_required
def create_deal():
    body = parse_body(DealIn)
    values = body.model_dump()
    columns = ", ".join(["user_id", *values])
    placeholders = ", ".join(["%s"] * (len(values) + 1))
    with services().db.connection() as conn:
        deal = run(
            conn,
            f"INSERT INTO deals ({columns}) VALUES ({placeholders}) RETURNING {DEAL_COLUMNS}",  # noqa: S608 - identifiers from code, values bound
            (g.user["id"], *values.values()),
            operation="insert",
            table="deals",
            fetch="one",
        )
    metrics.deals_created.labels(deal["status"]).inc()
    return jsonify(jsonable(deal)), 201


@bp.get("", strict_slashes=False)
@login_required
def list_deals():
    query = parse_query(ListQuery)
    conditions, params = [], []
    if not g.user["is_superuser"]:
        conditions.append("user_id = %s")
        params.append(g.user["id"])
    if query.status:
        conditions.append("status = %s")
        params.append(query.status)
    return jsonify(list_page("deals", DEAL_COLUMNS, conditions, params, query))


@bp.get("/<int:deal_id>")
@login_required
def get_deal(deal_id: int):
    with services().db.connection() as conn:
        return jsonify(jsonable(load_deal(conn, deal_id)))


@bp.put("/<int:deal_id>")
@login_required
def update_deal(deal_id: int):
    body = parse_body(DealUpdate)
    changes = body.model_dump(exclude_unset=True)
    if any(
        value is None for key, value in changes.items() if key not in ("vehicle_vin", "offer_price", "notes")
    ):
        raise ApiError(422, "Only vehicle_vin, offer_price and notes may be set to null")
    with services().db.connection() as conn:
        deal = load_deal(conn, deal_id, for_update=True)
        if changes:
            assignments = ", ".join(f"{column} = %s" for column in changes)
            deal = run(
                conn,
                f"UPDATE deals SET {assignments}, updated_at = now() WHERE id = %s RETURNING {DEAL_COLUMNS}",  # noqa: S608 - identifiers from code, values bound
                (*changes.values(), deal_id),
                operation="update",
                table="deals",
                fetch="one",
            )
    return jsonify(jsonable(deal))


@bp.delete("/<int:deal_id>")
@login_required
def delete_deal(deal_id: int):
    with services().db.connection() as conn:
        load_deal(conn, deal_id, for_update=True)
        run(
            conn,
            "DELETE FROM deals WHERE id = %s",
            (deal_id,),
            operation="delete",
            table="deals",
            fetch="none",
        )
    return "", 204


@bp.post("/evaluate")
@login_required
def evaluate():
    body = parse_body(EvaluateIn)
    svc = services()
    variables = {
        "vin": body.vehicle_vin,
        "asking_price": f"{body.asking_price:.2f}",
        "condition": body.condition,
        "mileage": body.mileage,
        "make": (body.make or "").lower() or None,
        "model": (body.model or "").lower() or None,
        "year": body.year,
    }
    fingerprint = json.dumps(variables, sort_keys=True)
    key = f"{EVAL_CACHE}:{hashlib.sha256(fingerprint.encode()).hexdigest()}"
    cached = svc.redis.cache_get(EVAL_CACHE, key)
    if cached is not None:
        return jsonify({**json.loads(cached), "cached": True})
    result = pricing.evaluate(
        vin=body.vehicle_vin,
        asking_price=body.asking_price,
        condition=body.condition,
        mileage=body.mileage,
        make=body.make,
        model=body.model,
        year=body.year,
    )
    serialized = json.dumps(result)
    svc.redis.cache_set(EVAL_CACHE, key, serialized, svc.config.deal_eval_cache_ttl)
    svc.mongo.record(
        "ai_responses",
        {
            "feature": "evaluation",
            "user_id": g.user["id"],
            "deal_id": None,
            "prompt_id": "deal_evaluation",
            "prompt_variables": variables,
            "response_content": serialized,
            "response_metadata": {"score": result["score"]},
            "model_used": "builtin-pricing",
            "tokens_used": 0,
            "temperature": None,
            "llm_used": False,
        },
    )
    return jsonify({**result, "cached": False})
