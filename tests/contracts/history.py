"""The ``History`` port's contract (``projections/history.py``): the whole log, a page at a time, for replay and verify.

``SqliteHistory`` reads the embedded log through its bulk scan; ``TopicHistory`` reads the events
topic from its start through the fence. Both must give every event that stands, once, in its
source's order, with its chain hash (what verify checks), and cut the log at a time given as ISO
8601 (what `replay --until` builds). A backend's module says how to write to its log, how to read
its history, and how to read back what was appended (as in ``event_log.py``).
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod

import pytest

from eventstore.codec import AvroCodec
from eventstore.domain.decide import decide
from eventstore.domain.messages import Command, to_record
from eventstore.domain.plan import Plan, fold
from eventstore.exceptions import StaleVersionError
from eventstore.log import EventLog, LogReader, NewEvent, StoredEvent
from eventstore.times import format_time
from projections.exceptions import UnknownInstantError
from projections.history import History
from projections.tracking import LoggedEvent

from .. import factories as f
from tests.support.appends import A, record_of

from .event_log import Opens, end_of, everything, ordered

SECOND = 1_000_000


def light(e: LoggedEvent) -> tuple[str, int, str, int, str, str, bytes]:
    """What a replay applies of an event, in log order when sorted (a position holds one plan's events)."""
    return (e.source, e.position, e.plan_uuid, e.version, e.event_id, e.command_id, e.body)


def moment(us: int) -> str:
    return format_time(us) or ""


class HistoryTestCase(Opens, ABC):
    @abstractmethod
    def create_log(self) -> EventLog: ...

    @abstractmethod
    def create_history(self) -> History: ...

    @abstractmethod
    def create_reader(self) -> LogReader: ...

    def append(self, codec: AvroCodec, log: EventLog, plan: Plan | None, command: Command, at: int) -> Plan | None:
        events = decide(plan, command, at)
        new = [NewEvent(e.event_id, type(e).__name__, e.occurred_at, codec.encode(type(e).__name__, to_record(e))) for e in events]
        log.append(command.plan_uuid, plan.version if plan else 0, new, record_of(codec, command))
        return fold(plan, events)

    def story(self, codec: AvroCodec) -> list[StoredEvent]:
        """Two plans, each command a second after the one before; a lost append on the way. Returns what stands."""
        log, other = self.create_log(), self.create_log()
        p, q = str(uuid.uuid4()), str(uuid.uuid4())
        plan_p = self.append(codec, log, None, f.register(p, "ONGOING", [f.action(A[0], "ONGOING"), f.action(A[1])]), f.T0)
        plan_q = self.append(codec, log, None, f.register(q, "PENDING", [f.action(A[2])]), f.T0 + SECOND)
        stale = plan_p
        plan_p = self.append(codec, log, plan_p, f.cancel(p), f.T0 + 2 * SECOND)
        with pytest.raises(StaleVersionError):
            self.append(codec, other, stale, f.cancel(p, by="late"), f.T0 + 2 * SECOND)  # skipped by every reader
        self.append(codec, log, plan_q, f.cancel(q), f.T0 + 3 * SECOND)
        self.append(codec, log, plan_p, f.abort_ok(p, A[0]), f.T0 + 4 * SECOND)
        return everything(self.create_reader())

    def test_an_empty_log_has_no_history(self) -> None:
        self.create_log()
        history = self.create_history()
        assert [e for page in history.pages(None, 10) for e in page] == []
        assert [e for page in history.stored(10) for e in page] == []
        assert history.edited_command() is None

    def test_every_event_that_stands_once_in_order_with_its_hash(self, codec: AvroCodec) -> None:
        appended = self.story(codec)
        history = self.create_history()
        stored = [e for page in history.stored(3) for e in page]
        assert ordered(stored) == appended and len(stored) == len(appended) == 1 + 1 + 4 + 4 + 2
        for source in {e.source for e in stored}:
            mine = [(e.position, e.version) for e in stored if e.source == source]
            assert mine == sorted(mine), "each source in its order"
        assert sorted(light(e) for page in history.pages(None, 3) for e in page) == [light(e) for e in appended]
        end = history.end()
        assert end is None or end == end_of(appended)
        assert history.edited_command() is None

    def test_the_log_cut_at_a_time(self, codec: AvroCodec) -> None:
        appended = self.story(codec)
        history = self.create_history()
        for seconds in (0, 2, 4):
            kept = sorted(light(e) for page in history.pages(history.until(moment(f.T0 + seconds * SECOND)), 100) for e in page)
            assert kept == [light(e) for e in appended if e.occurred_at <= f.T0 + seconds * SECOND], seconds
        assert [e for page in history.pages(history.until(moment(f.T0 - SECOND)), 100) for e in page] == []

    def test_a_cut_that_names_no_moment_is_refused(self) -> None:
        self.create_log()
        with pytest.raises(UnknownInstantError):
            self.create_history().until("yesterday at noon")
