"""The SQLite read model: audits, strategies, action plans, actions and each plan's history.

Built for rebuild speed: a batch is decoded, folded into in-memory rows (loading the rows of
plans seen before the batch in one query), and written with ``executemany`` in one transaction
with the projection's position. The file is rebuildable, so it runs with ``synchronous=NORMAL``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import sqlite_utils
from sqlite_utils.migrations import Migrations

from eventstore.codec import AvroCodec, Record
from eventstore.log import StoredEvent
from eventstore.sqlite_support import connect, write_transaction

from .tracking import PoisonHandler, decode_batch, ensure_tracking_table, last_positions, track, tracked_position

migrations = Migrations("watcher-es.read-model")

AUDIT_COLUMNS = ("uuid", "goal_uuid", "strategy_uuid", "audit_type", "state", "scope", "parameters", "interval", "created_at", "updated_at", "deleted_at")
STRATEGY_COLUMNS = ("uuid", "name", "display_name", "parameters_spec", "created_at", "updated_at", "deleted_at")
PLAN_COLUMNS = (
    "uuid", "audit_uuid", "strategy_uuid", "state", "global_efficacy", "created_at", "updated_at", "deleted_at",
    "version", "last_position", "last_event_at", "cancel_requested_by", "cancel_reason", "cancel_started_at",
    "abort_deadline", "cancel_finished_at", "fault",
)
ACTION_COLUMNS = (
    "uuid", "action_plan_uuid", "idx", "action_type", "input_parameters", "parents", "state", "fault",
    "created_at", "updated_at", "deleted_at", "last_event_at",
)
HISTORY_COLUMNS = ("position", "plan_uuid", "version", "event_id", "event_type", "command_id", "occurred_at", "action_uuid", "state", "detail")


@migrations()
def m001_tables(db: sqlite_utils.Database) -> None:
    text_or_int: dict[str, type] = {c: (int if c.endswith("_at") or c in ("version", "last_position", "idx", "abort_deadline", "position") else str) for c in {*AUDIT_COLUMNS, *STRATEGY_COLUMNS, *PLAN_COLUMNS, *ACTION_COLUMNS, *HISTORY_COLUMNS}}
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


def _fault(fault: Record | None) -> str | None:
    return None if fault is None else json.dumps(fault, sort_keys=True)


class _Batch:
    """The rows one batch touches, folded in memory before one write."""

    def __init__(self) -> None:
        self.audits: dict[str, dict[str, Any]] = {}
        self.strategies: dict[str, dict[str, Any]] = {}
        self.plans: dict[str, dict[str, Any]] = {}
        # Keyed by (plan, action): action uuids are only unique within their plan.
        self.actions: dict[tuple[str, str], dict[str, Any]] = {}
        self.history: list[tuple[Any, ...]] = []

    def apply(self, stored: StoredEvent, name: str, r: Record) -> None:
        plan = self.plans.get(stored.plan_uuid)
        action_uuid = r.get("action_uuid")
        state: str | None = None
        detail: dict[str, Any] = {}
        if name == "ActionPlanRegistered":
            audit, strategy = r["audit"], r["strategy"]
            self.audits[audit["uuid"]] = {c: audit[c] for c in AUDIT_COLUMNS}
            self.strategies[strategy["uuid"]] = {c: strategy[c] for c in STRATEGY_COLUMNS}
            plan = self.plans[stored.plan_uuid] = dict.fromkeys(PLAN_COLUMNS) | {
                "uuid": stored.plan_uuid, "audit_uuid": audit["uuid"], "strategy_uuid": strategy["uuid"],
                "state": r["state"], "global_efficacy": r["global_efficacy"], "created_at": r["created_at"],
                "updated_at": r["updated_at"], "deleted_at": r["deleted_at"],
            }
            for i, a in enumerate(r["actions"]):
                self.actions[(stored.plan_uuid, a["uuid"])] = {
                    "uuid": a["uuid"], "action_plan_uuid": stored.plan_uuid, "idx": i, "action_type": a["action_type"],
                    "input_parameters": a["input_parameters"], "parents": json.dumps(a["parents"]), "state": a["state"],
                    "fault": None, "created_at": a["created_at"], "updated_at": a["updated_at"], "deleted_at": a["deleted_at"],
                    "last_event_at": r["occurred_at"],
                }
            state = r["state"]
            detail = {"actions": len(r["actions"])}
        elif plan is None:
            raise KeyError(stored.plan_uuid)
        elif name == "ActionPlanStateChanged":
            state = plan["state"] = r["state"]
        elif name == "ActionPlanCancellationStarted":
            state = plan["state"] = "CANCELLING"
            plan.update(cancel_requested_by=r["requested_by"], cancel_reason=r["reason"], cancel_started_at=r["occurred_at"], abort_deadline=r["abort_deadline"])
            detail = {"requested_by": r["requested_by"], "reason": r["reason"]}
        elif name == "ActionPlanCancelled":
            state = plan["state"] = "CANCELLED"
            plan["cancel_finished_at"] = r["occurred_at"]
        elif name == "ActionPlanCancellationFailed":
            state = plan["state"] = "FAILED"
            plan.update(cancel_finished_at=r["occurred_at"], fault=_fault(r["fault"]))
            detail = {"fault": r["fault"]}
        else:
            state = {
                "ActionStateChanged": r.get("state"), "ActionCancellationStarted": "CANCELLING",
                "ActionCancelled": "CANCELLED", "ActionCancellationFailed": "FAILED",
            }[name]
            action = self.actions[(stored.plan_uuid, action_uuid)]
            action["state"] = state
            action["last_event_at"] = r["occurred_at"]
            if name == "ActionCancellationFailed":
                action["fault"] = _fault(r["fault"])
                detail = {"fault": r["fault"]}
        plan.update(version=stored.version, last_position=stored.position, last_event_at=r["occurred_at"])
        self.history.append((
            stored.position, stored.plan_uuid, stored.version, stored.event_id, name, stored.command_id,
            r["occurred_at"], action_uuid, state, json.dumps(detail, sort_keys=True) if detail else None,
        ))


class ReadModel:
    """The read model as a log consumer, plus the queries the CLI asks of it."""

    CONSUMER = "read-model"

    def __init__(self, path: Path | str, codec: AvroCodec) -> None:
        self.path = path
        self.db = connect(path, "NORMAL")
        migrations.apply(self.db)
        self._codec = codec

    def close(self) -> None:
        self.db.conn.close()

    def position(self, source: str = "log") -> int:
        return tracked_position(self.db, self.CONSUMER, source)

    def positions(self) -> dict[str, int]:
        """Every source's position (one per Kafka partition)."""
        rows = self.db.conn.execute("SELECT source, position FROM tracking WHERE consumer = ?", (self.CONSUMER,))
        return {source: int(position) for source, position in rows}

    def process(self, batch: Sequence[StoredEvent], on_poison: PoisonHandler | None = None) -> None:
        """Apply a batch; an undecodable event goes to ``on_poison`` (or raises without one)."""
        decoded = decode_batch(self._codec, batch, on_poison)
        rows = _Batch()
        self._load_known(rows, {s.plan_uuid for s, name, _ in decoded if name != "ActionPlanRegistered"})
        for stored, name, record in decoded:
            rows.apply(stored, name, record)
        conn = self.db.conn
        with write_transaction(self.db):
            for table, columns, found in (
                ("audits", AUDIT_COLUMNS, rows.audits), ("strategies", STRATEGY_COLUMNS, rows.strategies),
                ("action_plans", PLAN_COLUMNS, rows.plans), ("actions", ACTION_COLUMNS, rows.actions),
            ):
                if found:
                    conn.executemany(
                        f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                        [tuple(row[c] for c in columns) for row in found.values()],
                    )
            conn.executemany(f"INSERT INTO plan_history ({', '.join(HISTORY_COLUMNS)}) VALUES ({', '.join('?' * len(HISTORY_COLUMNS))})", rows.history)
            for source, position in last_positions(batch).items():
                track(self.db, self.CONSUMER, position, source)

    def _load_known(self, rows: _Batch, plan_uuids: set[str]) -> None:
        uuids = list(plan_uuids)
        for i in range(0, len(uuids), 500):
            chunk = uuids[i : i + 500]
            marks = ", ".join("?" * len(chunk))
            for row in self.db.query(f"SELECT * FROM action_plans WHERE uuid IN ({marks})", chunk):
                rows.plans[row["uuid"]] = row
            for row in self.db.query(f"SELECT * FROM actions WHERE action_plan_uuid IN ({marks})", chunk):
                rows.actions[(row["action_plan_uuid"], row["uuid"])] = row

    # ---------------------------------------------------------------- queries

    def plan(self, uuid: str) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM action_plans WHERE uuid = ?", [uuid]))
        return rows[0] if rows else None

    def actions(self, plan_uuid: str) -> list[dict[str, Any]]:
        return list(self.db.query("SELECT * FROM actions WHERE action_plan_uuid = ? ORDER BY idx", [plan_uuid]))

    def plans(self, state: str | None = None) -> list[dict[str, Any]]:
        if state:
            return list(self.db.query("SELECT * FROM action_plans WHERE state = ? ORDER BY created_at, uuid", [state]))
        return list(self.db.query("SELECT * FROM action_plans ORDER BY created_at, uuid"))

    def history(self, plan_uuid: str) -> list[dict[str, Any]]:
        return list(self.db.query("SELECT * FROM plan_history WHERE plan_uuid = ? ORDER BY version", [plan_uuid]))

    def overdue_cancellations(self, now: int) -> list[str]:
        """Plans still CANCELLING past their abort deadline: what the deadline pass must settle."""
        return [r["uuid"] for r in self.db.query(
            "SELECT uuid FROM action_plans WHERE state = 'CANCELLING' AND abort_deadline <= ? ORDER BY abort_deadline", [now]
        )]

    def tables(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, ordered: what 'two read models are equal' means."""
        out = {}
        for table in ("audits", "strategies", "action_plans", "actions", "plan_history"):
            order = {"plan_history": "plan_uuid, version", "actions": "action_plan_uuid, uuid"}.get(table, "uuid")
            out[table] = [tuple(r) for r in self.db.conn.execute(f"SELECT * FROM {table} ORDER BY {order}")]
        return out
