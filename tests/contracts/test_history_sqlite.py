"""The history contract on the embedded log: ``SqliteHistory``, its bulk scan cut at a log position."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventstore.log import EventLog, LogReader
from eventstore.sqlite.log import SqliteEventLog
from projections.history import History
from projections.sqlite.history import SqliteHistory

from .history import HistoryTestCase


class TestSqliteHistory(HistoryTestCase):
    @pytest.fixture(autouse=True)
    def _file(self, tmp_path: Path) -> None:
        self.path = tmp_path / "log.db"

    def create_log(self) -> EventLog:
        return self.opened(SqliteEventLog(self.path))

    def create_history(self) -> History:
        return SqliteHistory(self.opened(SqliteEventLog(self.path)))

    def create_reader(self) -> LogReader:
        return self.opened(SqliteEventLog(self.path))
