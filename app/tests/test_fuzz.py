"""Property-based fuzz of every endpoint (issue 13), against real PostgreSQL, Redis and nx-27017.

Every (route, method) of the app's url_map is a test case of its own, so a new endpoint is fuzzed
without touching this file. Each draws requests that are valid, near-valid (a valid body with one
field mutated) or hostile (wrong types, huge sizes, any unicode incl. surrogates and NUL, deep
nesting, huge integers, NaN/Infinity as raw JSON tokens, broken UTF-8, wrong content types), sent
anonymously, as a logged-in user, as another user or with a garbage token, with real and generated
ids in the path. Properties: no 5xx, no traceback (or error record) in the log, every 4xx is a JSON
object with an error message, and no JSON response carries a non-JSON token.

Budget and replay (the session ends with a line "fuzz: N cases over M endpoints ..."):
- test_fuzz: derandomized (the same cases every run), ADG_FUZZ_EXAMPLES cases per endpoint.
- test_fuzz_sweep: no chance involved: every field of every body in SPECS (nested ones too), one
  hostile value at a time (NUL, surrogate, 2**63, 10**30, Infinity, deep nesting, ...).
- test_fuzz_stored_failures: issue 13's rows as explicit examples, then every failure stored in
  tests/.hypothesis-examples (commit that directory). Hypothesis keeps no database for a
  derandomized test, so failures are stored by exploring: ADG_FUZZ_EXPLORE=<cases> runs this test
  on fresh random cases over all endpoints and saves what fails (shrunk); without it, it replays.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import jwt
import pytest
from appsupport import DEAL
from autodealgenie.app import create_app
from autodealgenie.config import Config
from hypothesis import HealthCheck, Phase, example, find, given, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase, ReadOnlyDatabase

EXAMPLES = int(os.environ.get("ADG_FUZZ_EXAMPLES", "120"))  # per endpoint: ~40 s on 2 busy cores
EXPLORE = int(os.environ.get("ADG_FUZZ_EXPLORE", "0"))
DATABASE = DirectoryBasedExampleDatabase(Path(__file__).parent / ".hypothesis-examples")
SKIPPED_METHODS = {"HEAD", "OPTIONS"}  # answered by the framework, not by a view
FUZZ_ADDRESS = "127.0.0.77"  # its own per-address limit keys, whatever the other tests use
PASSWORD = "fuzz-correct-horse-9"
USER_EMAIL = "fuzz-user@fuzz.test"  # literal, so near-valid logins mutate it like any string


def endpoints(app) -> list[tuple[str, str, str]]:
    """(method, rule, endpoint) for every view in the url map."""
    return sorted(
        (method, rule.rule, rule.endpoint)
        for rule in app.url_map.iter_rules()
        for method in rule.methods - SKIPPED_METHODS
    )


# The routes, known at collection time: routing does not depend on the datastores.
ENDPOINTS = endpoints(create_app(Config(environment="test")))


# -- values -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """A value known only at run time (a real id, the user's email or token)."""

    name: str
    suffix: str | None = None  # appended to the value (as a string)


@dataclass(frozen=True)
class RawJSON:
    """JSON text inserted verbatim (deep nesting, NaN/Infinity tokens, giant literals)."""

    text: str

    def __repr__(self):
        return f"RawJSON({self.text[:60]!r}{'...' if len(self.text) > 60 else ''} len={len(self.text)})"


def _repeat(pieces, counts):
    return st.builds(lambda piece, n: piece * n, st.sampled_from(pieces), st.sampled_from(counts))


CONTROL_OR_SURROGATE = st.characters(codec=None, categories=["Cc", "Cs", "Cf", "Zl", "Zp", "Co", "Cn"])
# NUL: PostgreSQL text cannot hold it; surrogates: not UTF-8; the rest: controls and oddities.
DANGEROUS_CHARACTERS = st.one_of(
    st.sampled_from(["\x00", "\x00", "\x00", "\ud800", "\udfff", "\x7f", "\x85", "\x1b", "\n"]),
    CONTROL_OR_SURROGATE,
)
STRINGS = st.one_of(
    st.text(max_size=30),
    st.text(st.characters(codec=None), max_size=30),  # every plane (surrogates come below)
    st.text(CONTROL_OR_SURROGATE, min_size=1, max_size=8),
    st.builds(
        lambda a, b, c: a + b + c, st.text(max_size=5), CONTROL_OR_SURROGATE.map(str), st.text(max_size=5)
    ),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "a\x00b",
            "\ud800",
            "\udfff",
            "\ud83d\ude97",
            "🚗",
            "\u202e",
            "\ufeff",
            "\r\n",
            "' OR 1=1 --",
            "$where",
            "{$gt: ''}",
            "%00",
            "../../etc/passwd",
            "Infinity",
            "NaN",
            "1e400",
            "9" * 30,
            "ada@example.test",
            "4T1BF1FK5MU123456",
        ]
    ),
    _repeat(["x", "é", "🚗", "\x00", "\ud800", " "], [61, 201, 2001, 5001, 100_000]),
)
NUMBERS = st.one_of(
    st.integers(),
    st.sampled_from(
        [0, -1, 1, 2**31 - 1, 2**31, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, -(10**30), 10**300]
    ),
    st.floats(),  # includes nan and +-inf: serialised as the raw tokens NaN/Infinity
    st.sampled_from([1e308, 5e-324, -0.0, 0.1, 9_999_999.99, 10_000_000.0]),
)
NON_JSON_NUMBERS = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
# Around the parser's and the validator's recursion limits, and far beyond; unclosed too.
DEEP = st.builds(
    lambda depth, opener, closed: (
        opener * depth + ("1" + {"[": "]", '{"a":': "}"}[opener] * depth if closed else "")
    ),
    st.sampled_from([10, 500, 990, 1100, 5000, 100_000]),
    st.sampled_from(["[", '{"a":']),
    st.booleans(),
)
RAW_TOKENS = st.one_of(
    NON_JSON_NUMBERS,
    st.sampled_from(["1e-400", "-0", "1E+2", "0.0000001", "123456789012345678901234567890"]),
    _repeat(["9"], [20, 400, 4301, 5000]).map(str),
    DEEP,
)
# The numbers an attacker tries first: beyond integer/bigint/int64, non-finite.
EXTREME_NUMBERS = st.one_of(
    st.sampled_from([2**31, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, -1, float("inf"), float("nan")]),
    NON_JSON_NUMBERS.map(RawJSON),
)
LEAVES = st.one_of(st.none(), st.booleans(), NUMBERS, STRINGS, RAW_TOKENS.map(RawJSON))
FIELD_NAMES = st.sampled_from(
    sorted(
        {*DEAL, "email", "username", "password", "full_name", "refresh_token", "deal_id", "target_price"}
        | {"max_rounds", "action", "counter_offer", "message", "make", "model", "mileage_max", "max_results"}
        | {"makes", "budget_range", "year_range", "min", "max", "mileage", "condition", "year", "$where"}
        | {"price", "down_payment", "term_months", "apr"}
    )
)
ANY_JSON = st.recursive(
    LEAVES,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(FIELD_NAMES | STRINGS, children, max_size=4)
    ),
    max_leaves=12,
)


