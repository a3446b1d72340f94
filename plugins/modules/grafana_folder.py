#!/usr/bin/python
"""Manage a Grafana folder by uid."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.autodealgenie.ops.plugins.module_utils.adg_grafana import (
    GrafanaError,
    check_uid,
    ensure_folder,
    folder_dashboards,
    get_folder,
    grafana_argument_spec,
    grafana_client,
)
from ansible_collections.autodealgenie.ops.plugins.module_utils.adg_http import run_module

DOCUMENTATION = r"""
---
module: grafana_folder
short_description: Manage a Grafana folder by uid
description:
  - Creates a Grafana folder with a pinned uid, renames it when the title differs, or deletes it.
  - Looks the folder up by uid (never by title), uses the stored version on rename so a concurrent
    edit is detected, and treats a 409 on create as a race (re-reads instead of failing).
  - Deleting a folder also deletes the dashboards in it, so O(state=absent) refuses a non-empty folder
    unless O(force=true).
  - Use it by its FQCN C(autodealgenie.ops.grafana_folder); community.grafana has an unrelated module
    with the same short name.
version_added: "1.0.0"
author: AutoDealGenie ops team
options:
  uid:
    description: Folder uid, 1-40 characters from C([a-zA-Z0-9-_]).
    type: str
    required: true
  title:
    description:
      - Folder title. Required to create the folder with a title other than its uid.
      - When omitted, an existing folder keeps its title.
    type: str
  state:
    description: Whether the folder should exist.
    type: str
    choices: [present, absent]
    default: present
  force:
    description: With O(state=absent), delete the folder even when it holds dashboards (they are deleted too).
    type: bool
    default: false
extends_documentation_fragment:
  - autodealgenie.ops.adg_http
  - autodealgenie.ops.adg_http.grafana
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: Ensure the AutoDealGenie folder exists
  autodealgenie.ops.grafana_folder:
    url: "{{ grafana_url }}"
    url_username: "{{ grafana_admin_user }}"
    url_password: "{{ grafana_admin_password }}"
    uid: autodealgenie
    title: AutoDealGenie

- name: Remove a folder that must be empty
  autodealgenie.ops.grafana_folder:
    url: "{{ grafana_url }}"
    token: "{{ grafana_token }}"
    uid: scratch
    state: absent
"""

RETURN = r"""
uid:
  description: Folder uid.
  returned: always
  type: str
  sample: autodealgenie
id:
  description: Numeric folder id (null in check mode before creation, and after deletion).
  returned: always
  type: int
  sample: 12
title:
  description: Folder title.
  returned: when the folder exists (or would exist in check mode)
  type: str
  sample: AutoDealGenie
url:
  description: Folder path in the Grafana UI.
  returned: when the folder exists
  type: str
  sample: /dashboards/f/autodealgenie/autodealgenie
version:
  description: Folder version after the change.
  returned: when the folder exists
  type: int
  sample: 2
deleted_dashboards:
  description: Uids of dashboards deleted together with the folder.
  returned: when O(state=absent)
  type: list
  elements: str
  sample: []
"""


def folder_result(folder):
    return {k: folder.get(k) for k in ("uid", "id", "title", "url", "version")}


def run(module, client):
    uid = module.params["uid"]
    check_uid(uid, "folder")
    if module.params["state"] == "present":
        folder, changed, before = ensure_folder(client, uid, module.params["title"], module.check_mode)
        result = dict(folder_result(folder), changed=changed)
        if module._diff:
            result["diff"] = {
                "before": {"title": before["title"]} if before else {},
                "after": {"title": folder["title"]},
            }
        return result
    folder = get_folder(client, uid)
    if folder is None:
        return {"changed": False, "uid": uid, "id": None, "deleted_dashboards": []}
    inside = [d["uid"] for d in folder_dashboards(client, uid)]
    if inside and not module.params["force"]:
        raise GrafanaError(
            f"folder {uid} holds {len(inside)} dashboard(s) ({', '.join(inside)}); deleting it would "
            "delete them too. Set force=true to do that."
        )
    if not module.check_mode:
        client.request("DELETE", f"/api/folders/{uid}")
    result = {"changed": True, "uid": uid, "id": None, "deleted_dashboards": inside}
    if module._diff:
        result["diff"] = {"before": {"title": folder["title"], "dashboards": inside}, "after": {}}
    return result


def main():
    spec = grafana_argument_spec()
    spec.update(
        uid={"type": "str", "required": True},
        title={"type": "str"},
        state={"type": "str", "choices": ["present", "absent"], "default": "present"},
        force={"type": "bool", "default": False},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    run_module(module, run, module, grafana_client(module))


if __name__ == "__main__":
    main()
