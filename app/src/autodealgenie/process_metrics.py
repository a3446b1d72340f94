"""process_* metrics for a gunicorn process tree, read from /proc at scrape time.

prometheus_client's ProcessCollector reports only the scraping process and is unavailable in
multiprocess mode. The dashboards (process_resident_memory_bytes) and the HighCPUUsage alert
(rate(process_cpu_seconds_total)) need the whole service: the gunicorn master plus its live workers.

CPU stays monotonic across worker deaths: when the master reaps a worker, the kernel adds the
worker's CPU time to the master's cutime/cstime, which we count, so the total does not drop.
"""

from __future__ import annotations

import os

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _boot_time() -> float:
    with open("/proc/stat") as handle:
        for line in handle:
            if line.startswith("btime "):
                return float(line.split()[1])
    return 0.0


def read_stat(pid: int) -> dict | None:
    """Fields of /proc/<pid>/stat we use, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read().decode()
    except OSError:
        return None
    # The command name may contain spaces and parentheses; fields start after the last ')'.
    parts = raw[raw.rindex(")") + 2 :].split()
    return {
        "ppid": int(parts[1]),
        "cpu_ticks": sum(int(parts[i]) for i in (11, 12, 13, 14)),  # utime stime cutime cstime
        "starttime": int(parts[19]),
        "vsize": int(parts[20]),
        "rss_pages": int(parts[21]),
    }


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def service_root_pid() -> int:
    """The gunicorn master when this process is one of its workers, else this process."""
    parent = os.getppid()
    return parent if "gunicorn" in _cmdline(parent) else os.getpid()


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:  # kernel without CONFIG_PROC_CHILDREN: scan /proc
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                stat = read_stat(int(entry))
                if stat and stat["ppid"] == pid:
                    found.append(int(entry))
        return found


def _open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def _max_fds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/limits") as handle:
            for line in handle:
                if line.startswith("Max open files"):
                    return float(line.split()[3])
    except (OSError, ValueError, IndexError):
        pass
    return None


class ProcessTreeCollector:
    """Collector summing /proc figures over the service's process tree (master + workers)."""

    def __init__(self, root_pid=service_root_pid):
        self._root_pid = root_pid
        self._boot = _boot_time()

    def collect(self):
        root = self._root_pid()
        root_stat = read_stat(root)
        if root_stat is None:
            return
        pids = [root, *children(root)]
        stats = [root_stat] + [s for s in (read_stat(p) for p in pids[1:]) if s is not None]

        cpu = CounterMetricFamily(
            "process_cpu_seconds",
            "Total user and system CPU time of the service (master and workers) in seconds",
        )
        cpu.add_metric([], sum(s["cpu_ticks"] for s in stats) / _TICKS)
        yield cpu
        rss = GaugeMetricFamily(
            "process_resident_memory_bytes", "Resident memory of master and workers in bytes"
        )
        rss.add_metric([], float(sum(s["rss_pages"] for s in stats) * _PAGE))
        yield rss
        vms = GaugeMetricFamily(
            "process_virtual_memory_bytes", "Virtual memory of master and workers in bytes"
        )
        vms.add_metric([], float(sum(s["vsize"] for s in stats)))
        yield vms
        start = GaugeMetricFamily(
            "process_start_time_seconds", "Start time of the master since epoch in seconds"
        )
        start.add_metric([], self._boot + root_stat["starttime"] / _TICKS)
        yield start
        fds = GaugeMetricFamily("process_open_fds", "Open file descriptors of master and workers")
        fds.add_metric([], float(sum(_open_fds(p) for p in pids)))
        yield fds
        limit = _max_fds(root)
        if limit is not None:
            max_fds = GaugeMetricFamily(
                "process_max_fds", "Maximum number of open file descriptors per process"
            )
            max_fds.add_metric([], limit)
            yield max_fds
