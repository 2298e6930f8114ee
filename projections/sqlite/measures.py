"""The embedded `serve`'s check (``projections/service.py``): is the log there, how far behind are
the projections, and what has every process done to the store since `serve` started?

On the embedded store each CLI process handles its own commands and brings the projections up
to date itself, so `serve` sees little of the work in its own process. It counts from the store
instead, from the rows added since it last looked: commands from the log, notifications from
the outbox, dead letters from every lot (``eventstore/metrics.py``). The latency histogram is
the Kafka translator's alone: no process here knows when a notification became readable.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlite_utils

from eventstore import metrics
from projections.sqlite.backend import EmbeddedBackend


class _Rows:
    """The rows of one query added since the last call (by a growing ``seq``)."""

    def __init__(self, db: sqlite_utils.Database, table: str, columns: str) -> None:
        self._db, self._table, self._columns = db, table, columns
        self._after = self._end() if self._exists() else 0

    def _exists(self) -> bool:
        return bool(self._db.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (self._table,)).fetchone())

    def _end(self) -> int:
        return int(self._db.conn.execute(f"SELECT coalesce(max(seq), 0) FROM {self._table}").fetchone()[0])

    def new(self) -> list[tuple[str, ...]]:
        if not self._exists():
            return []
        rows = self._db.conn.execute(f"SELECT seq, {self._columns} FROM {self._table} WHERE seq > ? ORDER BY seq", (self._after,)).fetchall()
        if rows:
            self._after = rows[-1][0]
        return [tuple(r[1:]) for r in rows]


class EmbeddedCheck:
    def __init__(self, backend: EmbeddedBackend, lots: Sequence[sqlite_utils.Database] = ()) -> None:
        self._backend = backend
        self._commands = _Rows(backend.log.db, "commands", "command_type, outcome")
        self._notifications = _Rows(backend.outbox.db, "notifications", "event_type")
        self._lots = [_Rows(db, "dead_letters", "consumer") for db in (backend.model.db, backend.outbox.db, *lots)]

    def __call__(self, timeout: float) -> int:
        """Log positions the slower projection has still to apply (reading the log is reaching it)."""
        b = self._backend
        behind = b.log.last_position() - min(b.model.position(), b.outbox.position())
        if metrics.enabled():
            metrics.commands_handled((kind, outcome) for kind, outcome in self._commands.new())
            metrics.notifications_confirmed(event_type for (event_type,) in self._notifications.new())
            for lot in self._lots:
                for (stage,) in lot.new():
                    metrics.dead_lettered(stage)
        return max(behind, 0)
