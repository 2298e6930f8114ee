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
from sqlite_utils.migrations import Migrations

from .exceptions import StoreUnavailableError

Durability = Literal["FULL", "NORMAL", "OFF"]


def connect(
    path: Path | str, synchronous: Durability = "FULL", busy_timeout_s: float = 30.0, checkpoint_on_commit: bool = True,
) -> sqlite_utils.Database:
    """A sqlite-utils database on a driver-level autocommit connection we control.

    ``checkpoint_on_commit=False`` keeps SQLite's automatic WAL checkpoint out of this
    connection's commits (it lands on about one commit in a hundred and costs an fsync): the
    owner calls ``checkpoint`` when latency does not matter.
    """
    try:
        conn = sqlite3.connect(str(path), isolation_level=None, timeout=busy_timeout_s, check_same_thread=False)
        if str(path) != ":memory:":
            conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as exc:
        folder = Path(path).parent
        why = f"its folder {folder} does not exist" if not folder.is_dir() else str(exc)
        raise StoreUnavailableError(f"cannot open {path}: {why}") from None
    conn.execute(f"PRAGMA synchronous={synchronous}")
    if not checkpoint_on_commit:
        conn.execute("PRAGMA wal_autocheckpoint=0")
    return sqlite_utils.Database(conn)


def checkpoint(db: sqlite_utils.Database) -> None:
    """Fold the WAL back into the database without waiting for readers (PASSIVE)."""
    db.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")


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


def claim(db: sqlite_utils.Database, migration_set: str, what: str, path: Path | str) -> None:
    """Refuse a file that is another kind of store (or no store of ours): ``--db`` pointed at the
    read model must not grow log tables inside it. A new, empty file is claimed."""
    try:
        names = set(db.table_names())
        if not names:
            return
        sets = {r[0] for r in db.conn.execute("SELECT DISTINCT migration_set FROM _sqlite_migrations")} if "_sqlite_migrations" in names else set()
    except sqlite3.Error as exc:
        raise StoreUnavailableError(f"cannot open {path}: {exc}") from None
    if migration_set not in sets:
        kind = ", ".join(sorted(s.removeprefix("watcher-es.") for s in sets if s.startswith("watcher-es."))) or "no watcher-es store"
        raise StoreUnavailableError(f"{path} is not a {what}: it holds {kind}")


def migrate(db: sqlite_utils.Database, migrations: Migrations) -> None:
    """Apply pending migrations under the write lock, so processes opening a new store at the same
    moment take turns: the second finds nothing pending (a deferred transaction would fail at once)."""
    if not migrations.pending(db):
        return
    with write_transaction(db):
        migrations.apply(db)
