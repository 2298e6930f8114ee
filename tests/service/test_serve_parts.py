"""`serve` on Kafka runs its parts in threads: one that dies of the unforeseen stops serve instead
of leaving it running without that part (a supervisor then restarts it whole)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventstore.config import Settings
from eventstore.kafka.config import KafkaSettings
from projections.kafka.service import kafka_service


class Broken:
    def __init__(self) -> None:
        self.closed = False

    def poll(self, timeout: float = 0.2) -> int:
        raise RuntimeError("a bug in a part")

    def close(self) -> None:
        self.closed = True


def test_a_part_that_dies_stops_serve_with_its_error(tmp_path: Path) -> None:
    kafka = KafkaSettings("127.0.0.1:9")  # nothing is contacted: the service has no Kafka part here
    service = kafka_service(Settings(db=tmp_path / "w.db"), kafka, only=())
    broken = Broken()
    service.parts["broken"] = broken
    with pytest.raises(RuntimeError, match="a bug in a part"):
        service.run()
    assert broken.closed
