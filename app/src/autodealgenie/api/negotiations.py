"""/api/v1/negotiations: sessions and messages in PostgreSQL, advisor replies logged in MongoDB."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from flask import Blueprint, g, jsonify
from psycopg2.extras import Json
from pydantic import Field, model_validator

from .. import metrics
from ..advisor import Advice
from ..db import run
from ..errors import ApiError, parse_body
from ..services import services
from ..types import Id, RequestModel, finite, text
from . import jsonable, login_required, owned
from .deals import deal_fair_value, load_deal

bp = Blueprint("negotiations", __name__, url_prefix="/api/v1/negotiations")
SESSION_COLUMNS = (
    "id, user_id, deal_id, status, current_round, max_rounds, target_price, dealer_offer, "
    "agreed_price, created_at, updated_at, ended_at"
)
# The simulated dealer moves this share of the gap towards the buyer's counter each round, and
# never below this share of fair value.
DEALER_CONCESSION = 0.35
DEALER_FLOOR = 0.93
# negotiation_messages.role (the table's CHECK): the zero-initialised negotiation_messages series
MESSAGE_ROLES = ("user", "agent", "dealer_sim")


Offer = finite(gt=0, lt=10_000_000)  # numeric(12, 2)
Message = text(min_length=1, max_length=2000)


class StartIn(RequestModel):
    deal_id: Id
    target_price: Offer | None = None
    max_rounds: Annotated[int, Field(ge=1, le=20)] = 10


class NextIn(RequestModel):
    action: Literal["confirm", "reject", "counter"]
    counter_offer: Offer | None = None

    @model_validator(mode="after")
    def counter_needs_offer(self):
        if (self.action == "counter") != (self.counter_offer is not None):
            raise ValueError("counter_offer is required for action 'counter' and only allowed with it")
        return self


class ChatIn(RequestModel):
    message: Message


def _add_message(
    conn, session_id: int, role: str, content: str, round_number: int, metadata: dict | None = None
):
    message = run(
        conn,
        "INSERT INTO negotiation_messages (session_id, role, content, round_number, metadata) "
        "VALUES (%s, %s, %s, %s, %s) RETURNING id, role, content, round_number, metadata, created_at",
        (session_id, role, content, round_number, Json(metadata or {})),
        operation="insert",
        table="negotiation_messages",
        fetch="one",
    )
    metrics.negotiation_messages.labels(role).inc()
    return message


def _add_advice(conn, session_id: int, round_number: int, advice: Advice, **metadata):
    """Store the advisor's reply as the agent's message (model and advice metadata alongside)."""
    return _add_message(
        conn,
        session_id,
        "agent",
        advice.content,
        round_number,
        {"model": advice.model, **metadata, **advice.metadata},
    )


def _consult(prompt_type: str, session: dict, deal: dict, **extra) -> Advice:
    """Ask the advisor; every call is recorded in MongoDB ai_responses."""
    svc = services()
    context = {
        "deal_id": deal["id"],
        "vehicle": f"{deal['vehicle_year']} {deal['vehicle_make']} {deal['vehicle_model']}",
        "asking_price": float(deal["asking_price"]),
        "fair_value": deal_fair_value(deal),
        "dealer_offer": float(session["dealer_offer"]),
        "target_price": float(session["target_price"]) if session["target_price"] is not None else None,
        "round": session["current_round"],
        "max_rounds": session["max_rounds"],
        **extra,
    }
    advice = svc.advisor.advise(prompt_type, context)
    svc.mongo.record(
        "ai_responses",
        {
            "feature": "negotiation",
            "user_id": g.user["id"],
            "deal_id": deal["id"],
            "session_id": session["id"],
            "prompt_id": f"negotiation_{prompt_type}",
            "prompt_variables": context,
            "response_content": advice.content,
            "response_metadata": advice.metadata,
            "model_used": advice.model,
            "tokens_used": advice.prompt_tokens + advice.completion_tokens,
            "temperature": advice.temperature,
            "llm_used": advice.llm_used,
        },
    )
    return advice


def _refresh_active_gauge(conn) -> None:
    row = run(
        conn,
        "SELECT count(*) AS n FROM negotiation_sessions WHERE status = 'active'",
        None,
        operation="select",
        table="negotiation_sessions",
        fetch="one",
    )
    metrics.active_negotiation_sessions.set(row["n"])


def _load_session(conn, session_id: int, *, for_update: bool = False) -> dict:
    session = run(
        conn,
        f"SELECT {SESSION_COLUMNS} FROM negotiation_sessions WHERE id = %s"  # noqa: S608 - identifiers from code, values bound
        f"{' FOR UPDATE' if for_update else ''}",
        (session_id,),
        operation="select",
        table="negotiation_sessions",
        fetch="one",
    )
    return owned(session, "Negotiation session not found", "Not allowed to access this negotiation")


def _load_active(conn, session_id: int, *, for_update: bool = False) -> tuple[dict, dict]:
    """The caller's session (409 unless active) and its deal, both locked when for_update."""
    session = _load_session(conn, session_id, for_update=for_update)
    if session["status"] != "active":
        raise ApiError(409, f"Negotiation is {session['status']}")
    deal = run(
        conn,
        f"SELECT * FROM deals WHERE id = %s{' FOR UPDATE' if for_update else ''}",  # noqa: S608 - identifiers from code, values bound
        (session["deal_id"],),
        operation="select",
        table="deals",
        fetch="one",
    )
    return session, deal


