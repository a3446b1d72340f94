# Grafana helpers shared by the grafana_* modules: client construction, folder handling,
# dashboard model normalisation, dashboard query extraction/interpolation for panel checks, and
# annotation tags, times and lookups.
"""Grafana API helpers (stdlib only)."""

from __future__ import annotations

import copy
import datetime
import json
import re

from ansible_collections.autodealgenie.ops.plugins.module_utils.adg_http import (
    HttpError,
    ModuleFailure,
    client_from_module,
    get_or_none,
    http_argument_spec,
)
from ansible_collections.autodealgenie.ops.plugins.module_utils.adg_prometheus import (
    UTC,
    format_duration,
    rfc3339,
)

# Fields Grafana sets or bumps on save; they never count as a difference.
SERVER_SET_DASHBOARD_KEYS = ("id", "version", "iteration")
UID_PATTERN = re.compile(r"^[a-zA-Z0-9\-_]{1,40}$")


class GrafanaError(ModuleFailure):
    """A Grafana problem explained for a human (not a raw HTTP error)."""


def grafana_argument_spec():
    spec = http_argument_spec()
    spec["org_id"] = {"type": "int"}
    return spec


def grafana_client(module, secrets=()):
    """HttpClient for Grafana; the org is chosen per request by header, never persistently."""
    org_id = module.params.get("org_id")
    headers = {"X-Grafana-Org-Id": str(org_id)} if org_id else None
    return client_from_module(module, secrets=secrets, headers=headers)


def check_uid(uid, what):
    if not uid or not UID_PATTERN.match(uid):
        raise GrafanaError(f"{what} uid {uid!r} is invalid: use 1-40 characters from [a-zA-Z0-9-_]")


# -- folders ------------------------------------------------------------------------------------
def get_folder(client, uid):
    return get_or_none(client, f"/api/folders/{uid}")


def create_folder(client, uid, title, check_mode=False):
    """Create a folder just found missing. Returns (folder, created).

    A 409 means another writer created it meanwhile (returned as it is, not created by us), or the
    title is taken by a folder with another uid (an error).
    """
    wanted = {"uid": uid, "title": title or uid}
    if check_mode:
        return dict(wanted, url=None, version=None, id=None), True
    try:
        return client.send_json("POST", "/api/folders", wanted), True
    except HttpError as exc:
        if exc.status != 409:
            raise
        folder = get_folder(client, uid)
        if folder is None:
            raise GrafanaError(
                "cannot create folder uid={}: {} (a folder with the title {!r} probably exists under "
                "another uid)".format(uid, exc.message, wanted["title"])
            ) from None
        return folder, False


def ensure_folder(client, uid, title, check_mode=False):
    """Create the folder or fix its title. Returns (folder, changed, before)."""
    check_uid(uid, "folder")
    folder = get_folder(client, uid)
    if folder is None:
        folder, created = create_folder(client, uid, title, check_mode)
        if created:
            return folder, True, None
    if title is None or folder.get("title") == title:
        return folder, False, folder
    if check_mode:
        return dict(folder, title=title), True, folder
    body = {"title": title, "version": folder.get("version")}
    updated = client.send_json("PUT", f"/api/folders/{uid}", body)
    return updated, True, folder


def folder_dashboards(client, uid):
    return client.get_json("/api/search", params={"folderUIDs": uid, "type": "dash-db", "limit": 5000}) or []


