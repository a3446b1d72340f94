"""Loans: the amortisation schedule, the decision rule, the endpoints (stored in PostgreSQL) and metrics."""

from __future__ import annotations

from decimal import Decimal

import psycopg2
import pytest
from appsupport import DEAL, register, sample
from autodealgenie import financing, pricing
from autodealgenie.admin import ensure_admin
from hypothesis import example, given, settings
from hypothesis import strategies as st

# DEAL's vehicle (a 2021 Camry, 42,000 miles) as the pricing model values it
FAIR_VALUE = pricing.vehicle_fair_value(
    vin=DEAL["vehicle_vin"],
    mileage=DEAL["vehicle_mileage"],
    make=DEAL["vehicle_make"],
    model=DEAL["vehicle_model"],
    year=DEAL["vehicle_year"],
)
# Every rule passes: 60 months, 6.9 %, 28 % down, 17,500 financed = 1.16 x the fair value (15,060).
APPROVED = {"down_payment": 7000, "term_months": 60, "apr": 6.9}
# Every rule fails: 96 months, 29.5 %, nothing down, 24,500 financed = 1.63 x the fair value.
DECLINED = {"down_payment": 0, "term_months": 96, "apr": 29.5}


# -- the arithmetic ---------------------------------------------------------------------------------


def test_a_textbook_loan():
    """20,000 over 60 months at 6 % APR: the well-known 386.66 a month."""
    plan = financing.schedule(Decimal("20000.00"), 60, Decimal("6"))
    assert plan.monthly_payment == Decimal("386.66")
    assert len(plan.rows) == 60
    assert plan.rows[0].interest == Decimal("100.00")  # 20,000 x 0.5 %
    assert plan.rows[0].principal == Decimal("286.66")
    assert all(row.payment == Decimal("386.66") for row in plan.rows[:-1])
    # the last payment absorbs the rounding of the 59 before it
    assert plan.rows[-1].payment == Decimal("386.41") and plan.rows[-1].balance == 0
    assert plan.total_interest == Decimal("3199.35")
    assert plan.total_paid == Decimal("23199.35")


def test_apr_zero_divides_evenly_and_the_last_payment_takes_the_remainder():
    plan = financing.schedule(Decimal("10000.00"), 36, Decimal("0"))
    assert plan.monthly_payment == Decimal("277.78")
    assert [row.payment for row in plan.rows] == [Decimal("277.78")] * 35 + [Decimal("277.70")]
    assert plan.total_interest == 0 and plan.total_paid == Decimal("10000.00")


def test_a_one_month_loan_is_principal_plus_one_month_of_interest():
    plan = financing.schedule(Decimal("1200.00"), 1, Decimal("12"))
    assert [(r.payment, r.principal, r.interest) for r in plan.rows] == [
        (Decimal("1212.00"), Decimal("1200.00"), Decimal("12.00"))
    ]


SMALLEST = int(financing.MIN_AMOUNT_FINANCED * 100)
STEEPEST = int(financing.MAX_APR * 1000)


@settings(max_examples=300, derandomize=True, database=None)
# the corner where rounding weighs most: the smallest amount over the longest term at the top APR
# (at 100.00 financed, the bound before, these were repaid a month early)
@example(cents=SMALLEST, term=financing.MAX_TERM_MONTHS, apr_thousandths=STEEPEST)
@example(cents=SMALLEST + 1, term=financing.MAX_TERM_MONTHS - 1, apr_thousandths=STEEPEST - 1)
@example(cents=SMALLEST + 77, term=financing.MAX_TERM_MONTHS, apr_thousandths=STEEPEST - 538)
@given(
    cents=st.integers(int(financing.MIN_AMOUNT_FINANCED * 100), 999_999_999),
    term=st.integers(1, financing.MAX_TERM_MONTHS),
    apr_thousandths=st.integers(0, int(financing.MAX_APR * 1000)),
)
def test_every_schedule_repays_exactly_the_amount_financed(cents, term, apr_thousandths):
    principal, apr = Decimal(cents) / 100, Decimal(apr_thousandths) / 1000
    plan = financing.schedule(principal, term, apr)
    rows = plan.rows
    assert len(rows) == term
    assert [r.month for r in rows] == list(range(1, term + 1))
    assert sum(r.principal for r in rows) == principal
    assert rows[-1].balance == 0 and all(r.balance > 0 for r in rows[:-1])
    assert all(r.payment == plan.monthly_payment for r in rows[:-1])
    assert all(r.principal >= 0 and r.interest >= 0 and r.payment == r.principal + r.interest for r in rows)
    assert plan.total_paid == principal + plan.total_interest
    assert all(r.payment == r.payment.quantize(financing.CENT) for r in rows)
    if apr == 0:
        assert plan.total_interest == 0


