#!/usr/bin/python
"""Check that every panel of Grafana dashboards shows data, by running its queries against Prometheus."""

from __future__ import annotations

import math
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.autodealgenie.ops.plugins.module_utils.adg_grafana import (
    GrafanaError,
    builtin_variables,
    interpolate,
    iter_panels,
    load_dashboard,
    panel_targets,
    resolve_template_variables,
)
from ansible_collections.autodealgenie.ops.plugins.module_utils.adg_http import (
    ModuleFailure,
    client_from_module,
    http_argument_spec,
    run_module,
)
from ansible_collections.autodealgenie.ops.plugins.module_utils.adg_prometheus import (
    parse_duration,
    prometheus_data,
)

DOCUMENTATION = r"""
---
module: grafana_panel_data
short_description: Report Grafana dashboard panels whose Prometheus queries return no data
description:
  - For every panel target of the given dashboard models, resolves the template variables, substitutes
    Grafana's global variables (C($__rate_interval), C($__interval), C($__range), ...), runs the query
    against Prometheus and reports the panels that return no data.
  - A panel has data when at least one of its targets returns a series with at least one numeric
    (non-NaN) sample. Range targets are run as range queries over the last O(lookback); instant
    targets as instant queries.
  - Template variables are resolved in this order; O(variables), the variable's saved current value,
    then values discovered from Prometheus for C(label_values(...)) queries (All = every value).
  - Targets whose datasource is not Prometheus (or that are hidden) are skipped.
  - Read-only; runs the same in check mode. Dashboards are not read from Grafana, so this checks the
    dashboards as written (for example the role's JSON files) against the live Prometheus.
version_added: "1.0.0"
author: AutoDealGenie ops team
options:
  dashboards:
    description:
      - Dashboard models (dicts or JSON strings), for example C(lookup('ansible.builtin.file', f) |
        from_json).
    type: list
    elements: raw
    default: []
  paths:
    description: Paths of dashboard JSON files on the managed host.
    type: list
    elements: path
    default: []
  variables:
    description: Values for template variables, by name (a string or a list of values); these win over
      everything else.
    type: dict
    default: {}
  lookback:
    description: How far back range queries look, as a Prometheus duration.
    type: str
    default: 15m
  scrape_interval:
    description:
      - Scrape interval assumed for C($__rate_interval) (Grafana uses the datasource's C(timeInterval)),
        as a Prometheus duration.
    type: str
    default: 15s
  ignore_panels:
    description:
      - Panels allowed to be empty, as C(<dashboard uid>:<panel id>), C(<dashboard uid>:<panel title>) or a
        panel title.
    type: list
    elements: str
    default: []
  fail_on_no_data:
    description: Fail when a panel (not ignored) returns no data or its query errors.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for each HTTP attempt (also passed to Prometheus as the query timeout).
    type: float
    default: 10
extends_documentation_fragment:
  - autodealgenie.ops.adg_http
  - autodealgenie.ops.adg_http.prometheus
attributes:
  check_mode:
    support: full
    details: Read-only; behaves the same in check mode.
  diff_mode:
    support: none
notes:
  - Only C(label_values()) variable queries are resolved from Prometheus; other query variables need a
    saved current value or an entry in O(variables) (the result's RV(notes) lists them).
seealso:
  - module: autodealgenie.ops.grafana_dashboard
  - module: autodealgenie.ops.prometheus_verify
"""

EXAMPLES = r"""
- name: Every panel of the shipped dashboards shows data
  autodealgenie.ops.grafana_panel_data:
    url: "http://127.0.0.1:{{ prometheus_port }}"
    # read on the controller, checked from the monitoring host
    dashboards: "{{ query('ansible.builtin.file', *dashboard_files) | map('from_json') | list }}"
    scrape_interval: 15s
    ignore_panels:
      - "autodealgenie-business-metrics:Authentication Failures (per second)"
  vars:
    dashboard_files: "{{ query('ansible.builtin.fileglob', 'files/dashboards/*.json') }}"
"""

RETURN = r"""
ok:
  description: Whether every (not ignored) panel returned data.
  returned: always
  type: bool
panels:
  description: One entry per checked panel.
  returned: always
  type: list
  elements: dict
  contains:
    dashboard_uid: {description: Dashboard uid., type: str}
    dashboard_title: {description: Dashboard title., type: str}
    panel_id: {description: Panel id., type: int}
    panel_title: {description: Panel title., type: str}
    status: {description: "C(ok), C(no_data), C(error) or C(ignored) (empty but allowed).", type: str}
    targets:
      description: Per target the refId, the expression as written, the query as run, the number of series,
        and any error.
      type: list
      elements: dict
no_data:
  description: C(<dashboard uid> / <panel title>) of panels without data or with failing queries.
  returned: always
  type: list
  elements: str
  sample: ["autodealgenie-database-performance / Connection Pool Utilization"]
summary:
  description: Counts of panels per status.
  returned: always
  type: dict
  sample: {"ok": 20, "no_data": 1, "error": 0, "ignored": 0}
notes:
  description: Template variables that could not be resolved, and similar remarks.
  returned: always
  type: list
  elements: str
"""

MAX_POINTS = 120


