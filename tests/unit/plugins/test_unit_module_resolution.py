"""Our modules share short names with community.grafana's (grafana_dashboard, grafana_folder,
grafana_datasource). A short name resolves through the play's collection search list, so a play listing
community.grafana in `collections:` would silently run the community module. The collection is therefore
used by FQCN only: these tests pin that every module and filter resolves by its FQCN to our file, that
nothing in the repository uses a short name or the pre-collection `ansible.module_utils.adg_*` imports,
that the documentation matches the argument specs, and that a FQCN wins over a play's search list."""

from __future__ import annotations

import base64
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.unit.plugins.ansible_module_runner import (
    COLLECTION,
    MODULES,
    PACKAGE,
    REPO,
    TARGET_PYTHON,
    ansible_env,
    load_module,
)

OUR_MODULES = sorted(p.stem for p in MODULES.glob("*.py"))
# Action plugins documented by a module file of the same name (no AnsibleModule behind it).
ACTION_ONLY = {p.stem for p in (REPO / "plugins" / "action").glob("*.py")}
FILTER_FILES = sorted((REPO / "plugins" / "filter").glob("*.py"))
OUR_FILTERS = {
    name: path
    for path in FILTER_FILES
    for name in importlib.import_module(f"{PACKAGE}.plugins.filter.{path.stem}").FilterModule().filters()
}
PASSWORD = "resolution-Adm1n-pw"
# Not part of the repository's own content (virtualenv, caches, VCS, scratch).
SKIPPED_DIRS = {".venv", ".cache", ".git", ".sandbox", ".ansible", "node_modules", "__pycache__"}


def repo_files(*suffixes):
    for path in REPO.rglob("*"):
        rel = path.relative_to(REPO)
        if path.is_file() and path.suffix in suffixes and not SKIPPED_DIRS & set(rel.parts):
            yield path


def ansible_doc(*args):
    run = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-doc")), "-j", *args],
        cwd=REPO,
        env=ansible_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


@pytest.fixture(scope="module")
def module_docs():
    return ansible_doc(*(f"{COLLECTION}.{name}" for name in OUR_MODULES))


def example_tasks(examples):
    tasks = yaml.safe_load(examples)
    assert isinstance(tasks, list) and tasks, "EXAMPLES must be a YAML list of tasks"
    return tasks


def test_every_module_resolves_by_fqcn_to_our_file_with_full_docs(module_docs):
    assert OUR_MODULES, "no modules found"
    assert set(module_docs) == {f"{COLLECTION}.{name}" for name in OUR_MODULES}
    for name in OUR_MODULES:
        doc = module_docs[f"{COLLECTION}.{name}"]
        assert Path(doc["doc"]["filename"]).resolve() == MODULES / f"{name}.py", name
        assert doc["doc"]["collection"] == COLLECTION
        assert doc["return"], f"{name} needs RETURN"
        attributes = doc["doc"].get("attributes") or {}
        assert {"check_mode", "diff_mode"} <= set(attributes), f"{name} documents check and diff mode"
        for task in example_tasks(doc["examples"]):
            used = [key for key in task if key.startswith(f"{COLLECTION}.")]
            assert used, f"{name}: an EXAMPLES task does not use a {COLLECTION} module by FQCN: {task}"
            assert not set(task) & set(OUR_MODULES), f"{name}: short module name in EXAMPLES"
        assert f"{COLLECTION}.{name}:" in doc["examples"], f"{name}: EXAMPLES never use the module itself"


def test_every_filter_resolves_by_fqcn_to_our_file_with_full_docs():
    assert set(OUR_FILTERS) == {
        "alert_rules",
        "firewall_rules",
        "openpgp_fingerprints",
        "pg_timestamp",
        "tsdb_retention_size",
    }
    docs = ansible_doc("-t", "filter", *(f"{COLLECTION}.{name}" for name in OUR_FILTERS))
    assert set(docs) == {f"{COLLECTION}.{name}" for name in OUR_FILTERS}
    for name, path in OUR_FILTERS.items():
        doc = docs[f"{COLLECTION}.{name}"]
        assert Path(doc["doc"]["filename"]).resolve() == path, name
        assert doc["doc"]["options"]["_input"], f"{name} documents its input"
        assert doc["return"] and "_value" in doc["return"], f"{name} needs RETURN"
        example_tasks(doc["examples"])
        assert f"{COLLECTION}.{name}" in doc["examples"], f"{name}: EXAMPLES use the filter by FQCN"


