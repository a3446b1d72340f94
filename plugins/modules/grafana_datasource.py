#!/usr/bin/python
"""Manage a Grafana datasource by uid."""

from __future__ import annotations

import urllib.parse

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.autodealgenie.ops.plugins.module_utils.adg_grafana import (
    GrafanaError,
    check_uid,
    grafana_argument_spec,
    grafana_client,
)
from ansible_collections.autodealgenie.ops.plugins.module_utils.adg_http import (
    HttpError,
    get_or_none,
    run_module,
)

DOCUMENTATION = r"""
---
module: grafana_datasource
short_description: Manage a Grafana datasource by uid
description:
  - Creates, updates or deletes a Grafana datasource identified by a pinned uid (so dashboards can
    reference it by C(type) and C(uid)).
  - Idempotent. Compares name, type, access, url, user, database, basicAuth, basicAuthUser,
    withCredentials, isDefault and the O(json_data) keys you set (keys the server adds are kept);
    an update sends the complete object, because Grafana's PUT replaces it.
  - Secrets in O(secure_json_data) are write-only in Grafana and B(cannot be compared). They are sent
    when the datasource is created, when a key is not yet set on the server, and on every run with
    O(update_secrets=true) (which then always reports C(changed)). The result says so in
    RV(secrets_compared) and RV(secrets_note).
  - A provisioned (read-only) datasource that would need a change is reported clearly, instead of
    Grafana's raw HTTP 403.
  - Use it by its FQCN C(autodealgenie.ops.grafana_datasource); community.grafana has an unrelated module
    with the same short name.
version_added: "1.0.0"
author: AutoDealGenie ops team
options:
  uid:
    description: Datasource uid, 1-40 characters from C([a-zA-Z0-9-_]).
    type: str
    required: true
  name:
    description: Datasource name (unique per organisation). Required with O(state=present).
    type: str
  type:
    description: Plugin id, for example C(prometheus). Required with O(state=present).
    type: str
  access:
    description: C(proxy) (server side) or C(direct) (browser).
    type: str
    choices: [proxy, direct]
    default: proxy
  datasource_url:
    description: URL Grafana uses to reach the datasource, for example C(http://10.0.0.5:9090).
    type: str
    default: ""
  user:
    description: Datasource user (for datasources that take one).
    type: str
    default: ""
  database:
    description: Database name (for datasources that take one).
    type: str
    default: ""
  basic_auth:
    description: Use basic auth towards the datasource (the password goes in
      O(secure_json_data.basicAuthPassword)).
    type: bool
    default: false
  basic_auth_user:
    description: Basic-auth user towards the datasource.
    type: str
    default: ""
  with_credentials:
    description: Send browser credentials (cookies) with cross-site requests.
    type: bool
    default: false
  is_default:
    description: Make this the organisation's default datasource (Grafana clears the flag on the others).
    type: bool
    default: false
  json_data:
    description: Plugin settings. Only the keys given here are compared; other stored keys are kept.
    type: dict
    default: {}
  secure_json_data:
    description: Write-only secrets such as C(password) or C(basicAuthPassword). See the description for
      when they are sent.
    type: dict
  update_secrets:
    description: Re-send every O(secure_json_data) value on this run even though it cannot be compared.
    type: bool
    default: false
  state:
    description: Whether the datasource should exist.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - autodealgenie.ops.adg_http
  - autodealgenie.ops.adg_http.grafana
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Secret values never appear in the diff; only the names of secret keys do.
"""

EXAMPLES = r"""
- name: Prometheus datasource with a pinned uid
  autodealgenie.ops.grafana_datasource:
    url: "{{ grafana_url }}"
    url_username: "{{ grafana_admin_user }}"
    url_password: "{{ grafana_admin_password }}"
    uid: prometheus
    name: Prometheus
    type: prometheus
    datasource_url: "http://{{ adg_private_address }}:{{ prometheus_port }}"
    is_default: true
    json_data:
      timeInterval: 15s
      httpMethod: POST
  no_log: true

- name: Datasource with a password, rotated on demand
  autodealgenie.ops.grafana_datasource:
    url: "{{ grafana_url }}"
    token: "{{ grafana_token }}"
    uid: postgres
    name: PostgreSQL
    type: grafana-postgresql-datasource
    datasource_url: db1:5432
    user: grafana_reader
    json_data:
      database: autodealgenie
      sslmode: disable
    secure_json_data:
      password: "{{ grafana_reader_password }}"
    update_secrets: "{{ rotate_secrets | default(false) }}"
  no_log: true
"""

