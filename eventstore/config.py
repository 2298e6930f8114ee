"""Settings, resolved once at the edge (flag > environment > default) into a frozen object."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from eventstore.domain.states import DEFAULT_ABORT_TIMEOUT_US


def system_clock() -> int:
    """Now, in UTC microseconds since the epoch: the unit of every time in the log."""
    return time.time_ns() // 1000


@dataclass(frozen=True)
class StorePaths:
    """The local files: the log is the record (embedded); the others are rebuilt from the log.

    On Kafka the log is the events topic, and `serve` keeps its parts' state stores here too
    (each plan's state and each partition's position, so a restart resumes instead of re-reading).
    """

    log: Path
    model: Path
    notifications: Path
    handler_state: Path
    translator_state: Path
    bridge_state: Path

    @classmethod
    def beside(cls, db: Path) -> StorePaths:
        stem = db.with_suffix("") if db.suffix == ".db" else db
        return cls(
            db, Path(f"{stem}.model.db"), Path(f"{stem}.notifications.db"),
            Path(f"{stem}.handler-state.db"), Path(f"{stem}.translator-state.db"), Path(f"{stem}.bridge-state.db"),
        )


@dataclass(frozen=True)
class Settings:
    db: Path = Path("watcher-es.db")
    publisher_id: str = ""
    #: The lowest priority sent ('' none); None when not told: an embedded store keeps its own.
    notification_level: str | None = None
    abort_timeout_us: int = DEFAULT_ABORT_TIMEOUT_US
    #: The payload set new notifications are built with (``1.0``, ``latest``...); None when not
    #: told, so that a re-emission builds each notification as it was first emitted.
    payload_version: str | None = None

    @property
    def paths(self) -> StorePaths:
        return StorePaths.beside(self.db)