def _argument_spec(name, monkeypatch):
    """The argument_spec a module's main() gives AnsibleModule (captured, main() stops there)."""
    module = load_module(name)
    captured = {}

    class Captured(Exception):
        pass

    def fake_module(argument_spec, **kwargs):
        captured.update(argument_spec)
        raise Captured

    monkeypatch.setattr(module, "AnsibleModule", fake_module)
    with pytest.raises(Captured):
        module.main()
    return captured


def test_documented_options_match_the_argument_specs(module_docs, monkeypatch):
    """DOCUMENTATION (with the shared doc fragments) and argument_spec agree, option by option."""
    for name in sorted(set(OUR_MODULES) - ACTION_ONLY):
        spec = _argument_spec(name, monkeypatch)
        documented = module_docs[f"{COLLECTION}.{name}"]["doc"]["options"]
        assert set(documented) == set(spec), name
        for option, rules in spec.items():
            doc = documented[option]
            where = f"{name}.{option}"
            assert doc.get("type", "str") == rules.get("type", "str"), where
            assert doc.get("default") == rules.get("default"), where
            assert bool(doc.get("required")) == bool(rules.get("required")), where
            assert sorted(doc.get("aliases") or []) == sorted(rules.get("aliases") or []), where
            assert doc.get("choices") == rules.get("choices"), where
            assert doc.get("elements") == rules.get("elements"), where
        for secret in ("url_password", "token"):
            assert spec[secret].get("no_log") is True, f"{name}.{secret} must be no_log"


_MODULE_KEYS = set(OUR_MODULES) | {f"ansible.legacy.{n}" for n in OUR_MODULES}
_FILTER_NAMES = "|".join(OUR_FILTERS)
# `| name`, `| ansible.legacy.name`, map('name'), select("name") ... without the collection prefix.
_SHORT_FILTER = re.compile(
    rf"(\|\s*(?:ansible\.legacy\.)?|\b(?:map|select|reject|selectattr|rejectattr)\(\s*['\"])(?:{_FILTER_NAMES})\b"
)


