#!/usr/bin/python
"""Push a Grafana dashboard idempotently."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.autodealgenie.ops.plugins.module_utils.adg_grafana import (
    GrafanaError,
    canonical_json,
    check_uid,
    create_folder,
    get_folder,
    grafana_argument_spec,
    grafana_client,
    load_dashboard,
    normalise_dashboard,
)
from ansible_collections.autodealgenie.ops.plugins.module_utils.adg_http import (
    HttpError,
    get_or_none,
    run_module,
)

DOCUMENTATION = r"""
---
module: grafana_dashboard
short_description: Push a Grafana dashboard idempotently, by uid, into a folder
description:
  - Pushes a dashboard model (from a JSON file or a dict) into a Grafana folder identified by uid,
    or deletes it.
  - Idempotent. The stored model and the desired one are compared after normalisation (server-set
    fields such as C(id), C(version) and C(iteration) are ignored) together with the folder, and the
    module reports C(changed) only on a real difference.
  - Updates send the stored version (optimistic locking) and always send C(folderUid), so a re-run
    never hits HTTP 412 and a dashboard never drifts to the General folder. If someone saves the
    dashboard between our read and our write, the module re-reads once and retries; set
    O(overwrite=true) to replace deliberately regardless of the stored version.
  - A dashboard must have a pinned uid (Grafana 11.3+ would otherwise create a duplicate on every run).
  - Provisioned (file-managed) dashboards are reported, not overwritten.
  - Use it by its FQCN C(autodealgenie.ops.grafana_dashboard); community.grafana has an unrelated module
    with the same short name.
