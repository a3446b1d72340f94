"""Deterministic vehicle pricing: the fair-value model behind deal evaluation, search ranking and seeding.

Calibrated for model years up to REFERENCE_YEAR; a fixed reference keeps results reproducible.
"""

from __future__ import annotations

REFERENCE_YEAR = 2026
MILES_PER_YEAR = 12_000
GENERIC_MSRP = 32_000
CONDITION_FACTORS = {"excellent": 1.05, "good": 1.0, "fair": 0.9, "poor": 0.78}

# make -> (world manufacturer identifier, {model: (body_type, base MSRP, fuel_type)})
CATALOGUE: dict[str, tuple[str, dict[str, tuple[str, int, str]]]] = {
    "Toyota": (
        "4T1",
        {
            "Camry": ("sedan", 28_400, "gasoline"),
            "Corolla": ("sedan", 22_500, "gasoline"),
            "RAV4": ("suv", 30_000, "hybrid"),
            "Highlander": ("suv", 39_500, "gasoline"),
            "Tacoma": ("truck", 33_000, "gasoline"),
            "Prius": ("hatchback", 28_500, "hybrid"),
        },
    ),
    "Honda": (
        "1HG",
        {
            "Civic": ("sedan", 24_500, "gasoline"),
            "Accord": ("sedan", 28_900, "gasoline"),
            "CR-V": ("suv", 31_000, "hybrid"),
            "Pilot": ("suv", 40_000, "gasoline"),
            "Odyssey": ("minivan", 39_000, "gasoline"),
        },
    ),
    "Ford": (
        "1FA",
        {
            "F-150": ("truck", 38_000, "gasoline"),
            "Escape": ("suv", 29_500, "gasoline"),
            "Explorer": ("suv", 38_500, "gasoline"),
            "Mustang": ("coupe", 32_500, "gasoline"),
            "Mustang Mach-E": ("suv", 43_000, "electric"),
        },
    ),
    "Chevrolet": (
        "1G1",
        {
            "Silverado": ("truck", 39_000, "gasoline"),
            "Equinox": ("suv", 28_000, "gasoline"),
            "Malibu": ("sedan", 25_500, "gasoline"),
            "Tahoe": ("suv", 58_000, "gasoline"),
            "Bolt EUV": ("hatchback", 28_000, "electric"),
        },
    ),
    "Tesla": ("5YJ", {"Model 3": ("sedan", 40_000, "electric"), "Model Y": ("suv", 45_000, "electric")}),
    "BMW": (
        "WBA",
        {
            "3 Series": ("sedan", 45_000, "gasoline"),
            "X3": ("suv", 49_000, "gasoline"),
            "X5": ("suv", 66_000, "gasoline"),
        },
    ),
    "Hyundai": (
        "KMH",
        {
            "Elantra": ("sedan", 22_000, "gasoline"),
            "Tucson": ("suv", 29_000, "hybrid"),
            "Santa Fe": ("suv", 33_000, "gasoline"),
            "Ioniq 5": ("suv", 43_000, "electric"),
        },
    ),
    "Subaru": (
        "JF1",
        {
            "Outback": ("wagon", 30_000, "gasoline"),
            "Forester": ("suv", 28_500, "gasoline"),
            "Crosstrek": ("suv", 26_000, "gasoline"),
        },
    ),
    "Nissan": (
        "1N4",
        {
            "Altima": ("sedan", 27_000, "gasoline"),
            "Rogue": ("suv", 29_500, "gasoline"),
            "Leaf": ("hatchback", 29_000, "electric"),
        },
    ),
    "Kia": (
        "KNA",
        {
            "Sportage": ("suv", 28_000, "hybrid"),
            "Telluride": ("suv", 37_000, "gasoline"),
            "EV6": ("suv", 43_000, "electric"),
        },
    ),
    "Mazda": ("JM1", {"Mazda3": ("sedan", 24_000, "gasoline"), "CX-5": ("suv", 29_000, "gasoline")}),
    "Jeep": ("1C4", {"Wrangler": ("suv", 33_000, "gasoline"), "Grand Cherokee": ("suv", 42_000, "gasoline")}),
    "Volkswagen": (
        "3VW",
        {
            "Jetta": ("sedan", 22_500, "gasoline"),
            "Tiguan": ("suv", 29_000, "gasoline"),
            "ID.4": ("suv", 41_000, "electric"),
        },
    ),
    "Lexus": ("2T2", {"RX": ("suv", 50_000, "hybrid"), "ES": ("sedan", 43_000, "hybrid")}),
}

