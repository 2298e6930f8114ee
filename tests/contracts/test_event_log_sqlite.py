"""The event log contract on the embedded log: an SQLite file, read back through its own ``read_plan``/``events_after``."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventstore.log import EventLog, LogReader
from eventstore.sqlite.log import SqliteEventLog

from .event_log import EventLogTestCase


class TestSqliteEventLog(EventLogTestCase):
    @pytest.fixture(autouse=True)
    def _file(self, tmp_path: Path) -> None:
        self.path = tmp_path / "log.db"

    def create_log(self) -> EventLog:
        return self.opened(SqliteEventLog(self.path))

    def create_reader(self) -> LogReader:
        return self.opened(SqliteEventLog(self.path))
