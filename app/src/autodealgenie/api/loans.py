"""/api/v1/loans: payment estimates and financing applications on the caller's own deals.

An estimate stores nothing. An application is decided at once by the rule in financing.py and
stored with its decision in PostgreSQL; declined applications are stored too (201 either way).
Loan applications are personal: only their owner reads them, administrators included.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Annotated, Literal

from flask import Blueprint, g, jsonify
from psycopg2.extras import Json
from pydantic import Field, model_validator

from .. import financing, metrics
from ..db import run
from ..errors import ApiError, parse_body, parse_query
from ..services import services
from ..types import Id, RequestModel, finite
from . import PageQuery, jsonable, list_page, login_required, owned
from .deals import deal_fair_value, load_deal

bp = Blueprint("loans", __name__, url_prefix="/api/v1/loans")

Status = Literal["approved", "declined"]  # financing.decide (zero-initialised series)
Price = finite(gt=0, lt=10_000_000)  # numeric(12, 2)
DownPayment = finite(ge=0, lt=10_000_000)
Term = Annotated[int, Field(ge=1, le=financing.MAX_TERM_MONTHS)]
Apr = finite(ge=0, le=float(financing.MAX_APR))  # percent; numeric(6, 3), rounded to 0.001
LOAN_COLUMNS = (
    "id, user_id, deal_id, status, reasons, price, down_payment, amount_financed, term_months, apr, "
    "monthly_payment, total_interest, total_paid, vehicle_value, created_at"
)
_applications = metrics.cached_labels(metrics.loan_applications)


class EstimateIn(RequestModel):
    price: Price | None = None
    deal_id: Id | None = None
    down_payment: DownPayment = 0
    term_months: Term = 60
    apr: Apr

    @model_validator(mode="after")
    def one_price(self):
        if (self.price is None) == (self.deal_id is None):
            raise ValueError("give exactly one of price and deal_id")
        return self


class ApplyIn(RequestModel):
    deal_id: Id
    down_payment: DownPayment = 0
    term_months: Term = 60
    apr: Apr


class ListQuery(PageQuery):
    status: Status | None = None


def _deal_price(deal: dict) -> Decimal:
    """The offered (negotiated) price when set, else the asking price."""
    return financing.money(deal["offer_price"] if deal["offer_price"] is not None else deal["asking_price"])


def _terms(price: Decimal, down_payment: float) -> tuple[Decimal, Decimal]:
    """(down payment, amount financed) in cents; 422 unless there is enough left to finance."""
    down = financing.money(down_payment)
    financed = price - down
    if financed < financing.MIN_AMOUNT_FINANCED:
        raise ApiError(
            422,
            "Validation failed",
            errors=[
                {
                    "field": "down_payment",
                    "message": f"price minus down payment must be at least {financing.MIN_AMOUNT_FINANCED}"
                    f" (price {price})",
                }
            ],
        )
    return down, financed


def _application_body(row: dict, plan: financing.Schedule | None = None) -> dict:
    """A stored application; with its schedule when given one (recomputed from the stored terms)."""
    body = jsonable(row)
    body["loan_to_value"] = round(float(row["amount_financed"] / row["vehicle_value"]), 4)
    if plan is not None:
        body["schedule"] = [r.as_dict() for r in plan.rows]
    return body


@bp.post("/estimate")
@login_required
def estimate():
    body = parse_body(EstimateIn)
    if body.deal_id is not None:
        with services().db.connection() as conn:
            price = _deal_price(load_deal(conn, body.deal_id, admins=False))
    else:
        price = financing.money(body.price)
    down, financed = _terms(price, body.down_payment)
    apr = financing.apr_value(body.apr)
    plan = financing.schedule(financed, body.term_months, apr)
    return jsonify(
        deal_id=body.deal_id,
        price=float(price),
        down_payment=float(down),
        amount_financed=float(financed),
        term_months=body.term_months,
        apr=float(apr),
        monthly_payment=float(plan.monthly_payment),
        total_interest=float(plan.total_interest),
        total_paid=float(plan.total_paid),
        total_cost=float(down + plan.total_paid),
        schedule=[r.as_dict() for r in plan.rows],
    )


@bp.post("", strict_slashes=False)
@login_required
def apply():
    start = time.perf_counter()
    body = parse_body(ApplyIn)
    apr = financing.apr_value(body.apr)
    with services().db.connection() as conn:
        # financing is the owner's alone, administrators included
        deal = load_deal(conn, body.deal_id, for_update=True, admins=False)
        if deal["status"] == "cancelled":
            raise ApiError(409, "Deal is cancelled")
        price = _deal_price(deal)
        down, financed = _terms(price, body.down_payment)
        plan = financing.schedule(financed, body.term_months, apr)
        vehicle_value = financing.money(deal_fair_value(deal))
        status, reasons = financing.decide(
            price=price,
            down_payment=down,
            term_months=body.term_months,
            apr=apr,
            vehicle_value=vehicle_value,
        )
        row = run(
            conn,
            "INSERT INTO loan_applications (user_id, deal_id, status, reasons, price, down_payment, "  # noqa: S608 - identifiers from code, values bound
            "amount_financed, term_months, apr, monthly_payment, total_interest, total_paid, vehicle_value) "
            f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {LOAN_COLUMNS}",
            (
                g.user["id"],
                deal["id"],
                status,
                Json(reasons),
                price,
                down,
                financed,
                body.term_months,
                apr,
                plan.monthly_payment,
                plan.total_interest,
                plan.total_paid,
                vehicle_value,
            ),
            operation="insert",
            table="loan_applications",
            fetch="one",
        )
    _applications(status).inc()
    metrics.loan_processing_duration.observe(time.perf_counter() - start)
    return jsonify(_application_body(row, plan)), 201


@bp.get("", strict_slashes=False)
@login_required
def list_loans():
    query = parse_query(ListQuery)
    conditions, params = ["user_id = %s"], [g.user["id"]]
    if query.status:
        conditions.append("status = %s")
        params.append(query.status)
    return jsonify(list_page("loan_applications", LOAN_COLUMNS, conditions, params, query, _application_body))


@bp.get("/<int:loan_id>")
@login_required
def get_loan(loan_id: int):
    row = services().db.query(
        f"SELECT {LOAN_COLUMNS} FROM loan_applications WHERE id = %s",  # noqa: S608 - identifiers from code, values bound
        (loan_id,),
        operation="select",
        table="loan_applications",
        fetch="one",
    )
    owned(row, "Loan application not found", "Not allowed to access this loan application", admins=False)
    plan = financing.schedule(row["amount_financed"], row["term_months"], row["apr"])
    return jsonify(_application_body(row, plan))
