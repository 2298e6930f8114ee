"""Where each consumer of the log has got to, kept in the same transaction as its effects.

A consumer that crashes between writing its rows and recording its position would apply an
event twice or skip one; keeping both in one SQLite transaction rules that out, whatever the
log backend or the consumer-group commits say.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

import sqlite_utils

from eventstore.codec import AvroCodec, Record
from eventstore.exceptions import CorruptRecordError, UnknownSchemaError
from eventstore.log import LogReader, StoredEvent
from eventstore.sqlite_support import write_transaction
from eventstore.position import Position

#: Called with a record a consumer cannot use and why; it parks the record and the consumer goes on.
PoisonHandler = Callable[[StoredEvent, Exception], None]


class LoggedEvent(Protocol):
    """What a consumer reads of a logged event: a ``StoredEvent``, or the lighter row a bulk read returns."""

    @property
    def position(self) -> int: ...
    @property
    def plan_uuid(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def event_id(self) -> str: ...
    @property
    def command_id(self) -> str: ...
    @property
    def body(self) -> bytes: ...
    @property
    def source(self) -> str: ...
    @property
    def where(self) -> str: ...


E = TypeVar("E", bound=LoggedEvent)


def decode_batch(codec: AvroCodec, batch: Sequence[E], on_poison: Callable[[E, Exception], None] | None) -> list[tuple[E, str, Record]]:
    """Decode a batch; without a poison handler a bad record stops the consumer (raises)."""
    out = []
    for stored in batch:
        try:
            name, record = codec.decode(stored.body, stored.where)
        except (CorruptRecordError, UnknownSchemaError) as exc:
            if on_poison is None:
                raise
            on_poison(stored, exc)
            continue
        out.append((stored, name, record))
    return out


def ensure_tracking_table(db: sqlite_utils.Database) -> None:
    db["tracking"].create({"consumer": str, "source": str, "position": int}, pk=("consumer", "source"), if_not_exists=True)  # type: ignore[union-attr]


def tracked_position(db: sqlite_utils.Database, consumer: str, source: str = "log") -> int:
    row = db.conn.execute("SELECT position FROM tracking WHERE consumer = ? AND source = ?", (consumer, source)).fetchone()
    return int(row[0]) if row else 0


def track(db: sqlite_utils.Database, consumer: str, position: int, source: str = "log") -> None:
    """Record the position; call inside the write transaction that holds the effects."""
    db.conn.execute(
        "INSERT INTO tracking (consumer, source, position) VALUES (?, ?, ?)"
        " ON CONFLICT (consumer, source) DO UPDATE SET position = excluded.position",
        (consumer, source, position),
    )


def track_batch(db: sqlite_utils.Database, consumer: str, batch: Sequence[LoggedEvent]) -> None:
    """Record the last position of each source in a batch, inside the write transaction that holds its effects."""
    for source, position in {e.source: e.position for e in batch}.items():
        track(db, consumer, position, source)


class LogConsumer(Protocol):
    """A projection of the embedded log into a SQLite file of its own."""

    @property
    def db(self) -> sqlite_utils.Database: ...

    def position(self) -> int:
        """The last log position whose effects are durable."""

    def apply(self, batch: Sequence[StoredEvent]) -> None:
        """Apply a batch and record its last position, inside the caller's write transaction."""


def catch_up(log: LogReader, consumer: LogConsumer, batch_size: int = 2000) -> int:
    """Feed the consumer every event after its position; returns how many.

    Each batch's position is read, and the batch applied and tracked, inside one write
    transaction of the consumer's file: any number of processes catching the same file up at
    once never apply an event twice or skip one (the second waits, then finds nothing to do).
    """
    done = 0
    while True:
        with write_transaction(consumer.db):
            batch = log.events_after(Position.at(consumer.position()), batch_size)
            if batch:
                consumer.apply(batch)
        if not batch:
            return done
        done += len(batch)
