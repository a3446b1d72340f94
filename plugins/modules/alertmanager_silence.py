#!/usr/bin/python
"""Create, update and expire Alertmanager silences idempotently (API v2)."""

from __future__ import annotations

import datetime
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.autodealgenie.ops.plugins.module_utils.adg_http import (
    HttpClient,
    HttpError,
    ModuleFailure,
    client_from_module,
    client_options,
    get_or_none,
    http_argument_spec,
    run_module,
)
from ansible_collections.autodealgenie.ops.plugins.module_utils.adg_prometheus import (
    format_matcher,
    matcher_key,
    parse_duration,
    parse_matcher,
    parse_rfc3339,
    rfc3339,
    utcnow,
)

DOCUMENTATION = r"""
---
module: alertmanager_silence
short_description: Create, update and expire Alertmanager silences idempotently
description:
  - Manages a silence through Alertmanager's API v2, for maintenance windows and rolling upgrades.
  - A silence is identified by its set of O(matchers) (order does not matter) among the active and
    pending silences, or by O(id). Re-running with the same arguments changes nothing.
  - With O(duration) the window is anchored at the silence's start, so re-runs do not keep extending
    it; pass O(ends_at) (or a different O(duration)) to move the end.
  - An update keeps the silence id when Alertmanager allows an in-place update, otherwise Alertmanager
    expires the old silence and returns a new id (RV(silence_id) and RV(previous_id) say which).
  - O(state=absent) expires every active or pending silence with exactly these matchers (or the O(id)).
version_added: "1.0.0"
author: AutoDealGenie ops team
options:
  matchers:
    description:
      - Label matchers, each a string such as C(instance="app1"), C(severity!="info"),
        C(job=~"redis|postgres"),
        or a dict with C(name), C(value), C(is_regex) (default false) and C(is_equal) (default true).
      - Required unless O(id) is given.
    type: list
    elements: raw
    default: []
  id:
    description: Manage this silence id instead of looking the silence up by matchers.
    type: str
  state:
    description: C(present) creates or updates the silence; C(absent) expires it.
    type: str
    choices: [present, absent]
    default: present
  duration:
    description: Length of the window as a Prometheus duration (C(30m), C(2h)), counted from the silence's
      start.
    type: str
  ends_at:
    description: End of the window, RFC 3339 (C(2026-05-01T22:00:00Z)). Mutually exclusive with O(duration).
    type: str
  starts_at:
    description: Start of a new silence, RFC 3339. Defaults to now. Ignored when the silence already exists.
    type: str
  comment:
    description: Why the silence exists. Required with O(state=present).
    type: str
  created_by:
    description: Author recorded on the silence.
    type: str
    default: ansible
  retries:
    description: Extra attempts, with exponential backoff, after connection errors and HTTP 5xx (never for
      the silence POST itself).
    type: int
    default: 3
  verify_urls:
    description:
      - Base URLs of further Alertmanagers of the same cluster (gossip) that must show the result before the
        module returns - the created or updated silence live with its end, or the expired ones no longer
        live. One write to O(url) is enough in a cluster; this proves the others have it.
      - The same connection options as for O(url) are used. O(url) itself may be listed (it is skipped).
      - Not in check mode (nothing was written).
    type: list
    elements: str
    default: []
  verify_timeout:
    description: Seconds to wait for every O(verify_urls) Alertmanager to show the result; the module fails
      after that, naming the ones that did not.
    type: float
    default: 60
extends_documentation_fragment:
  - autodealgenie.ops.adg_http
  - autodealgenie.ops.adg_http.alertmanager
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: Silence one host for a rolling upgrade
  autodealgenie.ops.alertmanager_silence:
    url: "http://127.0.0.1:{{ alertmanager_port }}"
    matchers:
      - instance="{{ inventory_hostname }}"
    duration: 30m
    comment: "rolling upgrade of {{ inventory_hostname }}"
    created_by: "ansible rolling_upgrade.yml"
  delegate_to: "{{ groups['monitoring'][0] }}"

- name: Expire it again
  autodealgenie.ops.alertmanager_silence:
    url: "http://127.0.0.1:{{ alertmanager_port }}"
    matchers:
      - instance="{{ inventory_hostname }}"
    state: absent
  delegate_to: "{{ groups['monitoring'][0] }}"

- name: Planned database maintenance with a fixed end
  autodealgenie.ops.alertmanager_silence:
    url: http://127.0.0.1:9093
    matchers:
      - {name: component, value: database}
      - {name: severity, value: "warning|critical", is_regex: true}
    ends_at: "2026-05-01T23:00:00Z"
    comment: "PostgreSQL 15 -> 16 upgrade, ticket OPS-42"
"""