def to_json(value, ensure_ascii: bool) -> str:
    """JSON text the way a hostile client may write it: NaN/Infinity tokens, raw fragments."""
    if isinstance(value, RawJSON):
        return value.text
    if isinstance(value, dict):
        items = (
            f"{json.dumps(k, ensure_ascii=ensure_ascii)}:{to_json(v, ensure_ascii)}" for k, v in value.items()
        )
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(to_json(v, ensure_ascii) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ensure_ascii, allow_nan=True)


# -- valid bodies per endpoint ----------------------------------------------------------------------

NAME = st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), min_size=1, max_size=40).filter(
    str.strip
)
PRICE = st.floats(min_value=1, max_value=9_999_999, allow_nan=False)
YEAR = st.integers(1990, 2026)
VIN = st.from_regex(r"[A-HJ-NPR-Z0-9]{17}", fullmatch=True)
MILEAGE = st.integers(0, 2_000_000)
USERNAME = st.from_regex(r"[A-Za-z0-9_.-]{3,30}", fullmatch=True)
BODY_TYPE = st.sampled_from(["sedan", "suv", "truck", "coupe", "hatchback", "minivan", "wagon"])
DEAL_FIELDS = {
    "customer_name": NAME,
    "customer_email": st.just("buyer@example.test"),
    "vehicle_make": st.sampled_from(["Toyota", "Honda", "Ford"]) | NAME,
    "vehicle_model": NAME,
    "vehicle_year": YEAR,
    "vehicle_mileage": MILEAGE,
    "vehicle_vin": VIN | st.none(),
    "asking_price": PRICE,
    "offer_price": PRICE | st.none(),
    "notes": st.text(max_size=200) | st.none(),
}


