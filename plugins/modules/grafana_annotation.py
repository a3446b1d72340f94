#!/usr/bin/python
"""Post, update or delete a Grafana annotation idempotently."""

from __future__ import annotations

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.autodealgenie.ops.plugins.module_utils.adg_grafana import (
    ANNOTATION_KEY_TAG,
    GrafanaError,
    annotation_tags,
    check_uid,
    epoch_ms,
    find_annotations,
    grafana_argument_spec,
    grafana_client,
    iso_from_ms,
    key_tag,
)
from ansible_collections.autodealgenie.ops.plugins.module_utils.adg_http import (
    HttpError,
    ModuleFailure,
    get_or_none,
    run_module,
)

DOCUMENTATION = r"""
---
module: grafana_annotation
short_description: Post a Grafana annotation (a point or a region) idempotently
description:
  - Creates, updates or deletes one Grafana annotation, so that events such as deploys and maintenance
    windows line up with the metrics on every dashboard that shows annotations by tag.
  - "Idempotent: the annotation is identified by O(key), stored as the tag C(adg-key:<key>); re-running a
    task finds it and changes only what differs (PATCH), so it never posts a second one. Without O(key) it
    is identified by its exact tag set and start time (O(tags) and O(time) are then required)."
  - "A region can be opened and closed by two tasks with the same O(key): the first sets only the start
    (the annotation is a point until then), the second sets O(time_end). An option left out keeps the
    stored value: O(time) and O(time_end) are never moved by a re-run that does not name them."
  - Annotations without O(dashboard_uid) are organisation annotations, shown on every dashboard whose
    Grafana annotation query matches their tags. With O(dashboard_uid) the annotation belongs to that
    dashboard (and optionally one panel); the dashboard must exist (Grafana would otherwise silently
    store an organisation annotation).
  - Use it by its FQCN C(autodealgenie.ops.grafana_annotation), like every module of this collection.
version_added: "1.4.0"
author: AutoDealGenie ops team
options:
  key:
    description:
      - Identity of the annotation, stored as the tag C(adg-key:<key>) next to O(tags). Use one key per
        event (for example C(rolling-upgrade-<start>) or C(maintenance-<silence id>)).
      - A non-empty string without C(:) (Grafana keeps only the text up to a second C(:) of a tag) or
        surrounding blanks.
      - Without it, the annotation is identified by O(tags) and O(time) exactly, and only O(text) and
        O(time_end) can be changed.
    type: str
  text:
    description:
      - Text of the annotation (Grafana renders a little HTML). Required to create one.
      - When omitted, an existing annotation keeps its text.
    type: str
  tags:
    description:
      - Tags, for example C([deploy, "release:1.4.0-3fa2c1"]). Grafana reads C(name:value); a tag may hold
        at most one C(:). The key tag is added by the module; do not give another C(adg-key:) tag.
      - The stored tag set is replaced by this one (order does not matter). When omitted, an existing
        annotation keeps its tags.
    type: list
    elements: str
  time:
    description:
      - "Start (or the point in time) of the annotation, as epoch milliseconds, C(now), or an ISO 8601 time
        with an offset such as C(2026-01-31T12:00:00Z) (Alertmanager's C(startsAt) as it is)."
      - When omitted, a new annotation starts now and an existing one keeps its start.
    type: raw
  time_end:
    description:
      - End of the region, in the same formats as O(time). Equal to O(time) (or omitted when creating) is a
        point annotation.
      - When omitted, an existing annotation keeps its end; a point whose O(time) moves stays a point.
      - Must not be before the start (Grafana would swap them silently).
    type: raw
  dashboard_uid:
    description:
      - Uid of the dashboard the annotation belongs to. Omitted means an organisation annotation.
      - An annotation cannot move to another dashboard; delete it (O(state=absent)) and create it again.
    type: str
  panel_id:
    description: Id of the panel of O(dashboard_uid) the annotation belongs to (0 = the whole dashboard).
    type: int
    default: 0
  state:
    description: Whether the annotation should exist. O(state=absent) deletes every annotation with the key.
    type: str
    choices: [present, absent]
    default: present
  create:
    description:
      - Create the annotation when none has the key. Set to V(false) to only update an existing one, for
        example to close a region that another run may have opened; when there is none, nothing happens
        (RV(found) is V(false)).
    type: bool
    default: true
  warn_only:
    description:
      - Report a failure (Grafana unreachable, refused credentials, bad input) as a warning, with
        RV(warning) set and C(changed=false), instead of failing the task. For callers to whom the
        annotation is informational, such as a deploy that must not stop because Grafana is down.
    type: bool
    default: false
extends_documentation_fragment:
  - autodealgenie.ops.adg_http
  - autodealgenie.ops.adg_http.grafana
attributes:
  check_mode:
    support: full
    details: Reads the stored annotation and reports what would change; nothing is written.
  diff_mode:
    support: full
    details: The diff shows text, tags, start and end (ISO 8601, UTC), dashboard and panel, before and after.
notes:
  - "Lookups use C(GET /api/annotations?tags=adg-key:<key>&type=annotation) (without O(key): the tags, and
    C(from) and C(to) at O(time)), and C(GET /api/dashboards/uid/:uid) before creating a dashboard annotation;
    writes use C(POST /api/annotations), C(PATCH /api/annotations/:id) (only the fields that differ) and
    C(DELETE /api/annotations/:id). The user needs the Editor role (or the annotation permissions) in the
    organisation."
  - Two annotations with the same key (created outside this module) are reported as an error for
    O(state=present); O(state=absent) deletes both.
seealso:
  - module: autodealgenie.ops.alertmanager_silence
  - name: Grafana annotations HTTP API
    description: The endpoints this module calls.
    link: https://grafana.com/docs/grafana/latest/developers/http_api/annotations/
"""

