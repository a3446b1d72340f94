"""/api/v1/users/me/preferences: append-only preference documents in MongoDB (latest wins)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from flask import Blueprint, g, jsonify
from pydantic import Field, model_validator

from ..errors import ServiceUnavailable, parse_body
from ..services import services
from ..stores import Unavailable
from ..types import RequestModel, finite, line
from . import login_required

bp = Blueprint("users", __name__, url_prefix="/api/v1/users")
Label = line(min_length=1, max_length=60)
Bound = finite(ge=0, le=1e12)  # stored as a BSON double: finite, and no budget or year is larger


class Range(RequestModel):
    min: Bound | None = None
    max: Bound | None = None

    @model_validator(mode="after")
    def ordered(self):
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min must not exceed max")
        return self


class PreferencesIn(RequestModel):
    makes: Annotated[list[Label], Field(max_length=20)] = Field(default_factory=list)
    budget_range: Range | None = None
    year_range: Range | None = None
    body_types: Annotated[
        list[Literal["sedan", "suv", "truck", "coupe", "hatchback", "minivan", "wagon"]], Field(max_length=7)
    ] = Field(default_factory=list)
    features: Annotated[list[Label], Field(max_length=30)] = Field(default_factory=list)


def _public(document: dict | None) -> dict:
    if document is None:
        return {"user_id": g.user["id"], "preferences": PreferencesIn().model_dump(), "created_at": None}
    return {
        "user_id": document["user_id"],
        "preferences": document["preferences"],
        "created_at": document["created_at"].isoformat(),
    }


@bp.get("/me/preferences")
@login_required
def get_preferences():
    try:
        latest = services().mongo.call(
            lambda db: db.user_preferences.find_one({"user_id": g.user["id"]}, sort=[("created_at", -1)])
        )
    except Unavailable:
        raise ServiceUnavailable("Preferences store") from None
    return jsonify(_public(latest))


@bp.put("/me/preferences")
@login_required
def put_preferences():
    body = parse_body(PreferencesIn)
    now = datetime.now(UTC)
    document = {
        "user_id": g.user["id"],
        "preferences": body.model_dump(),
        "created_at": now,
        "updated_at": now,
    }
    try:
        services().mongo.call(lambda db: db.user_preferences.insert_one(document))
    except Unavailable:
        raise ServiceUnavailable("Preferences store") from None
    return jsonify(_public(document))