# (make, model) lower-cased -> catalogue entry as lookup() returns it.
_BY_NAME = {
    (make.lower(), model.lower()): (make, model, spec)
    for make, (_, models) in CATALOGUE.items()
    for model, spec in models.items()
}

# Model-year codes (VIN position 10) for 2010-2039; I, O, Q, U, Z and 0 are never used.
_YEAR_CODES = "ABCDEFGHJKLMNPRSTVWXY123456789"
_TRANSLITERATION = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
VIN_ALPHABET = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"


def vin_check_digit(vin: str) -> str:
    total = sum(_TRANSLITERATION[ch] * w for ch, w in zip(vin.upper(), _WEIGHTS, strict=True))
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


def year_code(year: int) -> str:
    return _YEAR_CODES[(year - 2010) % 30]


def vin_model_year(vin: str) -> int | None:
    """Model year from VIN position 10 (2010-2039 cycle), or None when it is not a year code."""
    code = vin[9].upper() if len(vin) == 17 else ""
    index = _YEAR_CODES.find(code) if code else -1
    return 2010 + index if index >= 0 else None


def lookup(make: str | None, model: str | None) -> tuple[str, str, tuple[str, int, str]] | None:
    """Case-insensitive catalogue entry: (make, model, (body_type, msrp, fuel)), or None."""
    if not make or not model:
        return None
    return _BY_NAME.get((make.strip().lower(), model.strip().lower()))


def fair_value(msrp: float, year: int, mileage: int, condition: str = "good") -> float:
    age = max(0, REFERENCE_YEAR - year)
    value = msrp * (0.87**age)
    excess_miles = mileage - MILES_PER_YEAR * max(age, 1)
    value -= 0.05 * excess_miles  # above-average mileage costs, below-average earns, 5 cents a mile
    value *= CONDITION_FACTORS.get(condition, 1.0)
    return round(max(value, msrp * 0.08), -1)


def _appraise(vin: str, mileage: int, condition: str, make: str | None, model: str | None, year: int | None):
    """(catalogue entry or None, model year used, fair value) for a described vehicle."""
    entry = lookup(make, model)
    msrp = entry[2][1] if entry else GENERIC_MSRP
    model_year = year or vin_model_year(vin) or REFERENCE_YEAR - 5
    return entry, model_year, fair_value(msrp, model_year, mileage, condition)


def vehicle_fair_value(
    *,
    vin: str,
    mileage: int,
    condition: str = "good",
    make: str | None = None,
    model: str | None = None,
    year: int | None = None,
) -> float:
    """The fair value evaluate() reports for this vehicle, without the rest of the evaluation."""
    return _appraise(vin, mileage, condition, make, model, year)[2]


def evaluate(
    *,
    vin: str,
    asking_price: float,
    condition: str,
    mileage: int,
    make: str | None = None,
    model: str | None = None,
    year: int | None = None,
) -> dict:
    """Fair value, score 1-10 (10 = far below fair value), insights and talking points."""
    entry, model_year, value = _appraise(vin, mileage, condition, make, model, year)
    gap = (value - asking_price) / value  # positive: asking below fair value
    score = max(1, min(10, round(5.5 + 20 * gap)))
    insights = [
        f"Estimated fair value ${value:,.0f} for a {model_year} "
        f"{(entry[0] + ' ' + entry[1]) if entry else 'vehicle'} in {condition} condition.",
        f"Asking price is {abs(gap) * 100:.1f}% {'below' if gap >= 0 else 'above'} fair value.",
    ]
    expected_miles = MILES_PER_YEAR * max(REFERENCE_YEAR - model_year, 1)
    if mileage > expected_miles * 1.2:
        insights.append(f"Mileage is high for its age (expected about {expected_miles:,} miles).")
    elif mileage < expected_miles * 0.8:
        insights.append(f"Mileage is low for its age (expected about {expected_miles:,} miles).")
    if not entry:
        insights.append("Make and model not in the pricing catalogue: a generic base price was used.")
    target = round(min(asking_price, value * 0.97), -1)
    talking_points = [f"Open at ${round(target * 0.95, -1):,.0f} and aim for ${target:,.0f}."]
    if gap < 0:
        talking_points.append(
            f"The asking price is ${asking_price - value:,.0f} over our fair-value estimate."
        )
    if condition in ("fair", "poor"):
        talking_points.append("Ask for an independent inspection and price in reconditioning costs.")
    if mileage > expected_miles:
        talking_points.append("Use the above-average mileage to argue for a lower price.")
    return {
        "fair_value": value,
        "score": score,
        "insights": insights,
        "talking_points": talking_points,
        "model_year": model_year,
    }