def _some(fields: dict, required=()):
    optional = {k: v for k, v in fields.items() if k not in required}
    return st.fixed_dictionaries({k: fields[k] for k in required}, optional=optional)


RANGE = st.tuples(st.floats(0, 1e6, allow_nan=False), st.floats(0, 1e6, allow_nan=False)).map(
    lambda t: {"min": min(t), "max": max(t)}
)
# endpoint -> (fields, required): a valid body has the required fields and any of the others.
SPECS = {
    "auth.signup": (
        {
            "email": USERNAME.map(lambda u: f"{u}@fuzz.test"),
            "username": USERNAME,
            "password": st.just(PASSWORD),
            "full_name": NAME,
        },
        ("email", "username", "password"),
    ),
    "auth.login": ({"email": st.just(USER_EMAIL), "password": st.just(PASSWORD)}, ("email", "password")),
    "auth.refresh": ({"refresh_token": st.just(Ref("user.refresh"))}, ()),
    "auth.logout": ({"refresh_token": st.just(Ref("user.refresh"))}, ()),
    "deals.create_deal": (
        DEAL_FIELDS,
        ("customer_name", "customer_email", "vehicle_make", "vehicle_model", "vehicle_year", "asking_price"),
    ),
    "deals.update_deal": ({**DEAL_FIELDS, "status": st.sampled_from(["pending", "in_progress"])}, ()),
    "deals.evaluate": (
        {
            "vehicle_vin": VIN,
            "asking_price": PRICE,
            "mileage": MILEAGE,
            "condition": st.sampled_from(["excellent", "good", "fair", "poor"]),
            "make": NAME,
            "model": NAME,
            "year": YEAR,
        },
        ("vehicle_vin", "asking_price", "mileage"),
    ),
    "cars.search": (
        {
            "make": st.sampled_from(["Toyota", "honda", "Ford"]) | NAME,
            "model": NAME,
            "car_type": BODY_TYPE,
            "fuel_type": st.sampled_from(["gasoline", "hybrid", "electric"]),
            "budget_min": st.just(0),
            "budget_max": PRICE,
            "year_min": YEAR,
            "year_max": st.just(2030),
            "mileage_max": st.integers(0, 2**31 - 1),
            "sort_by": st.sampled_from(["value", "price", "mileage", "year"]),
            "max_results": st.integers(1, 100),
        },
        (),
    ),
    "negotiations.start": (
        {"deal_id": st.just(Ref("deal")), "target_price": PRICE, "max_rounds": st.integers(1, 20)},
        ("deal_id",),
    ),
    # counter_offer belongs to action "counter" only: half of these are a 422, which is fine
    "negotiations.next_round": (
        {"action": st.sampled_from(["counter", "counter", "confirm", "reject"]), "counter_offer": PRICE},
        ("action",),
    ),
    "negotiations.chat": ({"message": st.text(min_size=1, max_size=300).filter(str.strip)}, ("message",)),
    # exactly one of price and deal_id: a valid body with both (or neither) is a 422, which is fine
    "loans.estimate": (
        {
            "price": PRICE,
            "deal_id": st.just(Ref("deal")),
            "down_payment": st.floats(0, 5000, allow_nan=False),
            "term_months": st.integers(1, 120),
            "apr": st.floats(0, 50, allow_nan=False),
        },
        ("apr",),
    ),
    "loans.apply": (
        {
            "deal_id": st.just(Ref("deal")),
            "down_payment": st.floats(0, 20000, allow_nan=False),
            "term_months": st.integers(1, 120),
            "apr": st.floats(0, 50, allow_nan=False),
        },
        ("deal_id", "apr"),
    ),
    "users.put_preferences": (
        {
            "makes": st.lists(NAME, max_size=5),
            "budget_range": RANGE,
            "year_range": RANGE,
            "body_types": st.lists(BODY_TYPE, max_size=3, unique=True),
            "features": st.lists(NAME, max_size=5),
        },
        (),
    ),
}
QUERY_SPECS = {
    "deals.list_deals": (
        {
            "skip": st.integers(0, 100),
            "limit": st.integers(1, 100),
            "status": st.sampled_from(["pending", "in_progress", "completed", "cancelled"]),
        },
        (),
    ),
    "loans.list_loans": (
        {
            "skip": st.integers(0, 100),
            "limit": st.integers(1, 100),
            "status": st.sampled_from(["approved", "declined"]),
        },
        (),
    ),
}


