#!/usr/bin/python
"""Prove that an alert reaches a named Alertmanager receiver, end to end."""

from __future__ import annotations

import datetime
import uuid

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.autodealgenie.ops.plugins.module_utils.adg_http import (
    HttpClient,
    HttpError,
    ModuleFailure,
    client_from_module,
    http_argument_spec,
    run_module,
)
from ansible_collections.autodealgenie.ops.plugins.module_utils.adg_prometheus import (
    rfc3339,
    utcnow,
    wait_until,
)

DOCUMENTATION = r"""
---
module: alertmanager_delivery_check
short_description: Send a uniquely labelled test alert and confirm it reached the named receiver
description:
  - Posts a synthetic alert with a unique C(adg_delivery_check) label (plus the routing labels you give),
    waits until it is confirmed at the named O(receiver), then resolves it.
  - Confirmation comes from Alertmanager's own view (the alert's C(receivers) and the alert group's
    receiver), and, when O(sink_url) is given, from a webhook sink that records what it received, which
    proves the notification was actually delivered.
  - Checks first that the receiver exists in Alertmanager's configuration.
  - In check mode only the receiver's existence is checked; no alert is sent.
version_added: "1.0.0"
author: AutoDealGenie ops team
options:
  receiver:
    description: Name of the receiver the alert must reach.
    type: str
    required: true
  labels:
    description: Labels that route the alert, for example C(severity=critical). C(alertname) defaults to
      O(alertname).
    type: dict
    default: {}
  alertname:
    description: Alert name of the synthetic alert.
    type: str
    default: AdgDeliveryCheck
  annotations:
    description: Annotations of the synthetic alert.
    type: dict
    default: {summary: "Delivery check sent by Ansible; resolves by itself"}
  sink_url:
    description:
      - URL of a webhook sink that returns what it has received, as JSON. Accepted shapes are a list of
        Alertmanager webhook payloads, or an object whose C(notifications) list holds items with the webhook
        payload under C(payload)
        (the format of the project's test sink).
      - When set, the check passes only once a notification carrying the test alert arrived with
        C(receiver) equal to O(receiver).
    type: str
  wait_timeout:
    description: Seconds to wait for the confirmation (cover the route's C(group_wait)).
    type: int
    default: 90
  poll_interval:
    description: Seconds between polls.
    type: float
    default: 2
  resolve:
    description: Resolve the test alert afterwards (also done when the check fails).
    type: bool
    default: true
extends_documentation_fragment:
  - autodealgenie.ops.adg_http
  - autodealgenie.ops.adg_http.alertmanager
attributes:
  check_mode:
    support: partial
    details: Only checks that the receiver exists; sends nothing.
  diff_mode:
    support: none
notes:
  - The test alert may also reach other receivers the route tree sends it to (for example with C(continue)).
"""

EXAMPLES = r"""
- name: A critical alert reaches the critical-alerts receiver
  autodealgenie.ops.alertmanager_delivery_check:
    url: "http://127.0.0.1:{{ alertmanager_port }}"
    receiver: critical-alerts
    labels:
      severity: critical
      component: backend
  changed_when: false

- name: Same, and prove delivery through the test webhook sink
  autodealgenie.ops.alertmanager_delivery_check:
    url: http://127.0.0.1:9093
    receiver: critical-alerts
    labels: {severity: critical}
    sink_url: http://127.0.0.1:9199/notifications
"""

RETURN = r"""
check_id:
  description: Value of the unique C(adg_delivery_check) label of the test alert.
  returned: always
  type: str
  sample: 5f2c0a1b9e4d
labels:
  description: Full label set of the test alert.
  returned: always
  type: dict
receivers:
  description: Receivers Alertmanager routed the test alert to.
  returned: unless in check mode
  type: list
  elements: str
  sample: [critical-alerts]
routed:
  description: Whether Alertmanager routed the alert to O(receiver).
  returned: unless in check mode
  type: bool
delivered:
  description: Whether the webhook sink received a notification for the alert from O(receiver) (null without
    O(sink_url)).
  returned: unless in check mode
  type: bool
confirmed_by:
  description: C(webhook) when the sink confirmed delivery, C(alertmanager) when Alertmanager's view
    confirmed routing.
  returned: on success, unless in check mode
  type: str
resolved:
  description: Whether the test alert was resolved afterwards.
  returned: unless in check mode
  type: bool
known_receivers:
  description: Receivers configured in Alertmanager.
  returned: always
  type: list
  elements: str
elapsed:
  description: Seconds until confirmation (or until giving up).
  returned: unless in check mode
  type: float
"""

CHECK_LABEL = "adg_delivery_check"


def sink_payloads(data):
    """Alertmanager webhook payloads out of the sink's JSON."""
    items = data.get("notifications", []) if isinstance(data, dict) else (data or [])
    for item in items:
        payload = item.get("payload", item) if isinstance(item, dict) else None
        if isinstance(payload, dict):
            yield payload


