"""The dead-letter sink contract on the embedded store: ``ParkingLot``, a table in the consumer's own file."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlite_utils

from eventstore.log import DeadLetter, DeadLetterSink
from projections.dead_letters import ParkingLot, letters

from .dead_letters import DeadLetterSinkTestCase


class TestParkingLot(DeadLetterSinkTestCase):
    @pytest.fixture(autouse=True)
    def _file(self, tmp_path: Path) -> None:
        self.db = self.opened(sqlite_utils.Database(tmp_path / "model.db"))

    def create_sink(self) -> DeadLetterSink:
        return ParkingLot(self.db)

    def source(self, n: int) -> str:
        return "log"

    def letters(self) -> list[DeadLetter]:
        return letters(self.db)

    def test_a_lot_made_before_letters_kept_their_size_lists_none(self, tmp_path: Path) -> None:
        old = self.opened(sqlite_utils.Database(tmp_path / "old.db"))
        old.execute(
            "CREATE TABLE dead_letters (seq INTEGER PRIMARY KEY, consumer TEXT, source TEXT, position INTEGER, plan_uuid TEXT,"
            " error TEXT, message TEXT, parked_at INTEGER)"
        )
        old.execute("INSERT INTO dead_letters VALUES (1, 'read-model', 'log', 4, 'p', 'e.E', 'm', 0)")
        assert [letter.bytes for letter in letters(old)] == [None]
        ParkingLot(old)  # a consumer opening it adds the column; the old rows keep saying nothing
        assert [letter.bytes for letter in letters(old)] == [None]