def valid(spec):
    fields, required = spec
    return _some(fields, required)


@st.composite
def mutated(draw, value):
    """The value changed the way an attacker would: same type but hostile content, or another type."""
    branch = draw(st.integers(0, 9))
    if branch == 9:
        return draw(DEEP.map(RawJSON) | ANY_JSON)
    if isinstance(value, str):
        if branch < 5:  # one character the stores or the log cannot take, anywhere in it
            at = draw(st.integers(0, len(value)))
            return value[:at] + draw(DANGEROUS_CHARACTERS) + value[at:]
        if branch < 6:
            return draw(st.sampled_from([100, 5000, 100_000]).map(lambda n: (value or "x") * n))
        return draw(STRINGS if branch < 8 else ANY_JSON)
    if isinstance(value, Ref):  # a real id or token: one character appended, or any value instead
        if draw(st.booleans()):
            return Ref(value.name, draw(DANGEROUS_CHARACTERS))
        return draw(NUMBERS | ANY_JSON)
    if isinstance(value, bool) or value is None:
        return draw(ANY_JSON)
    if isinstance(value, int | float):
        if branch < 5:
            return draw(EXTREME_NUMBERS)
        return draw(
            st.one_of(NUMBERS, RAW_TOKENS.map(RawJSON), st.just(str(value)), st.just([value]), ANY_JSON)
        )
    if isinstance(value, list):
        if value and draw(st.booleans()):
            at = draw(st.integers(0, len(value) - 1))
            return [*value[:at], draw(mutated(value[at])), *value[at + 1 :]]
        return draw(st.one_of(st.sampled_from([100, 10_000]).map(lambda n: (value or ["x"]) * n), ANY_JSON))
    if isinstance(value, dict) and value:
        key = draw(st.sampled_from(sorted(value)))
        return {**value, key: draw(mutated(value[key]))}
    return draw(ANY_JSON)


@st.composite
def near_valid(draw, spec):
    """A valid body with exactly one field mutated: changed (present or added), removed, nulled, or one
    unknown field added."""
    fields, _ = spec
    body = dict(draw(valid(spec)))
    mutation = draw(
        st.sampled_from(["change"] * 5 + ["remove", "null", "unknown"] if fields else ["unknown"])
    )
    if mutation == "unknown":
        body[draw(FIELD_NAMES | STRINGS)] = draw(LEAVES)
        return body
    key = draw(st.sampled_from(sorted(fields)))
    if mutation == "remove":
        body.pop(key, None)
    else:
        body[key] = (
            None if mutation == "null" else draw(mutated(body[key] if key in body else draw(fields[key])))
        )
    return body


# -- requests ---------------------------------------------------------------------------------------

OTHER_PATH_VALUES = st.one_of(
    st.sampled_from(
        [Ref("deal"), Ref("session"), Ref("loan"), Ref("other.deal"), Ref("other.session"), Ref("other.loan")]
    ),
    st.integers(0, 10**30).map(str),
    st.sampled_from(
        ["0", "-1", "1.5", "abc", "%00", "%F0%9F%9A%97", "%ED%A0%80", "\u0663", "9" * 400, "1;2"]
    ),
)


