#!/usr/bin/env python3
"""TEST DOUBLE of the Grafana HTTP API -- this is NOT Grafana.

A single-file, standard-library-only server that reproduces the documented behaviour of the parts
of Grafana's HTTP API this project uses (emulating Grafana 11.2), so that modules, roles and test
scenarios can run against "an existing Grafana" where real Grafana cannot be installed:

* auth: basic (users) and bearer (service-account tokens, legacy API keys); /api/admin/* and
  /api/users/lookup need basic auth from a server admin; Viewer tokens cannot write.
* /api/health, /healthz, /metrics (Prometheus text format, a few grafana_* metrics)
* /api/folders: uid, 409 on duplicate uid/title, 404 not-found, 412 version-mismatch on PUT
* /api/dashboards/db: version handling (412 version-mismatch without overwrite, 412 name-exists,
  400 provisioned), folderUid (absent = General); /api/dashboards/uid/:uid GET/DELETE; /api/search
* /api/datasources: by uid/name/id, 409 on duplicate name/uid, optimistic version (409),
  write-only secureJsonData, provisioned (readOnly) datasources -> 403
* /api/user, /api/user/password, /api/org, /api/users/lookup, PUT /api/admin/users/:id/password,
  /api/serviceaccounts (+ tokens), /api/auth/keys
* /api/annotations: POST (text required, time defaults to now, timeEnd to time, an unknown
  dashboardUID silently gives an organisation annotation), GET with Grafana's filters (tags as
  key:value pairs, AND or matchAny; from/to as an overlap; type; dashboardUID -> 400 when unknown;
  newest end first; limit 100), GET/PUT/PATCH/DELETE /api/annotations/:id (404 "Annotation not
  found"), /api/annotations/tags

Like Grafana, the admin password given at start-up applies only when the admin user is first
created; with --state-file the stored state (including a changed password) survives restarts.

    python3 server.py --listen 127.0.0.1:3000 --admin-user admin --admin-password-file F \
        [--state-file S] [--token-file T] [--provisioning P.json]
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GRAFANA_VERSION = "11.2.0"
BANNER = (
    "*" * 78 + "\n"
    "*** GRAFANA HTTP API TEST DOUBLE (tests/tools/grafana_double/server.py) -- NOT GRAFANA.\n"
    "*** It serves tests and the local sandbox only; never use it as a real Grafana.\n" + "*" * 78
)
UID_RE = re.compile(r"^[a-zA-Z0-9\-_]*$")
ROLES = {"Viewer": 1, "Editor": 2, "Admin": 3}


def now_iso():
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def slugify(title):
    return re.sub(r"[^a-z0-9]+", "-", (title or "").lower()).strip("-")


def new_uid():
    return secrets.token_hex(7)


def hash_password(password, salt=None):
    salt = salt or secrets.token_hex(8)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 10000).hex()
    return {"salt": salt, "hash": digest}


def check_password(record, password):
    return hmac.compare_digest(hash_password(password, record["salt"])["hash"], record["hash"])


def token_digest(key):
    return hashlib.sha256(key.encode()).hexdigest()


class ApiError(Exception):
    def __init__(self, http_status, message, **extra):
        super().__init__(message)
        self.http_status = http_status
        self.body = {"message": message, **extra}


class State:
    """Everything the double knows; JSON-serialisable so it can be persisted."""

    def __init__(self, path=None):
        self.path = path
        self.lock = threading.RLock()
        self.data = {
            "next_id": 1,
            "users": {},
            "tokens": {},
            "service_accounts": {},
            "folders": {},
            "dashboards": {},
            "datasources": {},
            "responses": {},
            "annotations": {},
            "annotation_seq": 0,
        }
        if path and os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                self.data.update(json.load(handle))

    def next_id(self):
        value = self.data["next_id"]
        self.data["next_id"] = value + 1
        return value

    def save(self):
        if not self.path:
            return
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(self.data, handle, indent=1, sort_keys=True)
        os.replace(tmp, self.path)


class Grafana:
    """API semantics, independent of HTTP plumbing."""

    def __init__(self, state, version=GRAFANA_VERSION):
        self.state = state
        self.version = version
        self.routes = [
            ("GET", r"/api/health", self.health, None),
            ("GET", r"/api/user", self.get_user, "auth"),
            ("PUT", r"/api/user/password", self.change_own_password, "auth"),
            ("GET", r"/api/org", self.get_org, "auth"),
            ("GET", r"/api/users/lookup", self.lookup_user, "server_admin"),
            ("PUT", r"/api/admin/users/(\d+)/password", self.admin_set_password, "server_admin"),
            ("POST", r"/api/serviceaccounts", self.create_service_account, "Admin"),
            ("GET", r"/api/serviceaccounts/search", self.search_service_accounts, "Admin"),
            ("POST", r"/api/serviceaccounts/(\d+)/tokens", self.create_sa_token, "Admin"),
            ("POST", r"/api/auth/keys", self.create_api_key, "Admin"),
            ("GET", r"/api/folders", self.list_folders, "auth"),
            ("POST", r"/api/folders", self.create_folder, "Editor"),
            ("GET", r"/api/folders/([^/]+)", self.get_folder, "auth"),
            ("PUT", r"/api/folders/([^/]+)", self.update_folder, "Editor"),
            ("DELETE", r"/api/folders/([^/]+)", self.delete_folder, "Editor"),
            ("POST", r"/api/dashboards/db/?", self.save_dashboard, "Editor"),
            ("GET", r"/api/dashboards/uid/([^/]+)", self.get_dashboard, "auth"),
            ("DELETE", r"/api/dashboards/uid/([^/]+)", self.delete_dashboard, "Editor"),
            ("GET", r"/api/search/?", self.search, "auth"),
            ("GET", r"/api/annotations", self.find_annotations, "auth"),
            ("POST", r"/api/annotations", self.create_annotation, "Editor"),
            ("GET", r"/api/annotations/tags", self.annotation_tags, "auth"),
            ("GET", r"/api/annotations/([^/]+)", self.get_annotation, "auth"),
            ("PUT", r"/api/annotations/([^/]+)", self.put_annotation, "Editor"),
            ("PATCH", r"/api/annotations/([^/]+)", self.patch_annotation, "Editor"),
            ("DELETE", r"/api/annotations/([^/]+)", self.delete_annotation, "Editor"),
            ("GET", r"/api/datasources", self.list_datasources, "auth"),
            ("POST", r"/api/datasources", self.create_datasource, "Admin"),
            ("GET", r"/api/datasources/uid/([^/]+)", self.ds_get("uid"), "auth"),
            ("GET", r"/api/datasources/name/([^/]+)", self.ds_get("name"), "auth"),
            ("GET", r"/api/datasources/id/([^/]+)", self.ds_id_by_name, "auth"),
            ("GET", r"/api/datasources/(\d+)", self.ds_get("id"), "auth"),
            ("PUT", r"/api/datasources/uid/([^/]+)", self.ds_update("uid"), "Admin"),
            ("PUT", r"/api/datasources/(\d+)", self.ds_update("id"), "Admin"),
            ("DELETE", r"/api/datasources/uid/([^/]+)", self.ds_delete("uid"), "Admin"),
            ("DELETE", r"/api/datasources/name/([^/]+)", self.ds_delete("name"), "Admin"),
            ("DELETE", r"/api/datasources/(\d+)", self.ds_delete("id"), "Admin"),
        ]
        self.routes = [(m, re.compile(p + "$"), f, need) for m, p, f, need in self.routes]

    # -- bootstrap ------------------------------------------------------------------------------
    def bootstrap_admin(self, login, password):
        users = self.state.data["users"]
        for user in users.values():
            if user["login"] == login:
                return False  # like Grafana: admin_password applies only on first creation
        user_id = self.state.next_id()
        users[str(user_id)] = {
            "id": user_id,
            "login": login,
            "email": f"{login}@localhost",
            "name": login,
            "isGrafanaAdmin": True,
            "role": "Admin",
            "password": hash_password(password),
            "created": now_iso(),
            "updated": now_iso(),
        }
        return True

    def add_token(self, key, name="preseeded", role="Admin"):
        self.state.data["tokens"][token_digest(key)] = {"name": name, "role": role, "sa_id": None}

    def provision(self, spec):
        for ds in spec.get("datasources", []):
            body = dict(ds)
            editable = body.pop("editable", False)
            existing = self._find_ds("uid", body.get("uid")) if body.get("uid") else None
            if existing:
                self.state.data["datasources"].pop(existing["uid"])
            record = self._ds_record(body, None)
            record["readOnly"] = not editable
            self.state.data["datasources"][record["uid"]] = record
        for item in spec.get("dashboards", []):
            model = dict(item["dashboard"])
            folder_uid = item.get("folderUid", "")
            uid = model.get("uid") or new_uid()
            stored = self.state.data["dashboards"].get(uid)
            version = stored["version"] + 1 if stored else 1
            dash_id = stored["id"] if stored else self.state.next_id()
            model.update(id=dash_id, uid=uid, version=version)
            self.state.data["dashboards"][uid] = {
                "model": model,
                "folderUid": folder_uid,
                "id": dash_id,
                "version": version,
                "provisioned": True,
                "created": now_iso(),
                "updated": now_iso(),
            }

    # -- auth -----------------------------------------------------------------------------------
    def authenticate(self, header):
        if not header:
            raise ApiError(401, "Unauthorized")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                login, _, password = base64.b64decode(value).decode().partition(":")
            except ValueError:
                raise ApiError(401, "Invalid Basic Auth Header") from None
            for user in self.state.data["users"].values():
                if login in (user["login"], user["email"]) and check_password(user["password"], password):
                    return {
                        "kind": "user",
                        "user": user,
                        "role": user["role"],
                        "server_admin": user["isGrafanaAdmin"],
                    }
            raise ApiError(
                401, "Invalid username or password", messageId="password-auth.failed", statusCode=401
            )
        if scheme.lower() == "bearer":
            token = self.state.data["tokens"].get(token_digest(value.strip()))
            if token is None:
                raise ApiError(401, "Invalid API key")
            return {
                "kind": "token",
                "user": None,
                "role": token["role"],
                "server_admin": False,
                "token": token,
            }
        raise ApiError(401, "Unauthorized")

    def authorize(self, identity, need):
        if need == "server_admin":
            if not identity["server_admin"]:
                raise ApiError(403, "Permission denied")
        elif need in ROLES and ROLES[identity["role"]] < ROLES[need]:
            raise ApiError(403, "Access denied", messageId="accesscontrol.denied")

    def dispatch(self, method, path, query, body, auth_header):
        matched_path = False
        for route_method, pattern, func, need in self.routes:
            match = pattern.match(path)
            if not match:
                continue
            matched_path = True
            if route_method != method:
                continue
            identity = None
            if need:
                identity = self.authenticate(auth_header)
                self.authorize(identity, need)
            with self.state.lock:
                result = func(*match.groups(), query=query, body=body, identity=identity)
                if method != "GET":
                    self.state.save()
            return result
        if matched_path:
            raise ApiError(405, "Method Not Allowed")
        raise ApiError(404, "Not found")

    # -- health, users, orgs ----------------------------------------------------------------
    def health(self, **_):
        return 200, {"commit": "test-double", "database": "ok", "version": self.version}

    def _user_view(self, user):
        return {
            "id": user["id"],
            "email": user["email"],
            "name": user["name"],
            "login": user["login"],
            "theme": "",
            "orgId": 1,
            "isGrafanaAdmin": user["isGrafanaAdmin"],
            "isDisabled": False,
            "isExternal": False,
            "authLabels": [],
            "updatedAt": user["updated"],
            "createdAt": user["created"],
            "avatarUrl": "",
        }

    def get_user(self, identity, **_):
        if identity["kind"] == "token":
            token = identity["token"]
            return 200, {
                "id": 0,
                "login": "sa-{}".format(slugify(token["name"])),
                "name": token["name"],
                "email": "",
                "orgId": 1,
                "isGrafanaAdmin": False,
                "isDisabled": False,
            }
        return 200, self._user_view(identity["user"])

    def change_own_password(self, identity, body, **_):
        user = identity["user"]
        if user is None:
            raise ApiError(400, "Not a user")
        if not check_password(user["password"], str(body.get("oldPassword", ""))):
            raise ApiError(401, "Invalid old password")
        new = str(body.get("newPassword", ""))
        if new != body.get("confirmNew"):
            raise ApiError(400, "New password and confirmation do not match")
        self._set_password(user, new)
        return 200, {"message": "User password changed"}

    def _set_password(self, user, password):
        if len(password) < 4:
            raise ApiError(400, "New password is too short")
        user["password"] = hash_password(password)
        user["updated"] = now_iso()

    def get_org(self, **_):
        return 200, {
            "id": 1,
            "name": "Main Org.",
            "address": {
                "address1": "",
                "address2": "",
                "city": "",
                "zipCode": "",
                "state": "",
                "country": "",
            },
        }

    def lookup_user(self, query, **_):
        wanted = (query.get("loginOrEmail") or [""])[0]
        for user in self.state.data["users"].values():
            if wanted in (user["login"], user["email"]):
                return 200, self._user_view(user)
        raise ApiError(404, "user not found")

    def admin_set_password(self, user_id, body, **_):
        user = self.state.data["users"].get(user_id)
        if user is None:
            raise ApiError(404, "user not found")
        self._set_password(user, str(body.get("password", "")))
        return 200, {"message": "User password updated"}

    # -- service accounts and keys ------------------------------------------------------------
    def create_service_account(self, body, **_):
        name = body.get("name")
        if not name:
            raise ApiError(400, "required value is empty")
        accounts = self.state.data["service_accounts"]
        if any(a["name"] == name for a in accounts.values()):
            raise ApiError(409, "service account already exists")
        sa_id = self.state.next_id()
        account = {
            "id": sa_id,
            "name": name,
            "login": "sa-" + slugify(name),
            "orgId": 1,
            "isDisabled": bool(body.get("isDisabled")),
            "role": body.get("role", "Viewer"),
            "tokens": 0,
            "avatarUrl": "",
        }
        accounts[str(sa_id)] = account
        return 201, account

    def search_service_accounts(self, query, **_):
        wanted = (query.get("query") or [""])[0].lower()
        found = [a for a in self.state.data["service_accounts"].values() if wanted in a["name"].lower()]
        return 200, {"totalCount": len(found), "serviceAccounts": found, "page": 1, "perPage": 1000}

    def create_sa_token(self, sa_id, body, **_):
        account = self.state.data["service_accounts"].get(sa_id)
        if account is None:
            raise ApiError(404, "service account not found")
        key = "glsa_" + secrets.token_urlsafe(24)
        token_id = self.state.next_id()
        self.state.data["tokens"][token_digest(key)] = {
            "name": body.get("name", "token"),
            "role": account["role"],
            "sa_id": account["id"],
            "id": token_id,
        }
        account["tokens"] += 1
        return 200, {"id": token_id, "name": body.get("name", "token"), "key": key}

    def create_api_key(self, body, **_):
        name = body.get("name")
        if not name:
            raise ApiError(400, "bad request data")
        role = body.get("role", "Viewer")
        if role not in ROLES:
            raise ApiError(400, "bad request data")
        key = "eyJrIjoi" + secrets.token_urlsafe(24)
        key_id = self.state.next_id()
        self.state.data["tokens"][token_digest(key)] = {
            "name": name,
            "role": role,
            "sa_id": None,
            "id": key_id,
        }
        return 200, {"id": key_id, "name": name, "key": key}

    # -- folders --------------------------------------------------------------------------------
    def _folder_view(self, folder):
        return {
            **folder,
            "url": "/dashboards/f/{}/{}".format(folder["uid"], slugify(folder["title"])),
            "hasAcl": False,
            "canSave": True,
            "canEdit": True,
            "canAdmin": True,
            "canDelete": True,
        }

    def _folder(self, uid):
        folder = self.state.data["folders"].get(uid)
        if folder is None:
            raise ApiError(404, "folder not found", status="not-found")
        return folder

    def list_folders(self, query, **_):
        limit = int((query.get("limit") or ["1000"])[0])
        page = int((query.get("page") or ["1"])[0])
        folders = sorted(self.state.data["folders"].values(), key=lambda f: f["title"].lower())
        chunk = folders[(page - 1) * limit : page * limit]
        return 200, [{"id": f["id"], "uid": f["uid"], "title": f["title"]} for f in chunk]

    def create_folder(self, body, identity, **_):
        title = (body.get("title") or "").strip()
        uid = body.get("uid") or new_uid()
        if not title:
            raise ApiError(400, "folder title cannot be empty", status="empty-name")
        self._check_uid(uid)
        if uid in self.state.data["folders"] or uid in self.state.data["dashboards"]:
            raise ApiError(409, "a folder/dashboard with the same uid already exists")
        if any(f["title"].lower() == title.lower() for f in self.state.data["folders"].values()):
            raise ApiError(409, "a folder with the same name already exists")
        who = self._who(identity)
        folder = {
            "id": self.state.next_id(),
            "uid": uid,
            "title": title,
            "createdBy": who,
            "created": now_iso(),
            "updatedBy": who,
            "updated": now_iso(),
            "version": 1,
        }
        self.state.data["folders"][uid] = folder
        return 200, self._folder_view(folder)

    def get_folder(self, uid, **_):
        return 200, self._folder_view(self._folder(uid))

    def update_folder(self, uid, body, identity, **_):
        folder = self._folder(uid)
        if not body.get("overwrite") and body.get("version") != folder["version"]:
            raise ApiError(412, "the folder has been changed by someone else", status="version-mismatch")
        title = (body.get("title") or "").strip()
        if not title:
            raise ApiError(400, "folder title cannot be empty", status="empty-name")
        if any(
            f["title"].lower() == title.lower() and f["uid"] != uid
            for f in self.state.data["folders"].values()
        ):
            raise ApiError(409, "a folder with the same name already exists")
        folder.update(
            title=title, version=folder["version"] + 1, updated=now_iso(), updatedBy=self._who(identity)
        )
        return 200, self._folder_view(folder)

    def delete_folder(self, uid, **_):
        folder = self._folder(uid)
        for dash_uid, dash in list(self.state.data["dashboards"].items()):
            if dash["folderUid"] == uid:
                del self.state.data["dashboards"][dash_uid]
        del self.state.data["folders"][uid]
        return 200, {"message": "Folder deleted", "id": folder["id"], "title": folder["title"]}

    # -- dashboards -----------------------------------------------------------------------------
    @staticmethod
    def _check_uid(uid):
        if len(uid) > 40:
            raise ApiError(400, "uid too long, max 40 characters")
        if not UID_RE.match(uid):
            raise ApiError(400, "uid contains illegal characters")

    @staticmethod
    def _who(identity):
        if identity and identity.get("user"):
            return identity["user"]["login"]
        return "service-account"

    def _dash_url(self, dash):
        return "/d/{}/{}".format(dash["model"]["uid"], slugify(dash["model"].get("title")))

    def save_dashboard(self, body, identity, **_):
        model = body.get("dashboard")
        if not isinstance(model, dict) or not str(model.get("title") or "").strip():
            raise ApiError(400, "Dashboard title cannot be empty", status="empty-name")
        message = body.get("message") or ""
        if len(message) > 500:
            raise ApiError(400, "message too long, max 500 characters")
        overwrite = bool(body.get("overwrite"))
        folder_uid = body.get("folderUid")
        if folder_uid is None:
            folder_id = body.get("folderId") or 0
            folder_uid = next(
                (f["uid"] for f in self.state.data["folders"].values() if f["id"] == folder_id), ""
            )
        if folder_uid and folder_uid not in self.state.data["folders"]:
            raise ApiError(400, "folder not found", status="not-found")
        dashboards = self.state.data["dashboards"]
        uid = model.get("uid") or ""
        if uid:
            self._check_uid(uid)
        dash_id = model.get("id") or 0
        by_uid = dashboards.get(uid) if uid else None
        by_id = next((d for d in dashboards.values() if d["id"] == dash_id), None) if dash_id else None
        if dash_id and by_id is None:
            raise ApiError(404, "Dashboard not found", status="not-found")
        if by_id and by_uid and by_id is not by_uid:
            raise ApiError(400, "A dashboard with the same uid already exists")
        existing = by_uid or by_id
        if uid and uid in self.state.data["folders"]:
            raise ApiError(400, "A dashboard with the same uid already exists")
        if existing:
            if existing["provisioned"]:
                raise ApiError(400, "Cannot save provisioned dashboard")
            if not overwrite and model.get("version") != existing["version"]:
                raise ApiError(
                    412, "The dashboard has been changed by someone else", status="version-mismatch"
                )
        title = model["title"].strip().lower()
        same_name = [
            d
            for d in dashboards.values()
            if d is not existing
            and d["folderUid"] == folder_uid
            and str(d["model"].get("title", "")).strip().lower() == title
        ]
        if same_name and not overwrite:
            raise ApiError(
                412, "A dashboard with the same name in the folder already exists", status="name-exists"
            )
        for other in same_name:  # overwrite replaces the same-titled dashboard, as Grafana does
            dashboards.pop(other["model"]["uid"], None)
        uid = uid or (existing["model"]["uid"] if existing else new_uid())
        version = existing["version"] + 1 if existing else 1
        stored_id = existing["id"] if existing else self.state.next_id()
        saved = dict(model, id=stored_id, uid=uid, version=version)
        if existing and existing["model"]["uid"] != uid:
            dashboards.pop(existing["model"]["uid"], None)
        who = self._who(identity)
        dashboards[uid] = {
            "model": saved,
            "folderUid": folder_uid,
            "id": stored_id,
            "version": version,
            "provisioned": False,
            "created": existing["created"] if existing else now_iso(),
            "updated": now_iso(),
            "createdBy": existing.get("createdBy", who) if existing else who,
            "updatedBy": who,
            "message": message,
        }
        return 200, {
            "id": stored_id,
            "uid": uid,
            "url": self._dash_url(dashboards[uid]),
            "status": "success",
            "version": version,
            "slug": slugify(saved.get("title")),
            "folderUid": folder_uid,
        }

    def _dashboard(self, uid):
        dash = self.state.data["dashboards"].get(uid)
        if dash is None:
            raise ApiError(404, "Dashboard not found")
        return dash

    def get_dashboard(self, uid, **_):
        dash = self._dashboard(uid)
        folder = self.state.data["folders"].get(dash["folderUid"])
        meta = {
            "type": "db",
            "canSave": True,
            "canEdit": True,
            "canAdmin": True,
            "canStar": True,
            "canDelete": True,
            "slug": slugify(dash["model"].get("title")),
            "url": self._dash_url(dash),
            "expires": "0001-01-01T00:00:00Z",
            "created": dash["created"],
            "updated": dash["updated"],
            "updatedBy": dash.get("updatedBy", "admin"),
            "createdBy": dash.get("createdBy", "admin"),
            "version": dash["version"],
            "hasAcl": False,
            "isFolder": False,
            "folderId": folder["id"] if folder else 0,
            "folderUid": dash["folderUid"],
            "folderTitle": folder["title"] if folder else "General",
            "folderUrl": self._folder_view(folder)["url"] if folder else "",
            "provisioned": dash["provisioned"],
            "provisionedExternalId": "",
            "annotationsPermissions": None,
        }
        return 200, {"dashboard": dash["model"], "meta": meta}

    def delete_dashboard(self, uid, **_):
        dash = self._dashboard(uid)
        if dash["provisioned"]:
            raise ApiError(400, "provisioned dashboard cannot be deleted")
        del self.state.data["dashboards"][uid]
        title = dash["model"].get("title")
        return 200, {"title": title, "message": f"Dashboard {title} deleted", "id": dash["id"], "uid": uid}

    def search(self, query, **_):
        text = (query.get("query") or [""])[0].lower()
        kind = (query.get("type") or [""])[0]
        tags = set(query.get("tag") or [])
        dash_uids = set(query.get("dashboardUIDs") or [])
        folder_uids = set(query.get("folderUIDs") or [])
        limit = min(int((query.get("limit") or ["1000"])[0]), 5000)
        page = int((query.get("page") or ["1"])[0])
        hits = []
        if kind in ("", "dash-folder") and not folder_uids and not dash_uids and not tags:
            for folder in self.state.data["folders"].values():
                if text in folder["title"].lower():
                    view = self._folder_view(folder)
                    hits.append(
                        {
                            "id": folder["id"],
                            "uid": folder["uid"],
                            "title": folder["title"],
                            "uri": "db/" + slugify(folder["title"]),
                            "url": view["url"],
                            "slug": "",
                            "type": "dash-folder",
                            "tags": [],
                            "isStarred": False,
                            "sortMeta": 0,
                        }
                    )
        if kind in ("", "dash-db"):
            for uid, dash in self.state.data["dashboards"].items():
                model = dash["model"]
                if text not in str(model.get("title", "")).lower():
                    continue
                if dash_uids and uid not in dash_uids:
                    continue
                if (
                    folder_uids
                    and (dash["folderUid"] or "general") not in folder_uids
                    and dash["folderUid"] not in folder_uids
                ):
                    continue
                if tags and not tags.issubset(set(model.get("tags") or [])):
                    continue
                folder = self.state.data["folders"].get(dash["folderUid"])
                hit = {
                    "id": dash["id"],
                    "uid": uid,
                    "title": model.get("title"),
                    "uri": "db/" + slugify(model.get("title")),
                    "url": self._dash_url(dash),
                    "slug": "",
                    "type": "dash-db",
                    "tags": model.get("tags") or [],
                    "isStarred": False,
                    "sortMeta": 0,
                }
                if folder:
                    hit.update(
                        folderId=folder["id"],
                        folderUid=folder["uid"],
                        folderTitle=folder["title"],
                        folderUrl=self._folder_view(folder)["url"],
                    )
                hits.append(hit)
        hits.sort(key=lambda h: (h["type"] != "dash-folder", str(h["title"]).lower()))
        return 200, hits[(page - 1) * limit : page * limit]

    # -- annotations ----------------------------------------------------------------------------
    # As pkg/api/annotations.go and pkg/services/annotations/annotationsimpl/xorm_store.go (11.x).
    @staticmethod
    def _tag_pairs(tags):
        """pkg/services/tag ParseTagPairs: "k:v" -> (k, v), text after a second ':' is lost, blanks
        trimmed, empty keys and duplicates dropped."""
        pairs = []
        for tag in tags or []:
            tag = str(tag)
            if ":" in tag:
                parts = tag.split(":")
                pair = (parts[0].strip(" "), parts[1].strip(" "))
            else:
                pair = (tag.strip(" "), "")
            if pair[0] and pair not in pairs:
                pairs.append(pair)
        return pairs

    @staticmethod
    def _join_pairs(pairs):
        return [f"{k}:{v}" if v else k for k, v in pairs]

    @staticmethod
    def _now_ms():
        return int(datetime.datetime.now(datetime.UTC).timestamp() * 1000)

    @staticmethod
    def _int(value, default=0):
        try:
            return int(value)
        except (TypeError, ValueError):
            return default

    def _q_int(self, query, name):
        return self._int((query.get(name) or ["0"])[0])

    def _dashboard_by_uid(self, uid):
        return self.state.data["dashboards"].get(uid)

    def _annotation_view(self, record):
        dash = next(
            (d for d in self.state.data["dashboards"].values() if d["id"] == record["dashboardId"]), None
        )
        user = self.state.data["users"].get(str(record["userId"])) if record["userId"] else None
        return {
            "id": record["id"],
            "alertId": 0,
            "alertName": "",
            "dashboardId": record["dashboardId"],
            "dashboardUID": dash["model"]["uid"] if dash and record["dashboardId"] else None,
            "panelId": record["panelId"],
            "userId": record["userId"],
            "newState": "",
            "prevState": "",
            "created": record["created"],
            "updated": record["updated"],
            "time": record["time"],
            "timeEnd": record["timeEnd"],
            "text": record["text"],
            "tags": list(record["tags"] or []),
            "login": user["login"] if user else "",
            "email": user["email"] if user else "",
            "avatarUrl": "",
            "data": record.get("data") or {},
        }

    @staticmethod
    def _valid_range(record):
        """validateTimeRange: timeEnd defaults to time; a reversed range is swapped, not refused."""
        if not record["timeEnd"]:
            if not record["time"]:
                raise ApiError(400, "Failed to save annotation")
            record["timeEnd"] = record["time"]
        if not record["time"]:
            record["time"] = record["timeEnd"]
        if record["timeEnd"] < record["time"]:
            record["time"], record["timeEnd"] = record["timeEnd"], record["time"]

    def _annotation(self, annotation_id):
        if not re.fullmatch(r"-?\d+", annotation_id):
            raise ApiError(400, "annotationId is invalid")
        record = self.state.data["annotations"].get(str(int(annotation_id)))
        if record is None:
            raise ApiError(404, "Annotation not found")
        return record

    def find_annotations(self, query, **_):
        dashboard_id = self._q_int(query, "dashboardId")
        dashboard_uid = (query.get("dashboardUID") or [""])[0]
        if dashboard_uid:
            dash = self._dashboard_by_uid(dashboard_uid)
            if dash is None:
                raise ApiError(400, "Invalid dashboard UID in annotation request")
            dashboard_id = dash["id"]
        if self._q_int(query, "alertId") or (query.get("type") or [""])[0] == "alert":
            return 200, []  # the double stores no alert state annotations
        start, end = self._q_int(query, "from"), self._q_int(query, "to")
        wanted = self._tag_pairs(query.get("tags"))
        match_any = (query.get("matchAny") or ["false"])[0].lower() == "true"
        limit = self._q_int(query, "limit") or 100
        filters = {
            "dashboardId": dashboard_id,
            "panelId": self._q_int(query, "panelId"),
            "userId": self._q_int(query, "userId"),
        }
        found = []
        for record in self.state.data["annotations"].values():
            if any(value and record[name] != value for name, value in filters.items()):
                continue
            if start > 0 and end > 0 and not (record["time"] <= end and record["timeEnd"] >= start):
                continue
            if wanted:
                # SUM(1) over the annotation's tag rows that match any wanted (key[, value]) pair
                hits = sum(
                    1
                    for key, value in self._tag_pairs(record["tags"])
                    if any(key == k and (not v or value == v) for k, v in wanted)
                )
                if (match_any and hits == 0) or (not match_any and hits != len(wanted)):
                    continue
            found.append(record)
        found.sort(key=lambda r: (r["timeEnd"], r["time"]), reverse=True)
        return 200, [self._annotation_view(r) for r in found[:limit]]

    def create_annotation(self, body, identity, **_):
        dashboard_id = self._int(body.get("dashboardId"))
        uid = body.get("dashboardUID") or ""
        if uid:
            dash = self._dashboard_by_uid(uid)
            if dash is not None:  # Grafana ignores an unknown uid (an organisation annotation results)
                dashboard_id = dash["id"]
        if dashboard_id and not any(d["id"] == dashboard_id for d in self.state.data["dashboards"].values()):
            raise ApiError(403, "Access denied to this dashboard")
        if not body.get("text"):
            raise ApiError(400, "Failed to save annotation")
        now = self._now_ms()
        self.state.data["annotation_seq"] += 1
        record = {
            "id": self.state.data["annotation_seq"],
            "dashboardId": dashboard_id,
            "panelId": self._int(body.get("panelId")),
            "userId": identity["user"]["id"] if identity and identity.get("user") else 0,
            "text": str(body["text"]),
            "tags": self._join_pairs(self._tag_pairs(body.get("tags"))),
            "time": self._int(body.get("time")) or now,
            "timeEnd": self._int(body.get("timeEnd")),
            "created": now,
            "updated": now,
            "data": body.get("data") or {},
        }
        self._valid_range(record)
        self.state.data["annotations"][str(record["id"])] = record
        return 200, {"message": "Annotation added", "id": record["id"]}

    def get_annotation(self, annotation_id, **_):
        return 200, self._annotation_view(self._annotation(annotation_id))

    def _update_annotation(self, record, text, tags, start, end):
        """xormRepositoryImpl.Update: text always replaced, times only when non-zero, tags when given
        (stored as sent; the tag index holds their pairs), then the range validated (swapped)."""
        updated = dict(record, text=text, updated=self._now_ms())
        if start:
            updated["time"] = start
        if end:
            updated["timeEnd"] = end
        updated["tags"] = list(tags) if tags is not None else None
        self._valid_range(updated)
        record.update(updated)

    def put_annotation(self, annotation_id, body, **_):
        record = self._annotation(annotation_id)
        self._update_annotation(
            record,
            str(body.get("text") or ""),
            body.get("tags"),
            self._int(body.get("time")),
            self._int(body.get("timeEnd")),
        )
        return 200, {"message": "Annotation updated"}

    def patch_annotation(self, annotation_id, body, **_):
        record = self._annotation(annotation_id)
        tags = body.get("tags") if body.get("tags") is not None else record["tags"]
        text = body.get("text") or record["text"]
        start = self._int(body.get("time"))
        end = self._int(body.get("timeEnd"))
        self._update_annotation(
            record,
            str(text),
            tags,
            start if start > 0 else record["time"],
            end if end > 0 else record["timeEnd"],
        )
        return 200, {"message": "Annotation patched"}

    def delete_annotation(self, annotation_id, **_):
        record = self._annotation(annotation_id)
        del self.state.data["annotations"][str(record["id"])]
        return 200, {"message": "Annotation deleted"}

    def annotation_tags(self, query, **_):
        text = (query.get("tag") or [""])[0]
        limit = self._q_int(query, "limit") or 100
        counts = {}
        for record in self.state.data["annotations"].values():
            for key, value in self._tag_pairs(record["tags"]):
                if text in key or text in value:
                    counts[(key, value)] = counts.get((key, value), 0) + 1
        tags = [{"tag": f"{k}:{v}" if v else k, "count": n} for (k, v), n in sorted(counts.items())[:limit]]
        return 200, {"result": {"tags": tags}}

    # -- datasources ----------------------------------------------------------------------------
    DS_FIELDS = (
        "name",
        "type",
        "access",
        "url",
        "user",
        "database",
        "basicAuth",
        "basicAuthUser",
        "withCredentials",
        "isDefault",
        "jsonData",
    )

    def _ds_record(self, body, existing):
        record = {
            "id": existing["id"] if existing else self.state.next_id(),
            "uid": (existing or {}).get("uid") or body.get("uid") or new_uid(),
            "orgId": 1,
            "name": body.get("name"),
            "type": body.get("type"),
            "access": body.get("access") or "proxy",
            "url": body.get("url") or "",
            "user": body.get("user") or "",
            "database": body.get("database") or "",
            "basicAuth": bool(body.get("basicAuth")),
            "basicAuthUser": body.get("basicAuthUser") or "",
            "withCredentials": bool(body.get("withCredentials")),
            "isDefault": bool(body.get("isDefault")),
            "jsonData": body.get("jsonData") or {},
            "version": (existing["version"] + 1) if existing else 1,
            "readOnly": existing["readOnly"] if existing else False,
            "apiVersion": "",
            "secure": dict((existing or {}).get("secure") or {}),
        }
        record["secure"].update(
            {k: v for k, v in (body.get("secureJsonData") or {}).items() if v is not None}
        )
        if record["isDefault"]:
            for other in self.state.data["datasources"].values():
                if other["uid"] != record["uid"]:
                    other["isDefault"] = False
        return record

    @staticmethod
    def _ds_view(record):
        view = {k: v for k, v in record.items() if k != "secure"}
        view["typeLogoUrl"] = "public/app/plugins/datasource/{}/img/logo.svg".format(record["type"])
        view["secureJsonFields"] = dict.fromkeys(record["secure"], True)
        return view

    def _find_ds(self, by, key):
        for record in self.state.data["datasources"].values():
            if (by == "id" and str(record["id"]) == str(key)) or (by != "id" and record[by] == key):
                return record
        return None

    def _ds(self, by, key):
        record = self._find_ds(by, urllib.parse.unquote(key))
        if record is None:
            raise ApiError(404, "Data source not found")
        return record

    def list_datasources(self, **_):
        keys = (
            "id",
            "uid",
            "orgId",
            "name",
            "type",
            "typeName",
            "typeLogoUrl",
            "access",
            "url",
            "user",
            "database",
            "basicAuth",
            "isDefault",
            "jsonData",
            "readOnly",
        )
        result = []
        for record in sorted(self.state.data["datasources"].values(), key=lambda r: r["name"].lower()):
            view = self._ds_view(record)
            view["typeName"] = record["type"].capitalize()
            result.append({k: view.get(k) for k in keys})
        return 200, result

    def _validate_ds(self, body, existing):
        if not body.get("name"):
            raise ApiError(400, "bad request data")
        if not body.get("type"):
            raise ApiError(400, "bad request data")
        url = body.get("url") or ""
        if url and (re.search(r"\s", url) or ("://" not in url and not url.startswith("/"))):
            raise ApiError(400, "Validation error, invalid URL")
        uid = body.get("uid")
        if uid and (len(uid) > 40 or not UID_RE.match(uid)):
            raise ApiError(400, "Failed to add datasource: invalid UID for datasource")
        for other in self.state.data["datasources"].values():
            if existing is not None and other is existing:
                continue
            if other["name"] == body["name"]:
                raise ApiError(409, "data source with the same name already exists")
            if existing is None and uid and other["uid"] == uid:
                raise ApiError(409, "data source with the same uid already exists")

    def create_datasource(self, body, **_):
        self._validate_ds(body, None)
        record = self._ds_record(body, None)
        self.state.data["datasources"][record["uid"]] = record
        return 200, {
            "datasource": self._ds_view(record),
            "id": record["id"],
            "message": "Datasource added",
            "name": record["name"],
        }

    def ds_get(self, by):
        def handler(key, **_):
            return 200, self._ds_view(self._ds(by, key))

        return handler

    def ds_id_by_name(self, name, **_):
        return 200, {"id": self._ds("name", name)["id"]}

    def ds_update(self, by):
        def handler(key, body, **_):
            existing = self._ds(by, key)
            if existing["readOnly"]:
                raise ApiError(403, "Cannot update read-only data source")
            body_version = body.get("version") or 0
            if body_version and existing["version"] >= body_version + 1:
                raise ApiError(
                    409, "Datasource has already been updated by someone else. Please reload and try again"
                )
            self._validate_ds(body, existing)
            record = self._ds_record(body, existing)
            record["uid"] = body.get("uid") or existing["uid"]
            self.state.data["datasources"].pop(existing["uid"])
            self.state.data["datasources"][record["uid"]] = record
            return 200, {
                "datasource": self._ds_view(record),
                "id": record["id"],
                "message": "Datasource updated",
                "name": record["name"],
            }

        return handler

    def ds_delete(self, by):
        def handler(key, **_):
            record = self._ds(by, key)
            if record["readOnly"]:
                raise ApiError(403, "Cannot delete read-only data source")
            del self.state.data["datasources"][record["uid"]]
            return 200, {"message": "Data source deleted", "id": record["id"]}

        return handler

    # -- metrics --------------------------------------------------------------------------------
    def count_response(self, status):
        with self.state.lock:
            counts = self.state.data["responses"]
            counts[str(status)] = counts.get(str(status), 0) + 1

    def metrics(self):
        with self.state.lock:
            data = self.state.data
            by_type = {}
            for record in data["datasources"].values():
                by_type[record["type"]] = by_type.get(record["type"], 0) + 1
            lines = [
                "# HELP grafana_build_info A metric with a constant '1' value labeled by version, revision, "
                "branch, and goversion from which Grafana was built",
                "# TYPE grafana_build_info gauge",
                'grafana_build_info{branch="test-double",edition="oss",goversion="none",revision="test-double",'
                f'version="{self.version}"}} 1',
                "# HELP grafana_test_double 1 when served by the project's Grafana API test double",
                "# TYPE grafana_test_double gauge",
                "grafana_test_double 1",
                "# HELP grafana_stat_totals_dashboard total amount of dashboards",
                "# TYPE grafana_stat_totals_dashboard gauge",
                f"grafana_stat_totals_dashboard {len(data['dashboards'])}",
                "# HELP grafana_stat_total_users total amount of users",
                "# TYPE grafana_stat_total_users gauge",
                f"grafana_stat_total_users {len(data['users'])}",
                "# HELP grafana_stat_totals_datasource total number of datasources, labeled by pluginId",
                "# TYPE grafana_stat_totals_datasource gauge",
            ]
            lines += [
                f'grafana_stat_totals_datasource{{plugin_id="{k}"}} {v}' for k, v in sorted(by_type.items())
            ]
            lines += [
                "# HELP grafana_api_response_status_total api http response status",
                "# TYPE grafana_api_response_status_total counter",
            ]
            lines += [
                f'grafana_api_response_status_total{{code="{k}"}} {v}'
                for k, v in sorted(data["responses"].items())
            ]
        return "\n".join(lines) + "\n"


class Handler(BaseHTTPRequestHandler):
    server_version = "grafana-api-test-double/" + GRAFANA_VERSION
    protocol_version = "HTTP/1.1"
    grafana: Grafana = None  # set by make_server

    def _send(self, status, payload, content_type="application/json"):
        body = (
            payload
            if isinstance(payload, bytes)
            else (payload.encode() if isinstance(payload, str) else json.dumps(payload).encode())
        )
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Test-Double", "grafana-api")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.grafana.count_response(status)

    def _handle(self):
        parsed = urllib.parse.urlsplit(self.path)
        path = parsed.path.rstrip("/") or "/"
        query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if path == "/healthz":
            return self._send(200, "Ok", "text/plain; charset=utf-8")
        if path == "/metrics" and self.command == "GET":
            return self._send(200, self.grafana.metrics(), "text/plain; version=0.0.4; charset=utf-8")
        if path == "/api/search/":
            path = "/api/search"
        body = {}
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                return self._send(400, {"message": "bad request data"})
            if not isinstance(body, dict):
                return self._send(400, {"message": "bad request data"})
        try:
            status, payload = self.grafana.dispatch(
                self.command, path, query, body, self.headers.get("Authorization")
            )
        except ApiError as exc:
            status, payload = exc.http_status, exc.body
        except Exception as exc:
            sys.stderr.write(f"[grafana-TEST-DOUBLE] internal error: {exc!r}\n")
            status, payload = 500, {"message": "Internal Server Error"}
        return self._send(status, payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    def log_message(self, fmt, *args):
        sys.stderr.write(f"[grafana-TEST-DOUBLE] {self.address_string()} {fmt % args}\n")


def make_server(listen, grafana):
    host, _, port = listen.rpartition(":")
    handler = type("BoundHandler", (Handler,), {"grafana": grafana})
    return ThreadingHTTPServer((host.strip("[]") or "127.0.0.1", int(port)), handler)


def read_secret(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:3000", help="host:port (default 127.0.0.1:3000)")
    parser.add_argument("--admin-user", default="admin")
    parser.add_argument("--admin-password-file", help="file holding the initial admin password")
    parser.add_argument("--state-file", help="JSON file that keeps state across restarts (mode 0600)")
    parser.add_argument("--token-file", help="file holding a bearer token accepted with the Admin role")
    parser.add_argument(
        "--provisioning",
        help="JSON file {datasources: [...], dashboards: [{dashboard, folderUid}]} "
        "loaded as provisioned (read-only) objects",
    )
    parser.add_argument(
        "--version", dest="grafana_version", default=GRAFANA_VERSION, help="version reported by /api/health"
    )
    args = parser.parse_args(argv)
    sys.stderr.write(BANNER + "\n")
    state = State(args.state_file)
    grafana = Grafana(state, args.grafana_version)
    password = read_secret(args.admin_password_file) if args.admin_password_file else "admin"
    if not grafana.bootstrap_admin(args.admin_user, password):
        sys.stderr.write(
            f"[grafana-TEST-DOUBLE] admin user {args.admin_user!r} exists in the state file; "
            "like Grafana, the "
            "start-up admin password is ignored\n"
        )
    if args.token_file:
        grafana.add_token(read_secret(args.token_file))
    if args.provisioning:
        with open(args.provisioning, encoding="utf-8") as handle:
            grafana.provision(json.load(handle))
    state.save()
    server = make_server(args.listen, grafana)
    sys.stderr.write(
        "[grafana-TEST-DOUBLE] listening on http://{}:{} (NOT GRAFANA)\n".format(*server.server_address[:2])
    )
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
