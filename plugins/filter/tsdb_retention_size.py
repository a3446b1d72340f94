"""Filter for the prometheus role: a TSDB size cap derived from the filesystem that holds the TSDB."""

from __future__ import annotations

import math
import posixpath

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: tsdb_retention_size
short_description: A fraction of a path's filesystem as a Prometheus size (C(--storage.tsdb.retention.size))
description:
  - Finds the mount that contains O(path) (the longest mount point that is O(path) or one of its parent
    directories, compared by whole path components) in a list of mounts shaped like the C(mounts) fact,
    and returns O(fraction) of that filesystem's C(size_total) as a Prometheus size string.
  - The result is rounded down, in base-2 units as Prometheus reads them (C(1GB) is 1024 C(MB)), in
    whole C(GB) from 10 GB upwards, else in whole C(MB). It depends only on the filesystem's size, not on how
    full it is, so it stays the same from one run to the next.
  - Errors (never a silent "no cap") when no mount contains O(path), the path is not absolute, the
    mount has no usable C(size_total), O(fraction) is not in (0, 1], or the result is under 1 MB.
positional: path, fraction
options:
  _input:
    description: Mounts, each a mapping with C(mount) and C(size_total) in bytes (the C(mounts) fact).
    type: list
    elements: dict
    required: true
  path:
    description: Absolute path of the TSDB directory; it need not exist yet.
    type: str
    required: true
  fraction:
    description: Share of the filesystem's size to allow, greater than 0 and at most 1.
    type: float
    required: true
"""

EXAMPLES = r"""
- name: Cap the TSDB at half of the filesystem it lives on
  ansible.builtin.debug:
    msg: "{{ ansible_facts['mounts'] | autodealgenie.ops.tsdb_retention_size(tsdb_path, 0.5) }}"
  vars:
    tsdb_path: /var/lib/prometheus/metrics2
# / of 100 GiB: "50GB"; a dedicated 8 GiB volume on /var/lib/prometheus with 0.8: "6553MB"
"""

RETURN = r"""
_value:
  description: A size Prometheus accepts, such as C(50GB) or C(6553MB).
  type: str
"""

MIB = 1024**2
# From here on whole GB (dropping < 1 GB is under 10 %, and only ever rounds down).
GB_FROM_MB = 10 * 1024


def _components(path: str) -> tuple[str, ...]:
    return tuple(part for part in posixpath.normpath(path).split("/") if part)


def mount_for(mounts, path: str) -> dict:
    """The entry of `mounts` whose mount point is the longest whole-component prefix of `path`."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise AnsibleFilterError(f"tsdb_retention_size: the path must be absolute, got {path!r}")
    wanted = _components(path)
    best = None
    for entry in mounts or []:
        point = entry.get("mount") if isinstance(entry, dict) else None
        if not isinstance(point, str) or not point.startswith("/"):
            continue
        parts = _components(point)
        if wanted[: len(parts)] == parts and (best is None or len(parts) > len(_components(best["mount"]))):
            best = entry
    if best is None:
        raise AnsibleFilterError(
            f"tsdb_retention_size: no mount in the facts contains {path}: gather the hardware facts"
            " (mounts) or give the size explicitly"
        )
    return best


def tsdb_retention_size(mounts, path: str, fraction) -> str:
    try:
        share = float(fraction)
    except (TypeError, ValueError):
        raise AnsibleFilterError(
            f"tsdb_retention_size: fraction must be a number, got {fraction!r}"
        ) from None
    if not 0 < share <= 1:
        raise AnsibleFilterError(f"tsdb_retention_size: fraction must be > 0 and <= 1, got {fraction!r}")
    mount = mount_for(mounts, path)
    size = mount.get("size_total")
    if isinstance(size, bool) or not isinstance(size, (int, float)) or size <= 0:
        raise AnsibleFilterError(
            f"tsdb_retention_size: mount {mount['mount']} has no usable size_total ({size!r})"
        )
    megabytes = math.floor(size * share / MIB)
    if megabytes < 1:
        raise AnsibleFilterError(
            f"tsdb_retention_size: {share} of {mount['mount']} ({int(size)} bytes) is less than 1MB"
        )
    if megabytes >= GB_FROM_MB:
        return f"{megabytes // 1024}GB"
    return f"{megabytes}MB"


class FilterModule:
    def filters(self):
        return {"tsdb_retention_size": tsdb_retention_size}