def test_the_smallest_amounts_at_the_top_apr_take_the_whole_term():
    """Every rounding residue of the payment (a cent of principal moves it by ~0.04 cent) at the
    bounds where the compounded rounding is largest: the schedule still has one row per month."""
    for cents in range(SMALLEST, SMALLEST + 3000):
        for apr in (financing.MAX_APR, financing.MAX_APR - Decimal("0.5")):
            plan = financing.schedule(Decimal(cents) / 100, financing.MAX_TERM_MONTHS, apr)
            assert len(plan.rows) == financing.MAX_TERM_MONTHS, (cents, apr)
            assert all(r.balance > 0 for r in plan.rows[:-1]), (cents, apr)


def test_decision_rule():
    ok = {
        "price": Decimal("20000.00"),
        "down_payment": Decimal("2000.00"),
        "term_months": 84,
        "apr": Decimal("25"),
        "vehicle_value": Decimal("16000.00"),
    }
    assert financing.decide(**ok) == ("approved", [])
    # every bound is inclusive: 10 % down exactly, 18,000 financed = 1.20 x 15,000 exactly
    assert financing.decide(**{**ok, "vehicle_value": Decimal("15000.00")}) == ("approved", [])
    for change, rule in (
        ({"term_months": 85}, "term"),
        ({"apr": Decimal("25.001")}, "apr"),
        ({"down_payment": Decimal("1999.99")}, "down_payment"),
        ({"vehicle_value": Decimal("14999.99")}, "loan_to_value"),
    ):
        status, reasons = financing.decide(**{**ok, **change})
        assert (status, [r["rule"] for r in reasons]) == ("declined", [rule]), change
        assert all(r["message"] for r in reasons)
    status, reasons = financing.decide(**{**ok, "down_payment": Decimal("0.00"), "term_months": 120})
    assert status == "declined" and {r["rule"] for r in reasons} == {"term", "down_payment", "loan_to_value"}


def test_money_rounds_half_up_to_cents():
    assert financing.money(0.125) == Decimal("0.13")
    assert financing.money(24500) == Decimal("24500.00")
    assert financing.money(0.1) == Decimal("0.10")
    assert financing.apr_value(6.9) == Decimal("6.900") and financing.apr_value(1.0005) == Decimal("1.001")


# -- the endpoints ----------------------------------------------------------------------------------


@pytest.fixture
def deal(client, user):
    response = client.post("/api/v1/deals", json=DEAL, headers=user.headers)
    assert response.status_code == 201
    return response.get_json()


