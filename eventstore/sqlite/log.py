"""The embedded event log: an append-only SQLite file with global positions.

Positions are INTEGER PRIMARY KEYs assigned under the write lock (``BEGIN IMMEDIATE``), so
insert order is commit order and a follower reading ``position > checkpoint`` can never skip a
row committed late. The file runs with ``synchronous=FULL``: the log is the record.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from operator import attrgetter
from pathlib import Path
from typing import Any, NamedTuple

import sqlite_utils
from sqlite_utils.migrations import Migrations

from eventstore.codec import WriterSchema
from eventstore.exceptions import DuplicateCommandError, StaleVersionError
from eventstore.faults import fault_point
from eventstore.log import AppendRequest, AppendResult, CommandRecord, NewEvent, StoredEvent, chain_hash, command_hash
from eventstore.position import LOG, Position
from eventstore.sqlite_support import claim, connect, migrate, write_transaction

migrations = Migrations("watcher-es.log")

#: The columns of ``commands`` and of ``refused_commands``.
_COMMAND_TABLE = {
    "seq": int, "command_id": str, "command_type": str, "plan_uuid": str, "issued_by": str,
    "origin": str, "issued_at": int, "body": bytes, "outcome": str, "reason": str,
    "first_position": int, "last_position": int,
}


@migrations()
def m001_events(db: sqlite_utils.Database) -> None:
    db["events"].create(  # type: ignore[union-attr]
        {
            "position": int, "plan_uuid": str, "version": int, "event_id": str, "event_type": str,
            "command_id": str, "occurred_at": int, "body": bytes, "hash": str,
        },
        pk="position", not_null={"plan_uuid", "version", "event_id", "event_type", "body", "hash"},
    )
    db["events"].create_index(["plan_uuid", "version"], unique=True)  # type: ignore[union-attr]
    db["events"].create_index(["event_id"], unique=True)  # type: ignore[union-attr]
    db["schemas"].create({"fingerprint": str, "name": str, "canonical": str}, pk="fingerprint")  # type: ignore[union-attr]
    not_null = {"command_id", "command_type", "plan_uuid", "outcome"}
    db["commands"].create(_COMMAND_TABLE, pk="seq", not_null=not_null)  # type: ignore[union-attr]
    db["commands"].create_index(["command_id"], unique=True)  # type: ignore[union-attr]
    db["commands"].create_index(["plan_uuid"])  # type: ignore[union-attr]
    for verb in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER events_append_only_{verb.lower()} BEFORE {verb} ON events "
            "BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END"
        )


@migrations()
def m002_refused_commands(db: sqlite_utils.Database) -> None:
    """Commands refused before any decision (an id already used by another command): the audit shows them."""
    db["refused_commands"].create(_COMMAND_TABLE, pk="seq")  # type: ignore[union-attr]
    db["refused_commands"].create_index(["plan_uuid"])  # type: ignore[union-attr]


@migrations()
def m003_command_chains(db: sqlite_utils.Database) -> None:
    """Commands get a sha256 chain of their own (one per table), so an edited command shows in `verify`.

    Rows written before are chained as they are now: the chain starts protecting them from here on.
    """
    for table in ("commands", "refused_commands"):
        db[table].add_column("hash", str)  # type: ignore[union-attr]
        previous = ""
        rows = db.conn.execute(f"SELECT seq, {_COMMAND_COLUMNS} FROM {table} ORDER BY seq").fetchall()
        for seq, *row in rows:
            previous = command_hash(previous, CommandRecord(*row))
            db.conn.execute(f"UPDATE {table} SET hash = ? WHERE seq = ?", (previous, seq))


_EVENT_COLUMNS = "position, plan_uuid, version, event_id, event_type, command_id, occurred_at, body, hash"
_COMMAND_COLUMNS = (
    "command_id, command_type, plan_uuid, issued_by, origin, issued_at, body, outcome, reason, first_position, last_position"
)
_command_row = attrgetter(*_COMMAND_COLUMNS.split(", "))  # a CommandRecord as the columns' values


class LogRow(NamedTuple):
    """An event as a replay reads it (``SqliteEventLog.scan``): what a projection uses of it.

    A ``StoredEvent`` without ``event_type``, ``occurred_at`` and ``hash``, as a plain tuple:
    building a frozen dataclass per row, and the columns nobody reads, cost a replay about as
    much as decoding the bodies (measured).
    """

    position: int
    plan_uuid: str
    version: int
    event_id: str
    command_id: str
    body: bytes

    @property
    def source(self) -> str:
        return "log"

    @property
    def where(self) -> str:
        return f"position {self.position}"


_ROW_COLUMNS = ", ".join(LogRow._fields)


class SqliteEventLog:
    """The EventLog port on one SQLite file, also read back by plan and by position (``LogReader``)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path) if str(path) != ":memory:" else path
        self.db = connect(path, "FULL")
        claim(self.db, "watcher-es.log", "watcher-es event log", path)
        migrate(self.db, migrations)

    def close(self) -> None:
        self.db.conn.close()

    # ---------------------------------------------------------------- writing

    def append(self, plan_uuid: str, expected_version: int, events: Sequence[NewEvent], command: CommandRecord) -> CommandRecord:
        conn = self.db.conn
        try:
            with write_transaction(self.db):
                if conn.execute("SELECT 1 FROM commands WHERE command_id = ?", (command.command_id,)).fetchone():
                    raise DuplicateCommandError(command.command_id)
                first = last = None
                # Checked without events too: a rejection or no-op decided on a stale state must not stand.
                row = conn.execute(
                    "SELECT version, hash FROM events WHERE plan_uuid = ? ORDER BY version DESC LIMIT 1", (plan_uuid,)
                ).fetchone()
                version, previous = row if row else (0, "")
                if version != expected_version:
                    raise StaleVersionError(plan_uuid, expected_version, version)
                if events:
                    rows = []
                    for e in events:
                        version += 1
                        previous = chain_hash(previous, e.body)
                        rows.append((plan_uuid, version, e.event_id, e.event_type, command.command_id, e.occurred_at, e.body, previous))
                    insert = (
                        "INSERT INTO events (plan_uuid, version, event_id, event_type, command_id, occurred_at, body, hash)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    )
                    first = conn.execute(insert, rows[0]).lastrowid
                    fault_point("kill-between-events")  # a crash here must leave none of them: one transaction
                    conn.executemany(insert, rows[1:])
                    last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
                recorded = command.placed(first, last)
                _insert_chained(conn, "commands", recorded)
        except sqlite3.IntegrityError as exc:
            # Another writer got there first: same command id, or the same plan version.
            if "command_id" in str(exc):
                raise DuplicateCommandError(command.command_id) from exc
            actual = self.plan_version(plan_uuid)
            raise StaleVersionError(plan_uuid, expected_version, actual) from exc
        return recorded

    def append_all(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        out: list[AppendResult] = []
        for r in requests:
            try:
                out.append(self.append(r.plan_uuid, r.expected_version, r.events, r.command))
            except (StaleVersionError, DuplicateCommandError) as exc:
                out.append(exc)
        return out

    def keep_schemas(self, schemas: Sequence[WriterSchema]) -> None:
        """Keep every writer schema with the log so old records stay readable without a registry."""
        known = {r[0] for r in self.db.conn.execute("SELECT fingerprint FROM schemas")}
        missing = [s for s in schemas if s.fingerprint not in known]
        if missing:
            with write_transaction(self.db):
                self.db.conn.executemany(
                    "INSERT OR IGNORE INTO schemas (fingerprint, name, canonical) VALUES (?, ?, ?)",
                    [(s.fingerprint, s.name, s.canonical) for s in missing],
                )

    # ---------------------------------------------------------------- reading

    def writer_schemas(self) -> list[WriterSchema]:
        return [WriterSchema(*r) for r in self.db.conn.execute("SELECT fingerprint, name, canonical FROM schemas")]

    def read(self, after: int = 0, limit: int = 1000) -> list[StoredEvent]:
        return [StoredEvent(*r) for r in self._page(_EVENT_COLUMNS, after, limit)]

    def scan(self, after: int = 0, limit: int = 1000) -> list[LogRow]:
        """``read`` for replays: the same events, as light ``LogRow`` tuples (not part of the port)."""
        return list(map(LogRow._make, self._page(_ROW_COLUMNS, after, limit)))

    def _page(self, columns: str, after: int, limit: int) -> list[Any]:
        return self.db.conn.execute(f"SELECT {columns} FROM events WHERE position > ? ORDER BY position LIMIT ?", (after, limit)).fetchall()

    def events_after(self, after: Position, limit: int = 1000) -> list[StoredEvent]:
        return self.read(after[LOG], limit)

    def read_plan(self, plan_uuid: str, until_position: int | None = None) -> list[StoredEvent]:
        rows = self.db.conn.execute(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE plan_uuid = ? AND position <= ? ORDER BY version",
            (plan_uuid, until_position if until_position is not None else 2**62),
        ).fetchall()
        return [StoredEvent(*r) for r in rows]

    def plan_version(self, plan_uuid: str) -> int:
        row = self.db.conn.execute("SELECT max(version) FROM events WHERE plan_uuid = ?", (plan_uuid,)).fetchone()
        return int(row[0] or 0)

    def last_position(self) -> int:
        row = self.db.conn.execute("SELECT max(position) FROM events").fetchone()
        return int(row[0] or 0)

    def command_outcome(self, command_id: str) -> CommandRecord | None:
        row = self.db.conn.execute(f"SELECT {_COMMAND_COLUMNS} FROM commands WHERE command_id = ?", (command_id,)).fetchone()
        return CommandRecord(*row) if row else None

    def plan_commands(self, plan_uuid: str) -> list[CommandRecord]:
        """The plan's commands in the order they were handled, then those refused under a used id."""
        rows = [*self.db.conn.execute(f"SELECT {_COMMAND_COLUMNS} FROM commands WHERE plan_uuid = ? ORDER BY seq", (plan_uuid,))]
        rows += self.db.conn.execute(f"SELECT {_COMMAND_COLUMNS} FROM refused_commands WHERE plan_uuid = ? ORDER BY seq", (plan_uuid,))
        return [CommandRecord(*r) for r in rows]

    def record_refused(self, command: CommandRecord) -> None:
        with write_transaction(self.db):
            _insert_chained(self.db.conn, "refused_commands", command)

    def broken_command(self) -> tuple[str, int, CommandRecord] | None:
        """The first command (table, row, record) whose chained hash does not match its content: an edit."""
        for table in ("commands", "refused_commands"):
            previous = ""
            for seq, stored, *row in self.db.conn.execute(f"SELECT seq, hash, {_COMMAND_COLUMNS} FROM {table} ORDER BY seq"):
                record = CommandRecord(*row)
                previous = command_hash(previous, record)
                if stored != previous:
                    return table, seq, record
        return None

    def plan_uuids(self) -> list[str]:
        return [r[0] for r in self.db.conn.execute("SELECT DISTINCT plan_uuid FROM events WHERE version = 1 ORDER BY position")]


def _insert_chained(conn: sqlite3.Connection, table: str, record: CommandRecord) -> None:
    """Insert a command chained to the previous one of its table; call under the write lock."""
    row = conn.execute(f"SELECT hash FROM {table} ORDER BY seq DESC LIMIT 1").fetchone()
    chained = command_hash(row[0] if row and row[0] else "", record)
    conn.execute(f"INSERT INTO {table} ({_COMMAND_COLUMNS}, hash) VALUES ({', '.join('?' * 12)})", (*_command_row(record), chained))
