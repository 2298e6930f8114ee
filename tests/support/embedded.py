"""Plugin: the embedded backend on temp files: ``log`` (a SqliteEventLog), ``make_service`` and
``service`` (EmbeddedBackends on the ``clock``); and, for tests that build a store of their own
(replay, audit, verify), ``open_store`` on a clock that ticks once per reading, ``submit_all``,
and ``tamper`` to change a log file the way someone with access to it could.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from eventstore.codec import AvroCodec
from eventstore.config import Settings
from eventstore.domain.messages import Command
from eventstore.log import Outcome
from eventstore.sqlite.log import SqliteEventLog
from projections.sqlite.backend import EmbeddedBackend
from tests.support.clock import FakeClock, TickingClock

ServiceFactory = Callable[..., EmbeddedBackend]


@pytest.fixture
def log(tmp_path: Path) -> Iterator[SqliteEventLog]:
    event_log = SqliteEventLog(tmp_path / "log.db")
    yield event_log
    event_log.close()


@pytest.fixture
def make_service(tmp_path: Path, clock: FakeClock) -> Iterator[ServiceFactory]:
    """Opens embedded backends on a temp store (same file each call unless ``db`` is given); closes them all."""
    opened: list[EmbeddedBackend] = []

    def make(db: Path | None = None, abort_timeout_us: int | None = None, publisher_id: str = "infra-optim:test") -> EmbeddedBackend:
        settings = Settings(db=db or tmp_path / "store.db", publisher_id=publisher_id)
        if abort_timeout_us is not None:
            settings = dataclasses.replace(settings, abort_timeout_us=abort_timeout_us)
        service = EmbeddedBackend(settings, clock=clock, codec=AvroCodec())
        opened.append(service)
        return service

    yield make
    for service in opened:
        service.close()


@pytest.fixture
def service(make_service: ServiceFactory) -> EmbeddedBackend:
    return make_service()


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