def delivered_by_sink(sink, check_id, receiver):
    """(delivered to receiver, receivers that delivered the alert) according to the sink."""
    seen = set()
    for payload in sink_payloads(sink.get_json(sink.base_url)):
        if any((a.get("labels") or {}).get(CHECK_LABEL) == check_id for a in payload.get("alerts") or []):
            seen.add(payload.get("receiver"))
    return receiver in seen, sorted(r for r in seen if r)


def routed_receivers(client, check_id):
    """Receivers of the test alert, from the alert itself and from its alert groups."""
    only_ours = {"filter": f'{CHECK_LABEL}="{check_id}"'}
    alerts = client.get_json("/api/v2/alerts", params=only_ours) or []
    names = {r.get("name") for a in alerts for r in a.get("receivers") or []}
    groups = client.get_json("/api/v2/alerts/groups", params=only_ours) or []
    names |= {(g.get("receiver") or {}).get("name") for g in groups if g.get("alerts")}
    return sorted(n for n in names if n)


def run(module, client):
    params = module.params
    check_id = uuid.uuid4().hex[:12]
    labels = {"alertname": params["alertname"]}
    labels.update({str(k): str(v) for k, v in params["labels"].items()})
    labels[CHECK_LABEL] = check_id
    known = sorted(r.get("name") for r in client.get_json("/api/v2/receivers") or [])
    result = {"changed": False, "check_id": check_id, "labels": labels, "known_receivers": known}
    if params["receiver"] not in known:
        raise ModuleFailure(
            "receiver {} is not configured in Alertmanager (known: {})".format(
                params["receiver"], ", ".join(known) or "none"
            ),
            **result,
        )
    if module.check_mode:
        return result
    sink = None
    if params["sink_url"]:
        # Another server: Alertmanager's credentials, client certificate and socket are not for it.
        shared = (
            "timeout",
            "retries",
            "max_redirects",
            "use_proxy",
            "use_netrc",
            "validate_certs",
            "ca_path",
        )
        sink_options = {k: params[k] for k in shared}
        sink = HttpClient(params["sink_url"], http_agent=params["http_agent"], **sink_options)
    start = utcnow()
    alert = {
        "labels": labels,
        "annotations": {str(k): str(v) for k, v in params["annotations"].items()},
        "startsAt": rfc3339(start),
        "endsAt": rfc3339(start + datetime.timedelta(seconds=params["wait_timeout"] + 300)),
        "generatorURL": f"ansible://alertmanager_delivery_check/{check_id}",
    }
    client.send_json("POST", "/api/v2/alerts", [alert], idempotent=True)  # re-posting an alert is harmless
    result["changed"] = True
    state = {"routed": False, "receivers": [], "delivered": None, "sink_receivers": []}

    def confirmed():
        state["receivers"] = routed_receivers(client, check_id)
        state["routed"] = params["receiver"] in state["receivers"]
        if sink is not None:
            try:
                state["delivered"], state["sink_receivers"] = delivered_by_sink(
                    sink, check_id, params["receiver"]
                )
            except HttpError as exc:
                state["sink_error"] = str(exc)
            return bool(state["delivered"]), None
        return state["routed"], None

    try:
        done, _, elapsed = wait_until(confirmed, params["wait_timeout"], params["poll_interval"])
    finally:
        resolved = False
        if params["resolve"]:
            alert["endsAt"] = rfc3339(utcnow())
            client.send_json("POST", "/api/v2/alerts", [alert], idempotent=True)
            resolved = True
    result.update(
        receivers=state["receivers"],
        routed=state["routed"],
        delivered=state["delivered"],
        resolved=resolved,
        elapsed=elapsed,
    )
    if done:
        result["confirmed_by"] = "webhook" if sink is not None else "alertmanager"
        return result
    if not state["routed"]:
        why = "Alertmanager routed it to: %s" % (", ".join(state["receivers"]) or "nothing (alert not found)")
    else:
        why = "Alertmanager routed it there, but the sink at {} recorded it from: {}{}".format(
            params["sink_url"],
            ", ".join(state["sink_receivers"]) or "no receiver",
            " ({})".format(state["sink_error"]) if state.get("sink_error") else "",
        )
    raise ModuleFailure(
        "test alert {}={} did not reach receiver {} within {}s; {}".format(
            CHECK_LABEL, check_id, params["receiver"], elapsed, why
        ),
        **result,
    )


def main():
    spec = http_argument_spec()
    spec.update(
        receiver={"type": "str", "required": True},
        labels={"type": "dict", "default": {}},
        alertname={"type": "str", "default": "AdgDeliveryCheck"},
        annotations={
            "type": "dict",
            "default": {"summary": "Delivery check sent by Ansible; resolves by itself"},
        },
        sink_url={"type": "str"},
        wait_timeout={"type": "int", "default": 90},
        poll_interval={"type": "float", "default": 2.0},
        resolve={"type": "bool", "default": True},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    run_module(module, run, module, client_from_module(module))


if __name__ == "__main__":
    main()
