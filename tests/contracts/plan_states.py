"""The ``PlanStates`` port's contract (``eventstore/handler.py``): what the command handler decides on.

``FoldedPlans`` folds the embedded log's streams; ``StorePlans`` reads the Kafka handler's state
store, which its log keeps current. Either must answer, after any appends of its own or of other
writers, with the plan as the log's history leaves it: a backend's module only says how to open a
log with its plan states, and how to read back what was appended (as in ``event_log.py``).
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod

from eventstore.codec import AvroCodec
from eventstore.domain.messages import Command, to_record
from eventstore.handler import CommandHandler, PlanStates, load_plan
from eventstore.log import EventLog, LogReader

from .. import factories as f
from tests.support.appends import A, new_events, record_of

from .event_log import Opens


def body(codec: AvroCodec, command: Command) -> bytes:
    return codec.encode(type(command).__name__, to_record(command))


class PlanStatesTestCase(Opens, ABC):
    @abstractmethod
    def create(self, codec: AvroCodec) -> tuple[EventLog, PlanStates]:
        """A writer of the one log this test uses, and the plan states a handler over it decides on."""

    @abstractmethod
    def create_reader(self) -> LogReader:
        """What was appended to that log, read back by plan and by position."""

    def test_a_plan_never_appended_is_unknown(self, codec: AvroCodec) -> None:
        _, plans = self.create(codec)
        p = str(uuid.uuid4())
        plans.look_up([f.cancel(p)])
        assert (plans.plan(p), plans.version(p), plans.handled("nope")) == (None, 0, None)

    def test_the_states_are_the_plans_the_log_holds(self, codec: AvroCodec) -> None:
        log, plans = self.create(codec)
        p, q = str(uuid.uuid4()), str(uuid.uuid4())
        handler = CommandHandler(log, codec, lambda: f.T0, plans=plans)
        commands: list[Command] = [
            f.register(p, "ONGOING", [f.action(A[0], "ONGOING"), f.action(A[1])]), f.register(q, "PENDING", [f.action(A[2])]),
            f.cancel(p), f.cancel(q), f.abort_failed(p, A[0]), f.cancel(q),
        ]
        for command in commands:
            done, lost = handler.handle_batch([(command, body(codec, command))])
            assert lost == [] and done[0][1].how == "decided", done
        reader = self.create_reader()
        plans.look_up(commands)  # a read ahead changes no answer
        for plan_uuid, state in ((p, "FAILED"), (q, "CANCELLED")):
            folded = load_plan(codec, reader.read_plan(plan_uuid))
            assert folded is not None and folded.state == state
            assert plans.plan(plan_uuid) == folded
            assert plans.version(plan_uuid) == folded.version == len(reader.read_plan(plan_uuid))
        for command in commands:
            handled = plans.handled(command.command_id)
            assert handled is not None and handled == log.command_outcome(command.command_id)
        outcomes = [plans.handled(c.command_id) for c in commands]
        assert [o.outcome if o else None for o in outcomes] == ["accepted"] * 5 + ["rejected"], "a rejection is kept too"

    def test_the_command_handler_decides_again_on_the_state_another_writer_left(self, codec: AvroCodec) -> None:
        """One handler for both backends: a cancel decided on a state another writer has moved on loses, and is decided again."""
        ours, plans = self.create(codec)
        theirs, _ = self.create(codec)
        p = str(uuid.uuid4())
        register = f.register(p, "ONGOING", [f.action(A[0], "ONGOING")])
        handler = CommandHandler(ours, codec, lambda: f.T0, plans=plans)
        [(_, registered)], _ = handler.handle_batch([(register, record_of(codec, register).body)])
        assert registered.how == "decided" and handler.plan(p) is not None
        other = f.cancel(p, by="someone else")
        plan, events = new_events(codec, handler.plan(p), other)
        theirs.append(p, 1, events, record_of(codec, other))  # the handler does not know of it yet
        cancel = f.cancel(p)
        done, lost = handler.handle_batch([(cancel, record_of(codec, cancel).body)])
        assert lost == [] and [(d.how, d.outcome) for _, d in done] == [("decided", "unchanged")], done
        assert [e.command_id for e in self.create_reader().read_plan(p)] == [register.command_id] + [other.command_id] * len(events)
        assert plans.plan(p) == plan and plans.version(p) == 1 + len(events), "the states are the other writer's"
        [(_, again)], _ = handler.handle_batch([(cancel, record_of(codec, cancel).body)])
        assert (again.how, again.outcome) == ("earlier", "unchanged")

    def test_a_second_command_of_a_plan_is_decided_on_what_its_first_left(self, codec: AvroCodec) -> None:
        """Two commands of one plan in a batch, the first losing to another writer's append of as many
        events: the second is decided on the state that won, never on the first's that never was.
        (Decided together, the second would stand at the version the other append left, chained on
        nothing the log holds.)"""
        ours, plans = self.create(codec)
        theirs, _ = self.create(codec)
        p = str(uuid.uuid4())
        register = f.register(p, "ONGOING", [f.action(A[0], "ONGOING"), f.action(A[1])])
        handler = CommandHandler(ours, codec, lambda: f.T0, plans=plans)
        handler.handle_batch([(register, body(codec, register))])
        other = f.cancel(p, by="someone else")  # plan CANCELLING, A0 CANCELLING, A1 cancelled: 4 events
        _, events = new_events(codec, handler.plan(p), other)
        theirs.append(p, 1, events, record_of(codec, other))  # the handler does not know of it yet
        cancel, abort = f.cancel(p), f.abort_ok(p, A[0])  # our cancel makes as many events as theirs
        done, lost = handler.handle_batch([(cancel, body(codec, cancel)), (abort, body(codec, abort))])
        assert lost == [] and [(c.command_id, o.how, o.outcome) for c, o in done] == [
            (cancel.command_id, "decided", "unchanged"), (abort.command_id, "decided", "accepted"),
        ], done
        stream = self.create_reader().read_plan(p)
        assert [e.command_id for e in stream] == [register.command_id] + [other.command_id] * len(events) + [abort.command_id] * 2
        folded = load_plan(codec, stream)
        assert folded is not None and folded.state == "CANCELLED" and plans.plan(p) == folded