def _short_module_uses(node, trail=""):
    """Mapping keys (task actions, module_defaults entries) or action strings with a short module name."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _MODULE_KEYS:
                yield f"{trail}/{key}"
            words = value.split() if isinstance(value, str) else []
            if key in ("action", "local_action") and words and words[0] in _MODULE_KEYS:
                yield f"{trail}/{key}: {words[0]}"
            yield from _short_module_uses(value, f"{trail}/{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _short_module_uses(item, f"{trail}[{index}]")


def test_no_yaml_task_or_template_uses_a_short_name():
    scanned, offenders = 0, []
    for path in repo_files(".yml", ".yaml"):
        text = path.read_text(errors="replace")
        rel = path.relative_to(REPO)
        offenders += [f"{rel}: filter {m.group(0)!r}" for m in _SHORT_FILTER.finditer(text)]
        try:
            documents = list(yaml.safe_load_all(text))
        except yaml.YAMLError:
            continue  # not YAML after all (a Jinja template named .yml)
        scanned += 1
        offenders += [f"{rel}: module {use}" for doc in documents for use in _short_module_uses(doc)]
    for path in repo_files(".j2"):
        text = path.read_text(errors="replace")
        offenders += [
            f"{path.relative_to(REPO)}: filter {m.group(0)!r}" for m in _SHORT_FILTER.finditer(text)
        ]
    assert scanned > 50, "the scan found almost no YAML: is REPO right?"
    assert offenders == [], "use the FQCN (autodealgenie.ops.<name>)"


def test_the_scan_catches_short_names():
    """The detectors above do find what they look for (so an empty result means something)."""
    tasks = yaml.safe_load(
        "- grafana_folder: {uid: x}\n- ansible.legacy.prometheus_verify: {url: u}\n"
        "- action: alertmanager_silence url=u\n- module_defaults: {grafana_dashboard: {url: u}}\n"
        "- autodealgenie.ops.grafana_folder: {uid: ok}\n"
    )
    assert len(list(_short_module_uses(tasks))) == 4
    assert _SHORT_FILTER.search("{{ x | firewall_rules(a, b) }}")
    assert _SHORT_FILTER.search("{{ keys | map('openpgp_fingerprints') }}")
    assert not _SHORT_FILTER.search("{{ x | autodealgenie.ops.alert_rules(interval='5s') }}")


def test_no_legacy_module_utils_import_anywhere():
    legacy = re.compile(r"ansible\.module_utils\.adg_|from\s+ansible\.module_utils\s+import\s+[^\n]*\badg_")
    offenders = [
        str(path.relative_to(REPO))
        for path in repo_files(".py")
        if path.resolve() != Path(__file__).resolve() and legacy.search(path.read_text(errors="replace"))
    ]
    assert offenders == [], (
        "import module_utils from ansible_collections.autodealgenie.ops.plugins.module_utils"
    )
    assert legacy.search("from ansible.module_utils.adg_http import HttpClient")
    assert legacy.search("from ansible.module_utils import basic, adg_grafana")


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


def _core_strategy(env: dict) -> dict:
    """ansible-core's linear strategy: this is how Ansible resolves an operator's short names. Mitogen
    (the tests' default) finds no module by a play's `collections:` list; our content uses FQCNs only
    (test above), so it never depends on that list (docs/performance.md)."""
    env = dict(env)
    env.pop("ANSIBLE_STRATEGY_PLUGINS", None)
    env["ANSIBLE_STRATEGY"] = "linear"
    return env


def test_fqcn_runs_ours_even_when_the_play_searches_community_grafana(tmp_path):
    """In a play with `collections: [community.grafana]`, the short name runs community's module (its
    result is a `folder` dict, or an argument error listing its own `grafana_api_key`), the FQCN runs ours
    (top-level `uid` and `version`, no `folder`)."""
    from tests.support.monitoring import GrafanaDouble, http_json

    with GrafanaDouble(tmp_path / "grafana", admin_password=PASSWORD) as grafana:
        connection = {"url": grafana.url, "url_username": "admin", "url_password": PASSWORD}
        play = [
            {
                "name": "community.grafana first in the search list",
                "hosts": "localhost",
                "gather_facts": False,
                "collections": ["community.grafana"],
                "tasks": [
                    {
                        "name": "Short name",
                        "grafana_folder": dict(connection, uid="short", title="Short"),
                        "register": "short",
                        "ignore_errors": True,
                    },
                    {
                        "name": "FQCN",
                        f"{COLLECTION}.grafana_folder": dict(connection, uid="fqcn", title="FQCN"),
                        "register": "fqcn",
                    },
                    {
                        "name": "Show",
                        "ansible.builtin.debug": {"msg": {"short": "{{ short }}", "fqcn": "{{ fqcn }}"}},
                    },
                ],
            }
        ]
        playbook = tmp_path / "play.yml"
        playbook.write_text(yaml.safe_dump(play, sort_keys=False))
        run = subprocess.run(
            [
                str(Path(sys.executable).with_name("ansible-playbook")),
                "-i",
                "localhost,",
                "-c",
                "local",
                "-e",
                f"ansible_python_interpreter={TARGET_PYTHON}",
                str(playbook),
            ],
            cwd=REPO,
            env=_core_strategy(ansible_env()),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        tasks = json.loads(run.stdout)["plays"][0]["tasks"]
        results = tasks[-1]["hosts"]["localhost"]["msg"]
        short, fqcn = results["short"], results["fqcn"]
        community = "folder" in short or "grafana_api_key" in short.get("msg", "")
        assert community and "version" not in short, f"the short name did not run community's: {short}"
        assert fqcn.get("failed") is not True and fqcn["changed"], fqcn
        assert "folder" not in fqcn and fqcn["uid"] == "fqcn" and fqcn["version"] == 1, fqcn
        auth = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
        stored = http_json(grafana.url + "/api/folders/fqcn", headers={"Authorization": f"Basic {auth}"})
        assert stored["title"] == "FQCN"
