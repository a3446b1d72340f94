"""Our modules share short names with community.grafana's (grafana_dashboard, grafana_folder,
grafana_datasource). Ansible resolves a short name through the play's collection search list, which is
just ansible.legacy (= the library path of ansible.cfg) unless a play sets the `collections:` keyword;
a play listing community.grafana there would silently run the community modules instead. These tests
pin both facts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ansible_module_runner import MODULES, REPO

OUR_MODULES = sorted(
    p.stem for p in MODULES.glob("*.py") if p.stem.startswith(("grafana_", "prometheus_", "alertmanager_"))
)


def test_ansible_doc_resolves_every_short_name_to_our_file():
    ansible_doc = os.path.join(os.path.dirname(sys.executable), "ansible-doc")
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    run = subprocess.run(
        [ansible_doc, "-j", *OUR_MODULES], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    docs = json.loads(run.stdout)
    assert set(docs) == set(OUR_MODULES)
    for name, doc in docs.items():
        assert doc["doc"]["filename"] == str(MODULES / f"{name}.py"), name
        assert doc["examples"] and doc["return"], f"{name} needs EXAMPLES and RETURN"


def _search_lists(node):
    """Every `collections:` keyword value (a list of collection names) in a YAML document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "collections" and isinstance(value, list) and all(isinstance(v, str) for v in value):
                yield value
            else:
                yield from _search_lists(value)
    elif isinstance(node, list):
        for item in node:
            yield from _search_lists(item)


def test_no_play_or_role_puts_community_grafana_in_the_collections_search_list():
    import yaml

    offenders = []
    for pattern in ("playbooks/**/*.yml", "roles/**/*.yml", "molecule/**/*.yml", "tests/**/*.yml"):
        for path in REPO.glob(pattern):
            try:
                documents = list(yaml.safe_load_all(path.read_text(errors="replace")))
            except yaml.YAMLError:
                continue  # Jinja templates and the like are not plays
            if any("community.grafana" in names for doc in documents for names in _search_lists(doc)):
                offenders.append(str(path.relative_to(REPO)))
    assert offenders == [], "these would run community.grafana's modules instead of ours"
