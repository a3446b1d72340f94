"""Callback: append one JSON line per ansible-playbook run to $ADG_RUN_TIMING_FILE.

The molecule `default` scenario enables it to report the fresh and the idempotent converge time
(two runs of playbooks/site.yml) and their ratio.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: adg_run_timing
type: aggregate
short_description: record each playbook run's wall-clock time and per-host change counts
description:
  - Appends {"playbook", "start", "end", "seconds", "changed", "failures"} as one JSON line to the
    file named by the environment variable E(ADG_RUN_TIMING_FILE); does nothing when it is unset.
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

    def v2_playbook_on_start(self, playbook):
        self._playbook = os.path.basename(playbook._file_name)
        self._start = time.time()

    def v2_playbook_on_stats(self, stats):
        target = os.environ.get("ADG_RUN_TIMING_FILE")
        if not target or self._start is None:
            return
        end = time.time()
        hosts = sorted(stats.processed.keys())
        summary = {h: stats.summarize(h) for h in hosts}
        record = {
            "playbook": self._playbook,
            "start": self._start,
            "end": end,
            "seconds": round(end - self._start, 1),
            "changed": {h: s["changed"] for h, s in summary.items()},
            "failures": {h: s["failures"] + s["unreachable"] for h, s in summary.items()},
        }
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
