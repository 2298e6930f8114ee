"""Where an embedded consumer parks an event it cannot use, with the reason, and goes on.

On Kafka such records go to the dead-letter topic; on the embedded log each consumer keeps
them in a table of its own file. A parked event is never applied: `watcher-es dlq` lists
them and `watcher-es verify` says what is wrong with the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import sqlite_utils

from eventstore.config import system_clock
from eventstore.log import DeadLetter, ParkedRecord
from eventstore.sqlite_support import write_transaction

from projections.tracking import LoggedEvent

logger = logging.getLogger(__name__)

COLUMNS = ("consumer", "source", "position", "plan_uuid", "error", "message", "parked_at", "bytes")


class ParkingLot:
    """The dead-letter sink of an embedded consumer (and of a CLI's own Kafka model): a table in its own file."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db
        if "bytes" in db["dead_letters"].columns_dict:
            return
        # Under the write lock: processes opening a new store at the same moment take turns (a
        # deferred CREATE TABLE that finds another writer's commit fails at once, "database is locked").
        with write_transaction(db):
            table = db["dead_letters"]
            table.create(  # type: ignore[union-attr]
                {
                    "seq": int, "consumer": str, "source": str, "position": int, "plan_uuid": str, "error": str, "message": str,
                    "parked_at": int, "bytes": int,
                },
                pk="seq", if_not_exists=True,
            )
            if "bytes" not in table.columns_dict:  # a file whose lot was made before letters said their size
                table.add_column("bytes", int)  # type: ignore[union-attr]

    def park(self, record: ParkedRecord, stage: str, error: BaseException) -> None:
        kind = f"{type(error).__module__}.{type(error).__qualname__}"
        logger.warning(
            "%s parks %s position %s: %s", stage, record.source, record.position, error,
            extra={"plan": record.key, "position": f"{record.source} {record.position}"},
        )
        self._db.conn.execute(
            f"INSERT INTO dead_letters ({', '.join(COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (stage, record.source, record.position, record.key, kind, str(error), system_clock(), len(record.value)),
        )

    def poison_handler(self, stage: str) -> Callable[[LoggedEvent, Exception], None]:
        """What a consumer of the log calls with an event it cannot use."""
        return lambda event, error: self.park(ParkedRecord(event.source, event.position, event.plan_uuid, event.body), stage, error)


def parked(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    if not db["dead_letters"].exists():
        return []
    columns = [c for c in COLUMNS if c in db["dead_letters"].columns_dict]  # a file no consumer has opened since `bytes` came
    return list(db.query(f"SELECT {', '.join(columns)} FROM dead_letters ORDER BY seq"))


def letters(db: sqlite_utils.Database) -> list[DeadLetter]:
    """What ``dlq`` lists of a consumer's lot, in the order parked."""
    return [
        DeadLetter.of(r["source"], r["position"], r["consumer"], r["error"], r["message"], r["plan_uuid"], r.get("bytes"))
        for r in parked(db)
    ]
