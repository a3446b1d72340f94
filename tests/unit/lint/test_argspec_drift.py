"""Tests for tests/tools/argspec_drift.py on throw-away roles."""

import importlib.util
import textwrap
from pathlib import Path

import pytest
import yaml

_SPEC = importlib.util.spec_from_file_location(
    "argspec_drift", Path(__file__).resolve().parents[3] / "tests/tools/argspec_drift.py"
)
drift = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(drift)


def make_role(root, name, defaults, options, entry_points=None, tasks=("main",)):
    """A role with defaults/main.yml (text), a `main` entry point (name -> option dict, each given a
    description unless it has one) plus further entry points, and the named task files."""
    role = root / name
    for sub in ("defaults", "meta", "tasks"):
        (role / sub).mkdir(parents=True)
    if defaults is not None:
        (role / "defaults" / "main.yml").write_text(textwrap.dedent(defaults))
    specs = {}
    if options is not None:
        specs["main"] = {"options": {k: {"description": f"{k}.", **v} for k, v in options.items()}}
    specs.update(entry_points or {})
    (role / "meta" / "argument_specs.yml").write_text(yaml.safe_dump({"argument_specs": specs}))
    for task in tasks:
        (role / "tasks" / f"{task}.yml").write_text("---\n[]\n")
    return role


def run(tmp_path, capsys):
    """(exit status, problem lines) of the checker over tmp_path."""
    rc = drift.main([str(tmp_path)])
    err = capsys.readouterr().err
    return rc, [line.removeprefix("argspec drift: ") for line in err.splitlines()]


def test_clean_role_passes_with_required_private_and_templated(tmp_path, capsys):
    make_role(
        tmp_path,
        "ok",
        """\
        ok_name: a
        ok_port: 8080
        ok_ratio: 0.5
        ok_enabled: false
        ok_users: [a, b]
        ok_settings: {k: 1}
        ok_dir: /var/lib/ok
        ok_anything: [1, {a: b}]
        ok_address: "{{ ansible_facts['default_ipv4']['address'] }}"
        ok_listen: ["{{ ok_address }}", 127.0.0.1]
        ok_flag_from_fact: "{{ ansible_facts['virtualization_type'] == 'docker' }}"
        _ok_private: 1
        __ok_internal: {}
        """,
        {
            "ok_name": {"type": "str", "default": "a"},
            "ok_port": {"type": "int", "default": 8080},
            "ok_ratio": {"type": "float"},
            "ok_enabled": {"type": "bool", "default": False},
            "ok_users": {"type": "list", "elements": "str", "default": ["a", "b"]},
            "ok_settings": {"type": "dict", "default": {"k": 1}},
            "ok_dir": {"type": "path"},
            "ok_anything": {"type": "raw"},
            "ok_address": {"type": "str", "default": "{{ ansible_facts['default_ipv4']['address'] }}"},
            "ok_listen": {"type": "list", "elements": "str"},
            "ok_flag_from_fact": {"type": "bool"},
            "ok_password": {"type": "str", "required": True, "no_log": True},
            "_ok_undocumented_private": {},
        },
    )
    assert run(tmp_path, capsys) == (0, [])


def test_missing_in_spec_and_missing_in_defaults(tmp_path, capsys):
    make_role(
        tmp_path, "bad", "bad_a: 1\nbad_extra: 2\n", {"bad_a": {"type": "int"}, "bad_gone": {"type": "str"}}
    )
    rc, problems = run(tmp_path, capsys)
    assert rc == 1
    assert problems == [
        "bad: bad_extra: in defaults/ but not in argument_specs main",
        "bad: bad_gone: in argument_specs main without a default in defaults/",
    ]


def test_required_option_must_not_be_defaulted(tmp_path, capsys):
    make_role(tmp_path, "req", "req_port: 1\n", {"req_port": {"type": "int", "required": True}})
    assert run(tmp_path, capsys) == (1, ["req: req_port: required: true in argument_specs but has a default"])


def test_required_option_must_not_declare_a_default_in_the_spec(tmp_path, capsys):
    make_role(tmp_path, "req", "", {"req_port": {"type": "int", "required": True, "default": 1}})
    assert run(tmp_path, capsys) == (1, ["req: req_port: required: true and a default in argument_specs"])


