"""The ``DeadLetterSink`` port's contract (``eventstore/log.py``): park what cannot be used, and go on.

``ParkingLot`` keeps the letters in a table of the consumer's own file; ``DeadLetters`` sends them
to the dead-letter topic. Read back as ``watcher-es dlq`` lists them, a letter says the same on
both: where the record was (its source and position), who parked it, why, its key and its size.
A backend's module says how to build its sink, where its records come from, and how `dlq` reads it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from eventstore.exceptions import CorruptRecordError, StaleAppendError
from eventstore.log import DeadLetter, DeadLetterSink, ParkedRecord

from .event_log import Opens


class DeadLetterSinkTestCase(Opens, ABC):
    @abstractmethod
    def create_sink(self) -> DeadLetterSink: ...

    @abstractmethod
    def source(self, n: int) -> str:
        """A source this backend's consumers read records from (the log; a topic's partition)."""

    @abstractmethod
    def letters(self) -> list[DeadLetter]:
        """What ``dlq`` lists of the sink, every letter parked so far confirmed."""

    def expected_place(self, source: str, position: int) -> tuple[str, int | None, int]:
        """(topic, partition, offset) of a record: a topic's partition and Kafka offset, or the log and its position."""
        topic, _, partition = source.rpartition("/")
        return (topic, int(partition), position - 1) if partition.isdigit() else (source, None, position)

    def test_nothing_parked_nothing_listed(self) -> None:
        self.create_sink()
        assert self.letters() == []

    def test_each_letter_says_where_the_record_was_who_parked_it_and_why(self) -> None:
        sink = self.create_sink()
        records = [
            (ParkedRecord(self.source(0), 1, "plan-a", b"\xc3\x01junk"), "read-model", CorruptRecordError("short", "here")),
            (ParkedRecord(self.source(1), 7, "plan-b", b""), "translator", ValueError("no such field: ünïcode")),
            (ParkedRecord(self.source(0), 3, "plan-a", b"x" * 300, [("ce_id", b"c-1")]), "fence", StaleAppendError("lost")),
        ]
        for record, stage, error in records:
            sink.park(record, stage, error)
        listed = self.letters()
        by_stage = {letter.stage: letter for letter in listed}  # a topic keeps no order between its partitions
        assert len(listed) == len(by_stage) == len(records)
        for record, stage, error in records:
            letter = by_stage[stage]
            assert (letter.topic, letter.partition, letter.offset) == self.expected_place(record.source, record.position)
            assert letter.position == record.position, "positions are numbered alike on both stores"
            assert (letter.stage, letter.error, letter.message) == (stage, f"{type(error).__module__}.{type(error).__qualname__}", str(error))
            assert letter.plan_uuid == letter.key == record.key
            assert letter.bytes == len(record.value)
            assert (letter.dlq_partition is None) == (letter.dlq_offset is None)
        assert len({(letter.dlq_partition, letter.dlq_offset) for letter in listed if letter.dlq_offset is not None}) in (0, len(listed))
