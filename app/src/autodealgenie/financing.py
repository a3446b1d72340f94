"""Loan arithmetic: the payment schedule (standard amortisation) and the application decision rule.

Money is Decimal, rounded to cents half-up at every step a lender would round: the monthly payment,
each month's interest. Every payment but the last is the monthly payment; the last one pays the
remaining balance plus its interest, so it absorbs the rounding and the balance ends at exactly 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
APR_STEP = Decimal("0.001")  # APR in percent, stored as numeric(6, 3)

# Input bounds (422 beyond them): wide enough for any estimate, narrow enough that the schedule has
# one row per month. Rounding the payment and each month's interest moves the balance by up to a
# cent a month, compounded: at most ~31 after 119 months at 50 %, while the last month's balance is
# ~4 % of the amount financed there; under ~770 financed it could be repaid a month early (it was
# at 100-330, tests/test_loans.py).
MAX_TERM_MONTHS = 120
MAX_APR = Decimal("50")
MIN_AMOUNT_FINANCED = Decimal("1000.00")

# The decision rule: an application is declined when any of these fails, approved otherwise.
APPROVAL_MAX_TERM_MONTHS = 84
APPROVAL_MAX_APR = Decimal("25")
APPROVAL_MIN_DOWN_PAYMENT_SHARE = Decimal("0.10")  # of the price
APPROVAL_MAX_LOAN_TO_VALUE = Decimal("1.20")  # amount financed / the vehicle's fair value


def money(value) -> Decimal:
    """A float or Decimal as cents (half-up); str() first so 0.1 is 0.10, not its binary expansion."""
    return Decimal(str(value)).quantize(CENT, ROUND_HALF_UP)


def apr_value(value) -> Decimal:
    return Decimal(str(value)).quantize(APR_STEP, ROUND_HALF_UP)


@dataclass(frozen=True)
class Row:
    month: int
    payment: Decimal
    principal: Decimal
    interest: Decimal
    balance: Decimal

    def as_dict(self) -> dict:
        return {
            "month": self.month,
            "payment": float(self.payment),
            "principal": float(self.principal),
            "interest": float(self.interest),
            "balance": float(self.balance),
        }


@dataclass(frozen=True)
class Schedule:
    monthly_payment: Decimal
    rows: tuple[Row, ...]

    @property
    def total_interest(self) -> Decimal:
        return sum((row.interest for row in self.rows), Decimal("0.00"))

    @property
    def total_paid(self) -> Decimal:
        return sum((row.payment for row in self.rows), Decimal("0.00"))


def monthly_payment(principal: Decimal, term_months: int, apr: Decimal) -> Decimal:
    """The annuity payment P*r/(1-(1+r)^-n) at the monthly rate r = APR/12, or P/n at APR 0."""
    rate = apr / Decimal(1200)
    if rate == 0:
        return (principal / term_months).quantize(CENT, ROUND_HALF_UP)
    growth = (1 + rate) ** term_months
    return (principal * rate * growth / (growth - 1)).quantize(CENT, ROUND_HALF_UP)


def schedule(principal: Decimal, term_months: int, apr: Decimal) -> Schedule:
    rate = apr / Decimal(1200)
    payment = monthly_payment(principal, term_months, apr)
    balance = principal
    rows = []
    for month in range(1, term_months + 1):
        interest = (balance * rate).quantize(CENT, ROUND_HALF_UP)
        repaid = payment - interest
        if month == term_months or repaid >= balance:
            repaid = balance  # the last payment (or an early one that covers it all) clears the balance
        balance -= repaid
        rows.append(Row(month, repaid + interest, repaid, interest, balance))
        if balance == 0:
            break
    return Schedule(payment, tuple(rows))


def decide(
    *, price: Decimal, down_payment: Decimal, term_months: int, apr: Decimal, vehicle_value: Decimal
) -> tuple[str, list[dict]]:
    """("approved" | "declined", the rules that failed as {rule, message})."""
    financed = price - down_payment
    failed = []
    if term_months > APPROVAL_MAX_TERM_MONTHS:
        failed.append(
            {"rule": "term", "message": f"term over {APPROVAL_MAX_TERM_MONTHS} months ({term_months})"}
        )
    if apr > APPROVAL_MAX_APR:
        failed.append({"rule": "apr", "message": f"APR over {APPROVAL_MAX_APR} % ({apr} %)"})
    if down_payment < price * APPROVAL_MIN_DOWN_PAYMENT_SHARE:
        failed.append(
            {
                "rule": "down_payment",
                "message": f"down payment under {APPROVAL_MIN_DOWN_PAYMENT_SHARE:.0%} of the price",
            }
        )
    if financed > vehicle_value * APPROVAL_MAX_LOAN_TO_VALUE:
        failed.append(
            {
                "rule": "loan_to_value",
                "message": f"amount financed over {APPROVAL_MAX_LOAN_TO_VALUE:.0%} of the vehicle's fair "
                f"value ({vehicle_value})",
            }
        )
    return ("declined" if failed else "approved"), failed