# -- dashboards ---------------------------------------------------------------------------------
def load_dashboard(dashboard=None, path=None):
    """Return the dashboard model from a dict or a JSON file (export wrappers are unwrapped)."""
    if path is not None:
        try:
            with open(path, encoding="utf-8") as handle:
                dashboard = json.load(handle)
        except OSError as exc:
            raise GrafanaError(f"cannot read dashboard file {path}: {exc}") from None
        except ValueError as exc:
            raise GrafanaError(f"dashboard file {path} is not valid JSON: {exc}") from None
    if isinstance(dashboard, str):
        try:
            dashboard = json.loads(dashboard)
        except ValueError as exc:
            raise GrafanaError(f"dashboard is not valid JSON: {exc}") from None
    if not isinstance(dashboard, dict):
        raise GrafanaError(f"dashboard must be a JSON object, got {type(dashboard).__name__}")
    if isinstance(dashboard.get("dashboard"), dict) and "panels" not in dashboard:
        dashboard = dashboard["dashboard"]  # {"dashboard": ..., "meta"/"folderUid": ...} wrapper
    return copy.deepcopy(dashboard)


def normalise_dashboard(model, ignored_keys=()):
    """The part of a dashboard model that the owner controls, for comparison.

    Drops server-set fields (id, version, iteration and ``ignored_keys``) and top-level keys whose
    value is null (``"id": null``, ``"gnetId": null`` in exports mean "unset").
    """
    result = copy.deepcopy(model)
    for key in (*SERVER_SET_DASHBOARD_KEYS, *ignored_keys):
        result.pop(key, None)
    return {k: v for k, v in result.items() if v is not None}


def canonical_json(obj):
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# -- queries in dashboards (panel-data checks) --------------------------------------------------
def builtin_variables(range_seconds, step_seconds, scrape_interval_seconds):
    """Grafana's global variables, as Grafana computes them for a Prometheus datasource."""
    rate = max(step_seconds + scrape_interval_seconds, 4 * scrape_interval_seconds)
    return {
        "__interval": format_duration(step_seconds),
        "__interval_ms": str(int(step_seconds * 1000)),
        "__rate_interval": format_duration(rate),
        "__rate_interval_ms": str(int(rate * 1000)),
        "__range": format_duration(range_seconds),
        "__range_s": str(int(range_seconds)),
        "__range_ms": str(int(range_seconds * 1000)),
        "__org": "1",
        "__dashboard": "",
        "__user": "",
    }


def iter_panels(model):
    """Every panel, including panels nested in (collapsed) rows."""
    for panel in model.get("panels") or []:
        yield panel
        yield from panel.get("panels") or []
    for row in model.get("rows") or []:  # pre-5.0 schema
        yield from row.get("panels") or []


def _datasource_kind(datasource):
    """'prometheus', 'other' or 'default' (inherit) for a panel/target datasource reference."""
    if datasource in (None, "", "default"):
        return "default"
    if isinstance(datasource, dict):
        ds_type, uid = datasource.get("type"), datasource.get("uid")
        if ds_type == "prometheus":
            return "prometheus"
        if uid == "-- Mixed --" or uid is None or (isinstance(uid, str) and uid.startswith("$")):
            return "default"  # mixed panels name a datasource per target; $ds is a template variable
        if ds_type or uid in ("-- Grafana --", "grafana", "-- Dashboard --"):
            return "other"
        return "prometheus"
    if isinstance(datasource, str):
        # A legacy datasource name ("Prometheus", "${DS_PROMETHEUS}") unless a built-in one.
        return "other" if datasource.startswith("-- ") or datasource == "grafana" else "prometheus"
    return "other"


def panel_targets(panel):
    """(refId, expr, instant) for each enabled Prometheus target of a panel; skip reasons too."""
    panel_kind = _datasource_kind(panel.get("datasource"))
    for target in panel.get("targets") or []:
        if target.get("hide"):
            continue
        kind = _datasource_kind(target.get("datasource")) if "datasource" in target else panel_kind
        if kind == "default":
            kind = panel_kind if panel_kind != "default" else "prometheus"
        expr = target.get("expr")
        if kind != "prometheus" or not expr:
            continue
        instant = bool(target.get("instant")) and not target.get("range")
        yield target.get("refId") or "A", expr, instant


_VAR_RE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)(?::(\w+))?\]\]|\$(\w+)")
_REGEX_SPECIAL = re.compile(r"([\\.^$|?*+()\[\]{}])")


