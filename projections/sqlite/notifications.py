"""The embedded notification store: every notification, in emission order, for readers to follow.

On the embedded default this is where notifications are published; on Kafka they go to the
notification topics. INSERT OR IGNORE on ``message_id`` makes a re-run of the translator over
the same events a no-op, and the translator's position commits with the rows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlite_utils
from sqlite_utils.migrations import Migrations

from eventstore.log import StoredEvent, pages
from eventstore.position import Position
from eventstore.sqlite.log import SqliteEventLog
from eventstore.sqlite_support import checkpoint, claim, connect, migrate, rows_for, write_transaction
from projections.exceptions import ReplayError
from projections.payloads import DEFAULT_PAYLOAD_SET
from projections.replay import BATCH_SIZE
from projections.tracking import LoggedEvent, PoisonHandler, ensure_tracking_table, track_batch, tracked_position
from projections.translator import Notification, Translator

logger = logging.getLogger(__name__)

migrations = Migrations("watcher-es.notifications")


@migrations()
def m001_notifications(db: sqlite_utils.Database) -> None:
    db["notifications"].create(  # type: ignore[union-attr]
        {
            "seq": int, "message_id": str, "event_type": str, "priority": str, "plan_uuid": str,
            "plan_seq": int, "position": int, "event_id": str, "envelope": str,
        },
        pk="seq", not_null={"message_id", "event_type", "priority", "plan_uuid", "envelope"},
    )
    db["notifications"].create_index(["message_id"], unique=True)  # type: ignore[union-attr]
    db["notifications"].create_index(["plan_uuid", "plan_seq"])  # type: ignore[union-attr]
    ensure_tracking_table(db)


@migrations()
def m002_payload_set(db: sqlite_utils.Database) -> None:
    """Which payload set built each notification, so a re-emission builds the same bytes."""
    db["notifications"].add_column("payload_set", str, not_null_default=DEFAULT_PAYLOAD_SET)  # type: ignore[union-attr]
    db["notifications"].create_index(["event_id"])  # type: ignore[union-attr]


@migrations()
def m003_store_settings(db: sqlite_utils.Database) -> None:
    """Settings that belong to the store, not to whichever process happens to catch it up."""
    db["store_settings"].create({"key": str, "value": str}, pk="key")  # type: ignore[union-attr]


class NotificationOutbox:
    """The translator as a log consumer whose output is this SQLite file."""

    CONSUMER = "translator"

    def __init__(self, path: Path | str, translator: Translator) -> None:
        # Derived from the log and re-derivable with the same message ids, its position committed
        # with its rows: losing the last transactions on power loss only means re-emitting them,
        # so it does without the log's second fsync per command (NORMAL, as the read model).
        self.db = connect(path, "NORMAL", checkpoint_on_commit=False)
        claim(self.db, "watcher-es.notifications", "watcher-es notification store", path)
        migrate(self.db, migrations)
        self.translator = translator
        #: Where events the translator cannot use go (None: the translator raises).
        self.on_poison: PoisonHandler | None = None

    def close(self) -> None:
        checkpoint(self.db)
        self.db.conn.close()

    def checkpoint(self) -> None:
        """Called by the service after a command's work, off the path that makes notifications visible."""
        checkpoint(self.db)

    def notification_level(self, told: str | None) -> str:
        """The store's notification level: set when the store is created, changed only when told."""
        with write_transaction(self.db):
            row = self.db.conn.execute("SELECT value FROM store_settings WHERE key = 'notification_level'").fetchone()
            if told is None:
                told = str(row[0]) if row is not None else "INFO"
            if row is None or row[0] != told:
                self.db.conn.execute("INSERT OR REPLACE INTO store_settings (key, value) VALUES ('notification_level', ?)", (told,))
            return told

    def position(self) -> int:
        return tracked_position(self.db, self.CONSUMER)

    def apply(self, batch: Sequence[StoredEvent]) -> None:
        """Translate and store a batch with its position; call inside a write transaction of this file."""
        self.send(self.translator.translate(batch, on_poison=self.on_poison))
        track_batch(self.db, self.CONSUMER, batch)

    def send(self, notes: Sequence[Notification]) -> None:
        """The notification sink (the caller holds a write transaction): a re-sent message id is kept once."""
        self.db.conn.executemany(
            "INSERT OR IGNORE INTO notifications"
            " (message_id, event_type, priority, plan_uuid, plan_seq, position, event_id, envelope, payload_set)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (n.message_id, n.event_type, n.priority, n.plan_uuid, n.plan_seq, n.position, n.event_id, n.to_json(), n.payload_set)
                for n in notes
            ],
        )

    def read(self, after_seq: int = 0, limit: int = 1000, plan_uuid: str | None = None) -> list[tuple[int, dict[str, Any]]]:
        where, args = ("seq > ? AND plan_uuid = ?", (after_seq, plan_uuid)) if plan_uuid else ("seq > ?", (after_seq,))
        rows = self.db.conn.execute(f"SELECT seq, envelope FROM notifications WHERE {where} ORDER BY seq LIMIT ?", (*args, limit))
        return [(seq, json.loads(body)) for seq, body in rows]

    def iterate(self, after_seq: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
        while batch := self.read(after_seq):
            yield from batch
            after_seq = batch[-1][0]

    def payload_sets_of(self, event_ids: Sequence[str]) -> dict[str, str]:
        """The payload set each of these events' notification was emitted with (those emitted)."""
        return dict(rows_for(self.db.conn.execute, "SELECT event_id, payload_set FROM notifications WHERE event_id IN ({keys})", event_ids))

    def last_seq(self) -> int:
        row = self.db.conn.execute("SELECT max(seq) FROM notifications").fetchone()
        return int(row[0] or 0)


def stored_notifications(outbox: NotificationOutbox, plan_uuid: str | None = None) -> list[Notification]:
    """Every stored notification with its metadata (for audit and tests)."""
    rows = outbox.db.conn.execute(
        "SELECT message_id, event_type, priority, plan_uuid, plan_seq, position, event_id, envelope, payload_set FROM notifications"
        + (" WHERE plan_uuid = ?" if plan_uuid else "") + " ORDER BY seq",
        (plan_uuid,) if plan_uuid else (),
    )
    return [Notification(m, et, p, pu, ps, pos, eid, json.loads(env), s) for m, et, p, pu, ps, pos, eid, env, s in rows]


def replay_notifications(
    log: SqliteEventLog, translator: Translator, first: int = 1, last: int | None = None, *,
    plan_uuid: str | None = None, batch_size: int = BATCH_SIZE,
) -> Iterator[Notification]:
    """The notifications positions ``first``..``last`` (inclusive) of the embedded log cause, translated afresh.

    A fresh translator over the log, not the stored emission: message ids derive from event ids
    and payloads from the plan as each event left it, so these are identical to the first
    emission, ``message_id`` included, and a consumer recognises them as re-sends.
    """
    if first < 1:
        raise ReplayError(f"--from-position {first}: positions start at 1")
    end = last if last is not None else log.last_position()
    if end < first - 1:
        raise ReplayError(f"--to-position {end} is before --from-position {first}")
    for batch in pages(log, batch_size, Position.at(first - 1)):
        wanted = [e for e in batch if e.position <= end and (plan_uuid is None or e.plan_uuid == plan_uuid)]
        if wanted:
            yield from translator.translate(wanted, on_poison=_skip_unusable)
        if batch[-1].position >= end:
            return


def _skip_unusable(event: LoggedEvent, error: Exception) -> None:
    """Re-emission goes past an unusable event (the live consumers parked it; `verify` names it)."""
    logger.warning("not re-emitting from %s: %s", event.where, error)
