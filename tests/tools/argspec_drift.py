#!/usr/bin/env python3
"""Fail when a role's defaults and its meta/argument_specs.yml `main` options disagree.

Every variable in defaults/main.yml (or defaults/main/*.yml) must be an argument_specs option,
and every option must have a default there, except options marked `required: true` (values set
elsewhere, e.g. project-wide ports in playbooks/defaults/topology.yml). Names starting with
`_` are private and ignored. Usage: argspec_drift.py [ROLES_DIR ...] (default: ./roles)
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml


def _load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping")
    return data


def default_keys(role: Path) -> set[str] | None:
    files = [role / "defaults" / "main.yml", role / "defaults" / "main.yaml"]
    files += (
        sorted((role / "defaults" / "main").glob("*.y*ml")) if (role / "defaults" / "main").is_dir() else []
    )
    files = [f for f in files if f.is_file()]
    if not files:
        return None
    keys: set[str] = set()
    for path in files:
        keys |= set(_load(path))
    return {k for k in keys if not k.startswith("_")}


def spec_options(role: Path) -> tuple[set[str], set[str]] | None:
    """(all public options, required options) of the `main` entry point."""
    for name in ("argument_specs.yml", "argument_specs.yaml"):
        path = role / "meta" / name
        if path.is_file():
            options = ((_load(path).get("argument_specs") or {}).get("main") or {}).get("options") or {}
            public = {k for k in options if not k.startswith("_")}
            required = {k for k in public if (options[k] or {}).get("required")}
            return public, required
    return None


def check_role(role: Path) -> list[str]:
    defaults = default_keys(role)
    spec = spec_options(role)
    if spec is None:
        return [f"{role.name}: no meta/argument_specs.yml"] if defaults else []
    options, required = spec
    defaults = defaults or set()
    problems = []
    undocumented = sorted(defaults - options)
    if undocumented:
        problems.append(f"{role.name}: in defaults but not in argument_specs: {', '.join(undocumented)}")
    missing = sorted(options - defaults - required)
    if missing:
        problems.append(
            f"{role.name}: in argument_specs without a default (and not required): {', '.join(missing)}"
        )
    contradictory = sorted(defaults & required)
    if contradictory:
        problems.append(f"{role.name}: required in argument_specs but defaulted: {', '.join(contradictory)}")
    return problems


def main(argv: list[str]) -> int:
    roots = [Path(a) for a in argv] or [Path("roles")]
    problems: list[str] = []
    checked = 0
    for root in roots:
        for role in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if (role / "tasks").is_dir() or (role / "defaults").is_dir():
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
