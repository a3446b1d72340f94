#!/usr/bin/env python3
"""Fail when a role's defaults and its meta/argument_specs.yml disagree.

For every role under each ROLES_DIR (default: ./roles):

- names: every public variable of defaults/main.yml (or defaults/main/*.yml) is an option of the
  `main` entry point and every `main` option has a default there, except options marked
  `required: true`, which must have none (a default would make `required` meaningless);
- types: each default's YAML type agrees with the option's `type` (and list items with `elements`);
  a templated string ("{{ ... }}") is accepted for any type, null for any non-required option
  (Ansible skips type checks of unset values too);
- default values: an option that declares `default:` must declare exactly the value in defaults/
  (templated values are compared as strings, unrendered);
- every option of every entry point has a `type` and a non-empty `description` (ansible-doc
  renders them); an entry point other than `main` is a tasks_from entry point, so it needs
  tasks/<name>.yml and has no defaults file of its own. A role that has only such entry points
  (and neither defaults nor tasks/main.yml) needs no `main`.

Names starting with `_` are private and ignored. One line per problem on stderr, exit status 1 if
there is any. Usage: argspec_drift.py [ROLES_DIR ...]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

YAML_SUFFIXES = (".yml", ".yaml")
# The option types the roles may declare and the YAML types a literal default of each may have.
# float accepts an int (Ansible converts it without loss); raw accepts anything.
TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "path": (str,),
    "int": (int,),
    "float": (float, int),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
    "raw": (object,),
}


class _Unsafe(str):
    """A `!unsafe` string: Ansible never templates it, so it is a literal, never "templated"."""


class _Vaulted(str):
    """An inline `!vault` value: an encrypted string."""


class _Loader(yaml.SafeLoader):
    """SafeLoader plus the two tags Ansible adds to YAML."""


_Loader.add_constructor("!unsafe", lambda loader, node: _Unsafe(loader.construct_scalar(node)))
_Loader.add_constructor("!vault", lambda loader, node: _Vaulted(loader.construct_scalar(node)))


def _load(path: Path) -> dict:
    data = yaml.load(path.read_text(), Loader=_Loader) or {}  # noqa: S506 - SafeLoader subclass
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping")
    return data


def _yaml_files(base: Path, allow_dir: bool = False) -> list[Path]:
    """base.yml / base.yaml, and with allow_dir every YAML file under base/ (as Ansible loads vars)."""
    files = [base.with_name(base.name + s) for s in YAML_SUFFIXES]
    files = [f for f in files if f.is_file()]
    if allow_dir and base.is_dir():
        files += sorted(f for f in base.rglob("*") if f.is_file() and f.suffix in YAML_SUFFIXES)
    return files


def is_templated(value: Any) -> bool:
    return isinstance(value, str) and not isinstance(value, _Unsafe) and ("{{" in value or "{%" in value)


def yaml_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    for name in ("int", "float", "str", "list", "dict"):
        if isinstance(value, TYPES[name][0]):
            return name
    return type(value).__name__


def type_agrees(value: Any, declared: str) -> bool:
    if is_templated(value) or declared == "raw":
        return True
    # bool is a subclass of int in Python, not in YAML: `true` is no int and no float.
    if isinstance(value, bool) and declared != "bool":
        return False
    return isinstance(value, TYPES[declared])


def same(a: Any, b: Any) -> bool:
    """Equal and of the same YAML type all the way down (True is not 1, 1 is not 1.0)."""
    if yaml_type(a) != yaml_type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _show(value: Any, secret: bool) -> str:
    return "(not shown: no_log)" if secret else repr(value)


def default_values(role: Path) -> tuple[dict[str, Any], list[str]] | None:
    """Public defaults of the role merged over defaults/main*, plus problems (keys defined twice)."""
    files = _yaml_files(role / "defaults" / "main", allow_dir=True)
    if not files:
        return None
    values: dict[str, Any] = {}
    origin: dict[str, Path] = {}
    problems = []
    for path in files:
        for key, value in _load(path).items():
            if key in origin:
                # Which one wins depends on Ansible's load order: make the split unambiguous.
                problems.append(
                    f"{role.name}: {key}: defined in both {origin[key].relative_to(role)} "
                    f"and {path.relative_to(role)}"
                )
            values[key], origin[key] = value, path
    return {k: v for k, v in values.items() if not str(k).startswith("_")}, problems


def entry_points(role: Path) -> dict[str, dict] | None:
    for path in _yaml_files(role / "meta" / "argument_specs"):
        specs = _load(path).get("argument_specs")
        if not isinstance(specs, dict) or not specs:
            raise ValueError(f"{path.relative_to(role.parent)}: argument_specs has no entry points")
        return {name: spec or {} for name, spec in specs.items()}
    return None


def check_option(role: str, entry: str, name: str, option: Any) -> list[str]:
    """type and description present, type known, a declared default of that type."""
    where = f"{role}: {name}" if entry == "main" else f"{role}: entry point {entry}: {name}"
    if not isinstance(option, dict):
        return [f"{where}: option is not a mapping"]
    problems = []
    declared = option.get("type")
    if declared is None:
        problems.append(f"{where}: no type in argument_specs")
    elif declared not in TYPES:
        problems.append(f"{where}: type {declared!r} is not one of {', '.join(TYPES)}")
    elements = option.get("elements")
    if elements is not None and elements not in TYPES:
        problems.append(f"{where}: elements {elements!r} is not one of {', '.join(TYPES)}")
    description = option.get("description")
    if isinstance(description, list):
        description = " ".join(str(d) for d in description)
    if not str(description or "").strip():
        problems.append(f"{where}: no description in argument_specs")
    if option.get("required") and "default" in option:
        problems.append(f"{where}: required: true and a default in argument_specs")
    if "default" in option and declared in TYPES:
        problems += check_value(where, "argument_specs default", option["default"], option)
    return problems


def check_value(where: str, what: str, value: Any, option: dict) -> list[str]:
    """The YAML type of value (and of its literal list items) against the option's type/elements."""
    declared, elements = option.get("type"), option.get("elements")
    secret = bool(option.get("no_log"))
    if value is None or declared not in TYPES:
        return []
    if not type_agrees(value, declared):
        shown = _show(value, secret)
        return [f"{where}: {what} {shown} is {yaml_type(value)}, argument_specs says type {declared}"]
    problems = []
    if declared == "list" and isinstance(value, list) and elements in TYPES:
        for index, item in enumerate(value):
            if not type_agrees(item, elements):
                problems.append(
                    f"{where}: {what} item {index} {_show(item, secret)} is {yaml_type(item)}, "
                    f"argument_specs says elements {elements}"
                )
    return problems


