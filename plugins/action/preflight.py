"""autodealgenie.ops.preflight: check a whole deployment before anything changes, report every problem."""

from __future__ import annotations

import os
import re
import socket
import subprocess

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.template import Templar, trust_as_template
from ansible_collections.autodealgenie.ops.plugins.plugin_utils.preflight import (
    SENSITIVE_KINDS,
    Deployment,
    HostState,
    Unresolved,
    find_problems,
    report,
)

# Documented in plugins/modules/preflight.py (ansible-doc reads module files, not action plugins).

_EXPRESSION = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_IDENTIFIER = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")
# magic variables a template may name: never the origin of a secret
_NOT_FOLLOWED = frozenset({"hostvars", "groups", "group_names", "inventory_hostname", "ansible_facts"})
_PYTHON_VERSION = "import platform; print(platform.python_version())"


def _roles_dir():
    # this file is <collection>/plugins/action/preflight.py
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "roles")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        components = args.get("components")
        platforms = args.get("platforms")
        if not isinstance(components, list) or not isinstance(platforms, dict):
            raise AnsibleError("preflight: 'components' (a list) and 'platforms' (a mapping) are required")
        probe_var = args.get("probe_var", "preflight_probe")
        facts_var = args.get("facts_var", "preflight_setup")

        hostvars = task_vars["hostvars"]
        groups = {name: list(members) for name, members in task_vars["groups"].items()}
        play_hosts = list(task_vars.get("ansible_play_hosts_all") or [])
        self._hostvars = hostvars
        self._components = {c.get("name"): c for c in components}
        self._defaults = {}
        self._contexts = {}
        self._python = {}
        # variables whose rendering errors are not quoted (an error may quote the value)
        self._sensitive = {
            var
            for component in components
            for var, rule in (component.get("checks") or {}).items()
            if (rule or {}).get("kind", "secret") in SENSITIVE_KINDS
        }

        states = {}
        for host in play_hosts:
            raw = hostvars.raw_get(host)
            states[host] = self._state(raw, probe_var, facts_var)

        deployment = Deployment(
            components=components,
            hosts=states,
            groups=groups,
            platforms=platforms,
            resolve=self._resolve,
            evaluate=self._evaluate,
            source=self._source,
            controller_python=self._controller_python,
            resolve_name=_resolves,
            address_var=args.get("address_var", "adg_private_address"),
        )
        problems = find_problems(deployment)
        result["changed"] = False
        result["problem_count"] = len(problems)
        if problems:
            result["failed"] = True
            result["msg"] = report(problems)
        else:
            result["msg"] = f"Preflight: no problem found on {len(states)} host(s)."
        return result

    # --- what the play learned about a host ---------------------------------------------------

    @staticmethod
    def _state(raw, probe_var, facts_var):
        groups = list(raw.get("group_names", []))
        probe = raw.get(probe_var) or {}
        setup = raw.get(facts_var) or {}
        facts = raw.get("ansible_facts") or None
        if probe.get("unreachable"):
            why = _first_line(probe.get("msg", "")).removeprefix("Task failed: ")
            return HostState(groups, reachable=False, unreachable_msg=why)
        if probe and probe.get("rc", 0) != 0:
            return HostState(groups, python3=False)
        if not facts or not facts.get("distribution"):
            # failed_when: false on the setup task leaves its error in msg, not in failed
            why = "the setup task was skipped" if setup.get("skipped") else _first_line(setup.get("msg", ""))
            return HostState(groups, facts=None, facts_msg=why or "the setup task returned no facts")
        return HostState(groups, facts=facts)

    # --- variables as a host sees them --------------------------------------------------------

    def _role_defaults(self, role, kind="defaults"):
        """A role's defaults/ (or vars/) files, merged as Ansible merges them."""
        if (role, kind) not in self._defaults:
            data = {}
            base = os.path.join(_roles_dir(), role, kind)
            files = []
            if os.path.isdir(os.path.join(base, "main")):
                directory = os.path.join(base, "main")
                files = [
                    os.path.join(directory, n)
                    for n in sorted(os.listdir(directory))
                    if n.endswith((".yml", ".yaml"))
                ]
            else:
                files = [
                    os.path.join(base, n)
                    for n in ("main.yml", "main.yaml")
                    if os.path.isfile(os.path.join(base, n))
                ]
            for path in files:
                loaded = self._loader.load_from_file(path, cache="all", trusted_as_template=True)
                if isinstance(loaded, dict):
                    data.update(loaded)
            self._defaults[(role, kind)] = data
        return self._defaults[(role, kind)]

    def _context(self, host):
        """The host's variables over the defaults of the roles it runs (lowest precedence)."""
        if host not in self._contexts:
            raw = self._hostvars.raw_get(host)
            member = set(raw.get("group_names", [])) | {"all"}
            variables, private = {}, {}
            for component in self._components.values():
                if member & set(component.get("groups", [])):
                    for role in component.get("roles", []):
                        variables.update(self._role_defaults(role))
                        # role-private data (`_<role>_*` in vars/) that defaults refer to
                        private.update(
                            {k: v for k, v in self._role_defaults(role, "vars").items() if k.startswith("_")}
                        )
            variables.update(raw)
            for name, value in private.items():
                variables.setdefault(name, value)
            variables["hostvars"] = self._hostvars
            self._contexts[host] = (variables, Templar(loader=self._loader, variables=variables))
        return self._contexts[host]

    def _resolve(self, host, var):
        variables, templar = self._context(host)
        if var not in variables:
            raise Unresolved(f"'{var}' is not defined")
        try:
            return templar.template(variables[var])
        except AnsibleError as exc:
            raise Unresolved(self._error_reason(var, exc)) from None

    def _error_reason(self, var, exc):
        text = _first_line(exc.message)
        undefined = re.search(r"'[A-Za-z0-9_]+' is undefined", text)
        if undefined:
            return undefined.group(0)
        if var in self._sensitive:
            return f"{type(exc).__name__} while rendering it (details withheld: they could quote the value)"
        return f"{type(exc).__name__}: {text}"

    def _evaluate(self, host, expression):
        if isinstance(expression, bool):
            return expression
        _variables, templar = self._context(host)
        try:
            return bool(templar.evaluate_conditional(trust_as_template(str(expression))))
        except AnsibleError as exc:
            raise AnsibleError(f"preflight: condition {expression!r} on {host}: {exc.message}") from None

    def _source(self, host, var):
        """The vault_* variables a value is mapped from, following plain references a few levels
        (backend_postgresql_password -> postgresql_app_password -> vault_postgresql_app_password)."""
        variables, _templar = self._context(host)
        found, seen, todo = [], set(), [(var, 0)]
        while todo:
            name, depth = todo.pop(0)
            if name in seen or depth > 4:
                continue
            seen.add(name)
            for text in _strings(variables.get(name)):
                expressions = " ".join(_EXPRESSION.findall(text))
                for word in _IDENTIFIER.findall(expressions):
                    if word.startswith("vault_"):
                        found.append(word)
                    elif word in variables and word not in _NOT_FOLLOWED:
                        todo.append((word, depth + 1))
        return ",".join(dict.fromkeys(found))

    def _controller_python(self, path):
        if path not in self._python:
            try:
                done = subprocess.run(
                    [path, "-c", _PYTHON_VERSION], capture_output=True, text=True, timeout=30
                )
                self._python[path] = (
                    done.stdout.strip()
                    if done.returncode == 0
                    else Unresolved(f"{path} exited {done.returncode}")
                )
            except (OSError, subprocess.SubprocessError) as exc:
                self._python[path] = Unresolved(f"{path}: {exc.__class__.__name__}")
        answer = self._python[path]
        if isinstance(answer, Unresolved):
            raise answer
        return answer


def _resolves(name):
    try:
        return bool(socket.getaddrinfo(name, None))
    except (OSError, UnicodeError):
        return False


def _strings(raw):
    """The template strings in a raw value (a vaulted value is no str: it is never decrypted here)."""
    if isinstance(raw, str):
        yield raw
    elif isinstance(raw, list | tuple):
        for item in raw:
            yield from _strings(item)
    elif isinstance(raw, dict):
        for item in raw.values():
            yield from _strings(item)


def _first_line(text):
    return to_text(text).strip().splitlines()[0] if to_text(text).strip() else ""