EXAMPLES = r"""
- name: Open the deploy region when the rolling upgrade starts
  autodealgenie.ops.grafana_annotation:
    url: "{{ grafana_url }}"
    url_username: "{{ grafana_admin_user }}"
    url_password: "{{ grafana_admin_password }}"
    key: rolling-upgrade-{{ upgrade_started_ms }}
    time: "{{ upgrade_started_ms }}"
    tags: [deploy]
    text: Rolling upgrade of app1, app2 started
    warn_only: true

- name: Close it when the last host is done (same key; the start is kept)
  autodealgenie.ops.grafana_annotation:
    url: "{{ grafana_url }}"
    url_username: "{{ grafana_admin_user }}"
    url_password: "{{ grafana_admin_password }}"
    key: rolling-upgrade-{{ upgrade_started_ms }}
    time: "{{ upgrade_started_ms }}"
    time_end: now
    tags: [deploy, "release:{{ backend_release.release_id }}"]
    text: Rolling upgrade to {{ backend_release.release_id }} on app1, app2
    warn_only: true

- name: Mark a maintenance window with the times of its silence
  autodealgenie.ops.grafana_annotation:
    url: "{{ grafana_url }}"
    token: "{{ grafana_token }}"
    key: maintenance-{{ silence.silence_id }}
    time: "{{ silence.silence.startsAt }}"
    time_end: "{{ silence.silence.endsAt }}"
    tags: [maintenance, "instance:data1"]
    text: PostgreSQL minor upgrade, OPS-42

- name: A point annotation on one dashboard panel, identified by its tags and time
  autodealgenie.ops.grafana_annotation:
    url: "{{ grafana_url }}"
    token: "{{ grafana_token }}"
    dashboard_uid: autodealgenie-api-performance
    panel_id: 2
    tags: [load-test]
    time: "2026-01-31T12:00:00Z"
    text: Load test begins

- name: Remove an annotation
  autodealgenie.ops.grafana_annotation:
    url: "{{ grafana_url }}"
    token: "{{ grafana_token }}"
    key: maintenance-3f1a6c2e
    state: absent
"""

RETURN = r"""
id:
  description: Id of the annotation (null when none exists, and for a new one in check mode).
  returned: always
  type: int
  sample: 1124
found:
  description: Whether an annotation with the key (or tags and time) existed before the run.
  returned: always
  type: bool
  sample: true
key:
  description: The key, as given.
  returned: always
  type: str
  sample: rolling-upgrade-1764634259000
tags:
  description: Tags after the run, key tag included, sorted.
  returned: when the annotation exists (or would, in check mode)
  type: list
  elements: str
  sample: [adg-key:rolling-upgrade-1764634259000, deploy, release:1.4.0-3fa2c1]
text:
  description: Text after the run.
  returned: when the annotation exists (or would, in check mode)
  type: str
time:
  description: Start after the run, epoch milliseconds.
  returned: when the annotation exists (or would, in check mode)
  type: int
  sample: 1764634259000
time_end:
  description: End after the run, epoch milliseconds (equal to RV(time) for a point).
  returned: when the annotation exists (or would, in check mode)
  type: int
  sample: 1764634519000
region:
  description: Whether the annotation is a region (its end is after its start).
  returned: when the annotation exists (or would, in check mode)
  type: bool
dashboard_uid:
  description: Dashboard of the annotation (null for an organisation annotation).
  returned: always
  type: str
panel_id:
  description: Panel of the annotation (0 for none).
  returned: always
  type: int
deleted_ids:
  description: Ids deleted by O(state=absent).
  returned: when O(state=absent)
  type: list
  elements: int
warning:
  description: Why nothing was annotated, with O(warn_only=true) (also shown as a task warning).
  returned: when O(warn_only=true) and the run failed
  type: str
"""


