"""The history port: the whole log read from its start, a page at a time, as replay and verify stream it.

``SqliteHistory`` (``projections/sqlite/history.py``) reads the embedded log through its bulk
scan and bounds a replay by a log position; ``TopicHistory`` (``projections/kafka/history.py``)
reads the events topic through the fence and bounds it by a time, since a topic's positions are
per partition. Both answer ``--until`` in their own terms, so replay and verify never ask which
backend they read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol

from eventstore.log import CommandRecord, StoredEvent
from eventstore.position import Position
from projections.exceptions import UnknownInstantError
from projections.tracking import LoggedEvent

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Until:
    """How far a replay goes: ``bound`` is what ``History.pages`` takes (a log position, or a time in
    UTC microseconds on a topic), ``label`` names the as-of file (``<log stem>.asof-<label>.db``)."""

    bound: int
    label: str


@dataclass(frozen=True)
class EditedCommand:
    """A stored command whose chained hash does not match its content: the table, its row and the record."""

    table: str
    row: int
    command: CommandRecord


class History(Protocol):
    def pages(self, until: Until | None, batch_size: int) -> Iterable[Sequence[LoggedEvent]]:
        """Every event up to ``until`` (all of them without it), in log order, a page at a time, as
        light as the log can give them (what a replay applies)."""

    def stored(self, batch_size: int) -> Iterable[Sequence[StoredEvent]]:
        """Every event with its chain hash, in log order, a page at a time (what verify checks)."""

    def until(self, text: str) -> Until:
        """``--until`` as given on the command line; UnknownInstantError if this log cannot be cut there."""

    def end(self) -> Position | None:
        """Where the log ends, if known before reading it (None for a topic)."""

    def edited_command(self) -> EditedCommand | None:
        """The first command record that was edited, where the log keeps its commands chained."""


def parse_timestamp(text: str) -> int:
    """An ISO 8601 time (``2026-11-26T10:00:00Z``; no zone means UTC) in UTC microseconds."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UnknownInstantError(
            f"--until {text!r} is neither a log position (a whole number) nor an ISO 8601 time such as 2026-11-26T10:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1)


def occurred_by(pages: Iterable[Sequence[StoredEvent]], until_us: int | None) -> Iterator[Sequence[StoredEvent]]:
    """A stream's events that occurred at or before ``until_us`` (all of them without it).

    One plan's events share a partition and a handler's clock, so this keeps a prefix of every plan.
    """
    for page in pages:
        kept = page if until_us is None else [e for e in page if e.occurred_at <= until_us]
        if kept:
            yield kept