@pytest.mark.parametrize(
    ("declared", "value", "shown", "found"),
    [
        ("int", '"8080"', "'8080'", "str"),
        ("int", "true", "True", "bool"),
        ("int", "1.5", "1.5", "float"),
        ("bool", '"yes"', "'yes'", "str"),
        ("bool", "1", "1", "int"),
        ("str", "8080", "8080", "int"),
        ("str", "false", "False", "bool"),
        ("str", "2024-01-01", "datetime.date(2024, 1, 1)", "date"),
        ("path", "[/a]", "['/a']", "list"),
        ("float", '"0.5"', "'0.5'", "str"),
        ("float", "false", "False", "bool"),
        ("list", "{a: 1}", "{'a': 1}", "dict"),
        ("list", '"a,b"', "'a,b'", "str"),
        ("dict", "[a, b]", "['a', 'b']", "list"),
        ("dict", '""', "''", "str"),
    ],
)
def test_type_mismatch_is_reported(tmp_path, capsys, declared, value, shown, found):
    make_role(tmp_path, "typ", f"typ_opt: {value}\n", {"typ_opt": {"type": declared}})
    assert run(tmp_path, capsys) == (
        1,
        [f"typ: typ_opt: default {shown} is {found}, argument_specs says type {declared}"],
    )


def test_int_is_accepted_for_float_and_null_for_any_type(tmp_path, capsys):
    make_role(
        tmp_path,
        "num",
        "num_timeout: 5\nnum_unset: null\nnum_unset_list:\n",
        {"num_timeout": {"type": "float"}, "num_unset": {"type": "int"}, "num_unset_list": {"type": "list"}},
    )
    assert run(tmp_path, capsys) == (0, [])


def test_literal_list_items_are_checked_against_elements(tmp_path, capsys):
    make_role(
        tmp_path,
        "el",
        """\
        el_names: [a, 2, "{{ el_other }}", true]
        el_ports: [80, "443"]
        el_maps: [{a: 1}, b]
        """,
        {
            "el_names": {"type": "list", "elements": "str"},
            "el_ports": {"type": "list", "elements": "int"},
            "el_maps": {"type": "list", "elements": "dict"},
        },
    )
    rc, problems = run(tmp_path, capsys)
    assert rc == 1
    assert problems == [
        "el: el_maps: default item 1 'b' is str, argument_specs says elements dict",
        "el: el_names: default item 1 2 is int, argument_specs says elements str",
        "el: el_names: default item 3 True is bool, argument_specs says elements str",
        "el: el_ports: default item 1 '443' is str, argument_specs says elements int",
    ]


@pytest.mark.parametrize(
    ("in_defaults", "in_spec", "declared"),
    [
        ("8080", 8081, "int"),
        ("[a, b]", ["b", "a"], "list"),
        ("{a: 1}", {"a": 1, "b": 2}, "dict"),
        ("true", 1, "raw"),  # equal in Python, not in YAML
        ("1", 1.0, "float"),
        ('"{{ x }}"', "{{x}}", "str"),  # templated values are compared unrendered
        ("null", "", "str"),
    ],
)
def test_default_value_differs(tmp_path, capsys, in_defaults, in_spec, declared):
    make_role(
        tmp_path, "val", f"val_opt: {in_defaults}\n", {"val_opt": {"type": declared, "default": in_spec}}
    )
    rc, problems = run(tmp_path, capsys)
    assert rc == 1
    assert [p for p in problems if "default differs" in p] == [
        f"val: val_opt: default differs: defaults/ has {yaml.safe_load(in_defaults)!r}, "
        f"argument_specs has {in_spec!r}"
    ]


def test_folded_spec_default_equal_to_defaults_passes(tmp_path, capsys):
    make_role(tmp_path, "fold", "fold_rules: -@all +info\n", {"fold_rules": {"type": "str"}})
    spec = tmp_path / "fold" / "meta" / "argument_specs.yml"
    spec.write_text(
        "argument_specs:\n  main:\n    options:\n      fold_rules:\n        type: str\n"
        "        description: Rules.\n        default: >-\n          -@all\n          +info\n"
    )
    assert run(tmp_path, capsys) == (0, [])


def test_no_log_values_are_not_printed(tmp_path, capsys):
    make_role(
        tmp_path,
        "sec",
        "sec_token: s3cr3t-value\n",
        {"sec_token": {"type": "int", "no_log": True, "default": "other-s3cr3t"}},
    )
    rc, problems = run(tmp_path, capsys)
    assert rc == 1
    assert len(problems) == 3  # the spec default's type, the default's type, the values differ
    assert not any("s3cr3t" in p for p in problems)
    assert "sec: sec_token: default (not shown: no_log) is str, argument_specs says type int" in problems


def test_every_option_needs_a_known_type_and_a_description(tmp_path, capsys):
    make_role(
        tmp_path,
        "doc",
        "doc_a: x\ndoc_b: x\ndoc_c: x\ndoc_d: [x]\n",
        {
            "doc_a": {"description": ""},
            "doc_b": {"type": "string"},
            "doc_c": {"type": "str", "description": [" "]},
            "doc_d": {"type": "list", "elements": "text"},
        },
    )
    rc, problems = run(tmp_path, capsys)
    assert rc == 1
    assert problems == [
        "doc: doc_a: no type in argument_specs",
        "doc: doc_a: no description in argument_specs",
        "doc: doc_b: type 'string' is not one of str, path, int, float, bool, list, dict, raw",
        "doc: doc_c: no description in argument_specs",
        "doc: doc_d: elements 'text' is not one of str, path, int, float, bool, list, dict, raw",
    ]


