"""The event log port's contract, run against both adapters: the SQLite file and a Kafka topic.

Written against the port alone (STYLE: one contract suite per port). The Kafka half runs on a
real Kafka-protocol broker (Tansu, started by the fixtures). Positions are compared per source
and one command's events may share a position (one Kafka record), so the tests order events by
(source, position, version) and never add positions together.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from eventstore.codec import AvroCodec
from eventstore.domain.decide import decide
from eventstore.domain.messages import Command, Event, to_record
from eventstore.domain.plan import Plan, fold
from eventstore.exceptions import DuplicateCommandError, StaleVersionError
from eventstore.handler import CommandHandler, load_plan
from eventstore.log import AppendRequest, CommandRecord, EventLog, NewEvent, StoredEvent, pages
from eventstore.position import Position
from eventstore.sqlite.log import SqliteEventLog

from . import factories as f

A = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(4)]

LogFactory = Callable[[], EventLog]


@pytest.fixture(params=["sqlite", pytest.param("kafka", marks=pytest.mark.kafka)])
def open_log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LogFactory]:
    """Opens logs on one store: each call is another writer (or reader) of the same log."""
    opened: list[EventLog] = []
    if request.param == "sqlite":
        def make() -> EventLog:
            opened.append(SqliteEventLog(tmp_path / "log.db"))
            return opened[-1]
    else:
        from eventstore.kafka.log import KafkaEventLog

        settings = request.getfixturevalue("kafka")

        def make() -> EventLog:
            opened.append(KafkaEventLog(settings, AvroCodec()))
            return opened[-1]
    yield make
    for log in opened:
        log.close()  # type: ignore[attr-defined]


@pytest.fixture
def event_log(open_log: LogFactory) -> EventLog:
    return open_log()


@pytest.fixture
def plans() -> tuple[str, str]:
    return str(uuid.uuid4()), str(uuid.uuid4())


def new_events(codec: AvroCodec, plan: Plan | None, command: Command) -> tuple[Plan | None, list[NewEvent]]:
    events: list[Event] = decide(plan, command, f.T0)
    encoded = [NewEvent(e.event_id, type(e).__name__, e.occurred_at, codec.encode(type(e).__name__, to_record(e))) for e in events]
    return fold(plan, events), encoded


def record_of(codec: AvroCodec, command: Command, outcome: str = "accepted", reason: str = "") -> CommandRecord:
    body = codec.encode(type(command).__name__, to_record(command))
    return CommandRecord(
        command.command_id, type(command).__name__, command.plan_uuid, command.issued_by, command.origin,
        command.issued_at, body, outcome, reason,  # type: ignore[arg-type]
    )


class Writer:
    """Appends a plan's commands the way a handler would, tracking the plan's version."""

    def __init__(self, log: EventLog, codec: AvroCodec, plan_uuid: str) -> None:
        self.log, self.codec, self.plan_uuid = log, codec, plan_uuid
        self.plan: Plan | None = None

    def send(self, command: Command) -> CommandRecord:
        version = self.plan.version if self.plan else 0
        plan, events = new_events(self.codec, self.plan, command)
        recorded = self.log.append(self.plan_uuid, version, events, record_of(self.codec, command))
        self.plan = plan
        return recorded

    def register_and_cancel(self, actions: int = 2) -> None:
        self.send(f.register(self.plan_uuid, "ONGOING", [f.action(A[i], "ONGOING") for i in range(actions)]))
        self.send(f.cancel(self.plan_uuid))


def everything(log: EventLog) -> list[StoredEvent]:
    return ordered(log.events_after(Position(), limit=100_000))


def ordered(events: list[StoredEvent]) -> list[StoredEvent]:
    return sorted(events, key=lambda e: (e.source, e.position, e.version))


def test_an_empty_log(event_log: EventLog) -> None:
    assert event_log.events_after(Position()) == []
    assert event_log.head() == Position()
    assert event_log.read_plan(str(uuid.uuid4())) == []
    assert event_log.command_outcome("nope") is None


def test_append_and_read_from_any_position(event_log: EventLog, codec: AvroCodec, plans: tuple[str, str]) -> None:
    p, q = plans
    a, b = Writer(event_log, codec, p), Writer(event_log, codec, q)
    a.send(f.register(p, "ONGOING", [f.action(A[0], "ONGOING"), f.action(A[1])]))
    b.send(f.register(q, "PENDING", [f.action(A[2])]))
    a.send(f.cancel(p))  # started, action 0 cancelling, action 1 cancelled (start + end)
    b.send(f.cancel(q))
    events = everything(event_log)
    assert len(events) == 1 + 1 + 4 + 4
    head = event_log.head()
    assert all(head[e.source] >= e.position for e in events) and head == Position.of({e.source: e.position for e in events})
    for cut in events:
        after = Position.of({cut.source: cut.position})
        expected = [e for e in events if e.position > after[e.source]]
        assert ordered(event_log.events_after(after, limit=100)) == expected
    assert event_log.events_after(head) == []


def test_reading_page_after_page_yields_every_event_once(event_log: EventLog, codec: AvroCodec, plans: tuple[str, str]) -> None:
    """Small pages, resumed from the last position read: nothing skipped, nothing twice, even where one
    command's events share a position (a Kafka record is never split by a page)."""
    p, q = plans
    Writer(event_log, codec, p).send(f.register(p, "ONGOING", [f.action(A[0], "ONGOING"), f.action(A[1])]))
    w = Writer(event_log, codec, q)
    w.send(f.register(q, "ONGOING", [f.action(A[2], "ONGOING"), f.action(A[3])]))
    w.send(f.cancel(q))
    paged = [e for page in pages(event_log, 2) for e in page]
    assert ordered(paged) == everything(event_log) and len(paged) == 1 + 1 + 4


