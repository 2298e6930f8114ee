"""``verify``: the log's hash chains hold, and the live read model is what the log says it is.

Two checks, one pass over the log through the ``History`` port:

1. The chains. Per plan, in log order: versions run 1, 2, 3... (so positions grow with
   version), each ``hash`` is ``chain_hash(previous hash, body)`` (the first chains from ""),
   and the columns the hash does not cover (type, ids, time, plan) agree with the signed body.
   An edited, deleted, inserted or reordered event breaks one of these at a known place.
2. The projection. A fresh ``ReadModel`` (in memory by default) is rebuilt from the log up to
   the position the live model says it has reached, then both are compared table by table. A
   live model that drifted, or that still shows an event the log no longer has, differs there.

The first difference found raises ``VerificationFailed`` naming the plan and the position. The
live model is read in one read transaction, so a model being caught up meanwhile compares
consistently: its rows and its position come from the same snapshot.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from itertools import zip_longest
from operator import itemgetter
from pathlib import Path
from typing import Any, Final, NoReturn

from eventstore.codec import AvroCodec
from eventstore.domain.plan import UnexpectedEventError
from eventstore.exceptions import WatcherEsError
from eventstore.position import Position
from eventstore.config import Settings
from eventstore.log import StoredEvent, chain_hash

from projections.exceptions import VerificationFailed
from projections.history import History
from projections.read_model import ACTION_COLUMNS, AUDIT_COLUMNS, HISTORY_COLUMNS, PLAN_COLUMNS, STRATEGY_COLUMNS, ReadModel
from projections.replay import BATCH_SIZE

#: The columns of a stored event that must agree with its (hashed) body.
_SIGNED_FIELDS: Final = ("event_id", "command_id", "plan_uuid", "occurred_at")

#: Table, its columns, its key: the order in which the projection is compared.
_TABLES: Final = (
    ("plan_history", HISTORY_COLUMNS, ("plan_uuid", "version")),
    ("action_plans", PLAN_COLUMNS, ("uuid",)),
    ("actions", ACTION_COLUMNS, ("uuid",)),
    ("audits", AUDIT_COLUMNS, ("uuid",)),
    ("strategies", STRATEGY_COLUMNS, ("uuid",)),
)


@dataclass(frozen=True)
class VerifyReport:
    """A log and model that held up: how many events and plans, and the positions compared."""

    events: int
    plans: int
    log_position: Position
    model_position: Position


@dataclass(frozen=True)
class _Head:
    version: int
    hash: str
    position: int
    source: str


class ChainChecker:
    """Follows every plan's chain through the log in position order, in O(plans) memory.

    Positions count per source (the embedded log has one, "log"; on Kafka each partition is
    one), and a plan's events all live in one source, so order is checked per source.
    """

    def __init__(self, codec: AvroCodec) -> None:
        self._codec = codec
        self._heads: dict[str, _Head] = {}
        self.last_positions: dict[str, int] = {}
        self.events = 0

    @property
    def plans(self) -> int:
        return len(self._heads)

    def check(self, stored: StoredEvent) -> None:
        """Raise ``VerificationFailed`` unless ``stored`` is the next link of its plan's chain."""
        plan, position = stored.plan_uuid, stored.position
        last = self.last_positions.get(stored.source, 0)
        # On Kafka one command's events share their record's position; the chain orders them.
        if position < last or (position == last and stored.source == "log"):
            self._fail("order", stored, f"{stored.where} comes after position {last} of {stored.source}")
        head = self._heads.get(plan, _Head(0, "", 0, stored.source))
        if head.source != stored.source:
            self._fail("chain", stored, f"the plan's earlier events are in {head.source}, this one is in {stored.source}")
        if stored.version != head.version + 1:
            after = f"version {head.version} at position {head.position}" if head.version else "the start of the plan"
            gap = f"version {head.version + 1} is missing or out of order" if stored.version > head.version + 1 else "versions repeat or go back"
            self._fail("chain", stored, f"version {stored.version} follows {after}: {gap}")
        if chain_hash(head.hash, stored.body) != stored.hash:
            self._fail("chain", stored, (
                f"event {stored.event_id} (version {stored.version}): its hash does not match its bytes"
                " chained to the previous event of its plan"
            ))
        self._check_signed_fields(stored)
        self._heads[plan] = _Head(stored.version, stored.hash, position, stored.source)
        self.last_positions[stored.source] = position
        self.events += 1

    def _check_signed_fields(self, stored: StoredEvent) -> None:
        try:
            name, record = self._codec.decode(stored.body, stored.where)
        except WatcherEsError as exc:
            self._fail("record", stored, str(exc))
        stated = {"event_type": stored.event_type, **{f: getattr(stored, f) for f in _SIGNED_FIELDS}}
        signed = {"event_type": name, **{f: record.get(f) for f in _SIGNED_FIELDS}}
        wrong = [f"{f} is {stated[f]!r} but the event says {signed[f]!r}" for f in stated if stated[f] != signed[f]]
        if wrong:
            self._fail("record", stored, "; ".join(wrong))

    @staticmethod
    def _fail(kind: str, stored: StoredEvent, detail: str) -> NoReturn:
        where = None if stored.source == "log" else stored.where
        raise VerificationFailed(kind, stored.plan_uuid, stored.position, detail, where)


