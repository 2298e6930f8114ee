"""The ``EventLog`` port's contract (``eventstore/log.py``), one test case for every backend.

As eventsourcing's ``tests/persistence.py``: ``EventLogTestCase`` holds every test, written
against the port alone; a backend's module (``test_event_log_sqlite.py``,
``test_event_log_kafka.py``) only says how to open its log and how to read back what was
appended. The port is the write side's; reading back is not in it, so each backend names its
reader: the embedded log's own ``read_plan``/``events_after`` (its projections read it so), and on
Kafka the wire-contract oracle (``wire.py``), which judges the appends without the product's fence.

Positions are compared per source and one command's events may share a position (one Kafka
record), so the tests order events by (source, position, version) and never add positions.
"""

from __future__ import annotations

import hashlib
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Protocol, TypeVar

import pytest

from eventstore.codec import AvroCodec
from eventstore.exceptions import DuplicateCommandError, StaleVersionError
from eventstore.handler import load_plan
from eventstore.log import AppendRequest, EventLog, LogReader, StoredEvent, pages
from eventstore.position import Position

from tests import factories as f
from tests.support.appends import A, Writer, new_events, record_of

class Closeable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=Closeable)


class Opens:
    """Closes, after the test, everything a case opened through ``opened``."""

    _opened: list[Closeable]

    @pytest.fixture(autouse=True)
    def _closes_what_it_opened(self) -> Iterator[None]:
        self._opened = []
        yield
        for thing in reversed(self._opened):
            thing.close()

    def opened(self, thing: C) -> C:
        self._opened.append(thing)
        return thing


def everything(reader: LogReader) -> list[StoredEvent]:
    return ordered(reader.events_after(Position(), limit=100_000))


def ordered(events: list[StoredEvent]) -> list[StoredEvent]:
    return sorted(events, key=lambda e: (e.source, e.position, e.version))


def end_of(events: list[StoredEvent]) -> Position:
    """Where these events end, source by source (what a reader that read them has reached)."""
    return Position.of({e.source: max(x.position for x in events if x.source == e.source) for e in events})


