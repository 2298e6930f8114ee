"""Command handling: load the plan, decide, append; the same for every backend.

The decision is the pure ``decide``; this module only does the I/O around it: dedupe by
command id, fold the plan's stream (cached, checked by optimistic concurrency) and append the
events with the command's outcome in one atomic step.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from .codec import AvroCodec
from .domain.decide import DEFAULT_ABORT_TIMEOUT_US, CommandRejected, decide_and_fold, unchanged_reason
from .domain.messages import EVENT_TYPES, Command, Event, from_record, to_record
from .domain.plan import Plan, evolve
from .domain.validation import validate_command
from .exceptions import CommandValidationError, DuplicateCommandError, SerializationError, StaleVersionError, WatcherEsError
from .log import CommandRecord, EventLog, NewEvent, Outcome, StoredEvent

log = logging.getLogger(__name__)

Clock = Callable[[], int]


@dataclass(frozen=True)
class HandlingResult:
    """What became of a command; ``duplicate`` when an earlier handling's outcome is returned."""

    command_id: str
    plan_uuid: str
    outcome: Outcome
    reason: str
    events: list[Event] = field(default_factory=list)
    first_position: int | None = None
    last_position: int | None = None
    duplicate: bool = False

    @property
    def succeeded(self) -> bool:
        return self.outcome != "rejected"

    @property
    def event_types(self) -> list[str]:
        return [type(e).__name__ for e in self.events]


@dataclass(frozen=True)
class Decision:
    """What handling a command on a given state comes to, before anything is appended.

    The one place a command's outcome is decided, whichever log it is then appended to.
    """

    outcome: Outcome
    reason: str
    events: list[Event]
    #: The events encoded for the log, in order.
    new_events: list[NewEvent]
    #: The plan as the events leave it (the plan as it was for a rejection or no-op).
    plan: Plan | None


def decide_command(codec: AvroCodec, plan: Plan | None, command: Command, now: int, abort_timeout_us: int) -> Decision:
    try:
        events, after = decide_and_fold(plan, command, now, abort_timeout_us)
    except CommandRejected as rejected:
        return Decision("rejected", rejected.reason, [], [], plan)
    if not events:
        return Decision("unchanged", unchanged_reason(plan, command), [], [], plan)
    new = [NewEvent(e.event_id, type(e).__name__, e.occurred_at, codec.encode(type(e).__name__, to_record(e))) for e in events]
    return Decision("accepted", "", events, new, after)


def decode_event(codec: AvroCodec, stored: StoredEvent) -> Event:
    name, record = codec.decode(stored.body, stored.where)
    event: Event = from_record(EVENT_TYPES[name], record)
    return event


def load_plan(codec: AvroCodec, stream: list[StoredEvent]) -> Plan | None:
    plan: Plan | None = None
    for stored in stream:
        plan = evolve(plan, decode_event(codec, stored))
    return plan


class CommandHandler:
    """Turns commands into appended events; safe to run in several processes at once."""

    def __init__(self, log: EventLog, codec: AvroCodec, clock: Clock, abort_timeout_us: int = DEFAULT_ABORT_TIMEOUT_US, cache_size: int = 10_000) -> None:
        self._log = log
        self._codec = codec
        self._clock = clock
        self._abort_timeout_us = abort_timeout_us
        self._plans: OrderedDict[str, Plan] = OrderedDict()
        self._cache_size = cache_size
        log.keep_schemas(codec.current_schemas())

    def plan(self, plan_uuid: str) -> Plan | None:
        """The plan as the log has it now (cached; the append's version check catches staleness)."""
        cached = self._plans.get(plan_uuid)
        if cached is not None:
            self._plans.move_to_end(plan_uuid)
            return cached
        plan = load_plan(self._codec, self._log.read_plan(plan_uuid))
        if plan is not None:
            self._remember(plan)
        return plan

    def _remember(self, plan: Plan) -> None:
        self._plans[plan.uuid] = plan
        self._plans.move_to_end(plan.uuid)
        while len(self._plans) > self._cache_size:
            self._plans.popitem(last=False)

    def handle(self, command: Command, attempts: int = 5) -> HandlingResult:
        validate_command(command)
        try:
            body = self._codec.encode(type(command).__name__, to_record(command))
        except SerializationError as exc:  # a value no record can carry (text that is not Unicode, say): bad input
            raise CommandValidationError(str(exc)) from None
        earlier = self._log.command_outcome(command.command_id)
        if earlier is not None:
            return self._seen_before(command, body, earlier)
        for _ in range(attempts):
            try:
                return self._handle_once(command, body)
            except StaleVersionError as exc:
                log.info("retrying %s: %s", command.command_id, exc)
                self._plans.pop(command.plan_uuid, None)
            except DuplicateCommandError:
                earlier = self._log.command_outcome(command.command_id)
                if earlier is not None:
                    return self._seen_before(command, body, earlier)
                raise
        raise StaleVersionError(command.plan_uuid, -1, -1)

    def _seen_before(self, command: Command, body: bytes, earlier: CommandRecord) -> HandlingResult:
        """The first outcome of a resent command; a refusal (kept for the audit) of another one under a used id."""
        if same_command(self._codec, earlier, body):
            return _from_record(earlier, duplicate=True)
        reason = reused_id_reason(earlier)
        self._log.record_refused(CommandRecord(
            command.command_id, type(command).__name__, command.plan_uuid, command.issued_by, command.origin,
            command.issued_at, body, "rejected", reason,
        ))
        return HandlingResult(command.command_id, command.plan_uuid, "rejected", reason)

    def _handle_once(self, command: Command, body: bytes) -> HandlingResult:
        plan = self.plan(command.plan_uuid)
        decision = decide_command(self._codec, plan, command, self._clock(), self._abort_timeout_us)
        record = CommandRecord(
            command.command_id, type(command).__name__, command.plan_uuid, command.issued_by, command.origin,
            command.issued_at, body, decision.outcome, decision.reason,
        )
        stored = self._log.append(command.plan_uuid, plan.version if plan else 0, decision.new_events, record)
        if decision.plan is not None and decision.events:
            self._remember(decision.plan)
        return HandlingResult(
            command.command_id, command.plan_uuid, decision.outcome, decision.reason, decision.events,
            stored.first_position, stored.last_position,
        )


def same_command(codec: AvroCodec, earlier: CommandRecord, body: bytes) -> bool:
    """A resend (the same id, the same request) rather than another command under a used id.

    When and from where it was sent may differ (a retry); what is asked, of which plan, by whom, may not.
    """
    if earlier.body == body or not earlier.body:  # (a record that kept no body cannot tell: take it as the same)
        return True
    try:
        (old_name, old), (new_name, new) = codec.decode(earlier.body), codec.decode(body)
    except WatcherEsError:
        return False
    ignored = {"issued_at", "origin"}
    return old_name == new_name and {k: v for k, v in old.items() if k not in ignored} == {k: v for k, v in new.items() if k not in ignored}


def reused_id_reason(earlier: CommandRecord) -> str:
    return (
        f"command id {earlier.command_id} was already used by another command ({earlier.command_type} of plan "
        f"{earlier.plan_uuid}, {earlier.outcome}); a new command needs a new id"
    )


def _from_record(r: CommandRecord, duplicate: bool) -> HandlingResult:
    return HandlingResult(r.command_id, r.plan_uuid, r.outcome, r.reason, [], r.first_position, r.last_position, duplicate)
