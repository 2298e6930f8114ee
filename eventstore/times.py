"""Every time in the log is UTC microseconds since the epoch; people read and write ISO 8601."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from eventstore.exceptions import CommandValidationError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(field: str, value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise CommandValidationError(f"{field}: {value!r} is not an ISO 8601 datetime string")
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CommandValidationError(f"{field}: {value!r} is not an ISO 8601 datetime") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        dt = dt.astimezone(UTC)
    except (OverflowError, ValueError):
        raise CommandValidationError(f"{field}: {value!r} falls outside the years 1 to 9999 in UTC") from None
    return (dt - _EPOCH) // timedelta(microseconds=1)  # exact: a float timestamp rounds near the year 9999


def format_time(us: int | None) -> str | None:
    if us is None:
        return None
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000).isoformat().replace("+00:00", "Z")