def test_estimate_from_a_price(client, user):
    response = client.post(
        "/api/v1/loans/estimate",
        json={"price": 25000, "down_payment": 5000, "term_months": 60, "apr": 6},
        headers=user.headers,
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["amount_financed"] == 20000 and body["monthly_payment"] == 386.66
    assert body["total_interest"] == 3199.35 and body["total_paid"] == 23199.35
    assert body["total_cost"] == 28199.35 and body["deal_id"] is None
    assert len(body["schedule"]) == 60
    assert body["schedule"][0] == {
        "month": 1,
        "payment": 386.66,
        "principal": 286.66,
        "interest": 100.0,
        "balance": 19713.34,
    }
    assert body["schedule"][-1]["balance"] == 0


def test_estimate_from_a_deal_uses_its_offer_price_else_its_asking_price(client, user, deal):
    terms = {"deal_id": deal["id"], "down_payment": 4500, "term_months": 48, "apr": 0}
    body = client.post("/api/v1/loans/estimate", json=terms, headers=user.headers).get_json()
    assert body["price"] == DEAL["asking_price"] and body["amount_financed"] == 20000
    assert body["monthly_payment"] == round(20000 / 48, 2) and body["total_interest"] == 0
    client.put(f"/api/v1/deals/{deal['id']}", json={"offer_price": 22000.5}, headers=user.headers)
    body = client.post("/api/v1/loans/estimate", json=terms, headers=user.headers).get_json()
    assert body["price"] == 22000.5 and body["amount_financed"] == 17500.5


@pytest.mark.parametrize(
    ("terms", "field"),
    [
        ({"apr": 5}, "body"),  # neither price nor deal_id
        ({"price": 20000, "deal_id": 1, "apr": 5}, "body"),  # both
        ({"price": 20000, "apr": 50.001}, "apr"),
        ({"price": 20000, "apr": -0.1}, "apr"),
        ({"price": 20000}, "apr"),
        ({"price": 20000, "apr": 5, "term_months": 0}, "term_months"),
        ({"price": 20000, "apr": 5, "term_months": 121}, "term_months"),
        ({"price": 20000, "apr": 5, "term_months": 2**63}, "term_months"),
        ({"price": 20000, "apr": 5, "down_payment": -1}, "down_payment"),
        ({"price": 20000, "apr": 5, "down_payment": 19000.01}, "down_payment"),  # under 1000 left
        ({"price": 10_000_000, "apr": 5}, "price"),  # numeric(12, 2)
        ({"price": 0, "apr": 5}, "price"),
        ({"price": "20000", "apr": "5", "extra": 1}, "extra"),
    ],
)
def test_estimate_validation_is_422(client, user, terms, field):
    response = client.post("/api/v1/loans/estimate", json=terms, headers=user.headers)
    assert response.status_code == 422, response.get_json()
    fields = [e["field"] for e in response.get_json()["errors"]]
    assert any(f == field or f.startswith(field) for f in fields), fields


def test_loans_need_a_login_and_the_callers_own_deal(client, user, deal):
    assert client.post("/api/v1/loans/estimate", json={"price": 1000, "apr": 1}).status_code == 401
    assert client.get("/api/v1/loans").status_code == 401
    other = register(client)
    for path, body in (
        ("/api/v1/loans/estimate", {"deal_id": deal["id"], "apr": 5}),
        ("/api/v1/loans", {"deal_id": deal["id"], "apr": 5, "down_payment": 5000}),
    ):
        assert client.post(path, json=body, headers=other.headers).status_code == 403
        missing = {**body, "deal_id": deal["id"] + 10**9}
        assert client.post(path, json=missing, headers=user.headers).status_code == 404


def _stored(migrated, loan_id: int) -> dict:
    params = migrated.postgres_dsn_params
    with psycopg2.connect(**params) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT status, price, down_payment, term_months, apr FROM loan_applications WHERE id = %s",
            (loan_id,),
        )
        status, price, down, term, apr = cur.fetchone()
    conn.close()
    return {"status": status, "price": price, "down_payment": down, "term_months": term, "apr": apr}