def test_versions_per_plan_count_from_one_and_fold_to_the_writers_state(event_log: EventLog, codec: AvroCodec, plans: tuple[str, str]) -> None:
    p, q = plans
    a, b = Writer(event_log, codec, p), Writer(event_log, codec, q)
    a.send(f.register(p, "ONGOING", [f.action(A[0], "ONGOING"), f.action(A[1], "ONGOING")]))
    b.send(f.register(q, "ONGOING", [f.action(A[2], "ONGOING")]))
    a.send(f.cancel(p))
    b.send(f.cancel(q))
    a.send(f.abort_ok(p, A[0]))
    b.send(f.abort_failed(q, A[2]))
    a.send(f.abort_ok(p, A[1]))
    for plan_uuid, writer in ((p, a), (q, b)):
        stream = event_log.read_plan(plan_uuid)
        assert [e.version for e in stream] == list(range(1, len(stream) + 1))
        assert stream == [e for e in everything(event_log) if e.plan_uuid == plan_uuid], "a plan's stream is the log filtered"
        assert writer.plan is not None and len(stream) == writer.plan.version
        assert load_plan(codec, stream) == writer.plan


def test_a_stale_expected_version_appends_nothing(event_log: EventLog, codec: AvroCodec, plans: tuple[str, str]) -> None:
    p, _ = plans
    w = Writer(event_log, codec, p)
    w.send(f.register(p, "ONGOING", [f.action(A[0], "ONGOING")]))
    before = everything(event_log)
    stale = f.cancel(p)
    _, events = new_events(codec, w.plan, stale)
    for expected in (0, 2):
        with pytest.raises(StaleVersionError) as raised:
            event_log.append(p, expected, events, record_of(codec, stale))
        assert (raised.value.expected, raised.value.actual) == (expected, 1)
    assert everything(event_log) == before
    assert event_log.command_outcome(stale.command_id) is None, "a stale append records no outcome either"


def test_a_decision_without_events_is_version_checked_too(event_log: EventLog, codec: AvroCodec, plans: tuple[str, str]) -> None:
    """A rejection decided on an old state must not stand: the fresh state may accept the command."""
    p, _ = plans
    w = Writer(event_log, codec, p)
    w.send(f.register(p, "ONGOING", [f.action(A[0], "ONGOING")]))
    w.send(f.cancel(p))
    rejected = f.abort_ok(p, A[0])
    with pytest.raises(StaleVersionError):
        event_log.append(p, 1, [], record_of(codec, rejected, "rejected", "decided on version 1"))
    assert event_log.command_outcome(rejected.command_id) is None


def test_two_writers_at_one_version_one_wins_and_every_reader_sees_only_it(open_log: LogFactory, codec: AvroCodec, plans: tuple[str, str]) -> None:
    """A deposed or paused writer's append at a version another has taken is never applied by anyone."""
    p, _ = plans
    first, second, reader = open_log(), open_log(), open_log()
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
    assert reader.command_outcome(other.command_id) is None
    assert abort.command_id not in {e.command_id for e in stream}


