"""Deterministic sample vehicle inventory for `autodealgenie seed` (same seed -> same rows and VINs)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import psycopg2
import psycopg2.extras

from . import pricing
from .config import Config
from .db import connect_params

TRIMS = ("Base", "SE", "LE", "XLE", "Sport", "Touring", "Limited", "Premium")
COLORS = ("White", "Black", "Silver", "Gray", "Blue", "Red", "Green", "Beige")
DEALERS = (
    ("Bay Auto Group", "Oakland", "CA"),
    ("Sunset Motors", "Los Angeles", "CA"),
    ("Lone Star Cars", "Austin", "TX"),
    ("Gulf Coast Auto", "Houston", "TX"),
    ("Empire Motors", "Albany", "NY"),
    ("Hudson Auto Mall", "Newark", "NJ"),
    ("Peach State Autos", "Atlanta", "GA"),
    ("Lakeside Motors", "Chicago", "IL"),
    ("Mile High Auto", "Denver", "CO"),
    ("Emerald City Cars", "Seattle", "WA"),
    ("Desert Sun Auto", "Phoenix", "AZ"),
    ("Buckeye Motors", "Columbus", "OH"),
)
# Listing dates count back from this fixed instant, so the data does not depend on when it was seeded.
LISTED_BEFORE = datetime(2026, 11, 1, tzinfo=UTC)


def generate(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    makes = sorted(pricing.CATALOGUE)
    vehicles = []
    for serial in range(count):
        make = rng.choice(makes)
        wmi, models = pricing.CATALOGUE[make]
        model = rng.choice(sorted(models))
        body_type, msrp, fuel = models[model]
        year = rng.randint(pricing.REFERENCE_YEAR - 12, pricing.REFERENCE_YEAR)
        age = max(pricing.REFERENCE_YEAR - year, 0)
        mileage = int(max(age, 0.2) * pricing.MILES_PER_YEAR * rng.uniform(0.4, 1.6)) // 10 * 10
        condition = rng.choices(("excellent", "good", "fair"), weights=(2, 6, 2))[0]
        value = pricing.fair_value(msrp, year, mileage, condition)
        dealer = rng.choice(DEALERS)
        vds = "".join(rng.choice(pricing.VIN_ALPHABET[:10] + "ABCDEFGHJKLMNPRSTVWXYZ") for _ in range(5))
        plant = rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ")
        # serial number: seed and index, so different seeds rarely collide and one seed never does
        body = f"{wmi}{vds}0{pricing.year_code(year)}{plant}{(seed * 100_003 + serial) % 1_000_000:06d}"
        vin = body[:8] + pricing.vin_check_digit(body) + body[9:]
        vehicles.append(
            {
                "vin": vin,
                "make": make,
                "model": model,
                "trim": rng.choice(TRIMS),
                "year": year,
                "body_type": body_type,
                "price": round(value * rng.uniform(0.9, 1.15), -1),
                "fair_value": value,
                "mileage": mileage,
                "exterior_color": rng.choice(COLORS),
                "fuel_type": fuel,
                "transmission": "automatic" if fuel == "electric" or rng.random() < 0.9 else "manual",
                "drivetrain": rng.choice(("fwd", "awd", "4wd"))
                if body_type in ("suv", "truck")
                else rng.choice(("fwd", "rwd", "awd")),
                "dealer_name": dealer[0],
                "dealer_city": dealer[1],
                "dealer_state": dealer[2],
                "listed_at": LISTED_BEFORE - timedelta(minutes=rng.randint(0, 90 * 24 * 60)),
            }
        )
    return vehicles


COLUMNS = (
    "vin",
    "make",
    "model",
    "trim",
    "year",
    "body_type",
    "price",
    "fair_value",
    "mileage",
    "exterior_color",
    "fuel_type",
    "transmission",
    "drivetrain",
    "dealer_name",
    "dealer_city",
    "dealer_state",
    "listed_at",
)


def seed_vehicles(config: Config, count: int = 2000, seed: int = 42) -> dict:
    rows = [tuple(v[c] for c in COLUMNS) for v in generate(count, seed)]
    conn = psycopg2.connect(**connect_params(config, statement_timeout_ms=60_000))
    try:
        with conn, conn.cursor() as cur:
            inserted = psycopg2.extras.execute_values(
                cur,
                f"INSERT INTO vehicles ({', '.join(COLUMNS)}) VALUES %s "  # noqa: S608 - columns from code
                "ON CONFLICT (vin) DO NOTHING RETURNING id",
                rows,
                page_size=500,
                fetch=True,
            )
            cur.execute("SELECT count(*) FROM vehicles")
            total = cur.fetchone()[0]
    finally:
        conn.close()
    return {"changed": bool(inserted), "inserted": len(inserted), "total": total}
