"""Appending to an event log the way a handler does, without one: decide, encode, append at the
plan's version. For tests of a log adapter that write streams by hand."""

from __future__ import annotations

from eventstore.codec import AvroCodec
from eventstore.domain.decide import decide
from eventstore.domain.messages import Command, Event, to_record
from eventstore.domain.plan import Plan, fold
from eventstore.log import CommandRecord, EventLog, NewEvent
from tests import factories as f

#: Action uuids a test can name again (``register_and_cancel`` registers its plan's actions with them).
A = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(4)]


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