def _format_values(values, fmt, all_value=None):
    if all_value is not None:
        return all_value
    if fmt in (None, "", "regex"):
        if len(values) == 1 and fmt is None:
            return values[0]
        escaped = [_REGEX_SPECIAL.sub(r"\\\1", v) for v in values]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
    if fmt == "pipe":
        return "|".join(values)
    if fmt in ("csv", "text"):
        return ",".join(values)
    if fmt == "raw":
        return ",".join(values)
    if fmt == "glob":
        return values[0] if len(values) == 1 else "{" + ",".join(values) + "}"
    return ",".join(values)


def interpolate(expr, variables):
    """Replace $var, ${var}, ${var:format} and [[var]] with resolved values.

    ``variables`` maps a name to a string, or to a dict {"values": [...], "all_value": str|None}.
    Unknown variables are left untouched (the query will then report its own error).
    """

    def replace(match):
        name = match.group(1) or match.group(3) or match.group(5)
        fmt = match.group(2) or match.group(4)
        if name not in variables:
            return match.group(0)
        value = variables[name]
        if isinstance(value, dict):
            return _format_values(value.get("values") or [""], fmt, value.get("all_value"))
        return str(value)

    return _VAR_RE.sub(replace, expr)


def _split_custom(query):
    return [part.strip() for part in re.split(r"(?<!\\),", query or "") if part.strip()]


_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(.+?)\s*,\s*)?([a-zA-Z_]\w*)\s*\)\s*$")


def resolve_template_variables(model, overrides, label_values, builtins):
    """Resolve a dashboard's template variables to concrete values.

    ``label_values(label, match)`` is a callback returning the values of a label (optionally
    restricted by a series selector). Precedence: ``overrides`` > the variable's current value >
    values discovered from Prometheus. "All" becomes the variable's allValue or a regex of every value.
    Returns (variables, notes) where notes lists variables that could not be resolved.
    """
    variables = dict(builtins)
    notes = []
    for var in (model.get("templating") or {}).get("list") or []:
        name = var.get("name")
        if not name:
            continue
        if name in overrides:
            value = overrides[name]
            values = value if isinstance(value, list) else [str(value)]
            variables[name] = {"values": [str(v) for v in values], "all_value": None}
            continue
        var_type = var.get("type", "query")
        if var_type in ("constant", "textbox"):
            variables[name] = str(var.get("query") or (var.get("current") or {}).get("value") or "")
            continue
        if var_type == "interval":
            current = (var.get("current") or {}).get("value")
            options = _split_custom(var.get("query"))
            variables[name] = str(
                current
                if current and not str(current).startswith("$")
                else (options[0] if options else variables["__interval"])
            )
            continue
        if var_type == "datasource":
            variables[name] = str((var.get("current") or {}).get("value") or "")
            continue
        values = []
        if var_type == "custom":
            values = [
                o.get("value") for o in var.get("options") or [] if o.get("value") not in (None, "$__all")
            ]
            values = values or _split_custom(var.get("query"))
        elif var_type == "query":
            query = var.get("query")
            if isinstance(query, dict):
                query = query.get("query")
            match = _LABEL_VALUES.match(interpolate(query or "", variables))
            if match:
                values = label_values(match.group(2), match.group(1))
                regex = var.get("regex")
                if regex:
                    pattern = re.compile(regex.strip("/"))
                    values = [v for v in values if pattern.search(v)]
            elif query:
                notes.append(f"{name}: only label_values() queries are resolved ({query})")
        current = (var.get("current") or {}).get("value")
        selected = current if isinstance(current, list) else ([current] if current not in (None, "") else [])
        selected = [str(v) for v in selected]
        if selected and "$__all" not in selected:
            variables[name] = {"values": selected, "all_value": None}
        elif values:
            wants_all = var.get("includeAll") or var.get("multi") or "$__all" in selected
            chosen = values if wants_all else values[:1]
            variables[name] = {"values": chosen, "all_value": var.get("allValue") if wants_all else None}
        else:
            notes.append(f"{name}: no values found")
            variables[name] = {"values": [".*"] if var.get("includeAll") else [""], "all_value": None}
    return variables, notes


