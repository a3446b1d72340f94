"""Every role's meta/argument_specs.yml renders with ansible-doc: each entry point, each option
described. argument_specs is the roles' only option documentation, so what ansible-doc cannot show
an operator does not exist for them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir() and not p.name.startswith("."))
# The ansible-doc of the interpreter running the tests (the project's venv), not one from PATH.
ANSIBLE_DOC = Path(sys.executable).parent / "ansible-doc"


def spec_entry_points(role):
    path = ROOT / "roles" / role / "meta" / "argument_specs.yml"
    assert path.is_file(), f"roles/{role} has no meta/argument_specs.yml"
    specs = yaml.safe_load(path.read_text()) or {}
    return specs.get("argument_specs") or {}


def undescribed(options, prefix=""):
    """Dotted names of options (and sub-options) whose description is empty."""
    missing = []
    for name, option in (options or {}).items():
        description = option.get("description")
        if isinstance(description, list):
            description = " ".join(str(d) for d in description)
        if not str(description or "").strip():
            missing.append(prefix + name)
        missing += undescribed(option.get("options"), f"{prefix}{name}.")
    return missing


def test_every_role_is_listed():
    # Guards against the parametrization silently running over no roles.
    assert "redis" in ROLES


@pytest.mark.parametrize("role", ROLES)
def test_ansible_doc_renders_every_entry_point_and_option(role):
    assert (ROOT / ".cache/collections/ansible_collections/autodealgenie/ops").exists(), (
        "collection link missing: run tests/tools/bootstrap.sh"
    )
    fqcn = f"autodealgenie.ops.{role}"
    result = subprocess.run(
        [str(ANSIBLE_DOC), "-t", "role", "-j", fqcn],
        cwd=ROOT,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"ansible-doc {fqcn} exited {result.returncode}:\n{result.stderr}"
    # An unknown role is not an error for ansible-doc: it prints {} and exits 0.
    docs = json.loads(result.stdout).get(fqcn)
    assert docs, f"ansible-doc knows no role {fqcn}:\n{result.stderr}"

    expected = spec_entry_points(role)
    assert expected, f"roles/{role}/meta/argument_specs.yml has no entry points"
    rendered = docs.get("entry_points") or {}
    assert sorted(rendered) == sorted(expected)
    for entry, spec in expected.items():
        options = rendered[entry].get("options") or {}
        assert sorted(options) == sorted((spec or {}).get("options") or {}), f"entry point {entry}"
        assert undescribed(options) == [], f"{fqcn} entry point {entry}: options without a description"