RETURN = r"""
silence_id:
  description: Id of the managed silence (null when none exists, and for a new silence in check mode).
  returned: always
  type: str
  sample: 3f1a6c2e-8d0b-4c55-9f8e-1c1f3b1e2d4a
previous_id:
  description: Id before an update when Alertmanager replaced the silence by a new one.
  returned: when the silence was updated
  type: str
expired_ids:
  description: Ids expired by O(state=absent).
  returned: when O(state=absent)
  type: list
  elements: str
silence:
  description: The silence as desired after the run (matchers, startsAt, endsAt, createdBy, comment).
  returned: when O(state=present)
  type: dict
matchers:
  description: Normalised matchers, as strings.
  returned: always
  type: list
  elements: str
  sample: ['instance="app1"']
verified:
  description: Each O(verify_urls) Alertmanager and the seconds until it showed the result (gossip delay).
  returned: when O(verify_urls) is set and not in check mode
  type: dict
  sample: {"http://10.0.0.2:9093": 0.42}
"""

LIVE_STATES = ("active", "pending")
END_TOLERANCE = datetime.timedelta(seconds=1)


def is_live(silence):
    """Active or pending (not expired)."""
    return (silence.get("status") or {}).get("state") in LIVE_STATES


def live_silences(client, matchers):
    key = matcher_key(matchers)
    found = [
        s
        for s in client.get_json("/api/v2/silences") or []
        if is_live(s) and matcher_key(s.get("matchers") or []) == key
    ]
    return sorted(found, key=lambda s: s.get("endsAt") or "", reverse=True)


def silence_by_id(client, silence_id):
    return get_or_none(client, f"/api/v2/silence/{silence_id}")


def parse_time(text, option):
    try:
        return parse_rfc3339(text)
    except ValueError as exc:
        raise ModuleFailure(f"{option}: {exc}") from None


def view(silence):
    return {
        "matchers": sorted(format_matcher(m) for m in silence.get("matchers") or []),
        "startsAt": silence.get("startsAt"),
        "endsAt": silence.get("endsAt"),
        "createdBy": silence.get("createdBy"),
        "comment": silence.get("comment"),
    }


def present(module, client, matchers):
    params = module.params
    if not params["comment"]:
        raise ModuleFailure("state=present requires comment")
    if not params["duration"] and not params["ends_at"]:
        raise ModuleFailure("state=present requires duration or ends_at")
    if params["id"]:
        existing = silence_by_id(client, params["id"])
        if existing is None:
            raise ModuleFailure("silence {} does not exist".format(params["id"]))
        # the id's matchers unless others are given; an expired id is replaced by a new silence
        matchers = matchers or [parse_matcher(m) for m in existing.get("matchers") or []]
        if not is_live(existing):
            existing = None
    else:
        candidates = live_silences(client, matchers)
        existing = candidates[0] if candidates else None
    now = utcnow()
    starts = (
        parse_rfc3339(existing["startsAt"])
        if existing
        else (parse_time(params["starts_at"], "starts_at") if params["starts_at"] else now)
    )
    if params["ends_at"]:
        ends = parse_time(params["ends_at"], "ends_at")
    else:
        seconds = parse_duration(params["duration"])
        if not seconds:
            raise ModuleFailure(
                "duration {!r} is not a Prometheus duration such as 30m or 2h".format(params["duration"])
            )
        ends = starts + datetime.timedelta(seconds=seconds)
    if ends <= max(now, starts):
        raise ModuleFailure(
            f"the silence would end at {rfc3339(ends)}, which is not after its start/now; nothing to silence"
        )
    desired = {
        "matchers": matchers,
        # an existing start is sent back verbatim: Alertmanager updates in place only if it is unchanged
        "startsAt": existing["startsAt"] if existing else rfc3339(starts),
        "endsAt": rfc3339(ends),
        "createdBy": params["created_by"],
        "comment": params["comment"],
    }
    result = {"matchers": [format_matcher(m) for m in matchers], "silence": desired}
    if module._diff:
        result["diff"] = {"before": view(existing) if existing else {}, "after": view(desired)}
    if existing is not None:
        same_end = abs(parse_rfc3339(existing["endsAt"]) - ends) <= END_TOLERANCE
        if (
            same_end
            and existing.get("comment") == desired["comment"]
            and existing.get("createdBy") == desired["createdBy"]
        ):
            return dict(result, changed=False, silence_id=existing["id"])
    if module.check_mode:
        return dict(result, changed=True, silence_id=existing["id"] if existing else None)
    body = dict(desired, id=existing["id"]) if existing else desired
    # Never retried on 5xx: a repeated POST could create a second silence.
    created = client.send_json("POST", "/api/v2/silences", body, idempotent=False)
    new_id = (created or {}).get("silenceID")
    result.update(changed=True, silence_id=new_id)
    if existing and existing["id"] != new_id:
        result["previous_id"] = existing["id"]
    return result