def _session_body(conn, session: dict) -> dict:
    messages = run(
        conn,
        "SELECT id, role, content, round_number, metadata, created_at FROM negotiation_messages "
        "WHERE session_id = %s ORDER BY id",
        (session["id"],),
        operation="select",
        table="negotiation_messages",
    )
    return {**jsonable(session), "messages": [jsonable(m) for m in messages]}


@bp.post("", strict_slashes=False)
@login_required
def start():
    body = parse_body(StartIn)
    with services().db.connection() as conn:
        deal = load_deal(conn, body.deal_id, for_update=True)
        if deal["status"] in ("completed", "cancelled"):
            raise ApiError(409, f"Deal is {deal['status']}")
        active = run(
            conn,
            "SELECT id FROM negotiation_sessions WHERE deal_id = %s AND status = 'active'",
            (deal["id"],),
            operation="select",
            table="negotiation_sessions",
            fetch="one",
        )
        if active is not None:
            raise ApiError(409, f"Deal already has an active negotiation (session {active['id']})")
        session = run(
            conn,
            "INSERT INTO negotiation_sessions (user_id, deal_id, max_rounds, target_price, "  # noqa: S608 - identifiers from code, values bound
            f"dealer_offer) VALUES (%s, %s, %s, %s, %s) RETURNING {SESSION_COLUMNS}",
            (g.user["id"], deal["id"], body.max_rounds, body.target_price, deal["asking_price"]),
            operation="insert",
            table="negotiation_sessions",
            fetch="one",
        )
        if deal["status"] == "pending":
            run(
                conn,
                "UPDATE deals SET status = 'in_progress', updated_at = now() WHERE id = %s",
                (deal["id"],),
                operation="update",
                table="deals",
                fetch="none",
            )
        goal = f" My target is ${body.target_price:,.0f}." if body.target_price else ""
        _add_message(conn, session["id"], "user", f"I want to negotiate deal {deal['id']}.{goal}", 1)
        _add_message(
            conn,
            session["id"],
            "dealer_sim",
            f"Our price is ${float(deal['asking_price']):,.0f}.",
            1,
            {"dealer_offer": float(deal["asking_price"])},
        )
        _add_advice(conn, session["id"], 1, _consult("opening", session, deal))
        _refresh_active_gauge(conn)
        body_out = _session_body(conn, session)
    metrics.negotiation_sessions.inc()
    return jsonify(body_out), 201


