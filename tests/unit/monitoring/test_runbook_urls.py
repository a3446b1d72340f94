"""Every alert's runbook_url, as the prometheus role renders it, is an absolute link that resolves
to an existing runbook of docs/runbooks, in every environment: the project's defaults and each
inventory with hosts. The base is adg_runbook_base_url (playbooks/defaults/monitoring.yml), fed
into prometheus_alert_rules_annotations_base.runbook_url."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
import yaml
from ansible_collections.autodealgenie.ops.plugins.filter.alert_rules import alert_rules

from tests.support.paths import REPO, RULES_DIR, RUNBOOKS, ansible_values

NAMES = ("adg_runbook_base_url", "prometheus_alert_rules_annotations_base")
INVENTORIES = sorted(str(path.relative_to(REPO)) for path in (REPO / "inventories").glob("*/hosts.yml"))


@pytest.fixture(scope="module")
def project_inventory(tmp_path_factory):
    """One monitoring host and nothing else: only playbooks/defaults applies."""
    path = tmp_path_factory.mktemp("inventory") / "hosts.json"
    host = {"ansible_connection": "local", "private_ip": "192.0.2.10"}
    path.write_text(json.dumps({"all": {"children": {"monitoring": {"hosts": {"mon1": host}}}}}))
    return str(path)


def _rendered_runbook_urls(annotations_base: dict) -> dict[str, str]:
    texts = [path.read_text() for path in sorted(RULES_DIR.glob("*.yml"))]
    urls = {}
    for text in texts:
        rendered = alert_rules(text, annotations_base=annotations_base, rule_set=texts)
        for group in rendered["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    urls[rule["alert"]] = rule["annotations"]["runbook_url"]
    return urls


@pytest.mark.parametrize("inventory", ["project defaults", *INVENTORIES])
def test_every_runbook_url_is_absolute_and_names_an_existing_runbook(inventory, project_inventory):
    path = project_inventory if inventory == "project defaults" else str(REPO / inventory)
    values = ansible_values(NAMES, path, "monitoring[0]")
    base = values["adg_runbook_base_url"].rstrip("/")
    assert values["prometheus_alert_rules_annotations_base"]["runbook_url"] == values["adg_runbook_base_url"]
    urls = _rendered_runbook_urls(values["prometheus_alert_rules_annotations_base"])
    assert len(urls) >= 30, sorted(urls)
    for alert, url in urls.items():
        parts = urlsplit(url)
        assert parts.scheme in ("http", "https") and parts.netloc, (
            f"{inventory}: {alert}: {url} is not absolute"
        )
        assert url.startswith(base + "/"), f"{inventory}: {alert}: {url} is not under {base}"
        page = url[len(base) + 1 :]
        assert page == f"{alert}.md", f"{inventory}: {alert}: {url}"
        assert (RUNBOOKS / page).is_file(), f"{inventory}: {alert}: {url} names no file of {RUNBOOKS}"


def test_the_default_base_is_the_repository_runbooks_directory(project_inventory):
    """The default points into the repository that galaxy.yml names (when it names one)."""
    # the same call as the "project defaults" case above: ansible_values caches it, no second run
    base = ansible_values(NAMES, project_inventory, "monitoring[0]")["adg_runbook_base_url"]
    assert base.endswith("/docs/runbooks") and urlsplit(base).scheme == "https"
    repository = yaml.safe_load((REPO / "galaxy.yml").read_text()).get("repository")
    if repository:
        assert base.startswith(repository.rstrip("/") + "/"), (base, repository)