def absent(module, client, matchers):
    params = module.params
    if params["id"]:
        found = silence_by_id(client, params["id"])
        targets = [found] if found and is_live(found) else []
    else:
        targets = live_silences(client, matchers)
    result = {
        "matchers": [format_matcher(m) for m in matchers],
        "expired_ids": [s["id"] for s in targets],
        "silence_id": targets[0]["id"] if targets else None,
        "changed": bool(targets),
    }
    if module._diff:
        result["diff"] = {"before": [view(s) for s in targets], "after": []}
    if not module.check_mode:
        for silence in targets:
            try:
                client.request("DELETE", "/api/v2/silence/{}".format(silence["id"]))
            except HttpError as exc:
                if exc.status != 404:  # expired meanwhile
                    raise
    return result


def shows_result(client, result, state):
    """Whether this Alertmanager shows the module's result: the silence live with the same end
    (present), or none of the expired silences live any more (absent)."""
    if state == "present":
        found = silence_by_id(client, result["silence_id"])
        if found is None or not is_live(found):
            return False
        wanted = parse_rfc3339(result["silence"]["endsAt"])
        return abs(parse_rfc3339(found["endsAt"]) - wanted) <= END_TOLERANCE
    for silence_id in result.get("expired_ids") or []:
        found = silence_by_id(client, silence_id)
        if found is not None and is_live(found):
            return False
    return True


def verify_on_peers(module, result, state, clock=time.monotonic, sleep=time.sleep):
    """Wait until every verify_urls Alertmanager shows the result; returns {url: seconds}."""
    params = module.params
    own = params["url"].rstrip("/")
    urls = [u.rstrip("/") for u in params["verify_urls"] if u.rstrip("/") != own]
    if not urls or module.check_mode or (state == "present" and not result.get("silence_id")):
        return None
    options = dict(client_options(params), retries=0)
    clients = {url: HttpClient(url, **options) for url in urls}
    started = clock()
    deadline = started + params["verify_timeout"]
    verified, last_error = {}, {}
    while True:
        for url, client in clients.items():
            if url in verified:
                continue
            try:
                if shows_result(client, result, state):
                    verified[url] = round(clock() - started, 3)
            except HttpError as exc:
                last_error[url] = str(exc)
        if len(verified) == len(clients) or clock() >= deadline:
            break
        sleep(0.2)
    missing = [url for url in urls if url not in verified]
    if missing:
        raise ModuleFailure(
            "after {:g}s these Alertmanagers do not show the {}: {}".format(
                params["verify_timeout"],
                "silence " + str(result.get("silence_id")) if state == "present" else "expired silences",
                ", ".join(url + (f" ({last_error[url]})" if url in last_error else "") for url in missing),
            ),
            **dict(result, verified=verified),
        )
    return verified


def run(module, client):
    params = module.params
    matchers = [parse_matcher(m) for m in params["matchers"]]
    if not matchers and not params["id"]:
        raise ModuleFailure("set matchers (or id)")
    if matchers and all(m["isRegex"] and m["value"] in (".*", "") for m in matchers):
        raise ModuleFailure("refusing a silence whose matchers match every alert")
    result = (present if params["state"] == "present" else absent)(module, client, matchers)
    verified = verify_on_peers(module, result, params["state"])
    if verified is not None:
        result["verified"] = verified
    return result


def main():
    spec = http_argument_spec()
    spec.update(
        matchers={"type": "list", "elements": "raw", "default": []},
        id={"type": "str"},
        state={"type": "str", "choices": ["present", "absent"], "default": "present"},
        duration={"type": "str"},
        ends_at={"type": "str"},
        starts_at={"type": "str"},
        comment={"type": "str"},
        created_by={"type": "str", "default": "ansible"},
        verify_urls={"type": "list", "elements": "str", "default": []},
        verify_timeout={"type": "float", "default": 60.0},
    )
    module = AnsibleModule(
        argument_spec=spec, supports_check_mode=True, mutually_exclusive=[("duration", "ends_at")]
    )
    run_module(module, run, module, client_from_module(module))


if __name__ == "__main__":
    main()