def test_a_batch_appends_each_in_order_and_reports_what_lost(event_log: EventLog, codec: AvroCodec, plans: tuple[str, str]) -> None:
    """The handler's path: one call for a batch; a request that lost or was handled says so, the others stand."""
    p, q = plans
    register_p, register_q = f.register(p, "ONGOING", [f.action(A[0], "ONGOING")]), f.register(q, "PENDING", [f.action(A[1])])
    plan_p, events_p = new_events(codec, None, register_p)
    _, events_q = new_events(codec, None, register_q)
    cancel_p = f.cancel(p)
    _, cancelled = new_events(codec, plan_p, cancel_p)
    stale = f.cancel(q)
    results = event_log.append_all([
        AppendRequest(p, 0, events_p, record_of(codec, register_p)),
        AppendRequest(p, 1, cancelled, record_of(codec, cancel_p)),  # on the version the first one leaves
        AppendRequest(q, 5, events_q, record_of(codec, stale)),  # decided on a version q never had
        AppendRequest(q, 0, events_q, record_of(codec, register_q)),
        AppendRequest(q, 1, [], record_of(codec, register_p)),  # an id handled already
    ])
    assert [type(r).__name__ for r in results] == ["CommandRecord", "CommandRecord", "StaleVersionError", "CommandRecord", "DuplicateCommandError"]
    assert [e.command_id for e in event_log.read_plan(p)] == [register_p.command_id] + [cancel_p.command_id] * len(cancelled)
    assert [e.command_id for e in event_log.read_plan(q)] == [register_q.command_id]
    assert event_log.command_outcome(stale.command_id) is None


def test_the_command_handler_decides_again_on_the_state_another_writer_left(open_log: LogFactory, codec: AvroCodec, plans: tuple[str, str]) -> None:
    """One handler for both backends: a cancel decided on a state another writer has moved on loses, and is decided again."""
    p, _ = plans
    ours, theirs = open_log(), open_log()
    register = f.register(p, "ONGOING", [f.action(A[0], "ONGOING")])
    handler = CommandHandler(ours, codec, lambda: f.T0)
    [(_, registered)], _ = handler.handle_batch([(register, record_of(codec, register).body)])
    assert registered.how == "decided" and handler.plan(p) is not None
    other = f.cancel(p, by="someone else")
    plan, events = new_events(codec, handler.plan(p), other)
    theirs.append(p, 1, events, record_of(codec, other))  # the handler does not know of it yet
    cancel = f.cancel(p)
    done, lost = handler.handle_batch([(cancel, record_of(codec, cancel).body)])
    assert lost == [] and [(d.how, d.outcome) for _, d in done] == [("decided", "unchanged")], done
    assert [e.command_id for e in ours.read_plan(p)] == [register.command_id] + [other.command_id] * len(events)
    [(_, again)], _ = handler.handle_batch([(cancel, record_of(codec, cancel).body)])
    assert (again.how, again.outcome) == ("earlier", "unchanged")


def test_a_command_id_is_handled_once(event_log: EventLog, codec: AvroCodec, plans: tuple[str, str]) -> None:
    p, _ = plans
    w = Writer(event_log, codec, p)
    register = f.register(p, "ONGOING", [f.action(A[0], "ONGOING")])
    w.send(register)
    before = everything(event_log)
    _, events = new_events(codec, w.plan, f.cancel(p))
    with pytest.raises(DuplicateCommandError) as raised:
        event_log.append(p, 1, events, record_of(codec, register))
    assert raised.value.command_id == register.command_id
    assert everything(event_log) == before


def test_command_outcomes_are_kept(event_log: EventLog, codec: AvroCodec, plans: tuple[str, str]) -> None:
    p, q = plans
    w = Writer(event_log, codec, p)
    w.send(f.register(p, "ONGOING", [f.action(A[0], "ONGOING"), f.action(A[1])]))
    cancel = f.cancel(p)
    recorded = w.send(cancel)
    outcome = event_log.command_outcome(cancel.command_id)
    assert outcome == recorded
    assert outcome is not None and (outcome.outcome, outcome.reason, outcome.issued_by) == ("accepted", "", "admin")
    cancel_events = [e for e in everything(event_log) if e.command_id == cancel.command_id]
    assert (outcome.first_position, outcome.last_position) == (cancel_events[0].position, cancel_events[-1].position)

    refused = f.cancel(q)
    kept = event_log.append(q, 0, [], record_of(codec, refused, "rejected", f"action plan {q} is not registered"))
    assert (kept.first_position, kept.last_position) == (None, None)
    assert event_log.command_outcome(refused.command_id) == kept
    assert event_log.read_plan(q) == []


def test_writer_schemas_are_kept(event_log: EventLog, codec: AvroCodec) -> None:
    event_log.keep_schemas(codec.current_schemas())
    event_log.keep_schemas(codec.current_schemas()[:3])
    assert sorted(event_log.writer_schemas(), key=lambda w: w.name) == codec.current_schemas()
