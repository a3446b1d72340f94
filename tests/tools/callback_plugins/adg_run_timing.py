"""Callback: append one JSON line per ansible-playbook run to $ADG_RUN_TIMING_FILE.

Used by the molecule `default` scenario (fresh and idempotent converge times and their ratio) and by
tests/tools/converge_timing.py (the same, per strategy, with the time spent in each role).
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: adg_run_timing
type: aggregate
short_description: record each playbook run's wall-clock time, per-role time and change counts
description:
  - Appends {"playbook", "strategy", "start", "end", "seconds", "changed", "failures", "roles",
    "plays"} as one JSON line to the file named by the environment variable
    E(ADG_RUN_TIMING_FILE); does nothing when it is unset.
  - C(plays) lists [name, seconds] for each play in the order they ran.
  - C(roles) maps each role (or C(play) for a play's own tasks and handlers outside roles) to the
    wall-clock seconds from the start of its tasks to the start of the next task, as
    ansible.posix.profile_roles counts them.
requirements:
  - enabled in callbacks_enabled
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "adg_run_timing"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._playbook = None
        self._start = None
        self._roles: dict[str, float] = {}
        self._current: tuple[str, float] | None = None
        self._plays: list[list] = []  # [name, seconds] in run order (names repeat across imports)
        self._play_started: float | None = None

    def v2_playbook_on_start(self, playbook):
        self._playbook = os.path.basename(playbook._file_name)
        self._start = time.time()

    def _end_play(self, now: float) -> None:
        if self._play_started is not None:
            self._plays[-1][1] = round(now - self._play_started, 1)
        self._play_started = None

    def v2_playbook_on_play_start(self, play):
        now = time.time()
        self._account(now)
        self._end_play(now)
        self._plays.append([play.get_name().strip(), 0.0])
        self._play_started = now

    def _account(self, now: float) -> None:
        if self._current is not None:
            role, since = self._current
            self._roles[role] = self._roles.get(role, 0.0) + now - since
        self._current = None

    def _task_started(self, task) -> None:
        now = time.time()
        self._account(now)
        role = task._role.get_name() if task._role else "play"
        self._current = (role, now)

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task_started(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._task_started(task)

    def v2_playbook_on_stats(self, stats):
        target = os.environ.get("ADG_RUN_TIMING_FILE")
        if not target or self._start is None:
            return
        end = time.time()
        self._account(end)
        self._end_play(end)
        hosts = sorted(stats.processed.keys())
        summary = {h: stats.summarize(h) for h in hosts}
        record = {
            "playbook": self._playbook,
            "strategy": os.environ.get("ANSIBLE_STRATEGY", "linear"),
            "start": self._start,
            "end": end,
            "seconds": round(end - self._start, 1),
            "changed": {h: s["changed"] for h, s in summary.items()},
            "failures": {h: s["failures"] + s["unreachable"] for h, s in summary.items()},
            "roles": {role: round(seconds, 1) for role, seconds in sorted(self._roles.items())},
            "plays": self._plays,
        }
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
