"""alert_rules over a rule set: the same overrides are applied to each file of the set that the
prometheus role deploys (every *.yml of prometheus_alert_rules_dir), naming alerts of any file."""

from __future__ import annotations

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.autodealgenie.ops.plugins.filter.alert_rules import alert_rules

from tests.support.paths import RULES_DIR

FILES = {path.name: path.read_text() for path in sorted(RULES_DIR.glob("*.yml"))}
SET = list(FILES.values())


def _alerts(rules):
    return {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule}


def test_the_project_ships_more_than_one_rule_file():
    assert {"autodealgenie.yml", "slo.yml", "self-monitoring.yml"} <= set(FILES)


def test_an_override_of_another_files_alert_is_accepted_and_left_to_it():
    overrides = {"ServiceDown": "10s", "HostDown": "20s", "SLOErrorBudgetBurnFast": "30s"}
    rendered = {
        name: _alerts(alert_rules(text, for_overrides=overrides, rule_set=SET))
        for name, text in FILES.items()
    }
    assert rendered["autodealgenie.yml"]["ServiceDown"]["for"] == "10s"
    assert rendered["self-monitoring.yml"]["HostDown"]["for"] == "20s"
    assert rendered["slo.yml"]["SLOErrorBudgetBurnFast"]["for"] == "30s"
    # nothing leaks into a file that does not have the alert
    assert "ServiceDown" not in rendered["slo.yml"]


def test_without_the_set_another_files_alert_is_unknown():
    with pytest.raises(AnsibleFilterError, match=r"unknown alert name\(s\) in for_overrides HostDown"):
        alert_rules(FILES["autodealgenie.yml"], for_overrides={"HostDown": "20s"})


def test_a_name_in_no_file_of_the_set_is_still_an_error():
    with pytest.raises(AnsibleFilterError, match=r"unknown alert name\(s\) in for_overrides HostDwn"):
        alert_rules(FILES["slo.yml"], for_overrides={"HostDwn": "20s"}, rule_set=SET)
    with pytest.raises(AnsibleFilterError, match=r"unknown group name\(s\) in interval nope"):
        alert_rules(FILES["slo.yml"], interval={"nope": "5s"}, rule_set=SET)


def test_group_intervals_by_name_across_the_set():
    result = alert_rules(
        FILES["slo.yml"], interval={"autodealgenie_cache": "10s", "autodealgenie_slo": "15s"}, rule_set=SET
    )
    intervals = {group["name"]: group["interval"] for group in result["groups"]}
    assert intervals["autodealgenie_slo"] == "15s"
    assert intervals["autodealgenie_slo_long"] == yaml.safe_load(FILES["slo.yml"])["groups"][1]["interval"]


def test_rule_set_must_be_a_list():
    with pytest.raises(AnsibleFilterError, match="rule_set must be a list"):
        alert_rules(FILES["slo.yml"], rule_set=FILES["slo.yml"])


def test_recording_rules_pass_through_unchanged():
    result = alert_rules(
        FILES["slo.yml"], annotations_base={"runbook_url": "https://x.example/docs/runbooks"}, rule_set=SET
    )
    records = [rule for group in result["groups"] for rule in group["rules"] if "record" in rule]
    original = [
        rule
        for group in yaml.safe_load(FILES["slo.yml"])["groups"]
        for rule in group["rules"]
        if "record" in rule
    ]
    assert records == original and records
