"""The SQLite read model: audits, strategies, action plans, actions and each plan's history.

Built for rebuild speed: a batch is decoded, folded into in-memory rows (loading the rows of
plans seen before the batch in one query), and written with multi-row INSERTs in one
transaction with the projection's position. The file is rebuildable, so it runs with
``synchronous=NORMAL``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any, Final, TypeVar

import sqlite_utils
from sqlite_utils.migrations import Migrations

from eventstore.codec import AvroCodec, Record
from eventstore.sqlite_support import claim, connect, migrate, rows_for, write_transaction

from projections import model_view
from projections.exceptions import UnusableEventError
from projections.tracking import LoggedEvent, decode_batch, ensure_tracking_table, track_batch, tracked_position

E = TypeVar("E", bound=LoggedEvent)

migrations = Migrations(model_view.MIGRATION_SET)

AUDIT_COLUMNS = ("uuid", "goal_uuid", "strategy_uuid", "audit_type", "state", "scope", "parameters", "interval", "created_at", "updated_at", "deleted_at")
STRATEGY_COLUMNS = ("uuid", "name", "display_name", "parameters_spec", "created_at", "updated_at", "deleted_at")
PLAN_COLUMNS = (
    "uuid", "audit_uuid", "strategy_uuid", "state", "global_efficacy", "created_at", "updated_at", "deleted_at",
    "version", "last_position", "last_event_at", "cancel_requested_by", "cancel_reason", "cancel_started_at",
    "abort_deadline", "cancel_finished_at", "fault", "mirrored",
)
ACTION_COLUMNS = (
    "uuid", "action_plan_uuid", "idx", "action_type", "input_parameters", "parents", "state", "fault",
    "created_at", "updated_at", "deleted_at", "last_event_at",
)
HISTORY_COLUMNS = ("position", "plan_uuid", "version", "event_id", "event_type", "command_id", "occurred_at", "action_uuid", "state", "detail")


@migrations()
def m001_tables(db: sqlite_utils.Database) -> None:
    text_or_int: dict[str, type] = {c: (int if c.endswith("_at") or c in ("version", "last_position", "idx", "abort_deadline", "position", "mirrored") else str) for c in {*AUDIT_COLUMNS, *STRATEGY_COLUMNS, *PLAN_COLUMNS, *ACTION_COLUMNS, *HISTORY_COLUMNS}}
    for table, columns, pk in (
        ("audits", AUDIT_COLUMNS, "uuid"), ("strategies", STRATEGY_COLUMNS, "uuid"),
        ("action_plans", PLAN_COLUMNS, "uuid"), ("actions", ACTION_COLUMNS, ("action_plan_uuid", "uuid")),
        ("plan_history", HISTORY_COLUMNS, ("plan_uuid", "version")),
    ):
        db[table].create({c: text_or_int[c] for c in columns}, pk=pk)  # type: ignore[union-attr]
    db["actions"].create_index(["action_plan_uuid", "idx"])  # type: ignore[union-attr]
    db["action_plans"].create_index(["state"])  # type: ignore[union-attr]
    db["plan_history"].create_index(["position"])  # type: ignore[union-attr]
    ensure_tracking_table(db)


@migrations()
def m002_kafka_trail(db: sqlite_utils.Database) -> None:
    """What the audit trail on Kafka keeps beside the model (``projections/kafka_history.py``).

    The embedded store reads its audit from the log and leaves these empty. They are created
    here, with the model, so a rebuilt model (``replay`` copies a whole file in) always has them.
    """
    db["trail_commands"].create({  # type: ignore[union-attr]
        "plan_uuid": str, "position": int, "source": str, "command_id": str, "command_type": str, "issued_by": str,
        "origin": str, "issued_at": int, "body": bytes, "outcome": str, "reason": str, "first_position": int,
    }, pk=("plan_uuid", "position"))
    db["trail_events"].create({  # type: ignore[union-attr]
        "plan_uuid": str, "version": int, "position": int, "source": str, "event_id": str, "event_type": str,
        "command_id": str, "occurred_at": int, "body": bytes, "hash": str,
    }, pk=("plan_uuid", "version"))
    db["trail_conflicts"].create({  # type: ignore[union-attr]
        "plan_uuid": str, "position": int, "source": str, "appended_at": int, "command_id": str, "command_type": str,
        "writer": str, "expected_version": int, "reason": str,
    }, pk=("plan_uuid", "position"))
    db["trail_notifications"].create({  # type: ignore[union-attr]
        "plan_uuid": str, "message_id": str, "event_id": str, "event_type": str, "priority": str, "plan_seq": int,
        "payload_set": str, "envelope": str, "source": str, "position": int,
    }, pk=("plan_uuid", "message_id"))
    # The deadline pass asks for CANCELLING plans by deadline: an index, never a walk over every plan.
    db["action_plans"].create_index(["state", "abort_deadline"])  # type: ignore[union-attr]


@migrations()
def m003_mirrored(db: sqlite_utils.Database) -> None:
    """Whether a plan mirrors Watcher (0.3.0); a model made before has only plans of its own (0).
    A model created since has the column from ``m001_tables`` already."""
    if "mirrored" not in db["action_plans"].columns_dict:
        db["action_plans"].add_column("mirrored", int, not_null_default=0)  # type: ignore[union-attr]


#: ``json.dumps(value, sort_keys=True)`` without building a new encoder for every call.
sorted_json = json.JSONEncoder(sort_keys=True).encode

#: Each table's row as the tuple its INSERT binds, in its column order (C speed, one per row).
_AUDIT_ROW, _STRATEGY_ROW, _PLAN_ROW, _ACTION_ROW = (itemgetter(*c) for c in (AUDIT_COLUMNS, STRATEGY_COLUMNS, PLAN_COLUMNS, ACTION_COLUMNS))

#: The state an action event leaves its action in (ActionStateChanged and ActionCancellationFailed carry their own).
_ACTION_STATES = {"ActionCancellationStarted": "CANCELLING", "ActionCancelled": "CANCELLED"}


def _fault(fault: Record | None) -> str | None:
    return None if fault is None else sorted_json(fault)


#: Rows per multi-row INSERT (see ``_Insert``); 50 rows of at most 17 columns stay far below
#: SQLite's limit on bound variables.
ROWS_PER_STATEMENT: Final = 50


@dataclass(frozen=True)
class _Insert:
    """A table's INSERT for one row and for ``ROWS_PER_STATEMENT`` rows at once."""

    one: str
    many: str

    @classmethod
    def into(cls, table: str, columns: Sequence[str], verb: str = "INSERT", upsert_on: Sequence[str] = ()) -> _Insert:
        """``upsert_on``: a row with that key already there is updated where it is; a REPLACE deletes
        it and inserts it again at a new place in the table and in every index (more pages per commit)."""
        head = f"{verb} INTO {table} ({', '.join(columns)}) VALUES "
        row = f"({', '.join('?' * len(columns))})"
        tail = ""
        if upsert_on:
            tail = f" ON CONFLICT ({', '.join(upsert_on)}) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in columns if c not in upsert_on)
        return cls(head + row + tail, head + ", ".join([row] * ROWS_PER_STATEMENT) + tail)

    def run(self, conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert ``rows`` in their order, ``ROWS_PER_STATEMENT`` to a statement.

        One statement per row (plain ``executemany``) costs SQLite and the driver about a
        microsecond more per row (measured), and writing is a third of a replay.
        """
        n = ROWS_PER_STATEMENT
        whole = len(rows) - len(rows) % n
        conn.executemany(self.many, (tuple(chain.from_iterable(rows[i : i + n])) for i in range(0, whole, n)))
        conn.executemany(self.one, rows[whole:])


_AUDITS = _Insert.into("audits", AUDIT_COLUMNS, upsert_on=("uuid",))
_STRATEGIES = _Insert.into("strategies", STRATEGY_COLUMNS, upsert_on=("uuid",))
# Replaced, not upserted: the deadline pass takes plans of one deadline in rowid order, i.e. by last change.
_PLANS = _Insert.into("action_plans", PLAN_COLUMNS, "INSERT OR REPLACE")
_ACTIONS = _Insert.into("actions", ACTION_COLUMNS, upsert_on=("action_plan_uuid", "uuid"))
_HISTORY = _Insert.into("plan_history", HISTORY_COLUMNS)


def plans_to_load(decoded: Iterable[tuple[LoggedEvent, str, Record]]) -> set[str]:
    """The plans a batch changes that existed before it: those whose first event in it is not their registration."""
    registered: set[str] = set()
    needed: set[str] = set()
    for stored, name, _ in decoded:
        uuid = stored.plan_uuid
        if name == "ActionPlanRegistered":
            if uuid not in needed:
                registered.add(uuid)
        elif uuid not in registered:
            needed.add(uuid)
    return needed


class _Batch:
    """The rows one batch touches, folded in memory before one write."""

    def __init__(self) -> None:
        self.audits: dict[str, dict[str, Any]] = {}
        self.strategies: dict[str, dict[str, Any]] = {}
        self.plans: dict[str, dict[str, Any]] = {}
        # Keyed by (plan, action): action uuids are only unique within their plan.
        self.actions: dict[tuple[str, str], dict[str, Any]] = {}
        self.history: list[tuple[Any, ...]] = []

    def apply(self, stored: LoggedEvent, name: str, r: Record) -> None:
        plan_uuid = stored.plan_uuid
        plan = self.plans.get(plan_uuid)
        action_uuid = r.get("action_uuid")
        state: str | None = None
        detail: dict[str, Any] | None = None
        if name == "ActionPlanRegistered":
            plan = self._register(plan_uuid, r)
            state = r["state"]
            detail = {"actions": len(r["actions"])}
        elif plan is None:
            raise KeyError(plan_uuid)
        elif name == "ActionPlanStateChanged":
            state = plan["state"] = r["state"]
        elif name == "ActionPlanCancellationStarted":
            state = plan["state"] = "CANCELLING"
            plan["cancel_requested_by"], plan["cancel_reason"] = r["requested_by"], r["reason"]
            plan["cancel_started_at"], plan["abort_deadline"] = r["occurred_at"], r["abort_deadline"]
            detail = {"requested_by": r["requested_by"], "reason": r["reason"]}
        elif name == "ActionPlanCancelled":
            state = plan["state"] = "CANCELLED"
            plan["cancel_finished_at"] = r["occurred_at"]
        elif name == "ActionPlanCancellationFailed":
            state = plan["state"] = r["state"]
            plan["cancel_finished_at"], plan["fault"] = r["occurred_at"], _fault(r["fault"])
            detail = {"fault": r["fault"]}
        else:
            state = r["state"] if name in ("ActionStateChanged", "ActionCancellationFailed") else _ACTION_STATES[name]
            action = self.actions[(plan_uuid, action_uuid)]  # type: ignore[index]  # a missing uuid is a KeyError, as it should be
            action["state"] = state
            action["last_event_at"] = r["occurred_at"]
            if name == "ActionCancellationFailed":
                action["fault"] = _fault(r["fault"])
                detail = {"fault": r["fault"]}
        occurred_at = r["occurred_at"]
        plan["version"], plan["last_position"], plan["last_event_at"] = stored.version, stored.position, occurred_at
        self.history.append((
            stored.position, plan_uuid, stored.version, stored.event_id, name, stored.command_id,
            occurred_at, action_uuid, state, sorted_json(detail) if detail else None,
        ))

    def _register(self, plan_uuid: str, r: Record) -> dict[str, Any]:
        """The rows an ActionPlanRegistered creates: its audit, strategy, plan and actions."""
        audit, strategy = r["audit"], r["strategy"]
        self.audits[audit["uuid"]] = audit
        self.strategies[strategy["uuid"]] = strategy
        plan = self.plans[plan_uuid] = dict.fromkeys(PLAN_COLUMNS)
        plan["uuid"], plan["audit_uuid"], plan["strategy_uuid"] = plan_uuid, audit["uuid"], strategy["uuid"]
        for column in ("state", "global_efficacy", "created_at", "updated_at", "deleted_at"):
            plan[column] = r[column]
        plan["mirrored"] = int(r["mirrored"])
        occurred_at = r["occurred_at"]
        for i, a in enumerate(r["actions"]):
            self.actions[(plan_uuid, a["uuid"])] = {
                "uuid": a["uuid"], "action_plan_uuid": plan_uuid, "idx": i, "action_type": a["action_type"],
                "input_parameters": a["input_parameters"], "parents": json.dumps(a["parents"]), "state": a["state"],
                "fault": None, "created_at": a["created_at"], "updated_at": a["updated_at"], "deleted_at": a["deleted_at"],
                "last_event_at": occurred_at,
            }
        return plan

    def write(self, conn: sqlite3.Connection) -> None:
        """Every row of the batch; call inside the write transaction."""
        for insert, row_of, found in (
            (_AUDITS, _AUDIT_ROW, self.audits), (_STRATEGIES, _STRATEGY_ROW, self.strategies),
            (_PLANS, _PLAN_ROW, self.plans), (_ACTIONS, _ACTION_ROW, self.actions),
        ):
            insert.run(conn, list(map(row_of, found.values())))
        _HISTORY.run(conn, self.history)


class ReadModel:
    """The read model as a log consumer, plus the queries the CLI asks of it."""

    CONSUMER = "read-model"

    def __init__(self, path: Path | str, codec: AvroCodec) -> None:
        self.path = path
        self.db = connect(path, "NORMAL")
        claim(self.db, model_view.MIGRATION_SET, model_view.KIND, path)
        migrate(self.db, migrations)
        self._codec = codec
        #: Where events this model cannot use go when `process` is given no handler (None: raise).
        self.on_poison: Callable[[LoggedEvent, Exception], None] | None = None

    def close(self) -> None:
        self.db.conn.close()

    def position(self, source: str = "log") -> int:
        return tracked_position(self.db, self.CONSUMER, source)

    def positions(self) -> dict[str, int]:
        """Every source's position (one per Kafka partition)."""
        rows = self.db.conn.execute("SELECT source, position FROM tracking WHERE consumer = ?", (self.CONSUMER,))
        return {source: int(position) for source, position in rows}

    def process(self, batch: Sequence[E], on_poison: Callable[[E, Exception], None] | None = None) -> None:
        """Apply a batch; an event that cannot be used goes to ``on_poison`` (or raises without one)."""
        with write_transaction(self.db):
            self.apply(batch, on_poison)

    def apply(self, batch: Sequence[E], on_poison: Callable[[E, Exception], None] | None = None) -> None:
        """``process`` inside a write transaction the caller holds (which also read the position)."""
        park = on_poison or self.on_poison
        decoded = decode_batch(self._codec, batch, park)
        rows = _Batch()
        self._load_known(rows, plans_to_load(decoded))
        for stored, name, record in decoded:
            try:
                rows.apply(stored, name, record)
            except KeyError as exc:  # an event of a plan or action this model never saw registered
                if park is None:
                    raise
                park(stored, UnusableEventError(f"{stored.where}: {name} for unknown {exc}: an earlier event of the plan is missing"))
        rows.write(self.db.conn)
        track_batch(self.db, self.CONSUMER, batch)

    def _load_known(self, rows: _Batch, plan_uuids: set[str]) -> None:
        for row in rows_for(self.db.query, "SELECT * FROM action_plans WHERE uuid IN ({keys})", plan_uuids):
            rows.plans[row["uuid"]] = row
        for row in rows_for(self.db.query, "SELECT * FROM actions WHERE action_plan_uuid IN ({keys})", plan_uuids):
            rows.actions[(row["action_plan_uuid"], row["uuid"])] = row

    # ---------------------------------------------------------------- queries

    def plan_versions(self, uuids: Iterable[str]) -> dict[str, int]:
        """The version each of these plans is at in the model (absent: not registered here)."""
        rows = rows_for(self.db.conn.execute, "SELECT uuid, version FROM action_plans WHERE uuid IN ({keys})", uuids)
        return {uuid: int(version) for uuid, version in rows}

    # The plan queries are model_view's, on this connection: one SQL for reads and writers.
    def plan(self, uuid: str) -> dict[str, Any] | None:
        return model_view.plan(self.db.conn, uuid)

    def actions(self, plan_uuid: str) -> list[dict[str, Any]]:
        return model_view.actions(self.db.conn, plan_uuid)

    def plans(self, state: str | None = None) -> list[dict[str, Any]]:
        """Every plan (in one state), oldest first, each with its ``action_count``."""
        return model_view.plans(self.db.conn, state)

    def overdue_cancellations(self, now: int) -> list[str]:
        """Plans still CANCELLING past their abort deadline: what the deadline pass must end."""
        return [r["uuid"] for r in self.db.query(
            # 0: a plan that mirrors Watcher, whose aborts Watcher ends
            "SELECT uuid FROM action_plans WHERE state = 'CANCELLING' AND abort_deadline > 0 AND abort_deadline <= ? ORDER BY abort_deadline", [now]
        )]

    def tables(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, ordered: what 'two read models are equal' means."""
        out = {}
        for table in ("audits", "strategies", "action_plans", "actions", "plan_history"):
            order = {"plan_history": "plan_uuid, version", "actions": "action_plan_uuid, uuid"}.get(table, "uuid")
            out[table] = [tuple(r) for r in self.db.conn.execute(f"SELECT * FROM {table} ORDER BY {order}")]
        return out
