"""The High Availability dashboard on the single-host topology: its Patroni, etcd, Sentinel, HAProxy
and remote_write panels read jobs (or series) that only exist when their inventory group has hosts,
so verify.yml must allow exactly those panels to be empty while the group is empty
(verify_group_panels_default), or a fresh single-host stack would fail its panel-data check."""

from __future__ import annotations

import pytest
import yaml

from tests.support import content
from tests.support.paths import REPO
from tests.support.promql import selectors

# The single-host topology is the molecule `default` scenario's (tests/sandbox.sh up's default).
SINGLE_HOST_SCENARIO = REPO / "molecule/default/molecule.yml"
# Series Prometheus has only with remote_write configured, which the HA topology sets up towards
# the victoriametrics hosts (the *_queue_* and per-endpoint sample counters; the highest appended
# timestamp exists without it).
REMOTE_WRITE_PREFIXES = (
    "prometheus_remote_storage_queue_",
    "prometheus_remote_storage_samples_",
)
REMOTE_WRITE_GROUP = "victoriametrics"


def _single_host_groups() -> set[str]:
    platforms = yaml.safe_load(SINGLE_HOST_SCENARIO.read_text())["platforms"]
    return {group for platform in platforms for group in platform.get("groups", [])}


def _job_groups() -> dict[str, str]:
    """Job name -> the inventory group without whose hosts the job has no targets."""
    return {
        job["job_name"]: job.get("only_with_group", job["group"])
        for job in content.topology()["adg_scrape_jobs"]
    }


def _feeding_groups(panel) -> set[str] | None:
    """The groups without whose hosts every query of the panel is empty; None when some query can
    have data on the single-host topology. A query needs the group of each series it reads (the
    panels' queries combine series with arithmetic and `and`, never with `or`)."""
    jobs = _job_groups()
    present = _single_host_groups() | {"all"}
    groups = set()
    for target in panel.get("targets", []):
        needed = set()
        for selector in selectors(target.get("expr", "")):
            if selector.name and selector.name.startswith(REMOTE_WRITE_PREFIXES):
                needed.add(REMOTE_WRITE_GROUP)
                continue
            matcher = selector.label("job")
            group = jobs.get(matcher[1]) if matcher and matcher[0] == "=" else None
            if group is not None and group not in present:
                needed.add(group)
        if not needed:
            return None  # this query can have data on the single-host topology
        groups |= needed
    return groups or None


def _verify_group_panels() -> dict[str, list[str]]:
    plays = yaml.safe_load((REPO / "playbooks/verify.yml").read_text())
    play = next(p for p in plays if "verify_group_panels_default" in p.get("vars", {}))
    return play["vars"]["verify_group_panels_default"]


def test_the_single_host_scenario_lacks_the_ha_groups():
    """Guards the derivation below: the default scenario is the single-host topology."""
    groups = _single_host_groups()
    assert {"app", "postgres", "redis", "monitoring"} <= groups
    assert not groups & {"etcd", "redis_sentinel", "lb", "victoriametrics"}


GROUP_FED = [
    (uid, panel["title"], sorted(groups))
    for uid, panel in content.panels()
    if (groups := _feeding_groups(panel)) is not None
]


def test_the_ha_dashboard_has_group_fed_panels():
    assert {title for uid, title, _ in GROUP_FED if uid == "autodealgenie-ha"} >= {
        "Patroni Leader",
        "etcd Members Up",
        "HAProxy Sessions",
        "Remote Write Lag",
    }


@pytest.mark.parametrize(("uid", "title", "groups"), GROUP_FED, ids=lambda v: str(v))
def test_group_fed_panel_may_be_empty_without_its_group(uid, title, groups):
    listed = _verify_group_panels()
    key = f"{uid}:{title}"
    assert any(key in listed.get(group, []) for group in groups), (
        f"{key} shows data only with hosts in {groups}: list it under one of them in "
        "verify_group_panels_default (playbooks/verify.yml)"
    )