def has_numbers(result, result_type):
    """True when a query result holds at least one numeric sample."""

    def numeric(text):
        try:
            return not math.isnan(float(text))
        except (TypeError, ValueError):
            return False

    if result_type == "matrix":
        return any(numeric(v[1]) for series in result for v in series.get("values") or [])
    if result_type == "vector":
        return any(numeric((series.get("value") or [None, None])[1]) for series in result)
    if result_type == "scalar":
        return numeric(result[1])
    return bool(result)


class PanelChecker:
    def __init__(self, client, params):
        self.client = client
        self.params = params
        self.lookback = parse_duration(params["lookback"])
        self.scrape = parse_duration(params["scrape_interval"])
        if not self.lookback or not self.scrape:
            raise ModuleFailure(
                "lookback and scrape_interval must be Prometheus durations such as 15m or 15s"
            )
        self.step = max(self.scrape, self.lookback / MAX_POINTS)
        self.now = time.time()
        self.timeout = f"{max(1, int(params['timeout']))}s"

    def label_values(self, label, match):
        # match[] None is left out of the query string
        params = {"match[]": match, "start": self.now - self.lookback, "end": self.now}
        return prometheus_data(self.client, f"/api/v1/label/{label}/values", params=params) or []

    def run_query(self, query, instant):
        form = {"query": query, "timeout": self.timeout}
        if instant:
            data = prometheus_data(self.client, "/api/v1/query", form=dict(form, time=self.now))
        else:
            window = {"start": self.now - self.lookback, "end": self.now, "step": self.step}
            data = prometheus_data(self.client, "/api/v1/query_range", form=dict(form, **window))
        result = data.get("result")
        count = len(result) if data.get("resultType") in ("matrix", "vector") else int(bool(result))
        return count, has_numbers(result, data.get("resultType"))

    def ignored(self, uid, panel):
        keys = {
            "{}:{}".format(uid, panel.get("id")),
            "{}:{}".format(uid, panel.get("title")),
            str(panel.get("title")),
        }
        return bool(keys & set(self.params["ignore_panels"]))

    def check_dashboard(self, model, notes):
        uid, title = model.get("uid"), model.get("title")
        builtins = builtin_variables(self.lookback, self.step, self.scrape)
        variables, unresolved = resolve_template_variables(
            model, self.params["variables"], self.label_values, builtins
        )
        notes.extend(f"{uid}: variable {note}" for note in unresolved)
        for panel in iter_panels(model):
            targets = list(panel_targets(panel))
            if not targets:
                continue
            rows, data, failed = [], False, False
            for ref_id, expr, instant in targets:
                query = interpolate(expr, variables)
                row = {"ref_id": ref_id, "expr": expr, "query": query, "instant": instant}
                try:
                    row["series"], numbers = self.run_query(query, instant)
                    data = data or numbers
                except ModuleFailure as exc:
                    row.update(series=0, error=str(exc))
                    failed = True
                rows.append(row)
            status = "ok" if data and not failed else ("error" if failed else "no_data")
            if status != "ok" and self.ignored(uid, panel):
                status = "ignored"
            yield {
                "dashboard_uid": uid,
                "dashboard_title": title,
                "panel_id": panel.get("id"),
                "panel_title": panel.get("title"),
                "status": status,
                "targets": rows,
            }


def run(module, client):
    params = module.params
    models = [load_dashboard(d) for d in params["dashboards"]]
    models += [load_dashboard(path=p) for p in params["paths"]]
    if not models:
        raise GrafanaError("no dashboards given: set dashboards and/or paths")
    checker = PanelChecker(client, params)
    panels, notes = [], []
    for model in models:
        panels.extend(checker.check_dashboard(model, notes))
    summary = {s: sum(1 for p in panels if p["status"] == s) for s in ("ok", "no_data", "error", "ignored")}
    bad = [p for p in panels if p["status"] in ("no_data", "error")]
    no_data = ["{} / {}".format(p["dashboard_uid"], p["panel_title"]) for p in bad]
    result = {
        "changed": False,
        "ok": not bad,
        "panels": panels,
        "no_data": no_data,
        "summary": summary,
        "notes": notes,
    }
    if bad and params["fail_on_no_data"]:
        lines = []
        for panel in bad:
            first = panel["targets"][0]
            why = next(
                (t["error"] for t in panel["targets"] if t.get("error")), None
            ) or "no data: {}".format(first["query"])
            lines.append(
                "{} / {} (panel {}): {}".format(
                    panel["dashboard_uid"], panel["panel_title"], panel["panel_id"], why
                )
            )
        module.fail_json(
            msg=f"{len(bad)} of {len(panels)} panel(s) show no data:\n- " + "\n- ".join(lines),
            **result,
        )
    return result


def main():
    spec = http_argument_spec()
    spec.update(
        dashboards={"type": "list", "elements": "raw", "default": []},
        paths={"type": "list", "elements": "path", "default": []},
        variables={"type": "dict", "default": {}},
        lookback={"type": "str", "default": "15m"},
        scrape_interval={"type": "str", "default": "15s"},
        ignore_panels={"type": "list", "elements": "str", "default": []},
        fail_on_no_data={"type": "bool", "default": True},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    run_module(module, run, module, client_from_module(module))


if __name__ == "__main__":
    main()
