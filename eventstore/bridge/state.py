"""The bridge's own state, a SQLite file beside --db (``<stem>.bridge-state.db``): the mirror of
every plan it follows, where it got to in each partition of Watcher's topics, and the plans it
heard of but could not register.

Committed in one transaction after the commands a batch made are durable, so a restart resumes
from the stored positions (never offset 0) with the mirror those positions reflect. Bounded:
ended plans are kept only for the last ``keep_finished`` of them (a late notification about an
older one is reported like a plan never seen), and the plans being put together are at most
``max_creating`` (the oldest is registered with what is known past that).
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import sqlite_utils
from sqlite_utils.migrations import Migrations

from eventstore.bridge.mirror import PlanMirror
from eventstore.sqlite_support import claim, connect, migrate, write_transaction

migrations = Migrations("watcher-es.bridge-state")

KEEP_FINISHED = 10_000
KEEP_UNREGISTERED = 1_000


@migrations()
def m001_tables(db: sqlite_utils.Database) -> None:
    db["positions"].create({"source": str, "position": int}, pk="source", not_null={"position"})  # type: ignore[union-attr]
    db["plans"].create({"uuid": str, "finished": int, "seen": int, "mirror": str}, pk="uuid")  # type: ignore[union-attr]
    db["plans"].create_index(["finished", "seen"])  # type: ignore[union-attr]
    db["unregistered"].create(  # type: ignore[union-attr]
        {"plan_uuid": str, "first_seen": int, "last_seen": int, "missing": str, "notifications": int, "last_event_type": str},
        pk="plan_uuid",
    )


class BridgeState:
    def __init__(self, path: Path | None, keep_finished: int = KEEP_FINISHED) -> None:
        self.path = path
        self.db = connect(":memory:" if path is None else path, "NORMAL")
        claim(self.db, migrations.name, "bridge state", path or ":memory:")
        migrate(self.db, migrations)
        self._conn: sqlite3.Connection = self.db.conn
        self._keep_finished = keep_finished
        self._positions: dict[str, int] = dict(self._conn.execute("SELECT source, position FROM positions").fetchall())

    def close(self) -> None:
        self._conn.close()

    def positions(self) -> dict[str, int]:
        """Where to read each partition from again (``topic/partition`` -> next offset)."""
        return dict(self._positions)

    def plans(self) -> dict[str, PlanMirror]:
        """Every plan the bridge follows (ended ones up to the bound)."""
        return {uuid: PlanMirror.from_json(json.loads(text)) for uuid, text in self._conn.execute("SELECT uuid, mirror FROM plans")}

    def commit(self, plans: list[PlanMirror], positions: dict[str, int], unregistered: list[tuple[str, int, str, str]]) -> list[str]:
        """Store the changed mirrors, the positions and the plans heard of but not registered, in one
        transaction; returns the ended plans forgotten to stay within the bound."""
        with write_transaction(self.db):
            self._conn.executemany(
                "INSERT OR REPLACE INTO plans (uuid, finished, seen, mirror) VALUES (?, ?, ?, ?)",
                [(p.uuid, int(p.finished), p.seen, json.dumps(p.to_json(), separators=(",", ":"))) for p in plans],
            )
            self._conn.executemany(
                "INSERT INTO positions (source, position) VALUES (?, ?) ON CONFLICT (source) DO UPDATE SET position = excluded.position",
                positions.items(),
            )
            self._conn.executemany(
                "INSERT INTO unregistered (plan_uuid, first_seen, last_seen, missing, notifications, last_event_type) VALUES (?, ?, ?, ?, 1, ?)"
                " ON CONFLICT (plan_uuid) DO UPDATE SET last_seen = excluded.last_seen, notifications = notifications + 1,"
                " last_event_type = excluded.last_event_type",
                [(plan, seen, seen, missing, event_type) for plan, seen, missing, event_type in unregistered],
            )
            forgotten = [r[0] for r in self._conn.execute(
                "SELECT uuid FROM plans WHERE finished = 1 ORDER BY seen DESC LIMIT -1 OFFSET ?", (self._keep_finished,),
            )]
            self._conn.executemany("DELETE FROM plans WHERE uuid = ?", [(u,) for u in forgotten])
            self._conn.execute(
                "DELETE FROM unregistered WHERE plan_uuid NOT IN (SELECT plan_uuid FROM unregistered ORDER BY last_seen DESC LIMIT ?)",
                (KEEP_UNREGISTERED,),
            )
        self._positions.update(positions)
        return forgotten


def unregistered_plans(path: Path) -> list[dict[str, Any]]:
    """The plans a bridge heard of but could not register, newest first, read without opening for write."""
    if not path.exists():
        return []
    with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute("SELECT * FROM unregistered ORDER BY last_seen DESC")]
        except sqlite3.Error:
            return []
