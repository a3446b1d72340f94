"""Seconds since the epoch of a PostgreSQL timestamp with a time zone offset.

A restore target time is checked on the controller before anything is stopped: it must be a time,
carry an explicit offset (a bare time means different instants on the controller, the database host
and in PostgreSQL), and it is then compared with the oldest backup and the current time.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: pg_timestamp
short_description: Epoch seconds of a PostgreSQL timestamp with an explicit offset
description:
  - Parses C(YYYY-MM-DD HH:MM:SS[.ffffff]) followed by an offset (C(+00), C(+01:00), C(-0530) or C(Z)),
    the form PostgreSQL and pgBackRest accept as a recovery target time, also with C(T) between date and time.
  - A value without an offset, or anything that is not such a time, is an error that names the value and
    the expected form.
options:
  _input:
    description: The timestamp text.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Refuse a target in the future
  ansible.builtin.assert:
    that: (restore_target_time | autodealgenie.ops.pg_timestamp) <= now(utc=true).timestamp()
"""

RETURN = r"""
_value:
  description: Seconds since 1970-01-01 00:00:00 UTC.
  type: float
"""

_TIMESTAMP = re.compile(
    r"^\s*(?P<date>\d{4}-\d{2}-\d{2})[ T](?P<time>\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)\s*"
    r"(?P<offset>Z|[+-]\d{2}(?::?\d{2})?)\s*$"
)


def pg_timestamp(value):
    text = str(value)
    match = _TIMESTAMP.match(text)
    if not match:
        raise AnsibleFilterError(
            f"'{text}' is not a timestamp with a time zone offset: expected 'YYYY-MM-DD HH:MM:SS+00' "
            "(seconds may have a fraction; the offset may be +HH, +HH:MM or Z)"
        )
    offset = match["offset"]
    if offset == "Z":
        zone = UTC
    else:
        digits = offset[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
        if hours > 15 or minutes > 59:
            raise AnsibleFilterError(f"'{text}' has an impossible time zone offset {offset}")
        sign = 1 if offset[0] == "+" else -1
        zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        moment = datetime.fromisoformat(f"{match['date']}T{match['time']}").replace(tzinfo=zone)
    except ValueError as error:
        raise AnsibleFilterError(f"'{text}' is not a valid date and time: {error}") from None
    return moment.timestamp()


class FilterModule:
    def filters(self):
        return {"pg_timestamp": pg_timestamp}