RETURN = r"""
uid:
  description: Datasource uid.
  returned: always
  type: str
  sample: prometheus
id:
  description: Numeric datasource id (null when absent or not yet created in check mode).
  returned: always
  type: int
  sample: 3
name:
  description: Datasource name.
  returned: when the datasource exists
  type: str
  sample: Prometheus
version:
  description: Stored datasource version after the run.
  returned: when the datasource exists
  type: int
  sample: 2
read_only:
  description: Whether the datasource is provisioned (read-only through the API).
  returned: when the datasource exists
  type: bool
  sample: false
differences:
  description: Names of the compared fields that differed (C(jsonData.<key>) for plugin settings).
  returned: always
  type: list
  elements: str
  sample: [url, jsonData.timeInterval]
secrets_compared:
  description: Always false; secret values are write-only in Grafana and cannot be compared.
  returned: when O(secure_json_data) is set
  type: bool
  sample: false
secrets_sent:
  description: Names of the secret keys sent on this run.
  returned: always
  type: list
  elements: str
  sample: [password]
secrets_note:
  description: Explanation of how secrets were handled on this run.
  returned: when O(secure_json_data) is set
  type: str
secure_json_fields:
  description: Names of the secret keys stored on the server.
  returned: when the datasource exists
  type: list
  elements: str
  sample: [password]
"""

# module option -> Grafana field, for the fields compared and sent whole
FIELDS = (
    ("name", "name"),
    ("type", "type"),
    ("access", "access"),
    ("datasource_url", "url"),
    ("user", "user"),
    ("database", "database"),
    ("basic_auth", "basicAuth"),
    ("basic_auth_user", "basicAuthUser"),
    ("with_credentials", "withCredentials"),
    ("is_default", "isDefault"),
)


def desired_fields(params):
    return {field: params[option] for option, field in FIELDS}


def comparable(stored, json_keys):
    view = {field: stored.get(field) for _, field in FIELDS}
    for field in ("url", "user", "database", "basicAuthUser"):
        view[field] = view[field] or ""
    view["jsonData"] = {k: (stored.get("jsonData") or {}).get(k) for k in json_keys}
    return view


def read_only_failure(uid, name, what):
    return GrafanaError(
        f"datasource {uid} ({name}) is provisioned and read-only in Grafana; "
        f"it cannot be {what} through the API. "
        "Change its provisioning file (or set editable: true there) instead.",
        read_only=True,
    )


def secrets_note(params, sent, created=False):
    if not params["secure_json_data"]:
        return {}
    if created:
        how = "sent with the new datasource"
    elif params["update_secrets"]:
        how = "re-sent on request (update_secrets=true), so the run reports changed"
    elif sent:
        how = "sent for key(s) not yet stored ({}); stored keys were left as they are".format(", ".join(sent))
    else:
        how = "not sent: every key is already stored; set update_secrets=true to rotate them"
    return {
        "secrets_compared": False,
        "secrets_note": "secureJsonData values are write-only in Grafana and cannot be compared; " + how,
    }


