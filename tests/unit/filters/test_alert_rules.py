"""Unit tests for plugins/filter/alert_rules.py (autodealgenie.ops.alert_rules)."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.autodealgenie.ops.plugins.filter import alert_rules as plugin

from tests.support.paths import REPO, RULES_FILE

alert_rules = plugin.alert_rules

RULES_TEXT = RULES_FILE.read_text()


def _alerts(rules):
    return {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"]}


def _groups(rules):
    return {group["name"]: group for group in rules["groups"]}


def test_registered_under_its_name():
    assert plugin.FilterModule().filters()["alert_rules"] is alert_rules


def test_no_overrides_returns_the_file_unchanged():
    assert alert_rules(RULES_TEXT) == yaml.safe_load(RULES_TEXT)


def test_accepts_parsed_structure_and_does_not_modify_it():
    parsed = yaml.safe_load(RULES_TEXT)
    before = copy.deepcopy(parsed)
    result = alert_rules(parsed, for_overrides={"ServiceDown": "10s"}, interval="5s")
    assert parsed == before
    assert _alerts(result)["ServiceDown"]["for"] == "10s"


def test_for_override_changes_only_the_named_alert():
    result = alert_rules(RULES_TEXT, for_overrides={"ServiceDown": "10s", "DatabaseDown": "0s"})
    original = _alerts(yaml.safe_load(RULES_TEXT))
    alerts = _alerts(result)
    assert alerts["ServiceDown"]["for"] == "10s"
    assert alerts["DatabaseDown"]["for"] == "0s"
    unchanged = set(alerts) - {"ServiceDown", "DatabaseDown"}
    assert {name: alerts[name] for name in unchanged} == {name: original[name] for name in unchanged}


def test_unknown_alert_name_is_an_error():
    with pytest.raises(AnsibleFilterError, match=r"unknown alert name\(s\) in for_overrides ServiceDwn"):
        alert_rules(RULES_TEXT, for_overrides={"ServiceDwn": "10s"})


@pytest.mark.parametrize("bad", ["10", "ten seconds", "5m30", "1.5s", "", None, "-5s"])
def test_invalid_duration_is_an_error(bad):
    with pytest.raises(AnsibleFilterError, match="not a Prometheus duration"):
        alert_rules(RULES_TEXT, for_overrides={"ServiceDown": bad})


@pytest.mark.parametrize("good", ["0", "0s", "90s", "1h30m", "1d", "500ms", "2w"])
def test_valid_durations_are_accepted(good):
    assert _alerts(alert_rules(RULES_TEXT, for_overrides={"RedisDown": good}))["RedisDown"]["for"] == good


def test_interval_string_applies_to_every_group():
    result = alert_rules(RULES_TEXT, interval="5s")
    assert {group["interval"] for group in result["groups"]} == {"5s"}


def test_interval_mapping_applies_per_group():
    result = alert_rules(RULES_TEXT, interval={"autodealgenie_business": "10s"})
    groups = _groups(result)
    assert groups["autodealgenie_business"]["interval"] == "10s"
    assert groups["autodealgenie_application"]["interval"] == "30s"


def test_unknown_group_in_interval_is_an_error():
    with pytest.raises(AnsibleFilterError, match="unknown group name"):
        alert_rules(RULES_TEXT, interval={"autodealgenie_busines": "10s"})


def test_invalid_interval_is_an_error():
    with pytest.raises(AnsibleFilterError, match="not a Prometheus duration"):
        alert_rules(RULES_TEXT, interval="often")


def test_annotation_bases_make_links_absolute():
    result = alert_rules(
        RULES_TEXT,
        annotations_base={
            "runbook_url": "https://git.example.com/ops/autodealgenie/-/blob/main/",
            "dashboard": "http://grafana.example.com:3000",
        },
    )
    for name, rule in _alerts(result).items():
        assert rule["annotations"]["runbook_url"] == (
            f"https://git.example.com/ops/autodealgenie/-/blob/main/docs/runbooks/{name}.md"
        )
        assert rule["annotations"]["dashboard"].startswith("http://grafana.example.com:3000/d/autodealgenie-")
    assert _alerts(result)["RedisDown"]["annotations"]["dashboard"] == (
        "http://grafana.example.com:3000/d/autodealgenie-database-performance"
    )


def test_runbook_base_ending_in_the_runbook_directory_is_not_repeated():
    result = alert_rules(
        RULES_TEXT, annotations_base={"runbook_url": "https://wiki.example.com/ops/docs/runbooks"}
    )
    assert _alerts(result)["ServiceDown"]["annotations"]["runbook_url"] == (
        "https://wiki.example.com/ops/docs/runbooks/ServiceDown.md"
    )


def test_empty_base_leaves_annotations_alone():
    result = alert_rules(RULES_TEXT, annotations_base={"runbook_url": "", "dashboard": None})
    assert result == yaml.safe_load(RULES_TEXT)


def test_unknown_annotation_name_is_an_error():
    with pytest.raises(AnsibleFilterError, match="unknown annotation name"):
        alert_rules(RULES_TEXT, annotations_base={"runbook": "https://x.example.com"})


@pytest.mark.parametrize(
    ("base", "ref", "expected"),
    [
        ("http://g:3000", "/d/uid", "http://g:3000/d/uid"),
        ("http://g:3000/", "/d/uid", "http://g:3000/d/uid"),
        ("http://g/grafana", "/d/uid", "http://g/grafana/d/uid"),
        ("https://h/repo/blob/main", "docs/runbooks/A.md", "https://h/repo/blob/main/docs/runbooks/A.md"),
        (
            "https://h/repo/blob/main/docs",
            "docs/runbooks/A.md",
            "https://h/repo/blob/main/docs/runbooks/A.md",
        ),
        ("https://h/repo/docs/runbooks/", "docs/runbooks/A.md", "https://h/repo/docs/runbooks/A.md"),
        ("https://h/x", "https://elsewhere/A.md", "https://elsewhere/A.md"),
    ],
)
def test_join_url(base, ref, expected):
    assert plugin.join_url(base, ref) == expected


@pytest.mark.parametrize("bad", ["groups: 3", "- a\n- b", "{", "groups:\n  - rules: []"])
def test_malformed_input_is_an_error(bad):
    with pytest.raises(AnsibleFilterError):
        alert_rules(bad)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_rendered_rules_still_pass_promtool(tmp_path):
    result = alert_rules(
        RULES_TEXT,
        for_overrides={"ServiceDown": "10s"},
        interval="5s",
        annotations_base={"runbook_url": "https://git.example.com/ops", "dashboard": "http://grafana:3000"},
    )
    rendered = tmp_path / "rules.yml"
    rendered.write_text(yaml.safe_dump(result, sort_keys=False))
    check = subprocess.run(["promtool", "check", "rules", str(rendered)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_works_as_an_ansible_filter(tmp_path):
    """The filter resolves by its FQCN from the collections path and returns the overridden structure."""
    ansible = Path(sys.executable).with_name("ansible")
    if not ansible.exists():
        pytest.skip("ansible is not installed next to this Python")
    out = tmp_path / "rendered.yml"
    expr = (
        "{{ lookup('ansible.builtin.file', '" + str(RULES_FILE) + "')"
        " | autodealgenie.ops.alert_rules(for_overrides={'ServiceDown': '10s'}, interval='5s')"
        " | ansible.builtin.to_nice_yaml(sort_keys=false) }}"
    )
    run = subprocess.run(
        [
            str(ansible),
            "localhost",
            "-c",
            "local",
            "-m",
            "ansible.builtin.copy",
            "-a",
            f"content={expr} dest={out}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    rendered = yaml.safe_load(out.read_text())
    assert _alerts(rendered)["ServiceDown"]["for"] == "10s"
    assert {group["interval"] for group in rendered["groups"]} == {"5s"}
    # Alertmanager's Go templates must come through Ansible's templating verbatim
    assert rendered == alert_rules(RULES_TEXT, for_overrides={"ServiceDown": "10s"}, interval="5s")
    assert "{{ $labels.instance }}" in _alerts(rendered)["ServiceDown"]["annotations"]["description"]