def own_ref(name: str) -> Ref:
    """The user's own id for a path variable (deal_id, session_id, loan_id)."""
    return Ref(next((kind for kind in ("deal", "loan") if kind in name), "session"))


def path_value(name: str):
    """Mostly the user's own id of the right kind (so the request gets past the lookup), else anything."""
    own = own_ref(name)
    return st.integers(0, 9).flatmap(lambda n: st.just(own) if n < 6 else OTHER_PATH_VALUES)


# Bodies worth parsing mostly come from the user, as most endpoints need a login to reach them.
AUTH = {
    "valid": st.sampled_from(["user"] * 7 + ["other", "anonymous", "bogus"]),
    "hostile": st.sampled_from(["user"] * 4 + ["other", "anonymous", "anonymous", "bogus", "bogus"]),
}
CONTENT_TYPES = st.sampled_from(
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        None,
        "application/json; charset=latin-1",
        "application/problem+json",
        "multipart/form-data; boundary=x",
        "application/json\x00",
    ]
)
OTHER_METHODS = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"])


@dataclass
class Case:
    method: str
    template: str
    endpoint: str
    kind: str
    auth: str
    path_values: dict = field(default_factory=dict)
    body: object = None  # a JSON value (with Refs/RawJSON) or raw bytes, or None (no body)
    ensure_ascii: bool = True
    content_type: str | None = "application/json"
    query: object = ""  # a string, or a dict of (Ref-resolved) values
    sent_method: str | None = None  # another method than the route's (405)

    def __repr__(self):
        body = repr(self.body)
        body = body if len(body) <= 300 else f"{body[:300]}... ({len(body)} chars)"
        return (
            f"Case({self.sent_method or self.method} {self.template} kind={self.kind} auth={self.auth}"
            f" path={self.path_values}"
            f" query={self.query!r:.200} content_type={self.content_type!r} ascii={self.ensure_ascii}"
            f" body={body})"
        )


@st.composite
def cases(draw, method: str, template: str, endpoint: str):
    has_body = method in ("POST", "PUT", "PATCH")
    spec = SPECS.get(endpoint, ({}, ()))
    kind = draw(st.sampled_from(["valid"] * 2 + ["near-valid"] * 5 + ["hostile"] * 2 + ["raw"]))
    case = Case(method, template, endpoint, kind, draw(AUTH["valid" if "valid" in kind else "hostile"]))
    if case.auth == "bogus":
        case.auth += str(draw(st.integers(0, 4)))
    if draw(st.integers(0, 19)) == 0:  # now and then the wrong method (405)
        case.sent_method = draw(OTHER_METHODS)
    case.path_values = {
        name: draw(path_value(name)) for name in re.findall(r"<(?:[^:<>]+:)?([^<>]+)>", template)
    }
    if kind == "valid":
        case.body = draw(valid(spec)) if has_body or endpoint in SPECS else None
    elif kind == "near-valid":
        case.body = draw(near_valid(spec))
    elif kind == "hostile":
        case.body = draw(st.dictionaries(FIELD_NAMES | STRINGS, ANY_JSON, max_size=6) | ANY_JSON)
        case.ensure_ascii = draw(st.booleans())  # False: lone surrogates become invalid UTF-8
    else:
        case.body = draw(
            st.one_of(
                DEEP.map(RawJSON),
                RAW_TOKENS.map(RawJSON),
                st.binary(max_size=64),
                st.sampled_from(
                    [b"", b"\xef\xbb\xbf{}", b"\xff\xfe{\x00}\x00", b"{", b'{"a":1}{', b'"\xc3\x28"']
                ),
                st.sampled_from([2**20 - 10, 2**20 + 1]).map(
                    lambda n: RawJSON('{"message": "' + "x" * n + '"}')
                ),
                valid(spec).map(lambda b: RawJSON("[" + json.dumps(b, default=str) + "]")),
            )
        )
        case.content_type = draw(st.just("application/json") | CONTENT_TYPES)
    if endpoint in QUERY_SPECS and draw(st.booleans()):
        case.query = draw(valid(QUERY_SPECS[endpoint]) | near_valid(QUERY_SPECS[endpoint]))
    elif draw(st.integers(0, 4)) == 0:
        case.query = draw(st.dictionaries(FIELD_NAMES | STRINGS, STRINGS | NUMBERS, max_size=4))
    return case