def _end(conn, session: dict, status: str, agreed: float | None) -> dict:
    ended = run(
        conn,
        f"UPDATE negotiation_sessions SET status = %s, agreed_price = %s, ended_at = now(), "  # noqa: S608 - identifiers from code, values bound
        f"updated_at = now() WHERE id = %s RETURNING {SESSION_COLUMNS}",
        (status, agreed, session["id"]),
        operation="update",
        table="negotiation_sessions",
        fetch="one",
    )
    metrics.negotiation_duration.observe((datetime.now(UTC) - session["created_at"]).total_seconds())
    return ended


@bp.post("/<int:session_id>/next")
@login_required
def next_round(session_id: int):
    body = parse_body(NextIn)
    with services().db.connection() as conn:
        session, deal = _load_active(conn, session_id, for_update=True)
        round_number = session["current_round"]
        offer = float(session["dealer_offer"])
        if body.action == "confirm":
            _add_message(conn, session_id, "user", f"I accept ${offer:,.0f}.", round_number)
            session = _end(conn, session, "completed", offer)
            run(
                conn,
                "UPDATE deals SET status = 'completed', offer_price = %s, updated_at = now() WHERE id = %s",
                (offer, deal["id"]),
                operation="update",
                table="deals",
                fetch="none",
            )
            _add_message(
                conn, session_id, "agent", f"Deal agreed at ${offer:,.0f}.", round_number, {"agreed": offer}
            )
        elif body.action == "reject":
            _add_message(conn, session_id, "user", "I am walking away from this deal.", round_number)
            session = _end(conn, session, "cancelled", None)
            _add_message(conn, session_id, "agent", "Negotiation ended without agreement.", round_number)
        else:
            if round_number >= session["max_rounds"]:
                raise ApiError(409, "Maximum number of rounds reached: confirm or reject the dealer's offer")
            counter = float(body.counter_offer)
            if counter >= offer:
                raise ApiError(
                    422, f"counter_offer must be below the dealer's current offer of ${offer:,.0f}"
                )
            round_number += 1
            _add_message(
                conn,
                session_id,
                "user",
                f"I offer ${counter:,.0f}.",
                round_number,
                {"counter_offer": counter},
            )
            floor = deal_fair_value(deal) * DEALER_FLOOR
            new_offer = round(max(counter, floor, offer - (offer - counter) * DEALER_CONCESSION), -1)
            new_offer = min(new_offer, offer)
            accepted = new_offer <= counter
            dealer_text = (
                f"We can accept ${counter:,.0f}." if accepted else f"We can come down to ${new_offer:,.0f}."
            )
            _add_message(
                conn,
                session_id,
                "dealer_sim",
                dealer_text,
                round_number,
                {"dealer_offer": new_offer, "accepted": accepted},
            )
            session = run(
                conn,
                "UPDATE negotiation_sessions SET current_round = %s, dealer_offer = %s, "  # noqa: S608 - identifiers from code, values bound
                f"updated_at = now() WHERE id = %s RETURNING {SESSION_COLUMNS}",
                (round_number, new_offer, session_id),
                operation="update",
                table="negotiation_sessions",
                fetch="one",
            )
            _add_advice(
                conn, session_id, round_number, _consult("counter", session, deal, counter_offer=counter)
            )
        _refresh_active_gauge(conn)
        return jsonify(_session_body(conn, session))


@bp.post("/<int:session_id>/chat")
@login_required
def chat(session_id: int):
    body = parse_body(ChatIn)
    with services().db.connection() as conn:
        session, deal = _load_active(conn, session_id)
        round_number = session["current_round"]
        user_message = _add_message(conn, session_id, "user", body.message, round_number)
        advice = _consult("chat", session, deal, message=body.message)
        reply = _add_advice(conn, session_id, round_number, advice, llm_used=advice.llm_used)
    return jsonify(session_id=session_id, user_message=jsonable(user_message), reply=jsonable(reply))


@bp.get("/<int:session_id>")
@login_required
def get_session(session_id: int):
    with services().db.connection() as conn:
        return jsonify(_session_body(conn, _load_session(conn, session_id)))
