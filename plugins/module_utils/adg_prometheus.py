# Prometheus and Alertmanager helpers shared by the verification modules. The evaluation functions
# are pure (data in, rows and problems out) so the unit tests can cover them without a server.
"""Prometheus / Alertmanager API helpers (stdlib only)."""

from __future__ import annotations

import datetime
import re
import time

from ansible_collections.autodealgenie.ops.plugins.module_utils.adg_http import ModuleFailure

UTC = datetime.UTC


# -- durations -----------------------------------------------------------------------------------
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def parse_duration(text):
    """Seconds in a Prometheus/Grafana duration ('90s', '1h30m', '15'), or None."""
    if text is None:
        return None
    text = str(text).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    return total if pos == len(text) and pos else None


def format_duration(seconds):
    seconds = max(1, round(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# -- time ---------------------------------------------------------------------------------------
def utcnow():
    return datetime.datetime.now(UTC)


def rfc3339(moment):
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_rfc3339(text):
    """Parse Go/RFC 3339 timestamps (nanoseconds and 'Z' included)."""
    if not text:
        return None
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text.strip())
    if not match:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    base, frac, zone = match.groups()
    frac = (frac or ".0")[:7].ljust(7, "0")
    zone = "+00:00" if zone == "Z" else zone
    return datetime.datetime.fromisoformat(base + frac + zone)


def wait_until(check, timeout, interval, sleep=time.sleep, clock=time.monotonic):
    """Call ``check()`` -> (done, value) until done or ``timeout`` seconds pass.

    Returns (done, value, elapsed seconds).
    """
    start = clock()
    while True:
        done, value = check()
        elapsed = clock() - start
        if done or elapsed >= timeout:
            return done, value, round(elapsed, 1)
        sleep(max(0.0, min(interval, timeout - elapsed)))


# -- Prometheus API -----------------------------------------------------------------------------
def prometheus_data(client, path, params=None, form=None):
    """``data`` of a Prometheus API envelope; an error envelope becomes a readable ModuleFailure."""
    if form is not None:
        response = client.request("POST", path, form=form, expected=(200, 400, 422), idempotent=True)
    else:
        response = client.request("GET", path, params=params, expected=(200, 400, 422))
    envelope = response.json() or {}
    if envelope.get("status") != "success":
        raise ModuleFailure(
            "Prometheus {} failed: {}: {}".format(
                path, envelope.get("errorType", "error"), envelope.get("error", response.text[:500])
            ),
            status=response.status,
        )
    return envelope.get("data")


def _target_address(target):
    return (target.get("discoveredLabels") or {}).get("__address__") or (target.get("labels") or {}).get(
        "instance"
    )


def _matches(target, expected):
    labels = target.get("labels") or {}
    if labels.get("job") != expected["job"] and target.get("scrapePool") != expected["job"]:
        return False
    instance, address = expected.get("instance"), expected.get("address")
    if not instance and not address:
        return True
    if instance and labels.get("instance") == instance:
        return True
    return bool(address) and (
        _target_address(target) == address or f"//{address}/" in (target.get("scrapeUrl") or "")
    )


def _target_row(target, expected):
    labels = target.get("labels") or {}
    return {
        "job": labels.get("job") or target.get("scrapePool"),
        "instance": labels.get("instance"),
        "health": target.get("health"),
        "last_error": target.get("lastError") or "",
        "scrape_url": target.get("scrapeUrl"),
        "last_scrape": target.get("lastScrape"),
        "expected": expected,
    }


def _missing_row(job, instance=None, **extra):
    """Row for an expected job or target that Prometheus does not have at all."""
    return {
        "job": job,
        "instance": instance,
        "health": None,
        "last_error": "",
        "scrape_url": None,
        "last_scrape": None,
        "expected": True,
        "status": "missing",
        **extra,
    }


def evaluate_targets(active, expected_jobs=(), expected_targets=(), require_all_up=True):
    """Check scrape targets. Returns (rows, problems, pending).

    ``pending`` is True while some relevant target has health ``unknown`` (not scraped yet).
    A job or target that is expected but absent is a problem, not only one that is down.
    """
    rows, problems, pending = [], [], False
    seen = set()

    def judge(target, expected):
        nonlocal pending
        key = id(target)
        if key in seen:
            return
        seen.add(key)
        row = _target_row(target, expected)
        rows.append(row)
        if row["health"] == "up":
            row["status"] = "ok"
            return
        row["status"] = "down" if row["health"] == "down" else "unknown"
        pending = pending or row["health"] != "down"
        detail = row["last_error"] or "health {}".format(row["health"])
        problems.append(
            "target job={} instance={} is {} ({}) scrapeUrl={}".format(
                row["job"], row["instance"], row["health"], detail, row["scrape_url"]
            )
        )

    for spec in expected_targets:
        found = [t for t in active if _matches(t, spec)]
        if not found:
            label = (
                "instance={}".format(spec.get("instance"))
                if spec.get("instance")
                else "address={}".format(spec.get("address"))
            )
            rows.append(_missing_row(spec["job"], spec.get("instance"), address=spec.get("address")))
            problems.append(
                "target job={} {} is missing: Prometheus has no such active target".format(spec["job"], label)
            )
        for target in found:
            judge(target, True)
    for job in expected_jobs:
        found = [t for t in active if _matches(t, {"job": job})]
        if not found:
            rows.append(_missing_row(job))
            problems.append(f"job {job} is missing: Prometheus has no active target for it")
        for target in found:
            judge(target, True)
    if require_all_up:
        for target in active:
            judge(target, False)
    return rows, problems, pending


def evaluate_rules(groups, expected_groups=(), min_rules=0):
    """Check loaded rule groups. Returns (summary, problems, pending)."""
    summary, problems, pending, total = [], [], False, 0
    names = set()
    for group in groups or []:
        names.add(group.get("name"))
        rules = group.get("rules") or []
        total += len(rules)
        errors = [
            "{}: {}".format(r.get("name"), r.get("lastError") or "health err")
            for r in rules
            if r.get("health") == "err"
        ]
        unknown = [r.get("name") for r in rules if r.get("health") not in ("ok", "err")]
        pending = pending or bool(unknown)
        health = "err" if errors else ("unknown" if unknown else "ok")
        summary.append(
            {
                "name": group.get("name"),
                "file": group.get("file"),
                "rules": len(rules),
                "health": health,
                "errors": errors,
                "not_evaluated": unknown,
            }
        )
        problems.extend("rule group {}: rule {}".format(group.get("name"), e) for e in errors)
    for name in expected_groups:
        if name not in names:
            problems.append(f"rule group {name} is not loaded")
    if total < min_rules:
        problems.append(f"{total} rule(s) loaded, expected at least {min_rules}")
    return summary, problems, pending


def evaluate_alertmanagers(data, expected=(), minimum=0):
    """Check Prometheus's discovered Alertmanagers. Returns (active urls, dropped urls, problems)."""
    active = [a.get("url") for a in (data or {}).get("activeAlertmanagers") or []]
    dropped = [a.get("url") for a in (data or {}).get("droppedAlertmanagers") or []]
    problems = []
    for wanted in expected:
        if not any(wanted in url for url in active):
            problems.append(
                "Alertmanager {} is not among Prometheus's active Alertmanagers ({})".format(
                    wanted, ", ".join(active) or "none"
                )
            )
    if len(active) < minimum:
        problems.append(f"Prometheus sees {len(active)} active Alertmanager(s), expected at least {minimum}")
    return active, dropped, problems


# -- Alertmanager matchers ------------------------------------------------------------------------
_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|(\S.*?))\s*$')