def present(module, client):
    params = module.params
    uid = params["uid"]
    check_uid(uid, "datasource")
    for required in ("name", "type"):
        if not params[required]:
            raise GrafanaError(f"state=present requires {required}")
    secrets = params["secure_json_data"] or {}
    json_data = params["json_data"] or {}
    desired = dict(desired_fields(params), jsonData=json_data)
    stored = get_or_none(client, f"/api/datasources/uid/{uid}")
    result = {"uid": uid, "differences": [], "secrets_sent": []}
    if stored is None:
        clash = get_or_none(
            client, "/api/datasources/name/{}".format(urllib.parse.quote(params["name"], safe=""))
        )
        if clash is not None:
            raise GrafanaError(
                "a datasource named {!r} already exists with uid {!r}; "
                "rename it or manage it by that uid".format(params["name"], clash.get("uid"))
            )
        result.update(
            differences=["(new)"],
            secrets_sent=sorted(secrets),
            **secrets_note(params, sorted(secrets), created=True),
        )
        if module._diff:
            result["diff"] = {"before": {}, "after": dict(desired, uid=uid, secureJsonFields=sorted(secrets))}
        if module.check_mode:
            return dict(result, changed=True, id=None, name=params["name"], version=None)
        created = client.send_json("POST", "/api/datasources", dict(desired, uid=uid, secureJsonData=secrets))
        ds = created.get("datasource") or {}
        return dict(
            result,
            changed=True,
            id=created.get("id"),
            name=ds.get("name", params["name"]),
            version=ds.get("version"),
            read_only=bool(ds.get("readOnly")),
            secure_json_fields=sorted(ds.get("secureJsonFields") or {}),
        )
    before = comparable(stored, json_data)
    differences = [k for k in desired if k != "jsonData" and desired[k] != before[k]]
    differences += [f"jsonData.{k}" for k in sorted(json_data) if json_data[k] != before["jsonData"][k]]
    stored_secrets = sorted(stored.get("secureJsonFields") or {})
    to_send = (
        sorted(secrets) if params["update_secrets"] else sorted(k for k in secrets if k not in stored_secrets)
    )
    result.update(
        differences=differences,
        secrets_sent=to_send,
        read_only=bool(stored.get("readOnly")),
        id=stored.get("id"),
        name=stored.get("name"),
        version=stored.get("version"),
        secure_json_fields=stored_secrets,
        **secrets_note(params, to_send),
    )
    if module._diff:
        result["diff"] = {
            "before": dict(before, secureJsonFields=stored_secrets),
            "after": dict(desired, secureJsonFields=sorted(set(stored_secrets) | set(secrets))),
        }
    if not differences and not to_send:
        return dict(result, changed=False)
    if stored.get("readOnly"):
        raise read_only_failure(uid, stored.get("name"), "updated")
    if module.check_mode:
        return dict(result, changed=True)
    body = dict(
        desired,
        uid=uid,
        version=stored.get("version"),
        jsonData=dict(stored.get("jsonData") or {}, **json_data),
        secureJsonData={k: secrets[k] for k in to_send},
    )
    try:
        updated = client.send_json("PUT", f"/api/datasources/uid/{uid}", body)
    except HttpError as exc:
        if exc.status == 403:
            raise read_only_failure(uid, stored.get("name"), "updated") from None
        if exc.status == 409:
            raise GrafanaError(f"cannot update datasource {uid}: {exc.message}", **exc.as_result()) from None
        raise
    ds = updated.get("datasource") or {}
    return dict(
        result,
        changed=True,
        version=ds.get("version"),
        name=ds.get("name"),
        secure_json_fields=sorted(ds.get("secureJsonFields") or {}),
    )


def absent(module, client):
    uid = module.params["uid"]
    check_uid(uid, "datasource")
    stored = get_or_none(client, f"/api/datasources/uid/{uid}")
    result = {"uid": uid, "id": None, "differences": [], "secrets_sent": []}
    if stored is None:
        return dict(result, changed=False)
    if stored.get("readOnly"):
        raise read_only_failure(uid, stored.get("name"), "deleted")
    if module._diff:
        result["diff"] = {"before": comparable(stored, stored.get("jsonData") or {}), "after": {}}
    if not module.check_mode:
        try:
            client.request("DELETE", f"/api/datasources/uid/{uid}")
        except HttpError as exc:
            if exc.status == 403:
                raise read_only_failure(uid, stored.get("name"), "deleted") from None
            raise
    return dict(result, changed=True, differences=["(deleted)"])


def main():
    spec = grafana_argument_spec()
    spec.update(
        uid={"type": "str", "required": True},
        name={"type": "str"},
        type={"type": "str"},
        access={"type": "str", "choices": ["proxy", "direct"], "default": "proxy"},
        datasource_url={"type": "str", "default": ""},
        user={"type": "str", "default": ""},
        database={"type": "str", "default": ""},
        basic_auth={"type": "bool", "default": False},
        basic_auth_user={"type": "str", "default": ""},
        with_credentials={"type": "bool", "default": False},
        is_default={"type": "bool", "default": False},
        json_data={"type": "dict", "default": {}},
        secure_json_data={"type": "dict", "no_log": True},
        update_secrets={"type": "bool", "default": False},
        state={"type": "str", "choices": ["present", "absent"], "default": "present"},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    client = grafana_client(module, secrets=[module.params["secure_json_data"] or {}])
    run_module(module, present if module.params["state"] == "present" else absent, module, client)


if __name__ == "__main__":
    main()