# -- annotations --------------------------------------------------------------------------------
# Grafana stores each tag as a key/value pair: "a:b" is key a, value b; "a:b:c" keeps only "a:b"
# (pkg/services/tag ParseTagPairs), blanks around both parts are trimmed and duplicates dropped.
ANNOTATION_KEY_TAG = "adg-key"
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)
# Epoch milliseconds below this (1973) are almost certainly seconds given by mistake.
_MIN_EPOCH_MS = 10**11


def annotation_tag(tag):
    """A tag as Grafana stores it; refuses what Grafana would silently change or drop."""
    if not isinstance(tag, str):
        raise GrafanaError(f"annotation tag {tag!r} is not a string")
    if tag.count(":") > 1:
        raise GrafanaError(
            f"annotation tag {tag!r} has more than one ':'; Grafana would keep only the text before "
            "the second one"
        )
    key, sep, value = tag.partition(":")
    key, value = key.strip(" "), value.strip(" ")
    if not key:
        raise GrafanaError(f"annotation tag {tag!r} has an empty name; Grafana would drop it")
    return f"{key}:{value}" if sep and value else key


def annotation_tags(tags):
    """Normalised tags, deduplicated, in the given order."""
    result = []
    for tag in tags or []:
        normal = annotation_tag(tag)
        if normal not in result:
            result.append(normal)
    return result


def key_tag(key):
    if not isinstance(key, str) or not key.strip() or key != key.strip() or ":" in key:
        raise GrafanaError(
            f"annotation key {key!r} is invalid: use a non-empty string without ':' or surrounding blanks"
        )
    return f"{ANNOTATION_KEY_TAG}:{key}"


def epoch_ms(value, what, now_ms):
    """Epoch milliseconds from an int (ms), a string of digits (ms), 'now' or an ISO 8601 time
    with an offset (e.g. Alertmanager's startsAt, nanoseconds and all). None stays None."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == "now":
            return now_ms
        if not text.isdigit():
            return _iso_ms(text, what)
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int):
        raise GrafanaError(f"{what} must be a time, got {value!r}")
    if value < _MIN_EPOCH_MS:
        raise GrafanaError(f"{what} {value} looks like seconds or is before 1973: give epoch milliseconds")
    return value


def _iso_ms(text, what):
    # fromisoformat (3.11+) reads every ISO 8601 form Alertmanager and people write; a time without an
    # offset is refused, since its zone would be a guess.
    try:
        stamp = datetime.datetime.fromisoformat(text.upper())
    except ValueError:
        stamp = None
    if stamp is None or stamp.tzinfo is None:
        raise GrafanaError(
            f"{what} {text!r} is not a time: give epoch milliseconds, 'now' or an ISO 8601 time with an "
            "offset (2026-01-31T12:00:00Z)"
        )
    return (stamp - _EPOCH) // datetime.timedelta(milliseconds=1)


def iso_from_ms(value):
    """Epoch milliseconds as an RFC 3339 UTC time (for diffs and messages); None stays None."""
    return None if value is None else rfc3339(_EPOCH + datetime.timedelta(milliseconds=value))


def find_annotations(client, tags, dashboard_uid=None, time_ms=None, limit=100):
    """User annotations (not alert state changes) carrying every tag of ``tags``, newest first."""
    params = [("tags", t) for t in tags] + [("type", "annotation"), ("limit", limit)]
    if dashboard_uid:
        params.append(("dashboardUID", dashboard_uid))
    if time_ms is not None:
        # Grafana's time filter is an overlap (time <= to and timeEnd >= from): the annotations at it.
        params += [("from", time_ms), ("to", time_ms)]
    return client.get_json("/api/annotations", params=params) or []
