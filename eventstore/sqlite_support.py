"""SQLite connections and write transactions shared by the log, the read model and the outbox.

``BEGIN IMMEDIATE`` takes the write lock up front so a second writer waits for the busy timeout
instead of failing at once when a deferred transaction upgrades (see NOTES: SQLite).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from eventstore.exceptions import StoreError, StoreUnavailableError

if TYPE_CHECKING:  # loaded by ``connect``: a read command's plain read-only connection never needs it
    import sqlite_utils
    from sqlite_utils.migrations import Migrations

Durability = Literal["FULL", "NORMAL", "OFF"]
Row = TypeVar("Row")


def sqlite_error(exc: BaseException) -> StoreError | None:
    """SQLite's errors as ours (``boundary.guarded``): a damaged, read-only or locked file."""
    return StoreError(str(exc)) if isinstance(exc, sqlite3.Error) else None


def connect(
    path: Path | str, synchronous: Durability = "FULL", busy_timeout_s: float = 30.0, checkpoint_on_commit: bool = True,
) -> sqlite_utils.Database:
    """A sqlite-utils database on a driver-level autocommit connection we control.

    ``checkpoint_on_commit=False`` keeps SQLite's automatic WAL checkpoint out of this
    connection's commits (it lands on about one commit in a hundred and costs an fsync): the
    owner calls ``checkpoint`` when latency does not matter.
    """
    import sqlite_utils

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
    check_kind(db.conn, migration_set, what, path)


def open_read_only(path: Path, migration_set: str, what: str) -> sqlite3.Connection:
    """A plain connection that cannot write, to a store that must already be there and be ``what``."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        conn.execute("PRAGMA query_only=ON")
    except sqlite3.Error as exc:
        raise StoreUnavailableError(f"cannot open {path}: {exc}") from None
    check_kind(conn, migration_set, what, path)
    return conn


def check_kind(conn: sqlite3.Connection, migration_set: str, what: str, path: Path | str) -> None:
    """Raise unless the file is empty or holds the tables of ``migration_set``, saying what it holds instead."""
    try:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not names:
            return
        sets = {r[0] for r in conn.execute("SELECT DISTINCT migration_set FROM _sqlite_migrations")} if "_sqlite_migrations" in names else set()
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


def rows_for(query: Callable[[str, list[str]], Iterable[Row]], sql: str, keys: Iterable[str], chunk: int = 500) -> Iterator[Row]:
    """The rows ``query`` (``conn.execute`` for tuples, ``db.query`` for dicts) gives for ``sql`` and
    many keys (its ``IN ({keys})`` filled in): one query per ``chunk`` of them, not one per key, and
    never more than old SQLite builds let one statement bind (999)."""
    wanted = list(keys)
    for i in range(0, len(wanted), chunk):
        part = wanted[i : i + chunk]
        yield from query(sql.format(keys=", ".join("?" * len(part))), part)