def view(annotation):
    """The owner-controlled fields of a stored annotation, in the module's terms."""
    return {
        "text": annotation.get("text") or "",
        "tags": sorted(annotation_tags(annotation.get("tags") or [])),
        "time": annotation.get("time"),
        "time_end": annotation.get("timeEnd"),
        "dashboard_uid": annotation.get("dashboardUID") or None,
        "panel_id": annotation.get("panelId") or 0,
    }


def readable(state):
    if not state:
        return {}
    return dict(state, time=iso_from_ms(state["time"]), time_end=iso_from_ms(state["time_end"]))


def base_result(params):
    """The fields returned always (RETURN), before anything is known."""
    return {
        "changed": False,
        "found": False,
        "id": None,
        "key": params["key"],
        "dashboard_uid": params["dashboard_uid"],
        "panel_id": params["panel_id"],
    }


def lookup(client, params, identity_tags, time_ms):
    """Stored annotations with the key (or the exact tags, start, dashboard and panel)."""
    if params["key"] is not None:
        # Grafana matches a name:value tag exactly: these all carry the key.
        return find_annotations(client, identity_tags)
    wanted = {
        "tags": sorted(identity_tags),
        "time": time_ms,
        "dashboard_uid": params["dashboard_uid"],
        "panel_id": params["panel_id"],
    }
    # Grafana's filter is "has these tags" and "overlaps this time"; identity is the exact match.
    found = find_annotations(client, identity_tags, params["dashboard_uid"], time_ms)
    return [a for a in found if {k: view(a)[k] for k in wanted} == wanted]


def check_dashboard(client, uid):
    check_uid(uid, "dashboard")
    if get_or_none(client, f"/api/dashboards/uid/{uid}") is None:
        raise GrafanaError(
            f"dashboard {uid} does not exist; Grafana would store the annotation as an organisation "
            "annotation instead. Push the dashboard first, or leave dashboard_uid out."
        )


def desired_tags(params, identity):
    """The tags to store (key tag included, sorted), or None to keep the stored ones."""
    if params["tags"] is None:
        return None
    tags = annotation_tags(params["tags"])
    if any(t.split(":", 1)[0] == ANNOTATION_KEY_TAG for t in tags):
        raise GrafanaError(f"tags must not hold a {ANNOTATION_KEY_TAG}: tag; set key instead")
    return sorted(set(tags) | set(identity))  # without key, identity is the tags themselves


def span(time_ms, time_end_ms, before, now_ms):
    """Start and end after the run: an option left out keeps the stored value (a new annotation starts
    now and is a point), and a point stays a point when its start moves."""
    start = time_ms if time_ms is not None else before.get("time", now_ms)
    if time_end_ms is not None:
        end = time_end_ms
    elif not before or before["time_end"] == before["time"]:
        end = start
    else:
        end = before["time_end"]
    if end < start:
        # Refused: Grafana would swap them silently.
        raise GrafanaError(
            f"time_end ({iso_from_ms(end)}) is before time ({iso_from_ms(start)}): the annotation would "
            "end before it starts"
        )
    return start, end


