"""The read model as read commands see it: a read-only connection and the plan queries.

`status` and `plans` are what an operator runs most, so they answer within the CLI's start-up
time: this module loads neither sqlite-utils nor fastavro, and never writes. It reads what is
there; a model not created yet holds no plans (the writers and `serve` create and migrate it),
and ``ReadModel`` answers the same queries through these functions on its own connection.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from eventstore.sqlite_support import open_read_only

Row = dict[str, Any]

#: The read model's migration set (``projections.read_model``), by which a file is recognised.
MIGRATION_SET = "watcher-es.read-model"
#: What such a file is called when another kind of file stands where it should.
KIND = "watcher-es read model"


def _rows(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
    cursor = conn.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values, strict=True)) for values in cursor]


def plan(conn: sqlite3.Connection, uuid: str) -> Row | None:
    rows = _rows(conn, "SELECT * FROM action_plans WHERE uuid = ?", (uuid,))
    return rows[0] if rows else None


def actions(conn: sqlite3.Connection, plan_uuid: str) -> list[Row]:
    return _rows(conn, "SELECT * FROM actions WHERE action_plan_uuid = ? ORDER BY idx", (plan_uuid,))


def plans(conn: sqlite3.Connection, state: str | None = None) -> list[Row]:
    """Every plan (in one state), oldest first, each with how many actions it has."""
    where, params = ("WHERE p.state = ?", (state,)) if state else ("", ())
    return _rows(conn, (
        "SELECT p.*, (SELECT count(*) FROM actions a WHERE a.action_plan_uuid = p.uuid) AS action_count "
        f"FROM action_plans p {where} ORDER BY p.created_at, p.uuid"
    ), params)


class ModelView:
    """The plan queries over a read-only connection; an absent model is an empty one."""

    def __init__(self, path: Path) -> None:
        self._conn = open_read_only(path, MIGRATION_SET, KIND) if path.exists() else None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def _ask(self, query: Any, *args: Any) -> Any:
        if self._conn is None:
            return None
        try:
            return query(self._conn, *args)
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # created, not migrated yet: nothing registered so far
                return None
            raise

    def plan(self, uuid: str) -> Row | None:
        found: Row | None = self._ask(plan, uuid)
        return found

    def actions(self, plan_uuid: str) -> list[Row]:
        return self._ask(actions, plan_uuid) or []

    def plans(self, state: str | None = None) -> list[Row]:
        return self._ask(plans, state) or []
