"""The self-healing drill's helpers (tests/molecule/fault_drills/self_heal.py): time parsing, the
defaults it expects on the lab, and the scripts it runs on test hosts (valid Python 3)."""

from __future__ import annotations

import ast
import shlex

import pytest

from tests.molecule.fault_drills import self_heal


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2s", 2),
        ("2min", 120),
        ("1min 30s", 90),
        ("100ms", 0.1),
        ("1h 2min 3s", 3723),
        ("0", 0),
        ("soon", None),
    ],
)
def test_parse_timespan(text, seconds):
    if seconds is None:
        with pytest.raises(ValueError):
            self_heal.parse_timespan(text)
    else:
        assert self_heal.parse_timespan(text) == pytest.approx(seconds)


def test_rfc3339_with_nanoseconds_and_offsets():
    base = self_heal.rfc3339("2026-12-01T11:55:02Z")
    assert self_heal.rfc3339("2026-12-01T11:55:02.123456789Z") == pytest.approx(base + 0.123456789)
    assert self_heal.rfc3339("2026-12-01T12:55:02+01:00") == pytest.approx(base)
    with pytest.raises(ValueError):
        self_heal.rfc3339("yesterday")


def test_expected_policy_is_the_entry_points_defaults():
    assert self_heal.restart_policy_defaults() == {
        "restart": "on-failure",
        "restart_sec": 2,
        "start_limit_interval": 120,
        "start_limit_burst": 5,
    }


@pytest.mark.parametrize(
    "command",
    [self_heal.kill_command("x.service", at=12.5), self_heal.crash_loop_command("x.service", 7, 60, 5)],
)
def test_host_scripts_are_python(command):
    argv = shlex.split(command)
    assert argv[:2] == ["python3", "-c"]
    ast.parse(argv[2])
    assert argv[3] == "x.service"


def test_selector_names_job_and_instance():
    service = self_heal.Service("redis-server.service", "data1", "redis", "redis_up", "on-failure")
    assert service.selector == 'redis_up{job="redis",instance="data1"}'
