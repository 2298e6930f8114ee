"""Replay: rebuild the read model from the log, as of now or as of any earlier moment.

A replay always builds a fresh SQLite file beside its target and only then makes it visible,
so a half-built model is never read and the live one keeps serving until the new one is done.
It streams the log ``BATCH_SIZE`` events at a time and keeps nothing but the current batch in
memory, so a log of any length replays in constant memory.

How the new model replaces the live one. The live model is open in other processes (``serve``,
every CLI command) in WAL mode, and its ``-wal``/``-shm`` files are paired with the file *by
name*. Renaming a new file over it would pair the new file with the old file's WAL index, and
the last connection to the old file deletes ``-wal``/``-shm`` by name when it closes, even if
they by then belong to the new file: both are documented ways to corrupt SQLite
(sqlite.org/howtocorrupt.html, 1.3/2.4). So the live swap goes through SQLite itself: the
finished file is copied into the live one with the online backup API, which writes every page
in ONE write transaction. Readers keep the snapshot they are on and see the whole new model at
their next transaction; nobody has to re-open anything, and the model's tracking row travels
with its rows, so a projector that was running simply continues from the new position.

As-of models (``--until``) are files of their own that nobody has open yet, so they are
finished in rollback-journal mode (one self-contained file, no ``-wal``) and renamed into
place with ``os.replace``, which is atomic.
"""

from __future__ import annotations

import gc
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from eventstore.codec import AvroCodec
from eventstore.config import StorePaths
from eventstore.position import Position

from projections.exceptions import ReplayError
from projections.history import History, Until
from projections.dead_letters import ParkingLot
from projections.read_model import ReadModel

logger = logging.getLogger(__name__)

#: Events read and applied per transaction: big enough to amortise a commit, small enough to
#: keep a replay's memory flat (a batch of 5000 decoded events is a few MB).
BATCH_SIZE: Final = 5000

_SUFFIXES: Final = ("", "-wal", "-shm", "-journal")


@dataclass(frozen=True)
class ReplayProgress:
    """Where a replay is: ``events`` applied so far, up to ``position`` of ``target`` (None: a
    topic, whose end is not known up front)."""

    phase: Literal["replay", "swap"]
    events: int
    position: Position
    target: Position | None


ProgressCallback = Callable[[ReplayProgress], None]


@dataclass(frozen=True)
class ReplayResult:
    """What a replay built: the file, the log position it reflects, and how long it took."""

    path: Path
    position: Position
    events: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def as_of_path(log_path: Path, position: int | str) -> Path:
    """The default file of an as-of model: ``<log stem>.asof-<position>.db`` beside the log."""
    stem = log_path.with_suffix("") if log_path.suffix == ".db" else log_path
    return Path(f"{stem}.asof-{position}.db")


# ---------------------------------------------------------------- building


def _remove_files(path: Path) -> None:
    for suffix in _SUFFIXES:
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _scratch_path(target: Path) -> Path:
    """Beside the target, so the final rename never crosses a file system; strays of replays that
    were killed (their process is gone) are removed first, so none is left behind for good."""
    for stray in target.parent.glob(f".{target.name}.rebuild-*.tmp"):
        pid = stray.name.rsplit(".rebuild-", 1)[1].removesuffix(".tmp")
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            logger.info("removing %s, left by a replay that did not finish", stray)
            _remove_files(stray)
    return target.with_name(f".{target.name}.rebuild-{os.getpid()}.tmp")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _page_size_of(path: Path) -> int | None:
    if not path.exists():
        return None
    with closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("PRAGMA page_size").fetchone()[0])


def _open_scratch(path: Path, codec: AvroCodec, page_size: int | None) -> ReadModel:
    """A new, empty model file tuned for bulk loading."""
    _remove_files(path)
    if page_size is not None:  # the backup API refuses to copy between WAL files of different page sizes
        with closing(sqlite3.connect(path)) as conn:
            conn.execute(f"PRAGMA page_size={int(page_size)}")
            conn.execute("PRAGMA journal_mode=WAL")  # writes the header: the page size is now fixed
    model = ReadModel(path, codec)
    # An unusable event is parked in the rebuilt model's own dead-letter table (`dlq` lists it) and the replay goes on.
    model.on_poison = ParkingLot(model.db).poison_handler(ReadModel.CONSUMER)
    # A WAL writes every page twice (the log, then the checkpoint) and a page dirtied by several
    # batches once per batch: six times the writes of a journal kept in memory, which can
    # still roll a failed batch back (durability is moot here). The live model keeps its WAL.
    model.db.conn.execute("PRAGMA journal_mode=MEMORY")
    model.db.conn.execute("PRAGMA synchronous=OFF")
    model.db.conn.execute("PRAGMA cache_size=-65536")  # 64 MB: index pages of a big model stay hot
    return model


