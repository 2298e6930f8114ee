"""The embedded log as a ``History``: read through its bulk scan, cut at a log position."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from eventstore.log import StoredEvent, pages
from eventstore.position import Position
from eventstore.sqlite.log import SqliteEventLog
from projections.exceptions import UnknownInstantError
from projections.history import EditedCommand, Until, occurred_by, parse_timestamp
from projections.tracking import LoggedEvent


class SqliteHistory:
    def __init__(self, log: SqliteEventLog) -> None:
        self._log = log

    def pages(self, until: Until | None, batch_size: int) -> Iterator[Sequence[LoggedEvent]]:
        """Through the bulk ``scan``: the same events as light tuples, since a replay would
        otherwise spend as long building ``StoredEvent``s as decoding their bodies."""
        after = 0
        while batch := self._log.scan(after=after, limit=batch_size):
            kept = batch if until is None else [e for e in batch if e.position <= until.bound]
            if not kept:
                return
            yield kept
            after = kept[-1].position

    def stored(self, batch_size: int) -> Iterator[list[StoredEvent]]:
        return pages(self._log, batch_size)

    def until(self, text: str) -> Until:
        """A log position as given, or the last position whose event occurred at or before an
        ISO 8601 time (0 if none did). For a time the whole log is read: ``occurred_at`` is stamped
        by whichever handler decided, so it is not guaranteed to grow with position across processes.
        """
        text = text.strip()
        if not text.isdigit():
            found = 0
            for page in occurred_by(self.stored(5000), parse_timestamp(text)):
                found = page[-1].position
            return Until(found, str(found))
        position, last = int(text), self._log.last_position()
        if position > last:
            raise UnknownInstantError(f"--until {position}: the log ends at position {last}")
        return Until(position, str(position))

    def end(self) -> Position:
        return Position.at(self._log.last_position())

    def edited_command(self) -> EditedCommand | None:
        broken = self._log.broken_command()
        return EditedCommand(*broken) if broken is not None else None
