"""Pass molecule's output through unchanged and time each of its actions (create, converge, ...).

    molecule test -s default 2>&1 | python tests/tools/molecule_phases.py default > default.log

At the end of the output it prints one line, e.g.
    --- molecule default phases: destroy 3 s, create 41 s, prepare 58 s, converge 903 s, ...
The CI budget (issue 16, docs/performance.md) is spent per action, and the scenario total alone
does not say whether a converge or a verify grew.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterable, Iterator

# molecule 26 writes "INFO     [default > converge] Executing" to a pipe and
# "INFO     default ➜ converge: Executing" to a terminal (colour codes are stripped first).
ACTION_STARTS = re.compile(
    r"(?:\[(?P<scenario>[\w.-]+) > (?P<action>[\w-]+)\]|(?P<tty_scenario>[\w.-]+) ➜ (?P<tty_action>[\w-]+):)"
    r" Executing\s*$"
)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def phases(lines: Iterable[str], clock=time.monotonic) -> Iterator[tuple[str, float | None]]:
    """Yield each line as it comes (phase None), then (action, seconds) for every action seen."""
    started: list[tuple[str, float]] = []
    for line in lines:
        found = ACTION_STARTS.search(ANSI.sub("", line))
        if found:
            started.append((found["action"] or found["tty_action"], clock()))
        yield line, None
    ended = clock()
    for index, (action, at) in enumerate(started):
        until = started[index + 1][1] if index + 1 < len(started) else ended
        yield action, until - at


def main(argv: list[str]) -> int:
    scenario = argv[1] if len(argv) > 1 else "scenario"
    timed = []
    for item, seconds in phases(sys.stdin):
        if seconds is None:
            sys.stdout.write(item)
            sys.stdout.flush()
        else:
            timed.append(f"{item} {seconds:.0f} s")
    print(f"--- molecule {scenario} phases: {', '.join(timed) or 'none seen'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