# -- the world the requests run in ------------------------------------------------------------------


class Account:
    def __init__(self, world: World, email: str):
        self.world, self.email, self.password = world, email, PASSWORD
        signup = {"email": email, "username": email.partition("@")[0], "password": PASSWORD}
        response = world.send("POST", "/api/v1/auth/signup", signup)
        assert response.status_code == 201, response.get_data(as_text=True)
        self.login()
        self.deal = self.session = self.loan = None
        self.ensure_resources()

    def login(self):
        response = self.world.send("POST", "/api/v1/auth/login", {"email": self.email, "password": PASSWORD})
        assert response.status_code == 200, response.get_data(as_text=True)
        self.access, self.refresh = response.get_json()["access_token"], response.get_json()["refresh_token"]

    @property
    def headers(self):
        return {"Authorization": f"Bearer {self.access}"}

    def ensure_resources(self):
        """A deal, an active negotiation and a loan application on it (the fuzz deletes, completes
        and cancels them; deleting the deal deletes the others)."""
        if self.session is not None:
            response = self.world.send("GET", f"/api/v1/negotiations/{self.session}", headers=self.headers)
            if response.status_code == 200 and response.get_json()["status"] == "active":
                return
        if self.world.send("GET", "/api/v1/auth/me", headers=self.headers).status_code != 200:
            self.login()
        response = self.world.send("POST", "/api/v1/deals", DEAL, headers=self.headers)
        assert response.status_code == 201, response.get_data(as_text=True)
        self.deal = response.get_json()["id"]
        response = self.world.send(
            "POST", "/api/v1/negotiations", {"deal_id": self.deal}, headers=self.headers
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        self.session = response.get_json()["id"]
        response = self.world.send(
            "POST",
            "/api/v1/loans",
            {"deal_id": self.deal, "down_payment": 5000, "apr": 7},
            headers=self.headers,
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        self.loan = response.get_json()["id"]


class LogRecords(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


class World:
    def __init__(self, app):
        self.app = app
        # no cookie jar: a login's cookies would authenticate every later "anonymous" request
        self.client = app.test_client(use_cookies=False)
        self.cases = Counter()
        self.kinds = Counter()
        self.statuses = Counter()
        self.seconds = 0.0  # inside the app
        self.started = self.finished = time.perf_counter()
        self.user = Account(self, USER_EMAIL)
        self.other = Account(self, "fuzz-other@fuzz.test")
        # a token signed with another key, and a refresh token offered as an access token
        forged = jwt.encode(
            {"sub": "1", "type": "access", "exp": 4102444800, "jti": "x"}, "k" * 32, algorithm="HS256"
        )
        self.bogus = [f"Bearer {forged}", "Bearer", "Bearer \xff\xfe", "Basic Zm9vOmJhcg==", "bearer a.b.c"]

    def send(self, method, path, body=None, headers=None):
        return self.client.open(
            path, method=method, json=body, headers=headers, environ_base={"REMOTE_ADDR": FUZZ_ADDRESS}
        )

    def resolve(self, value):
        if isinstance(value, Ref):
            owner = self.other if value.name.startswith("other.") else self.user
            resolved = getattr(owner, value.name.split(".")[-1])
            return resolved if value.suffix is None else f"{resolved}{value.suffix}"
        if isinstance(value, dict):
            return {self.resolve(k): self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def request(self, case: Case):
        path = case.template
        for name, value in case.path_values.items():
            path = re.sub(rf"<(?:[^:<>]+:)?{name}>", lambda _, v=value: str(self.resolve(v)), path)
        headers = {}
        if case.auth in ("user", "other"):
            headers = getattr(self, case.auth).headers
        elif case.auth.startswith("bogus"):
            headers = {"Authorization": self.bogus[int(case.auth[5:])]}
        body = case.body
        if body is not None and not isinstance(body, bytes):
            body = to_json(self.resolve(body), case.ensure_ascii).encode("utf-8", "surrogatepass")
        query = case.query
        if isinstance(query, dict):
            query = urllib.parse.urlencode(
                {
                    str(k).encode("utf-8", "surrogatepass"): str(self.resolve(v)).encode(
                        "utf-8", "surrogatepass"
                    )
                    for k, v in query.items()
                }
            )
        kwargs = {"data": body, "content_type": case.content_type} if body is not None else {}
        return self.client.open(
            path,
            method=case.sent_method or case.method,
            headers=headers,
            query_string=query,
            environ_base={"REMOTE_ADDR": FUZZ_ADDRESS},
            **kwargs,
        )

    def after(self, case: Case, response):
        """Keep the accounts and their real ids usable for the next case."""
        ok = response.status_code < 300
        uses_refresh = "user.refresh" in repr(case.body)
        if case.endpoint == "auth.logout" or (case.endpoint == "auth.refresh" and uses_refresh):
            for account in (self.user, self.other):
                account.login()
        if ok and (
            (case.sent_method or case.method) in ("DELETE", "PUT")
            or case.endpoint == "negotiations.next_round"
        ):
            for account in (self.user, self.other):
                account.ensure_resources()


LOG = LogRecords()


@pytest.fixture(scope="module")
def world(request, make_config, migrated):
    config = make_config(
        REDIS_DB=3,  # its own keys: rate limits and caches the other tests count on stay untouched
        MONGODB_DB_NAME="autodealgenie_fuzz",
        SEARCH_RATE_LIMIT=1_000_000,
        LOGIN_MAX_FAILURES_PER_ACCOUNT=1_000_000,
        LOGIN_MAX_ATTEMPTS_PER_ADDRESS=1_000_000,
        SIGNUP_MAX_PER_ADDRESS=1_000_000,
        LOG_LEVEL="WARNING",
    )
    app = create_app(config)
    assert endpoints(app) == ENDPOINTS
    root = logging.getLogger()
    root.addHandler(LOG)
    world = World(app)
    summary = Summary(world)
    request.config.pluginmanager.register(summary, "autodealgenie-fuzz-summary")
    yield world
    world.finished = time.perf_counter()
    root.removeHandler(LOG)


class Summary:
    def __init__(self, world: World):
        self.world = world

    def pytest_terminal_summary(self, terminalreporter):
        w = self.world
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(w.kinds.items()))
        statuses = ", ".join(f"{k}xx {n}" for k, n in sorted(w.statuses.items()))
        terminalreporter.write_line(
            f"fuzz: {sum(w.cases.values())} cases over {len(w.cases)} endpoints "
            f"({kinds}; {statuses}); {w.finished - w.started:.1f} s wall, {w.seconds:.1f} s in requests"
        )


def _strict_constant(token):
    raise AssertionError(f"the response carries the non-JSON token {token}")


def check(world: World, case: Case):
    LOG.records.clear()
    start = time.perf_counter()
    response = world.request(case)
    world.seconds += time.perf_counter() - start
    world.cases[(case.method, case.template)] += 1
    world.kinds[case.kind] += 1
    world.statuses[response.status_code // 100] += 1
    status = response.status_code
    text = response.get_data(as_text=True)
    problems = [
        r for r in LOG.records if r.exc_info or r.levelno >= logging.ERROR or "Traceback" in r.getMessage()
    ]
    world.after(case, response)
    assert status < 500, f"{status}: {text[:500]}"
    assert not problems, [r.getMessage() for r in problems]
    if response.mimetype == "application/json" or status >= 400:
        assert response.mimetype == "application/json", f"{status} is not JSON: {text[:200]}"
        body = json.loads(text, parse_constant=_strict_constant)
        if status >= 400:
            assert isinstance(body, dict), body
            assert isinstance(body.get("detail"), str) and body["detail"].strip(), body


ENDPOINT_IDS = [f"{m} {r}" for m, r, _ in ENDPOINTS]
COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}


@pytest.mark.parametrize(("method", "template", "endpoint"), ENDPOINTS, ids=ENDPOINT_IDS)
@settings(max_examples=EXAMPLES, derandomize=True, database=None, print_blob=False, **COMMON)
@given(data=st.data())
def test_fuzz(world, method, template, endpoint, data):
    check(world, data.draw(cases(method, template, endpoint), label="case"))


# -- the sweep: every field of every known body, one hostile value at a time (no chance involved) --

SWEEP_VALUES = [
    "\x00",
    "\ud800",
    "x" * 100_000,
    2**31,
    2**63,
    10**30,
    -1,
    RawJSON("Infinity"),
    RawJSON("NaN"),
    RawJSON("1e400"),
    RawJSON("[" * 100_000),
    RawJSON("[" * 990 + "]" * 990),
    [],
    {},
    True,
]


def _spoiled(value):
    """The value with one hostile change: a bad character in it, or a hostile value instead (nested too)."""
    if isinstance(value, Ref):
        yield from (Ref(value.name, "\x00"), Ref(value.name, "\ud800"))
    elif isinstance(value, str):
        yield from (value + "\x00", value[:1] + "\ud800" + value[1:], value + "\x1b")
    elif isinstance(value, dict):
        for key in value:
            yield from ({**value, key: spoiled} for spoiled in _spoiled(value[key]))
    elif isinstance(value, list):
        yield from ([spoiled] for spoiled in ["x\x00", *SWEEP_VALUES])
    yield from SWEEP_VALUES


def _sweep_cases(method, template, endpoint):
    fields, _ = SPECS[endpoint]
    # the simplest valid body: deterministic, and every field present
    base = find(
        st.fixed_dictionaries(fields),
        lambda _: True,
        settings=settings(database=None, phases=[Phase.generate], max_examples=1),
        random=random.Random(0),
    )
    path = re.findall(r"<(?:[^:<>]+:)?([^<>]+)>", template)
    own = {name: own_ref(name) for name in path}
    for key, value in base.items():
        for spoiled in _spoiled(value):
            yield Case(method, template, endpoint, "sweep", "user", own, {**base, key: spoiled})


SWEPT = [e for e in ENDPOINTS if e[2] in SPECS]


@pytest.mark.parametrize(("method", "template", "endpoint"), SWEPT, ids=[f"{m} {r}" for m, r, _ in SWEPT])
def test_fuzz_sweep(world, method, template, endpoint):
    for case in _sweep_cases(method, template, endpoint):
        check(world, case)


def test_every_body_endpoint_has_a_spec():
    """A new endpoint with a body gets fuzzed anyway; a spec makes its valid and near-valid cases real."""
    missing = [f"{m} {r}" for m, r, e in ENDPOINTS if m in ("POST", "PUT", "PATCH") and e not in SPECS]
    assert not missing, f"add these to SPECS in {Path(__file__).name}: {missing}"


ANY_ENDPOINT = st.sampled_from(ENDPOINTS).flatmap(lambda e: cases(*e))


def _row(method, template, endpoint, body, auth="anonymous", **extra):
    return Case(method, template, endpoint, "issue-13", auth, body=body, **extra)


# One database key for every endpoint: stored failures replay whatever the url map looks like.
@settings(
    max_examples=max(EXPLORE, 1),
    database=DATABASE if EXPLORE else ReadOnlyDatabase(DATABASE),
    phases=[p for p in Phase if p is not Phase.explicit] if EXPLORE else [Phase.explicit, Phase.reuse],
    **COMMON,
)
@given(case=ANY_ENDPOINT)
# issue 13's rows, always replayed
@example(case=_row("POST", "/api/v1/auth/login", "auth.login", {"email": "a\x00@b.test", "password": "x"}))
@example(case=_row("POST", "/api/v1/auth/login", "auth.login", RawJSON("[" * 100_000)))
@example(case=_row("POST", "/api/v1/cars/search", "cars.search", {"mileage_max": 2**63}, "user"))
@example(case=_row("POST", "/api/v1/cars/search", "cars.search", {"mileage_max": 10**30}, "user"))
@example(
    case=_row(
        "PUT",
        "/api/v1/users/me/preferences",
        "users.put_preferences",
        {"budget_range": {"max": float("inf")}},
        "user",
    )
)
def test_fuzz_stored_failures(world, case):
    check(world, case)
