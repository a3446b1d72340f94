"""The app keeps revocations, rate limits and lock-outs in Redis keys without a TTL and gives every
cache entry one (app/tests/test_auth_fail_closed.py floods a real Redis to prove the layout): only a
volatile-* policy keeps cache traffic from evicting that state. Guard the project value and the
role's default against a return to allkeys-*."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]


def load(relative: str) -> dict:
    return yaml.safe_load((REPO / relative).read_text())


def test_project_redis_policy_evicts_only_keys_with_a_ttl():
    assert load("playbooks/defaults/data.yml")["redis_maxmemory_policy"] == "volatile-lru"


def test_role_default_and_documented_default_are_volatile():
    default = load("roles/redis/defaults/main.yml")["redis_maxmemory_policy"]
    spec = load("roles/redis/meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert default == spec["redis_maxmemory_policy"]["default"] == "volatile-lru"
    assert default in spec["redis_maxmemory_policy"]["choices"]
