"""A Kafka part's local state store: each plan's state, version and chain head, where each partition got to.

The Kafka Streams model: the events topic is the changelog, this SQLite file the state
partitioned like it, committed a batch at a time with the positions the batch reaches, so a
restart reads only the records written since it stopped. The handler keeps here too the command
records it must recognise (a redelivered command, a reused id).

The file is rebuildable: deleting it makes the next start fold the topic from its beginning
and reach the same state, and a file written with another plan serialization (``FORMAT``), or
folded from another topic (``--db`` reused with another prefix), is emptied and rebuilt rather
than misread. It runs with ``synchronous=NORMAL`` for that reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import fields
from operator import attrgetter
from pathlib import Path
from typing import Any, Final, TypeVar, cast

import sqlite_utils
from sqlite_utils.migrations import Migrations

from eventstore.domain.messages import Audit, Fault, Strategy
from eventstore.domain.plan import ActionView, Cancellation, Plan
from eventstore.exceptions import WatcherEsError
from eventstore.log import CommandRecord
from eventstore.sqlite_support import claim, connect, migrate, rows_for, write_transaction

logger = logging.getLogger(__name__)
V = TypeVar("V")

migrations = Migrations("watcher-es.plan-state")

_SHAPES = (Plan, ActionView, Cancellation, Audit, Strategy, Fault)

#: How plan states are written. It changes with any field of the classes a plan is made of, so
#: a store written by code with another shape of ``Plan`` is rebuilt instead of misread; bump the
#: leading number for a change of the encoding itself.
FORMAT: Final = "1:" + hashlib.sha256(
    "|".join(f"{c.__name__}({','.join(f.name for f in fields(c))})" for c in _SHAPES).encode()
).hexdigest()[:16]


class CorruptStateError(WatcherEsError):
    """A row of a state store cannot be read: the file is damaged (delete it; the next start rebuilds it)."""


@migrations()
def m001_tables(db: sqlite_utils.Database) -> None:
    db["meta"].create({"key": str, "value": str}, pk="key")  # type: ignore[union-attr]
    db["positions"].create({"source": str, "position": int}, pk="source", not_null={"position"})  # type: ignore[union-attr]
    db["plans"].create(  # type: ignore[union-attr]
        {"uuid": str, "version": int, "head": str, "state": str, "abort_deadline": int, "plan": str},
        pk="uuid", not_null={"version", "head"}, defaults={"version": 0, "head": ""},
    )
    db["plans"].create_index(["state", "abort_deadline"])  # type: ignore[union-attr]
    db["commands"].create(  # type: ignore[union-attr]
        {
            "command_id": str, "command_type": str, "plan_uuid": str, "issued_by": str, "origin": str, "issued_at": int,
            "body": bytes, "outcome": str, "reason": str, "first_position": int, "last_position": int,
        },
        pk="command_id",
    )


# ---------------------------------------------------------------------------- plan states as rows

_AUDIT, _STRATEGY, _FAULT = (attrgetter(*(f.name for f in fields(c))) for c in (Audit, Strategy, Fault))
_ACTION = attrgetter("uuid", "action_type", "input_parameters", "parents", "state", "created_at", "updated_at", "deleted_at")
_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_decode_json = json.JSONDecoder().decode


def _fault(fault: Fault | None) -> Any:
    return None if fault is None else _FAULT(fault)


def _fault_of(row: Any) -> Fault | None:
    return None if row is None else Fault(*row)


def encode_plan(plan: Plan) -> str:
    """A plan as compact JSON: positional lists, the field order fixed by ``FORMAT``."""
    c = plan.cancellation
    return _encode_json([
        plan.uuid, plan.state, plan.global_efficacy, plan.created_at, plan.updated_at, plan.deleted_at,
        _AUDIT(plan.audit), _STRATEGY(plan.strategy),
        [(*_ACTION(a), _fault(a.fault), a.status_message) for a in plan.actions],
        plan.version,
        None if c is None else (c.requested_by, c.reason, c.started_at, c.abort_deadline, c.started_event_id, _fault(c.fault)),
        _fault(plan.fault), plan.status_message, plan.mirrored,
    ])


def decode_plan(text: str) -> Plan:
    (uuid, state, efficacy, created, updated, deleted, audit, strategy, actions, version, c, fault, message, mirrored) = _decode_json(text)
    return Plan(
        uuid, state, efficacy, created, updated, deleted, Audit(*audit), Strategy(*strategy),
        tuple(ActionView(a[0], a[1], a[2], tuple(a[3]), a[4], a[5], a[6], a[7], _fault_of(a[8]), a[9]) for a in actions),
        version,
        None if c is None else Cancellation(c[0], c[1], c[2], c[3], c[4], _fault_of(c[5])),
        _fault_of(fault), message, mirrored,
    )




#: A ``CommandRecord``'s fields, in order: its row.
_COMMAND_COLUMNS = (
    "command_id", "command_type", "plan_uuid", "issued_by", "origin", "issued_at", "body", "outcome", "reason",
    "first_position", "last_position",
)
_COMMAND_ROW = attrgetter(*_COMMAND_COLUMNS)
#: A plan the store has no row for (compared by identity: a row may hold version 0 too).
_ABSENT = (0, "")
_MARK = "INSERT INTO plans (uuid, version, head) VALUES (?, ?, ?) ON CONFLICT (uuid) DO UPDATE SET version = excluded.version, head = excluded.head"
_PLAN = (
    "INSERT INTO plans (uuid, state, abort_deadline, plan) VALUES (?, ?, ?, ?) ON CONFLICT (uuid) DO UPDATE SET "
    "state = excluded.state, abort_deadline = excluded.abort_deadline, plan = excluded.plan"
)
_COMMAND = f"INSERT OR REPLACE INTO commands ({', '.join(_COMMAND_COLUMNS)}) VALUES ({', '.join('?' * len(_COMMAND_COLUMNS))})"
_POSITION = "INSERT INTO positions (source, position) VALUES (?, ?) ON CONFLICT (source) DO UPDATE SET position = excluded.position"


class PlanStateStore:
    """One part's state: plans, versions, chain heads, command records, positions; changed a batch at a time.

    Changes (``mark``, ``put_plan``, ``put_command``) and the positions they reach (``stage``) are
    pending until ``commit`` writes them all in one transaction; reads see pending changes first.
    ``discard`` drops them (what failed is read again from the stored positions). A part stages
    every batch and commits when ``due``: the topic is the truth, so a store that lags it only
    makes a restart read more of the tail, and a transaction per batch (each plan written again
    for each of its commands) was a tenth of the handler's and the translator's work. ``path=None``
    is a store in memory: a part that is given no file rebuilds at every start, as before.
    """

    #: How long changes may stay pending (``due``), and how many commands at most.
    COMMIT_EVERY_S: Final = 1.0
    COMMIT_AFTER_COMMANDS: Final = 5_000

    def __init__(self, path: Path | None = None, cache_size: int = 10_000, changelog: str = "") -> None:
        self.path = path
        self.changelog = changelog
        self.db = connect(":memory:" if path is None else path, "NORMAL")
        claim(self.db, migrations.name, "plan-state store", path or ":memory:")
        migrate(self.db, migrations)
        self._conn: sqlite3.Connection = self.db.conn
        self._check_format()
        self._cache_size = cache_size
        self._cache: OrderedDict[str, Plan] = OrderedDict()
        #: Committed (version, chain head) of recently used plans, (0, '') for one not in the store:
        #: the fence and the chain ask for them for every append, and a query each was most of a lookup.
        self._heads: OrderedDict[str, tuple[int, str]] = OrderedDict()
        self._marks: dict[str, tuple[int, str]] = {}
        self._plans: dict[str, Plan] = {}
        self._commands: dict[str, CommandRecord] = {}
        #: Command records read ahead for a batch (None: not in the store), and those a commit just
        #: wrote: the writer asks for its batch's records right after the commit that folds them.
        self._looked_up: dict[str, CommandRecord | None] = {}
        self._positions: dict[str, int] = dict(self._conn.execute("SELECT source, position FROM positions").fetchall())
        #: Positions the pending changes bring sources to.
        self._staged: dict[str, int] = {}
        self._committed_at = time.monotonic()

    def close(self) -> None:
        self.db.conn.close()

    def _check_format(self) -> None:
        """Empty a store this code cannot trust: plans written in another ``FORMAT``, or folded from another topic."""
        wanted = {"format": FORMAT, "changelog": self.changelog}
        found = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        if found == wanted:
            return
        if found:
            logger.warning("%s holds plan states of %s, not %s: rebuilding it from the topic", self.path, found, wanted)
        with write_transaction(self.db):
            for table in ("meta", "positions", "plans", "commands"):
                self._conn.execute(f"DELETE FROM {table}")
            self._conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", wanted.items())

    # ---------------------------------------------------------------- reading

    def position(self, source: str) -> int:
        """Where this store's state of ``source`` (``topic/partition``) stands, pending changes included:
        offset + 1 of the last record folded, 0 if none."""
        return self._staged.get(source) or self._positions.get(source, 0)

    def positions(self) -> dict[str, int]:
        return {**self._positions, **self._staged}

    def committed_positions(self) -> dict[str, int]:
        """The positions on file: where a restart resumes."""
        return dict(self._positions)

    def versions(self, plan_uuids: Iterable[str]) -> dict[str, int]:
        """Each plan's version (the events of its standing appends), for the fence; 0 for a plan not seen."""
        out: dict[str, int] = {}
        missing: list[str] = []
        for uuid in plan_uuids:
            mark = self._marks.get(uuid) or self._heads.get(uuid)
            if mark is None:
                missing.append(uuid)
            elif mark is not _ABSENT:
                out[uuid] = mark[0]
        if missing:
            found = self._read_heads(missing)
            out.update((uuid, mark[0]) for uuid, mark in found.items() if mark is not _ABSENT)
        return out

    def version(self, plan_uuid: str) -> int:
        return self.versions([plan_uuid]).get(plan_uuid, 0)

    def head(self, plan_uuid: str) -> str:
        """The hash of the plan's last event ('' before its first): where its next append chains on."""
        mark = self._marks.get(plan_uuid) or self._heads.get(plan_uuid)
        if mark is None:
            mark = self._read_heads([plan_uuid])[plan_uuid]
        return mark[1]

    def _read_heads(self, plan_uuids: list[str]) -> dict[str, tuple[int, str]]:
        found: dict[str, tuple[int, str]] = dict.fromkeys(plan_uuids, _ABSENT)
        rows = rows_for(self._conn.execute, "SELECT uuid, version, head FROM plans WHERE uuid IN ({keys})", plan_uuids)
        found.update((uuid, (version, head or "")) for uuid, version, head in rows)
        self._remember(self._heads, found)
        return found

    def plan(self, plan_uuid: str) -> Plan | None:
        """The plan as the events folded so far leave it (pending changes included)."""
        pending = self._plans.get(plan_uuid)
        if pending is not None:
            return pending
        cached = self._cache.get(plan_uuid)
        if cached is not None:
            self._cache.move_to_end(plan_uuid)
            return cached
        if self._heads.get(plan_uuid) is _ABSENT and plan_uuid not in self._marks:
            return None  # a plan the store has no row for (a batch's new plans, looked up with their versions)
        row = self._conn.execute("SELECT plan FROM plans WHERE uuid = ?", (plan_uuid,)).fetchone()
        if row is None or row[0] is None:
            return None
        plan = self._decode(plan_uuid, row[0])
        self._remember(self._cache, {plan.uuid: plan})
        return plan

    def _decode(self, plan_uuid: str, text: str) -> Plan:
        try:
            return decode_plan(text)
        except (ValueError, TypeError) as exc:
            raise CorruptStateError(f"{self.path}: the state of plan {plan_uuid} cannot be read ({exc}); delete the file to rebuild it") from None

    def count(self) -> int:
        return cast(int, self._conn.execute("SELECT count(*) FROM plans WHERE plan IS NOT NULL").fetchone()[0])

    def command(self, command_id: str) -> CommandRecord | None:
        """The record of a command whose append stands, if this store has folded it."""
        pending = self._commands.get(command_id)
        if pending is not None:
            return pending
        if command_id not in self._looked_up:
            self.look_up_commands([command_id])
        return self._looked_up[command_id]

    def look_up_commands(self, command_ids: Iterable[str]) -> None:
        """Read a batch's command records in one query (per 500): ``command`` then answers from memory."""
        missing = [c for c in set(command_ids) if c not in self._commands and c not in self._looked_up]
        rows = rows_for(self._conn.execute, f"SELECT {', '.join(_COMMAND_COLUMNS)} FROM commands WHERE command_id IN ({{keys}})", missing)
        self._looked_up.update((row[0], CommandRecord(*row)) for row in rows)
        for command_id in missing:
            self._looked_up.setdefault(command_id, None)

    # ---------------------------------------------------------------- changing, a batch at a time

    def mark(self, plan_uuid: str, version: int, head: str = "") -> None:
        """The plan's version and chain head after an append that stands."""
        self._marks[plan_uuid] = (version, head)

    def put_plan(self, plan: Plan) -> None:
        self._plans[plan.uuid] = plan

    def put_command(self, record: CommandRecord) -> None:
        self._commands[record.command_id] = record

    def stage(self, positions: Mapping[str, int]) -> None:
        """The positions the pending changes bring each source to: written with them by ``commit``."""
        for source, position in positions.items():
            if position > self.position(source):
                self._staged[source] = position

    @property
    def due(self) -> bool:
        """Pending changes that have waited long enough, or are many enough, to be written."""
        if not (self._staged or self._marks or self._plans or self._commands):
            return False
        return len(self._commands) >= self.COMMIT_AFTER_COMMANDS or time.monotonic() - self._committed_at >= self.COMMIT_EVERY_S

    def commit(self, positions: Mapping[str, int] | None = None) -> None:
        """Write every pending change and the positions they bring each source to (staged, and
        ``positions``), in one transaction."""
        self.stage(positions or {})
        self._committed_at = time.monotonic()
        positions, self._staged = self._staged, {}
        if not (positions or self._marks or self._plans or self._commands):
            return
        try:
            with write_transaction(self.db):
                self._conn.executemany(_MARK, [(u, v, h) for u, (v, h) in self._marks.items()])
                self._conn.executemany(_PLAN, [
                    (p.uuid, p.state, p.cancellation.abort_deadline if p.cancellation else None, encode_plan(p))
                    for p in self._plans.values()
                ])
                self._conn.executemany(_COMMAND, map(_COMMAND_ROW, self._commands.values()))
                self._conn.executemany(_POSITION, positions.items())
        except BaseException:
            self.discard()
            raise
        self._positions.update(positions)
        self._remember(self._heads, self._marks)
        self._remember(self._cache, self._plans)
        if len(self._looked_up) > self._cache_size:
            self._looked_up = {}
        self._looked_up.update(self._commands)
        self._marks, self._plans, self._commands = {}, {}, {}

    def discard(self) -> None:
        """Forget every pending change (what they came from is read again from the stored positions)."""
        self._marks, self._plans, self._commands, self._looked_up, self._staged = {}, {}, {}, {}, {}

    def _remember(self, cache: OrderedDict[str, V], items: Mapping[str, V]) -> None:
        """Keep the items in a bounded LRU cache (none with ``cache_size`` 0)."""
        if self._cache_size <= 0:
            return
        for key, value in items.items():
            cache[key] = value
            cache.move_to_end(key)
        while len(cache) > self._cache_size:
            cache.popitem(last=False)


__all__ = ["FORMAT", "CorruptStateError", "PlanStateStore", "decode_plan", "encode_plan"]
