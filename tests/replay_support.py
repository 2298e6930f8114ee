"""An embedded store on a temp file with a clock that ticks once per command, for replay, audit
and verify tests (a module, not conftest fixtures, so these tests depend on nothing shared)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from eventstore.codec import AvroCodec
from eventstore.config import Settings
from eventstore.domain.messages import Command
from eventstore.log import Outcome
from projections.sqlite.backend import EmbeddedBackend

from . import factories as f

SECOND = 1_000_000


class TickingClock:
    """UTC microseconds; every reading is one second after the previous one."""

    def __init__(self, start: int = f.T0) -> None:
        self.now = start

    def __call__(self) -> int:
        self.now += SECOND
        return self.now


def open_store(db: Path, clock: TickingClock | None = None) -> EmbeddedBackend:
    settings = Settings(db=db, publisher_id="infra-optim:test")
    return EmbeddedBackend(settings, clock=clock or TickingClock(), codec=AvroCodec())


def submit_all(service: EmbeddedBackend, commands: Iterable[Command]) -> list[Outcome]:
    return [service.submit(c) for c in commands]


def tamper(log_path: Path, *statements: str) -> None:
    """Change the log file the way an attacker with file access could: triggers dropped first."""
    conn = sqlite3.connect(log_path, isolation_level=None)
    try:
        conn.execute("DROP TRIGGER IF EXISTS events_append_only_update")
        conn.execute("DROP TRIGGER IF EXISTS events_append_only_delete")
        conn.execute("BEGIN")
        for sql in statements:
            conn.execute(sql)
        conn.execute("COMMIT")
    finally:
        conn.close()