def verify(
    history: History, codec: AvroCodec, live: ReadModel, *, batch_size: int = BATCH_SIZE, scratch: Path | str = ":memory:",
) -> VerifyReport:
    """Check the chains of the whole log and compare the live model with a fresh rebuild.

    Raises ``VerificationFailed`` at the first difference; ``scratch`` is where the fresh model is
    built (a file instead of memory for a log too big to hold its model in RAM).
    """
    edited = history.edited_command()
    if edited is not None:
        command = edited.command
        raise VerificationFailed(
            "command", command.plan_uuid, None,
            f"{edited.table} row {edited.row}: command {command.command_id} ({command.command_type}) does not match its chained hash: it was edited",
            f"{edited.table} row {edited.row}",
        )
    stream = history.stored(batch_size)
    conn = live.db.conn
    conn.execute("BEGIN")  # one snapshot of the live model: its rows and its positions agree
    try:
        reached = live.positions()
        with closing(ReadModel(scratch, codec)) as fresh:
            chains = _replay_and_check(stream, ChainChecker(codec), fresh, reached)
            _check_not_ahead(conn, reached, chains.last_positions)
            difference = _first_difference(conn, fresh.db.conn)
    finally:
        conn.execute("ROLLBACK")
    if difference is not None:
        raise difference
    return VerifyReport(chains.events, chains.plans, Position.of(chains.last_positions), Position.of(reached))


def _replay_and_check(stream: Iterable[Sequence[StoredEvent]], chains: ChainChecker, fresh: ReadModel, reached: dict[str, int]) -> ChainChecker:
    """Check every event's chain; apply those the live model has reached to the fresh model."""
    for batch in stream:
        for stored in batch:
            chains.check(stored)
        upto = [e for e in batch if e.position <= reached.get(e.source, 0)]
        if upto:
            try:
                fresh.process(upto)
            except (WatcherEsError, UnexpectedEventError, KeyError) as exc:
                raise VerificationFailed(
                    "replay", upto[0].plan_uuid, upto[0].position,
                    f"positions {upto[0].position}..{upto[-1].position} do not replay: {type(exc).__name__}: {exc}",
                ) from exc
    return chains


def _check_not_ahead(conn: sqlite3.Connection, reached: dict[str, int], log_ends: dict[str, int]) -> None:
    """A model past the end of the log shows events the log no longer has (removed from its tail)."""
    for source, position in sorted(reached.items()):
        end = log_ends.get(source, 0)
        if position > end:
            sql = "SELECT plan_uuid FROM plan_history WHERE position > ? ORDER BY position LIMIT 1"
            plan = _first_value(conn, sql, end) if source == "log" else None
            raise VerificationFailed(
                "projection", plan, end + 1,
                f"the read model has read {source} up to position {position} but it ends at {end}: events were removed from the log",
            )


# ---------------------------------------------------------------- comparing the models


def _rows(conn: sqlite3.Connection, table: str, columns: Sequence[str], key: Sequence[str]) -> Iterator[tuple[Any, ...]]:
    return conn.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {', '.join(key)}")


