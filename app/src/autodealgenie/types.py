"""Field types shared by every request model, so hostile values are a 422 before any store sees them.

Strings: no control characters (C0, DEL, C1) and no unpaired surrogates. PostgreSQL text cannot
hold NUL (psycopg2 raises ValueError), a surrogate cannot be encoded as UTF-8 for PostgreSQL or
BSON, and neither belongs in a name, an email or a search term. Free text (notes, chat) may carry
tab, newline and carriage return. The check runs on the raw value, before whitespace stripping.

Integers: bounded by what stores them (PostgreSQL integer/bigint, BSON int64 for MongoDB).
Floats: finite. Python's json module parses the non-JSON tokens NaN/Infinity and 1e400 (-> inf);
errors.parse_body refuses the tokens, and RequestModel refuses any non-finite value that remains.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError

INT32_MAX = 2**31 - 1  # PostgreSQL integer
INT64_MAX = 2**63 - 1  # PostgreSQL bigint, BSON int64

# Cc (C0, DEL, C1) and the surrogate block; free text keeps \t \n \r.
_NOT_IN_LINE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_NOT_IN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


class RequestModel(BaseModel):
    """Base of every request body and query model: unknown fields and non-finite floats are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, hide_input_in_errors=True)


def _rejecting(pattern: re.Pattern[str]):
    def check(value: Any) -> Any:
        if isinstance(value, str):
            found = pattern.search(value)
            if found:
                char = found.group()
                kind = "unpaired surrogate" if "\ud800" <= char <= "\udfff" else "control character"
                raise PydanticCustomError(
                    "forbidden_character",
                    "String must not contain a {kind} ({code} at position {position})",
                    {"kind": kind, "code": f"U+{ord(char):04X}", "position": found.start()},
                )
        return value

    check.rejects_control_characters = True  # marker the request-model tests look for
    return check


reject_in_line = _rejecting(_NOT_IN_LINE)
reject_in_text = _rejecting(_NOT_IN_TEXT)


def line(
    *,
    max_length: int,
    min_length: int | None = None,
    pattern: str | None = None,
    strip: bool = True,
    lower: bool = False,
):
    """A single-line string: names, emails, search terms, tokens, passwords (strip=False)."""
    return Annotated[
        str,
        StringConstraints(
            strip_whitespace=strip,
            to_lower=lower,
            min_length=min_length,
            max_length=max_length,
            pattern=pattern,
        ),
        BeforeValidator(reject_in_line),
    ]


def text(*, max_length: int, min_length: int | None = None, strip: bool = True):
    """Free text (notes, chat messages): tab, newline and carriage return allowed."""
    return Annotated[
        str,
        StringConstraints(strip_whitespace=strip, min_length=min_length, max_length=max_length),
        BeforeValidator(reject_in_text),
    ]


Email = line(max_length=254, lower=True, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# A JWT is base64url segments joined by dots.
Token = line(max_length=4096, pattern=r"^[A-Za-z0-9_.=-]*$")
Id = Annotated[int, Field(gt=0, le=INT64_MAX)]  # bigserial primary keys


def finite(**bounds: float):
    """A float within bounds; non-finite values are refused by RequestModel (and here, for other models)."""
    return Annotated[float, Field(allow_inf_nan=False, **bounds)]
