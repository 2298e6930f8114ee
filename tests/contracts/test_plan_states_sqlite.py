"""The plan states contract on the embedded log: ``FoldedPlans`` over an SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventstore.codec import AvroCodec
from eventstore.handler import FoldedPlans, PlanStates
from eventstore.log import EventLog, LogReader
from eventstore.sqlite.log import SqliteEventLog

from .plan_states import PlanStatesTestCase


class TestFoldedPlans(PlanStatesTestCase):
    @pytest.fixture(autouse=True)
    def _file(self, tmp_path: Path) -> None:
        self.path = tmp_path / "log.db"

    def create(self, codec: AvroCodec) -> tuple[EventLog, PlanStates]:
        log = self.opened(SqliteEventLog(self.path))
        return log, FoldedPlans(log, codec)

    def create_reader(self) -> LogReader:
        return self.opened(SqliteEventLog(self.path))