def _first_difference(live: sqlite3.Connection, fresh: sqlite3.Connection) -> VerificationFailed | None:
    """The difference at the lowest log position across all tables, or None if they are equal."""
    found = [d for table in _TABLES if (d := _table_difference(live, fresh, *table)) is not None]
    return min(found, key=lambda d: d.position if d.position is not None else 2**62, default=None)


def _table_difference(
    live: sqlite3.Connection, fresh: sqlite3.Connection, table: str, columns: Sequence[str], key: Sequence[str],
) -> VerificationFailed | None:
    """Walk both tables in key order, in step; the first row that differs, or None."""
    key_of = itemgetter(*(columns.index(c) for c in key))  # the key's value (a tuple for a composite key)
    live_rows, fresh_rows = _rows(live, table, columns, key), _rows(fresh, table, columns, key)
    live_row, fresh_row = next(live_rows, None), next(fresh_rows, None)
    while live_row is not None or fresh_row is not None:
        if live_row == fresh_row:
            live_row, fresh_row = next(live_rows, None), next(fresh_rows, None)
            continue
        if fresh_row is None or (live_row is not None and key_of(live_row) < key_of(fresh_row)):
            return _describe(live, fresh, table, columns, live_row, None, "is in the read model but not in the log")
        if live_row is None or key_of(fresh_row) < key_of(live_row):
            return _describe(live, fresh, table, columns, None, fresh_row, "is missing from the read model")
        changed = [f"{c} is {a!r}, the log says {b!r}" for c, a, b in zip_longest(columns, live_row, fresh_row) if a != b]
        return _describe(live, fresh, table, columns, live_row, fresh_row, "drifted: " + "; ".join(changed))
    return None


def _describe(
    live: sqlite3.Connection, fresh: sqlite3.Connection, table: str, columns: Sequence[str],
    live_row: tuple[Any, ...] | None, fresh_row: tuple[Any, ...] | None, what: str,
) -> VerificationFailed:
    """Name the plan and the position from which the two rows disagree.

    That is the later of the positions each side last wrote the row at: a row the log no
    longer backs (its last event deleted) differs from that event's position on, not before.
    """
    rows = [(conn, dict(zip(columns, row, strict=True))) for conn, row in ((live, live_row), (fresh, fresh_row)) if row is not None]
    located = [_locate(conn, table, row) for conn, row in rows]
    plan = next((p for p, _ in located if p is not None), None)
    positions = [p for _, p in located if p is not None]
    row = rows[-1][1]
    key = f"{row['plan_uuid']} version {row['version']}" if table == "plan_history" else row["uuid"]
    return VerificationFailed("projection", plan, max(positions) if positions else None, f"{table} row {key} {what}")


def _locate(conn: sqlite3.Connection, table: str, row: dict[str, Any]) -> tuple[str | None, int | None]:
    """The plan a row belongs to and the position of the last event that wrote it, on one side."""
    if table == "plan_history":
        return row["plan_uuid"], row["position"]
    if table == "action_plans":
        return row["uuid"], row["last_position"]
    if table == "actions":
        plan = row["action_plan_uuid"]
        sql = "SELECT max(position) FROM plan_history WHERE action_uuid = ? OR (plan_uuid = ? AND version = 1)"
        return plan, _first_value(conn, sql, row["uuid"], plan)
    column = "audit_uuid" if table == "audits" else "strategy_uuid"
    found = conn.execute(
        f"SELECT p.uuid, h.position FROM action_plans p JOIN plan_history h ON h.plan_uuid = p.uuid AND h.version = 1"
        f" WHERE p.{column} = ? ORDER BY h.position LIMIT 1", (row["uuid"],),
    ).fetchone()
    return (found[0], found[1]) if found else (None, None)


def _first_value(conn: sqlite3.Connection, sql: str, *args: Any) -> Any:
    row = conn.execute(sql, args).fetchone()
    return row[0] if row else None


def verify_against(history: History, codec: AvroCodec, settings: Settings, on_disk: bool) -> VerifyReport:
    """``watcher-es verify`` against the live model beside --db; ``on_disk`` rebuilds in a scratch file beside it."""
    with tempfile.TemporaryDirectory(dir=settings.paths.model.parent, prefix=".verify-") as tmp:
        with closing(ReadModel(settings.paths.model, codec)) as model:
            return verify(history, codec, model, scratch=Path(tmp) / "fresh.db" if on_disk else ":memory:")
