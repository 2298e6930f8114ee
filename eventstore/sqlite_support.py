"""SQLite connections and write transactions shared by the log, the read model and the outbox.

``BEGIN IMMEDIATE`` takes the write lock up front so a second writer waits for the busy timeout
instead of failing at once when a deferred transaction upgrades (see NOTES: SQLite).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import sqlite_utils

Durability = Literal["FULL", "NORMAL", "OFF"]


def connect(path: Path | str, synchronous: Durability = "FULL", busy_timeout_s: float = 30.0) -> sqlite_utils.Database:
    """A sqlite-utils database on a driver-level autocommit connection we control."""
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=busy_timeout_s, check_same_thread=False)
    if str(path) != ":memory:":
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    return sqlite_utils.Database(conn)


@contextmanager
def write_transaction(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """One atomic write: everything inside commits together or not at all."""
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        with db.atomic():
            yield db
    except BaseException:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise
    db.conn.execute("COMMIT")