def run(module, client):
    params = module.params
    now_ms = int(time.time() * 1000)
    time_ms = epoch_ms(params["time"], "time", now_ms)
    time_end_ms = epoch_ms(params["time_end"], "time_end", now_ms)
    if params["text"] is not None and not params["text"].strip():
        raise GrafanaError("text must not be empty (Grafana refuses an annotation without text)")
    if params["panel_id"] and not params["dashboard_uid"]:
        raise GrafanaError("panel_id needs dashboard_uid")
    if params["key"] is not None:
        identity = [key_tag(params["key"])]
    else:
        identity = annotation_tags(params["tags"])
        if not identity or params["time"] is None or str(params["time"]).strip().lower() == "now":
            raise GrafanaError(
                "without key, an annotation is identified by its tags and start: give key, or tags and "
                "a fixed time (not now)"
            )
    tags = desired_tags(params, identity)
    matches = lookup(client, params, identity, time_ms)
    result = dict(base_result(params), found=bool(matches))
    if params["state"] == "absent":
        return absent(module, client, matches, result)
    if len(matches) > 1:
        ids = ", ".join(str(a["id"]) for a in matches)
        raise GrafanaError(
            f"{len(matches)} annotations ({ids}) carry the identity {identity}; delete the extra ones "
            "(or all of them with state=absent)"
        )
    if not matches and not params["create"]:
        return result
    stored = matches[0] if matches else None
    if tags is None and stored is None:
        tags = sorted(identity)  # a new annotation carries at least its key
    return present(module, client, stored, tags, time_ms, time_end_ms, now_ms, result)


def present(module, client, stored, tags, time_ms, time_end_ms, now_ms, result):
    """Create the annotation (``stored`` None) or PATCH what differs; ``tags`` None keeps the stored ones."""
    params = module.params
    before = view(stored) if stored else {}
    if stored:
        if (before["dashboard_uid"], before["panel_id"]) != (params["dashboard_uid"], params["panel_id"]):
            raise GrafanaError(
                "annotation {} with key {} belongs to dashboard {} panel {}, not {} panel {}; an "
                "annotation cannot move: delete it (state=absent) and create it again".format(
                    stored["id"],
                    params["key"],
                    before["dashboard_uid"] or "(none)",
                    before["panel_id"],
                    params["dashboard_uid"] or "(none)",
                    params["panel_id"],
                )
            )
    elif params["text"] is None:
        raise GrafanaError("text is required to create an annotation")
    elif params["dashboard_uid"]:
        check_dashboard(client, params["dashboard_uid"])
    start, end = span(time_ms, time_end_ms, before, now_ms)
    after = {
        "text": params["text"] if params["text"] is not None else before["text"],
        "tags": tags if tags is not None else before["tags"],
        "time": start,
        "time_end": end,
        "dashboard_uid": params["dashboard_uid"],
        "panel_id": params["panel_id"],
    }
    # For a new annotation (before = {}) this is the whole POST body.
    body = {k: after[k] for k in ("text", "tags") if after[k] != before.get(k)}
    if (start, end) != (before.get("time"), before.get("time_end")):
        # Both always: Grafana swaps a start past the stored end instead of refusing it.
        body.update(time=start, timeEnd=end)
    if module._diff:
        result["diff"] = {"before": readable(before), "after": readable(after)}
    annotation_id = stored["id"] if stored else None
    if body and not module.check_mode:
        if stored:
            client.send_json("PATCH", f"/api/annotations/{annotation_id}", body)
        else:
            if params["dashboard_uid"]:
                body.update(dashboardUID=params["dashboard_uid"], panelId=params["panel_id"])
            annotation_id = client.send_json("POST", "/api/annotations", body).get("id")
    return dict(result, **after, changed=bool(body), id=annotation_id, region=end > start)


def absent(module, client, matches, result):
    if module._diff:
        result["diff"] = {"before": readable(view(matches[0])) if matches else {}, "after": {}}
    if not module.check_mode:
        for annotation in matches:
            # 404: deleted meanwhile by someone else, which is what we want
            client.request("DELETE", f"/api/annotations/{annotation['id']}", expected=(200, 404))
    return dict(result, changed=bool(matches), deleted_ids=[a["id"] for a in matches])


def run_or_warn(module, client):
    """run(); with warn_only, a failure becomes a task warning and an unchanged result."""
    try:
        return run(module, client)
    except (HttpError, ModuleFailure) as exc:
        if not module.params["warn_only"]:
            raise  # run_module reports it
        message = f"Grafana annotation not written: {exc}"
        module.warn(message)
        return dict(base_result(module.params), warning=message)


def main():
    spec = grafana_argument_spec()
    spec.update(
        key={"type": "str"},
        text={"type": "str"},
        tags={"type": "list", "elements": "str"},
        time={"type": "raw"},
        time_end={"type": "raw"},
        dashboard_uid={"type": "str"},
        panel_id={"type": "int", "default": 0},
        state={"type": "str", "choices": ["present", "absent"], "default": "present"},
        create={"type": "bool", "default": True},
        warn_only={"type": "bool", "default": False},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    run_module(module, run_or_warn, module, grafana_client(module))


if __name__ == "__main__":
    main()