def test_defaults_split_into_directory(tmp_path, capsys):
    role = make_role(tmp_path, "split", None, {"split_a": {"type": "int"}, "split_b": {"type": "str"}})
    (role / "defaults" / "main").mkdir()
    (role / "defaults" / "main" / "a.yml").write_text("split_a: 1\n")
    (role / "defaults" / "main" / "b.yaml").write_text("split_b: 2\n")
    rc, problems = run(tmp_path, capsys)
    assert (rc, problems) == (1, ["split: split_b: default 2 is int, argument_specs says type str"])
    (role / "defaults" / "main" / "b.yaml").write_text("split_b: two\n")
    assert run(tmp_path, capsys) == (0, [])
    (role / "defaults" / "main" / "c.yml").write_text("split_a: 3\n")
    assert run(tmp_path, capsys) == (
        1,
        ["split: split_a: defined in both defaults/main/a.yml and defaults/main/c.yml"],
    )


def test_non_main_entry_points_are_validated(tmp_path, capsys):
    entry_points = {
        "listen_address": {
            "options": {
                "shared_address": {"type": "str", "description": "Address to check."},
                "shared_port": {"description": "Port."},
                "shared_wildcard_ok": {"type": "bool", "default": "no"},
                "_shared_private": {},
            }
        },
        "python_wheels": {"options": {"shared_wheels": {"type": "list", "description": "Wheels."}}},
        "package_pending": {"options": {"shared_package": {"type": "str", "description": "Package."}}},
    }
    make_role(tmp_path, "shared", None, None, entry_points, tasks=("listen_address", "python_wheels"))
    rc, problems = run(tmp_path, capsys)
    assert rc == 1
    assert problems == [
        "shared: entry point listen_address: shared_port: no type in argument_specs",
        "shared: entry point listen_address: shared_wildcard_ok: no description in argument_specs",
        "shared: entry point listen_address: shared_wildcard_ok: argument_specs default 'no' is str, "
        "argument_specs says type bool",
        "shared: entry point package_pending: no tasks/package_pending.yml",
    ]


def test_role_with_only_tasks_from_entry_points_needs_no_main(tmp_path, capsys):
    entry_points = {"package_pending": {"options": {"p_name": {"type": "str", "description": "Package."}}}}
    make_role(tmp_path, "shared", None, None, entry_points, tasks=("package_pending",))
    assert run(tmp_path, capsys) == (0, [])


def test_main_is_required_when_the_role_has_defaults_or_tasks_main(tmp_path, capsys):
    entry_points = {"extra": {"options": {}}}
    make_role(tmp_path, "a", "a_x: 1\n", None, entry_points, tasks=("main", "extra"))
    make_role(tmp_path, "b", None, None, entry_points, tasks=("main", "extra"))
    assert run(tmp_path, capsys) == (
        1,
        ["a: argument_specs has no main entry point", "b: argument_specs has no main entry point"],
    )


def test_role_without_or_with_empty_argument_specs(tmp_path, capsys):
    (tmp_path / "nospec" / "defaults").mkdir(parents=True)
    (tmp_path / "nospec" / "defaults" / "main.yml").write_text("nospec_a: 1\n")
    (tmp_path / "empty" / "meta").mkdir(parents=True)
    # ansible-doc crashes on this one, so the drift check names it.
    (tmp_path / "empty" / "meta" / "argument_specs.yml").write_text("---\nargument_specs:\n")
    (tmp_path / "files_only" / "files").mkdir(parents=True)
    assert run(tmp_path, capsys) == (
        1,
        [
            "empty: empty/meta/argument_specs.yml: argument_specs has no entry points",
            "nospec: no meta/argument_specs.yml",
        ],
    )


def test_ansible_yaml_tags_load(tmp_path, capsys):
    make_role(
        tmp_path,
        "tag",
        "tag_literal: !unsafe '{{ not a template }}'\n",
        {"tag_literal": {"type": "int"}},
    )
    # An !unsafe string is never templated, so it is a plain str and does not pass as int.
    assert run(tmp_path, capsys) == (
        1,
        ["tag: tag_literal: default '{{ not a template }}' is str, argument_specs says type int"],
    )


def test_several_roles_dirs_and_summary(tmp_path, capsys):
    make_role(tmp_path / "one", "r1", "r1_a: 1\n", {"r1_a": {"type": "int"}})
    make_role(tmp_path / "two", "r2", "r2_a: 1\n", {"r2_a": {"type": "str"}})
    assert drift.main([str(tmp_path / "one"), str(tmp_path / "two")]) == 1
    out, err = capsys.readouterr()
    assert out == "argspec drift: 2 roles checked, 1 problems\n"
    assert err == "argspec drift: r2: r2_a: default 1 is int, argument_specs says type str\n"