def test_applications_are_decided_stored_and_counted(client, user, deal, migrated):
    approved_before = sample("autodealgenie_loan_applications_total", {"status": "approved"})
    declined_before = sample("autodealgenie_loan_applications_total", {"status": "declined"})
    durations_before = sample("autodealgenie_loan_processing_duration_seconds_count")

    response = client.post("/api/v1/loans", json={"deal_id": deal["id"], **APPROVED}, headers=user.headers)
    assert response.status_code == 201, response.get_json()
    approved = response.get_json()
    assert approved["status"] == "approved" and approved["reasons"] == []
    assert approved["amount_financed"] == 17500 and approved["vehicle_value"] == FAIR_VALUE
    assert approved["loan_to_value"] == round(17500 / FAIR_VALUE, 4)
    assert approved["monthly_payment"] == approved["schedule"][0]["payment"]
    assert len(approved["schedule"]) == 60 and approved["user_id"] == user_id(client, user)
    assert _stored(migrated, approved["id"]) == {
        "status": "approved",
        "price": Decimal("24500.00"),
        "down_payment": Decimal("7000.00"),
        "term_months": 60,
        "apr": Decimal("6.900"),
    }

    response = client.post("/api/v1/loans", json={"deal_id": deal["id"], **DECLINED}, headers=user.headers)
    assert response.status_code == 201
    declined = response.get_json()
    assert declined["status"] == "declined"
    assert {r["rule"] for r in declined["reasons"]} == {"term", "apr", "down_payment", "loan_to_value"}
    assert _stored(migrated, declined["id"])["status"] == "declined"

    assert sample("autodealgenie_loan_applications_total", {"status": "approved"}) == approved_before + 1
    assert sample("autodealgenie_loan_applications_total", {"status": "declined"}) == declined_before + 1
    assert sample("autodealgenie_loan_processing_duration_seconds_count") == durations_before + 2

    # read back: the same application, its schedule recomputed identically from the stored terms
    response = client.get(f"/api/v1/loans/{approved['id']}", headers=user.headers)
    assert response.status_code == 200 and response.get_json() == approved
    listed = client.get("/api/v1/loans", headers=user.headers).get_json()
    assert [item["id"] for item in listed["items"]] == [declined["id"], approved["id"]]
    assert listed["total"] == 2 and "schedule" not in listed["items"][0]
    only = client.get("/api/v1/loans?status=approved", headers=user.headers).get_json()
    assert [item["id"] for item in only["items"]] == [approved["id"]]
    assert client.get("/api/v1/loans?status=maybe", headers=user.headers).status_code == 422
    assert client.get("/api/v1/loans?limit=101", headers=user.headers).status_code == 422


def user_id(client, user) -> int:
    return client.get("/api/v1/auth/me", headers=user.headers).get_json()["id"]


def test_applications_are_private(client, user, deal):
    loan = client.post("/api/v1/loans", json={"deal_id": deal["id"], **APPROVED}, headers=user.headers)
    loan_id = loan.get_json()["id"]
    other = register(client)
    assert client.get(f"/api/v1/loans/{loan_id}", headers=other.headers).status_code == 403
    assert client.get("/api/v1/loans", headers=other.headers).get_json() == {
        "items": [],
        "total": 0,
        "skip": 0,
        "limit": 50,
    }
    assert client.get(f"/api/v1/loans/{loan_id + 10**9}", headers=user.headers).status_code == 404
    assert client.get(f"/api/v1/loans/{10**30}", headers=user.headers).status_code == 404


def test_administrators_neither_finance_nor_read_other_users_loans(client, user, deal, migrated):
    """Deals are visible to administrators; loan applications are not (app/README.md)."""
    loan_id = client.post(
        "/api/v1/loans", json={"deal_id": deal["id"], **APPROVED}, headers=user.headers
    ).get_json()["id"]
    admin = register(client)
    ensure_admin(
        migrated, email=admin.email, username=admin.username, full_name=None, password=admin.password
    )
    assert client.get(f"/api/v1/deals/{deal['id']}", headers=admin.headers).status_code == 200
    assert client.get(f"/api/v1/loans/{loan_id}", headers=admin.headers).status_code == 403
    for path, body in (
        ("/api/v1/loans/estimate", {"deal_id": deal["id"], "apr": 5}),
        ("/api/v1/loans", {"deal_id": deal["id"], **APPROVED}),
    ):
        assert client.post(path, json=body, headers=admin.headers).status_code == 403, path
    assert client.get("/api/v1/loans", headers=admin.headers).get_json()["total"] == 0


def test_a_cancelled_deal_cannot_be_financed(client, user, deal):
    client.put(f"/api/v1/deals/{deal['id']}", json={"status": "cancelled"}, headers=user.headers)
    response = client.post("/api/v1/loans", json={"deal_id": deal["id"], **APPROVED}, headers=user.headers)
    assert response.status_code == 409
    assert client.get("/api/v1/loans", headers=user.headers).get_json()["total"] == 0


def test_invalid_applications_are_not_counted(client, user, deal):
    before = sample("autodealgenie_loan_processing_duration_seconds_count")
    too_much_down = {"deal_id": deal["id"], "apr": 5, "down_payment": DEAL["asking_price"]}
    assert client.post("/api/v1/loans", json=too_much_down, headers=user.headers).status_code == 422
    assert client.post("/api/v1/loans", json={"deal_id": deal["id"]}, headers=user.headers).status_code == 422
    assert sample("autodealgenie_loan_processing_duration_seconds_count") == before