def _feed(history: History, model: ReadModel, until: Until | None, batch_size: int, progress: ProgressCallback | None) -> int:
    """Apply the log to ``model`` up to ``until`` (or its end), reporting after every batch.

    Python's cycle collector is paused meanwhile: a replay allocates millions of short-lived records that
    reference counting frees and that never form cycles, and the collector would keep scanning
    each batch of them as it is built (a fifth of the decoding time, measured) and find nothing.
    """
    end = history.end()  # None: a topic, whose length is not known up front
    target = Position.at(until.bound) if until is not None and end is not None else end
    done = 0
    collecting = gc.isenabled()
    gc.disable()
    try:
        for batch in history.pages(until, batch_size):
            model.process(batch)
            done += len(batch)
            if progress is not None:
                position = Position.of(model.positions())
                progress(ReplayProgress("replay", done, position, target if target is None or target.covers(position) else position))
    finally:
        if collecting:
            gc.enable()
    return done


@contextmanager
def _built(
    history: History, codec: AvroCodec, target: Path, until: Until | None, page_size: int | None,
    batch_size: int, progress: ProgressCallback | None,
) -> Iterator[tuple[Path, int, Position]]:
    """The model up to ``until`` in a scratch file beside ``target``: the file, its events and position.

    The file is left in a rollback-journal mode that persists (one self-contained file, no ``-wal``),
    and removed on the way out: a crash only ever loses the scratch file.
    """
    scratch = _scratch_path(target)
    try:
        model = _open_scratch(scratch, codec, page_size)
        try:
            count = _feed(history, model, until, batch_size, progress)
            position = Position.of(model.positions())
        except BaseException:
            model.close()
            raise
        model.db.conn.execute("PRAGMA journal_mode=DELETE")
        model.close()
        yield scratch, count, position
    finally:
        _remove_files(scratch)


def build_as_of(
    history: History, codec: AvroCodec, until: Until, into: Path, *, protected: tuple[Path, ...] = (),
    batch_size: int = BATCH_SIZE, progress: ProgressCallback | None = None,
) -> ReplayResult:
    """The read model as it was at ``until``, as a file of its own; the live one is untouched.

    ``protected`` are files this must never replace (the log, the live model).
    """
    into = Path(into)
    if any(into.resolve() == Path(p).resolve() for p in protected):
        raise ReplayError(f"--into {into} is a file of the live store; choose another path")
    if Path(f"{into}-wal").exists():
        raise ReplayError(f"--into {into} is open in WAL mode (it has a -wal file); close it or choose another path")
    started = time.monotonic()
    with _built(history, codec, into, until, None, batch_size, progress) as (scratch, count, position):
        os.replace(scratch, into)
    logger.info("as-of model at position %s: %d events into %s", position, count, into)
    return ReplayResult(into, position, count, time.monotonic() - started)


def rebuild_live(
    history: History, codec: AvroCodec, live: Path, *, batch_size: int = BATCH_SIZE,
    progress: ProgressCallback | None = None, busy_timeout_s: float = 60.0,
) -> ReplayResult:
    """Rebuild the live model from the start of the log and swap it in atomically when done.

    The old model keeps serving (and may keep advancing) during the rebuild; the swap copies the
    finished file into it in one transaction (see the module docstring for why not a rename).
    """
    live = Path(live)
    started = time.monotonic()
    # To the end of the log, appends meanwhile included.
    with _built(history, codec, live, None, _page_size_of(live), batch_size, progress) as (scratch, count, position):
        if progress is not None:
            progress(ReplayProgress("swap", count, position, position))
        _copy_into(scratch, live, busy_timeout_s)
    logger.info("rebuilt the read model at %s to position %s from %d events", live, position, count)
    return ReplayResult(live, position, count, time.monotonic() - started)


def _copy_into(source: Path, live: Path, busy_timeout_s: float) -> None:
    """Replace the live file's whole content with ``source``'s in one SQLite write transaction."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(live, timeout=busy_timeout_s, isolation_level=None)) as dest:
        try:
            src.backup(dest)
            # Passive: never waits for readers; whatever is left is checkpointed by the next writer.
            dest.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:
            raise ReplayError(f"cannot swap the rebuilt model into {live}: {exc}") from exc


# ---------------------------------------------------------------- the command


def replay(
    history: History, codec: AvroCodec, paths: StorePaths, until: str | None = None, into: Path | None = None, *,
    batch_size: int = BATCH_SIZE, progress: ProgressCallback | None = None,
) -> ReplayResult:
    """``watcher-es replay``: rebuild the live model, or with ``until`` build the model as it was
    then into ``into`` (default ``<log stem>.asof-<until>.db``), leaving the live one alone."""
    if until is None:
        if into is not None:
            raise ReplayError("--into needs --until: without it the live read model is rebuilt in place")
        return rebuild_live(history, codec, paths.model, batch_size=batch_size, progress=progress)
    at = history.until(until)
    protected = (paths.log, paths.model, paths.notifications)
    return build_as_of(history, codec, at, into or as_of_path(paths.log, at.label), protected=protected, batch_size=batch_size, progress=progress)