class EventLogTestCase(Opens, ABC):
    """Every backend's ``EventLog`` passes these."""

    @abstractmethod
    def create_log(self) -> EventLog:
        """Another writer (or reader of outcomes) of the one log this test uses."""

    @abstractmethod
    def create_reader(self) -> LogReader:
        """What was appended to that log, read back by plan and by position."""

    @pytest.fixture
    def plans(self) -> tuple[str, str]:
        return str(uuid.uuid4()), str(uuid.uuid4())

    def test_an_empty_log(self) -> None:
        log, reader = self.create_log(), self.create_reader()
        assert reader.events_after(Position()) == []
        assert everything(reader) == [] and end_of(everything(reader)) == Position()
        assert reader.read_plan(str(uuid.uuid4())) == []
        assert log.command_outcome("nope") is None

    def test_append_and_read_from_any_position(self, codec: AvroCodec, plans: tuple[str, str]) -> None:
        p, q = plans
        log, reader = self.create_log(), self.create_reader()
        a, b = Writer(log, codec, p), Writer(log, codec, q)
        a.send(f.register(p, "ONGOING", [f.action(A[0], "ONGOING"), f.action(A[1])]))
        b.send(f.register(q, "PENDING", [f.action(A[2])]))
        a.send(f.cancel(p))  # started, action 0 cancelling, action 1 cancelled (start + end)
        b.send(f.cancel(q))
        events = everything(reader)
        assert len(events) == 1 + 1 + 4 + 4
        head = end_of(events)
        assert all(head[e.source] >= e.position for e in events) and head == Position.of({e.source: e.position for e in events})
        for cut in events:
            after = Position.of({cut.source: cut.position})
            expected = [e for e in events if e.position > after[e.source]]
            assert ordered(reader.events_after(after, limit=100)) == expected
        assert reader.events_after(head) == []

    def test_reading_page_after_page_yields_every_event_once(self, codec: AvroCodec, plans: tuple[str, str]) -> None:
        """Small pages, resumed from the last position read: nothing skipped, nothing twice, even where one
        command's events share a position (a Kafka record is never split by a page)."""
        p, q = plans
        log, reader = self.create_log(), self.create_reader()
        Writer(log, codec, p).send(f.register(p, "ONGOING", [f.action(A[0], "ONGOING"), f.action(A[1])]))
        w = Writer(log, codec, q)
        w.send(f.register(q, "ONGOING", [f.action(A[2], "ONGOING"), f.action(A[3])]))
        w.send(f.cancel(q))
        paged = [e for page in pages(reader, 2) for e in page]
        assert ordered(paged) == everything(reader) and len(paged) == 1 + 1 + 4

    def test_versions_per_plan_count_from_one_and_fold_to_the_writers_state(self, codec: AvroCodec, plans: tuple[str, str]) -> None:
        p, q = plans
        log, reader = self.create_log(), self.create_reader()
        a, b = Writer(log, codec, p), Writer(log, codec, q)
        a.send(f.register(p, "ONGOING", [f.action(A[0], "ONGOING"), f.action(A[1], "ONGOING")]))
        b.send(f.register(q, "ONGOING", [f.action(A[2], "ONGOING")]))
        a.send(f.cancel(p))
        b.send(f.cancel(q))
        a.send(f.abort_ok(p, A[0]))
        b.send(f.abort_failed(q, A[2]))
        a.send(f.abort_ok(p, A[1]))
        for plan_uuid, writer in ((p, a), (q, b)):
            stream = reader.read_plan(plan_uuid)
            assert [e.version for e in stream] == list(range(1, len(stream) + 1))
            assert stream == [e for e in everything(reader) if e.plan_uuid == plan_uuid], "a plan's stream is the log filtered"
            assert writer.plan is not None and len(stream) == writer.plan.version
            assert load_plan(codec, stream) == writer.plan

    def test_a_stale_expected_version_appends_nothing(self, codec: AvroCodec, plans: tuple[str, str]) -> None:
        p, _ = plans
        log, reader = self.create_log(), self.create_reader()
        w = Writer(log, codec, p)
        w.send(f.register(p, "ONGOING", [f.action(A[0], "ONGOING")]))
        before = everything(reader)
        stale = f.cancel(p)
        _, events = new_events(codec, w.plan, stale)
        for expected in (0, 2):
            with pytest.raises(StaleVersionError) as raised:
                log.append(p, expected, events, record_of(codec, stale))
            assert (raised.value.expected, raised.value.actual) == (expected, 1)
        assert everything(reader) == before
        assert log.command_outcome(stale.command_id) is None, "a stale append records no outcome either"

    def test_a_decision_without_events_is_version_checked_too(self, codec: AvroCodec, plans: tuple[str, str]) -> None:
        """A rejection decided on an old state must not stand: the fresh state may accept the command."""
        p, _ = plans
        log = self.create_log()
        w = Writer(log, codec, p)
        w.send(f.register(p, "ONGOING", [f.action(A[0], "ONGOING")]))
        w.send(f.cancel(p))
        rejected = f.abort_ok(p, A[0])
        with pytest.raises(StaleVersionError):
            log.append(p, 1, [], record_of(codec, rejected, "rejected", "decided on version 1"))
        assert log.command_outcome(rejected.command_id) is None

    def test_two_writers_at_one_version_one_wins_and_every_reader_sees_only_it(self, codec: AvroCodec, plans: tuple[str, str]) -> None:
        """A deposed or paused writer's append at a version another has taken is never applied by anyone."""
        p, _ = plans
        first, second, third, reader = self.create_log(), self.create_log(), self.create_log(), self.create_reader()
        register = f.register(p, "ONGOING", [f.action(A[0], "ONGOING"), f.action(A[1])])
        plan, events = new_events(codec, None, register)
        first.append(p, 0, events, record_of(codec, register))
        cancel, abort = f.cancel(p), f.abort_ok(p, A[0])
        _, cancelled = new_events(codec, plan, cancel)
        other = f.cancel(p, by="someone else")
        _, also = new_events(codec, plan, other)
        first.append(p, 1, cancelled, record_of(codec, cancel))
        with pytest.raises(StaleVersionError):
            second.append(p, 1, also, record_of(codec, other))  # decided on version 1 too: it lost
        stream = reader.read_plan(p)
        assert [e.command_id for e in stream] == [register.command_id] + [cancel.command_id] * 4
        assert third.command_outcome(other.command_id) is None
        assert third.command_outcome(cancel.command_id) is not None, "every writer learns what stood"
        assert abort.command_id not in {e.command_id for e in stream}

    def test_a_batch_appends_each_in_order_and_reports_what_lost(self, codec: AvroCodec, plans: tuple[str, str]) -> None:
        """The handler's path: one call for a batch; a request that lost or was handled says so, the others stand."""
        p, q = plans
        log, reader = self.create_log(), self.create_reader()
        register_p, register_q = f.register(p, "ONGOING", [f.action(A[0], "ONGOING")]), f.register(q, "PENDING", [f.action(A[1])])
        plan_p, events_p = new_events(codec, None, register_p)
        _, events_q = new_events(codec, None, register_q)
        cancel_p = f.cancel(p)
        _, cancelled = new_events(codec, plan_p, cancel_p)
        stale = f.cancel(q)
        results = log.append_all([
            AppendRequest(p, 0, events_p, record_of(codec, register_p)),
            AppendRequest(p, 1, cancelled, record_of(codec, cancel_p)),  # on the version the first one leaves
            AppendRequest(q, 5, events_q, record_of(codec, stale)),  # decided on a version q never had
            AppendRequest(q, 0, events_q, record_of(codec, register_q)),
            AppendRequest(q, 1, [], record_of(codec, register_p)),  # an id handled already
        ])
        assert [type(r).__name__ for r in results] == ["CommandRecord", "CommandRecord", "StaleVersionError", "CommandRecord", "DuplicateCommandError"]
        assert [e.command_id for e in reader.read_plan(p)] == [register_p.command_id] + [cancel_p.command_id] * len(cancelled)
        assert [e.command_id for e in reader.read_plan(q)] == [register_q.command_id]
        assert log.command_outcome(stale.command_id) is None

    def test_a_command_id_is_handled_once(self, codec: AvroCodec, plans: tuple[str, str]) -> None:
        p, _ = plans
        log, reader = self.create_log(), self.create_reader()
        w = Writer(log, codec, p)
        register = f.register(p, "ONGOING", [f.action(A[0], "ONGOING")])
        w.send(register)
        before = everything(reader)
        _, events = new_events(codec, w.plan, f.cancel(p))
        with pytest.raises(DuplicateCommandError) as raised:
            log.append(p, 1, events, record_of(codec, register))
        assert raised.value.command_id == register.command_id
        assert everything(reader) == before

    def test_command_outcomes_are_kept(self, codec: AvroCodec, plans: tuple[str, str]) -> None:
        p, q = plans
        log, reader = self.create_log(), self.create_reader()
        w = Writer(log, codec, p)
        w.send(f.register(p, "ONGOING", [f.action(A[0], "ONGOING"), f.action(A[1])]))
        cancel = f.cancel(p)
        recorded = w.send(cancel)
        outcome = log.command_outcome(cancel.command_id)
        assert outcome == recorded
        assert outcome is not None and (outcome.outcome, outcome.reason, outcome.issued_by) == ("accepted", "", "admin")
        cancel_events = [e for e in everything(reader) if e.command_id == cancel.command_id]
        assert (outcome.first_position, outcome.last_position) == (cancel_events[0].position, cancel_events[-1].position)

        refused = f.cancel(q)
        kept = log.append(q, 0, [], record_of(codec, refused, "rejected", f"action plan {q} is not registered"))
        assert (kept.first_position, kept.last_position) == (None, None)
        assert log.command_outcome(refused.command_id) == kept
        assert reader.read_plan(q) == []

    def test_writer_schemas_are_kept(self, codec: AvroCodec) -> None:
        log = self.create_log()
        log.keep_schemas(codec.current_schemas())
        log.keep_schemas(codec.current_schemas()[:3])
        assert sorted(log.writer_schemas(), key=lambda w: w.name) == codec.current_schemas()

    def test_each_event_hash_chains_the_previous_one_of_its_plan(self, codec: AvroCodec, plans: tuple[str, str]) -> None:
        """What `verify` recomputes, as docs/wire-contract.md "The chain" states it, on either log."""
        p, q = plans
        log, reader = self.create_log(), self.create_reader()
        Writer(log, codec, p).register_and_cancel()
        Writer(log, codec, q).register_and_cancel(actions=1)
        for plan_uuid in plans:
            previous = ""
            for event in reader.read_plan(plan_uuid):
                previous = hashlib.sha256(previous.encode("ascii") + event.body).hexdigest()
                assert event.hash == previous, event.where