def parse_matcher(item):
    """A matcher from a dict {name, value, is_regex/isRegex, is_equal/isEqual} or a string 'name=~"v"'."""
    if isinstance(item, dict):
        if "name" not in item or "value" not in item:
            raise ModuleFailure(f"a matcher needs name and value: {item!r}")
        is_regex = item.get("is_regex", item.get("isRegex", False))
        is_equal = item.get("is_equal", item.get("isEqual", True))
        return {
            "name": str(item["name"]),
            "value": str(item["value"]),
            "isRegex": bool(is_regex),
            "isEqual": bool(is_equal),
        }
    match = _MATCHER.match(str(item))
    if not match:
        raise ModuleFailure(
            f'cannot parse matcher {item!r}: use name="value", name!="value", name=~"re" or name!~"re"'
        )
    name, op, quoted, bare = match.groups()
    value = bytes(quoted, "utf-8").decode("unicode_escape") if quoted is not None else bare
    return {"name": name, "value": value, "isRegex": op in ("=~", "!~"), "isEqual": op in ("=", "=~")}


def matcher_key(matchers):
    """Order-independent identity of a matcher set."""
    return tuple(
        sorted(
            (m["name"], m["value"], bool(m.get("isRegex")), bool(m.get("isEqual", True))) for m in matchers
        )
    )


def format_matcher(matcher):
    op = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}[
        (bool(matcher.get("isRegex")), bool(matcher.get("isEqual", True)))
    ]
    return '{}{}"{}"'.format(matcher["name"], op, matcher["value"].replace("\\", "\\\\").replace('"', '\\"'))