def check_role(role: Path) -> list[str]:
    loaded = default_values(role)
    defaults, problems = loaded if loaded is not None else ({}, [])
    specs = entry_points(role)
    has_main_tasks = bool(_yaml_files(role / "tasks" / "main"))
    if specs is None:
        if defaults or has_main_tasks:
            problems.append(f"{role.name}: no meta/argument_specs.yml")
        return problems

    for entry, spec in specs.items():
        options = spec.get("options") or {}
        if not isinstance(options, dict):
            problems.append(f"{role.name}: entry point {entry}: options is not a mapping")
            continue
        if entry != "main" and not _yaml_files(role / "tasks" / entry):
            problems.append(f"{role.name}: entry point {entry}: no tasks/{entry}.yml")
        for name, option in options.items():
            if not str(name).startswith("_"):
                problems += check_option(role.name, entry, name, option)

    if "main" not in specs:
        if defaults or has_main_tasks:
            problems.append(f"{role.name}: argument_specs has no main entry point")
        return problems

    options = {
        k: v if isinstance(v, dict) else {}
        for k, v in (specs["main"].get("options") or {}).items()
        if not str(k).startswith("_")
    }
    for name in sorted(set(defaults) | set(options), key=str):
        if name not in options:
            problems.append(f"{role.name}: {name}: in defaults/ but not in argument_specs main")
            continue
        option = options[name]
        if name not in defaults:
            if not option.get("required"):
                problems.append(f"{role.name}: {name}: in argument_specs main without a default in defaults/")
            continue
        if option.get("required"):
            problems.append(f"{role.name}: {name}: required: true in argument_specs but has a default")
        value = defaults[name]
        problems += check_value(f"{role.name}: {name}", "default", value, option)
        if "default" in option and not same(option["default"], value):
            secret = bool(option.get("no_log"))
            problems.append(
                f"{role.name}: {name}: default differs: defaults/ has {_show(value, secret)}, "
                f"argument_specs has {_show(option['default'], secret)}"
            )
    return problems


def is_role(path: Path) -> bool:
    return (
        path.is_dir()
        and not path.name.startswith(".")
        and any((path / sub).is_dir() for sub in ("tasks", "defaults", "meta"))
    )


def main(argv: list[str]) -> int:
    roots = [Path(a) for a in argv] or [Path("roles")]
    problems: list[str] = []
    checked = 0
    for root in roots:
        if not root.is_dir():
            problems.append(f"{root}: not a directory")
            continue
        for role in sorted(p for p in root.iterdir() if is_role(p)):
            checked += 1
            try:
                problems += check_role(role)
            except (ValueError, yaml.YAMLError) as exc:
                problems.append(f"{role.name}: {exc}")
    for problem in problems:
        print(f"argspec drift: {problem}", file=sys.stderr)
    print(f"argspec drift: {checked} roles checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
