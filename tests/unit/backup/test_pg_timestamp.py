"""The restore target time filter: a time with an explicit offset, or a clear error."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.autodealgenie.ops.plugins.filter.pg_timestamp import pg_timestamp


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01 10:15:00+00", datetime(2026, 12, 1, 10, 15, tzinfo=UTC)),
        ("2026-12-01T10:15:00Z", datetime(2026, 12, 1, 10, 15, tzinfo=UTC)),
        ("2026-12-01 11:15:00+01:00", datetime(2026, 12, 1, 10, 15, tzinfo=UTC)),
        ("2026-12-01 04:45:00-0530", datetime(2026, 12, 1, 10, 15, tzinfo=UTC)),
        ("2026-12-01 10:15:00.250000+00", datetime(2026, 12, 1, 10, 15, 0, 250000, tzinfo=UTC)),
    ],
)
def test_parses_postgresql_timestamps_with_offsets(text, expected):
    assert pg_timestamp(text) == expected.timestamp()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("yesterday", "is not a timestamp with a time zone offset"),
        ("2026-12-01 10:15:00", "is not a timestamp with a time zone offset"),  # no offset: ambiguous
        ("2026-12-01", "is not a timestamp with a time zone offset"),
        ("2026-13-01 10:15:00+00", "is not a valid date and time"),
        ("2026-02-30 10:15:00+00", "is not a valid date and time"),
        ("2026-12-01 10:15:00+16", "impossible time zone offset"),
    ],
)
def test_refuses_anything_else_by_name(text, message):
    with pytest.raises(AnsibleFilterError, match=message) as raised:
        pg_timestamp(text)
    assert text in str(raised.value)
