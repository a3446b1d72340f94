"""A leaner multiprocess value for prometheus_client, installed through its values.ValueClass hook.

prometheus_client's MmapedValue makes five Python calls per inc/observe (its fork check, the pid
function, MmapedDict.write_value, the pack helper) and an os.getpid() syscall; a tracked request
makes 9 such writes, a cached search 20. This class does the same work in one call: same files
({type}_{pid}.db, gauge_{mode}_{pid}.db), same keys and layout (it uses MmapedDict to create and
grow them), and every inc/set is written to the mmap at once, so MultiProcessCollector and
mark_process_dead see exactly what they see with the library's class. The pid is read from memory
and refreshed in a forked child by os.register_at_fork; after a fork every value moves to the
child's own files, as the library does.

It relies on two attributes of prometheus_client.mmap_dict.MmapedDict (_m, the current map, which
is replaced when the file grows, and _positions); tests/test_multiprocess_values.py pins both.
"""

from __future__ import annotations

import os
import struct
from threading import Lock

from prometheus_client.mmap_dict import MmapedDict, mmap_key

_pack = struct.Struct("dd").pack  # value, timestamp: the record layout of mmap_dict


def value_class():
    files: dict[str, MmapedDict] = {}
    values: list = []
    pid = [os.getpid()]
    lock = Lock()  # one lock for all values, as the library (GUNICORN_THREADS > 1 is allowed)

    def check_for_fork() -> None:
        # After a fork (pid changed): reopen every value in the child's own files. Lock held.
        actual = os.getpid()
        if actual == pid[0]:
            return
        pid[0] = actual
        for file in files.values():
            file.close()
        files.clear()
        for value in values:
            value._reset()

    forked = [False]  # set in a forked child, before any of its code runs
    os.register_at_fork(after_in_child=lambda: forked.__setitem__(0, True))

    class LeanMmapedValue:
        _multiprocess = True
        __slots__ = ("_file", "_key", "_params", "_pos", "_timestamp", "_value")

        def __init__(
            self, typ, metric_name, name, labelnames, labelvalues, help_text, multiprocess_mode="", **kw
        ):
            self._params = typ, metric_name, name, labelnames, labelvalues, help_text, multiprocess_mode
            with lock:
                check_for_fork()
                self._reset()
                values.append(self)

        def _reset(self) -> None:
            typ, metric_name, name, labelnames, labelvalues, help_text, multiprocess_mode = self._params
            prefix = f"{typ}_{multiprocess_mode}" if typ == "gauge" else typ
            file = files.get(prefix)
            if file is None:
                path = os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], f"{prefix}_{pid[0]}.db")
                file = files[prefix] = MmapedDict(path)
            self._file = file
            self._key = mmap_key(metric_name, name, labelnames, labelvalues, help_text)
            self._value, self._timestamp = file.read_value(self._key)  # creates the record if new
            self._pos = file._positions[self._key]

        def inc(self, amount):
            with lock:
                if forked[0]:
                    forked[0] = False
                    check_for_fork()
                self._value += amount
                self._timestamp = 0.0
                pos = self._pos
                self._file._m[pos : pos + 16] = _pack(self._value, 0.0)

        def set(self, value, timestamp=None):
            with lock:
                if forked[0]:
                    forked[0] = False
                    check_for_fork()
                self._value = value
                self._timestamp = timestamp or 0.0
                pos = self._pos
                self._file._m[pos : pos + 16] = _pack(value, self._timestamp)

        def set_exemplar(self, exemplar):
            return  # not supported in multiprocess mode (as the library)

        def get(self):
            with lock:
                if forked[0]:
                    forked[0] = False
                    check_for_fork()
                return self._value

        def get_exemplar(self):
            return None

    return LeanMmapedValue
