"""Tests for tests/tools/argspec_drift.py on throw-away roles."""

import importlib.util
from pathlib import Path

_SPEC = importlib.util.spec_from_file_location(
    "argspec_drift", Path(__file__).resolve().parents[3] / "tests/tools/argspec_drift.py"
)
drift = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(drift)


def make_role(root, name, defaults, options):
    role = root / name
    (role / "defaults").mkdir(parents=True)
    (role / "meta").mkdir()
    (role / "tasks").mkdir()
    (role / "defaults" / "main.yml").write_text(defaults)
    (role / "meta" / "argument_specs.yml").write_text(
        "argument_specs:\n  main:\n    options:\n" + "".join(f"      {line}\n" for line in options)
    )
    return role


def test_matching_role_passes_with_required_and_private_names(tmp_path):
    make_role(
        tmp_path,
        "ok",
        "ok_port_name: a\n_ok_private: 1\n__ok_internal: 2\n",
        ["ok_port_name: {type: str}", "node_exporter_port: {type: int, required: true}"],
    )
    assert drift.main([str(tmp_path)]) == 0


def test_drift_is_reported_per_role_and_key(tmp_path, capsys):
    make_role(tmp_path, "bad", "bad_a: 1\nbad_extra: 2\n", ["bad_a: {type: int}", "bad_missing: {type: str}"])
    assert drift.main([str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "bad: in defaults but not in argument_specs: bad_extra" in err
    assert "bad: in argument_specs without a default (and not required): bad_missing" in err


def test_defaults_split_into_directory(tmp_path):
    role = make_role(tmp_path, "split", "", ["split_a: {type: int}", "split_b: {type: int}"])
    (role / "defaults" / "main.yml").unlink()
    (role / "defaults" / "main").mkdir()
    (role / "defaults" / "main" / "a.yml").write_text("split_a: 1\n")
    (role / "defaults" / "main" / "b.yml").write_text("split_b: 2\n")
    assert drift.main([str(tmp_path)]) == 0


def test_required_option_must_not_be_defaulted(tmp_path, capsys):
    make_role(tmp_path, "req", "req_port: 1\n", ["req_port: {type: int, required: true}"])
    assert drift.main([str(tmp_path)]) == 1
    assert "required in argument_specs but defaulted: req_port" in capsys.readouterr().err