version_added: "1.0.0"
author: AutoDealGenie ops team
options:
  dashboard:
    description:
      - Dashboard model as a dict or a JSON string. An export wrapper (the model under a C(dashboard) key,
        next to C(meta)) is unwrapped.
      - Mutually exclusive with O(path).
    type: raw
  path:
    description:
      - Path of a dashboard JSON file B(on the managed host). Mutually exclusive with O(dashboard).
      - To push a file from the controller, use O(dashboard) with C(lookup('ansible.builtin.file', ...) |
        from_json).
    type: path
  uid:
    description:
      - Dashboard uid. Defaults to the C(uid) in the model; when both are given, this one wins and is
        written into the model.
      - Required with O(state=absent) unless a model is given.
    type: str
  folder_uid:
    description:
      - Uid of the folder to hold the dashboard. Empty or omitted means the General folder.
      - Always sent, so an update never moves the dashboard out of its folder.
    type: str
    default: ""
  create_folder:
    description: Create the folder (O(folder_uid), titled O(folder_title)) when it does not exist, instead
      of failing.
    type: bool
    default: false
  folder_title:
    description: Title for a folder created by O(create_folder). Defaults to O(folder_uid). An existing
      folder is not renamed.
    type: str
  state:
    description: Whether the dashboard should exist.
    type: str
    choices: [present, absent]
    default: present
  overwrite:
    description:
      - Save even if the dashboard was changed by someone else since it was read (Grafana's C(overwrite)).
      - Without it, a concurrent edit is re-read once and otherwise reported as a failure.
    type: bool
    default: false
  message:
    description: Version-history note stored with the change (at most 500 characters).
    type: str
    default: Updated by Ansible
  ignored_keys:
    description: Extra top-level model keys to ignore when comparing (in addition to id, version and
      iteration).
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - autodealgenie.ops.adg_http
  - autodealgenie.ops.adg_http.grafana
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff shows the normalised model and folder, before and after.
seealso:
  - module: autodealgenie.ops.grafana_folder
  - module: autodealgenie.ops.grafana_panel_data
"""

EXAMPLES = r"""
- name: Push every dashboard of the role into the AutoDealGenie folder
  autodealgenie.ops.grafana_dashboard:
    url: "{{ grafana_url }}"
    url_username: "{{ grafana_admin_user }}"
    url_password: "{{ grafana_admin_password }}"
    dashboard: "{{ lookup('ansible.builtin.file', item) | from_json }}"
    folder_uid: autodealgenie
    folder_title: AutoDealGenie
    create_folder: true
    message: "ansible: {{ item | basename }}"
  loop: "{{ query('ansible.builtin.fileglob', 'files/dashboards/*.json') }}"

- name: Push a dashboard file already present on the Grafana host
  autodealgenie.ops.grafana_dashboard:
    url: http://127.0.0.1:3000
    token: "{{ grafana_token }}"
    path: /var/lib/adg/dashboards/system-overview.json

- name: Remove a retired dashboard
  autodealgenie.ops.grafana_dashboard:
    url: "{{ grafana_url }}"
    token: "{{ grafana_token }}"
    uid: autodealgenie-legacy
    state: absent
"""

RETURN = r"""
uid:
  description: Dashboard uid.
  returned: always
  type: str
  sample: autodealgenie-system-overview
url:
  description: Dashboard path in the Grafana UI, as Grafana returns it (relative to O(url)).
  returned: when the dashboard exists (or would be created in check mode, then null)
  type: str
  sample: /d/autodealgenie-system-overview/autodealgenie-system-overview
version:
  description: Stored dashboard version after the run (unchanged when nothing changed; null in check mode
    before creation).
  returned: when the dashboard exists
  type: int
  sample: 4
id:
  description: Numeric dashboard id.
  returned: when the dashboard exists
  type: int
  sample: 17
folder_uid:
  description: Uid of the folder holding the dashboard (empty for General).
  returned: always
  type: str
  sample: autodealgenie
folder_created:
  description: Whether the folder was (or would be) created by this run.
  returned: when O(state=present)
  type: bool
  sample: false
previous_version:
  description: Stored version before the run (null when the dashboard did not exist).
  returned: always
  type: int
  sample: 3
"""


def current_state(client, uid, ignored):
    """(stored response or None, comparable view or None)."""
    stored = get_or_none(client, f"/api/dashboards/uid/{uid}")
    if stored is None:
        return None, None
    meta = stored.get("meta") or {}
    if meta.get("provisioned"):
        raise GrafanaError(
            f"dashboard {uid} is provisioned from a file on the Grafana server; Grafana refuses to "
            "save or delete it through the API. Change the provisioning file instead."
        )
    view = {
        "folderUid": meta.get("folderUid") or "",
        "dashboard": normalise_dashboard(stored["dashboard"], ignored),
    }
    return stored, view


def stored_fields(stored):
    """url, version and id of the stored dashboard (all None when there is none)."""
    if stored is None:
        return {"url": None, "version": None, "id": None}
    return {
        "url": stored["meta"].get("url"),
        "version": stored["dashboard"].get("version"),
        "id": stored["dashboard"].get("id"),
    }


def diff_of(before, after, uid):
    return {
        "before": canonical_json(before) if before else "",
        "after": canonical_json(after) if after else "",
        "before_header": f"grafana dashboard {uid} (stored)",
        "after_header": f"grafana dashboard {uid} (desired)",
    }


def save(client, model, stored, folder_uid, params):
    body = {
        "dashboard": dict(
            model,
            id=stored["dashboard"].get("id") if stored else None,
            version=stored["dashboard"].get("version") if stored else None,
        ),
        "folderUid": folder_uid,
        "message": params["message"],
        "overwrite": params["overwrite"],
    }
    # Safe to retry: a repeated save is caught by the version check (412) and re-read.
    return client.send_json("POST", "/api/dashboards/db", body, idempotent=True)


def present(module, client):
    params = module.params
    if params["dashboard"] is None and params["path"] is None:
        raise GrafanaError("state=present needs a dashboard model: set dashboard or path")
    model = load_dashboard(params["dashboard"], params["path"])
    uid = params["uid"] or model.get("uid")
    if not uid:
        raise GrafanaError(
            "the dashboard has no uid: pin one in the model or set uid (without it Grafana "
            "creates a new copy on every run)"
        )
    check_uid(uid, "dashboard")
    model["uid"] = uid
    if not str(model.get("title") or "").strip():
        raise GrafanaError(f"dashboard {uid} has no title")
    if len(params["message"]) > 500:
        raise GrafanaError(
            f"message is {len(params['message'])} characters long; Grafana accepts at most 500"
        )
    folder_uid = params["folder_uid"] or ""
    folder_created = False
    if folder_uid and get_folder(client, folder_uid) is None:
        if not params["create_folder"]:
            raise GrafanaError(
                f"folder {folder_uid} does not exist: create it first (grafana_folder) "
                "or set create_folder: true"
            )
        _, folder_created = create_folder(
            client, folder_uid, params["folder_title"] or folder_uid, module.check_mode
        )
    ignored = params["ignored_keys"]
    desired = {"folderUid": folder_uid, "dashboard": normalise_dashboard(model, ignored)}
    stored, before = current_state(client, uid, ignored)
    result = {
        "uid": uid,
        "folder_uid": folder_uid,
        "folder_created": folder_created,
        "previous_version": stored["dashboard"].get("version") if stored else None,
    }
    if module._diff:
        result["diff"] = diff_of(before, desired, uid)
    if before == desired:
        return dict(result, changed=folder_created, **stored_fields(stored))
    if module.check_mode:
        return dict(result, changed=True, **stored_fields(stored))
    try:
        saved = save(client, model, stored, folder_uid, params)
    except HttpError as exc:
        if exc.status == 412 and exc.api_status == "name-exists":
            raise GrafanaError(
                "cannot save dashboard {}: another dashboard titled {!r} already exists in folder {!r} "
                "(Grafana <= 11.2 requires unique titles per folder)".format(
                    uid, model.get("title"), folder_uid or "General"
                ),
                **exc.as_result(),
            ) from None
        if exc.status != 412 or exc.api_status != "version-mismatch":
            raise
        # Someone saved between our read and our write: re-read once, then save on top of their version.
        stored, before = current_state(client, uid, ignored)
        if before == desired:
            return dict(result, changed=folder_created, **stored_fields(stored))
        try:
            saved = save(client, model, stored, folder_uid, params)
        except HttpError as again:
            if again.status == 412:
                raise GrafanaError(
                    f"dashboard {uid} keeps changing under us (HTTP 412 twice); retry later or set "
                    "overwrite: true",
                    **again.as_result(),
                ) from None
            raise
    return dict(result, changed=True, url=saved.get("url"), version=saved.get("version"), id=saved.get("id"))


def absent(module, client):
    params = module.params
    uid = params["uid"]
    if not uid and (params["dashboard"] is not None or params["path"] is not None):
        uid = load_dashboard(params["dashboard"], params["path"]).get("uid")
    if not uid:
        raise GrafanaError("state=absent needs uid (or a model that has one)")
    check_uid(uid, "dashboard")
    stored, before = current_state(client, uid, params["ignored_keys"])
    result = {
        "uid": uid,
        "folder_uid": before["folderUid"] if before else "",
        "url": None,
        "version": None,
        "id": None,
        "previous_version": stored["dashboard"].get("version") if stored else None,
    }
    if stored is None:
        return dict(result, changed=False)
    if module._diff:
        result["diff"] = diff_of(before, None, uid)
    if not module.check_mode:
        client.request("DELETE", f"/api/dashboards/uid/{uid}")
    return dict(result, changed=True)


def main():
    spec = grafana_argument_spec()
    spec.update(
        dashboard={"type": "raw"},
        path={"type": "path"},
        uid={"type": "str"},
        folder_uid={"type": "str", "default": ""},
        create_folder={"type": "bool", "default": False},
        folder_title={"type": "str"},
        state={"type": "str", "choices": ["present", "absent"], "default": "present"},
        overwrite={"type": "bool", "default": False},
        message={"type": "str", "default": "Updated by Ansible"},
        ignored_keys={"type": "list", "elements": "str", "default": []},
    )
    module = AnsibleModule(
        argument_spec=spec, supports_check_mode=True, mutually_exclusive=[("dashboard", "path")]
    )
    client = grafana_client(module)
    run_module(module, present if module.params["state"] == "present" else absent, module, client)


if __name__ == "__main__":
    main()
