"""Command handling, the same for every backend: dedupe by command id, fold the plan (cached,
checked by optimistic concurrency), ``decide`` (pure), append the events with the outcome atomically."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from eventstore.codec import AvroCodec
from eventstore.domain.decide import DEFAULT_ABORT_TIMEOUT_US, CommandRejected, decide_and_fold, unchanged_reason
from eventstore.domain.messages import EVENT_TYPES, Command, Event, from_record, to_record
from eventstore.domain.plan import Plan, fold
from eventstore.domain.validation import validate_command
from eventstore.exceptions import CommandValidationError, DuplicateCommandError, SerializationError, StaleVersionError, WatcherEsError
from eventstore.faults import fault_point
from eventstore.log import AppendRequest, CommandRecord, EventLog, How, LogReader, NewEvent, Outcome, ReadableLog, StoredEvent, Verdict
from eventstore.frozen import quick_init

logger = logging.getLogger(__name__)

Clock = Callable[[], int]


@quick_init
@dataclass(frozen=True)
class Decision:
    """What handling a command on a given state comes to, before anything is appended: decided here
    alone (``decide_command``), whichever log it is then appended to."""

    outcome: Verdict
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
    return fold(None, (decode_event(codec, stored) for stored in stream))


def _command_record(command: Command, body: bytes, outcome: Verdict, reason: str) -> CommandRecord:
    """The command as received (``body``: its encoding) and what became of it, before any position."""
    return CommandRecord(
        command.command_id, type(command).__name__, command.plan_uuid, command.issued_by, command.origin,
        command.issued_at, body, outcome, reason,
    )


class PlanStates(Protocol):
    """Where the handler finds what it decides on: each plan's state and version, and the commands
    already handled. The embedded log is folded per plan (``FoldedPlans``); on Kafka the handler's
    state store holds them (``eventstore/kafka/handler.py``)."""

    def plan(self, plan_uuid: str) -> Plan | None: ...

    def version(self, plan_uuid: str) -> int: ...

    def handled(self, command_id: str) -> CommandRecord | None: ...

    def look_up(self, commands: Sequence[Command]) -> None:
        """Read a batch's command records and plan versions ahead, where one query for all is cheaper."""

    def stood(self, plan: Plan) -> None:
        """A decision's plan whose append stood."""

    def stale(self, plan_uuid: str) -> None:
        """An append decided on this plan lost: what is known of it is out of date."""


class FoldedPlans:
    """The embedded log's plans: each folded from its stream, a bounded number cached (the
    append's version check catches a cached plan another process has moved on)."""

    def __init__(self, log: ReadableLog, codec: AvroCodec, cache_size: int = 10_000) -> None:
        self._log = log
        self._codec = codec
        self._plans: OrderedDict[str, Plan] = OrderedDict()
        self._cache_size = cache_size

    def plan(self, plan_uuid: str) -> Plan | None:
        cached = self._plans.get(plan_uuid)
        if cached is not None:
            self._plans.move_to_end(plan_uuid)
            return cached
        plan = load_plan(self._codec, self._log.read_plan(plan_uuid))
        if plan is not None:
            self._cache(plan)
        return plan

    def version(self, plan_uuid: str) -> int:
        plan = self.plan(plan_uuid)
        return plan.version if plan else 0

    def handled(self, command_id: str) -> CommandRecord | None:
        return self._log.command_outcome(command_id)

    def look_up(self, commands: Sequence[Command]) -> None:
        """Each is looked up when asked: one indexed read."""

    def stood(self, plan: Plan) -> None:
        self._cache(plan)

    def _cache(self, plan: Plan) -> None:
        self._plans[plan.uuid] = plan
        self._plans.move_to_end(plan.uuid)
        while len(self._plans) > self._cache_size:
            self._plans.popitem(last=False)

    def stale(self, plan_uuid: str) -> None:
        self._plans.pop(plan_uuid, None)


def outcome_of(command: Command, verdict: Verdict, reason: str, plan: Plan | None, how: How, event_types: Sequence[str] = (),
               record: CommandRecord | None = None) -> Outcome:
    """A command's outcome with the plan as it stands after it (``record``: the stored one, with its positions)."""
    return Outcome(
        command.command_id, command.plan_uuid, verdict, reason, tuple(event_types),
        plan.state if plan else None, plan.version if plan else 0,
        tuple((a.uuid, a.action_type, a.state) for a in plan.actions) if plan else (),
        how, record.first_position if record else None, record.last_position if record else None,
    )


class CommandHandler:
    """Turns commands into appended events, a batch at a time, over any ``EventLog``: the embedded
    backend hands it one command, the Kafka handler a consumed batch. Safe with several writers:
    an append decided on a stale state loses and the command is decided again on the state that won."""

    ATTEMPTS = 5

    def __init__(
        self, log: EventLog, codec: AvroCodec, clock: Clock, abort_timeout_us: int = DEFAULT_ABORT_TIMEOUT_US,
        plans: PlanStates | None = None,
    ) -> None:
        """``plans``: where the decisions' states come from; by default the log's own streams
        folded (``FoldedPlans``), which only a log that reads back (the embedded one) has."""
        self._log = log
        self._codec = codec
        self._clock = clock
        self._abort_timeout_us = abort_timeout_us
        if plans is None:
            if not isinstance(log, LogReader):
                raise TypeError(f"{type(log).__name__} cannot be read back by plan: give the handler its PlanStates")
            plans = FoldedPlans(log, codec)
        self.plans: PlanStates = plans
        log.keep_schemas(codec.current_schemas())

    def plan(self, plan_uuid: str) -> Plan | None:
        return self.plans.plan(plan_uuid)

    def handle_batch(self, commands: Sequence[tuple[Command, bytes]]) -> tuple[list[tuple[Command, Outcome]], list[tuple[Command, bytes]]]:
        """What became of each command (given with its encoded body), and those that kept losing to other writers.

        One append per plan per round: a second command of a plan is decided only once the first's
        append has been judged. Decided together, the second would chain on the first's state,
        and if the first lost to another writer's append of as many events, the second would stand
        at the version that append left, decided on a state that never was."""
        done: list[tuple[Command, Outcome]] = []
        pending = list(commands)
        losses = 0
        while pending and losses < self.ATTEMPTS:
            pending, lost = self._attempt(pending, done)
            losses += lost
        return done, pending

    def _attempt(self, commands: list[tuple[Command, bytes]], done: list[tuple[Command, Outcome]]) -> tuple[list[tuple[Command, bytes]], bool]:
        """Decide the first command of each plan on the state known, append them all, note what stood;
        returns, in their order, the commands still to handle (those that lost, and later ones of their
        plans) and whether any lost."""
        requests: list[AppendRequest] = []
        decided: dict[str, tuple[Command, bytes, Decision]] = {}
        later: list[tuple[Command, bytes]] = []
        seen: set[str] = set()
        self.plans.look_up([command for command, _ in commands])
        for command, body in commands:
            uuid = command.plan_uuid
            if uuid in decided:
                later.append((command, body))  # the next round, on the state this round's append leaves
                continue
            earlier = self.plans.handled(command.command_id)
            if earlier is not None:
                done.append((command, self._seen_before(command, body, earlier)))
                continue
            if command.command_id in seen:
                continue  # the same command twice in one batch
            seen.add(command.command_id)
            decision = decide_command(self._codec, self.plans.plan(uuid), command, self._clock(), self._abort_timeout_us)
            record = _command_record(command, body, decision.outcome, decision.reason)
            if not requests:
                fault_point("stop-before-append")  # a paused handler, deposed while it holds a decided batch
            requests.append(AppendRequest(uuid, self.plans.version(uuid), decision.new_events, record, decision.plan if decision.new_events else None))
            decided[uuid] = (command, body, decision)
        lost: list[tuple[Command, bytes]] = []
        for (command, body, decision), result in zip(decided.values(), self._log.append_all(requests) if requests else [], strict=True):
            if isinstance(result, StaleVersionError):
                logger.info("deciding %s again: %s", command.command_id, result)
                self.plans.stale(command.plan_uuid)
                lost.append((command, body))
            elif isinstance(result, DuplicateCommandError):
                done.append((command, outcome_of(command, "pending", "", None, "raced")))
            else:
                if decision.plan is not None and decision.events:
                    self.plans.stood(decision.plan)
                event_types = [type(e).__name__ for e in decision.events]
                done.append((command, outcome_of(command, decision.outcome, decision.reason, decision.plan, "decided", event_types, result)))
        return lost + later, bool(lost)

    def _seen_before(self, command: Command, body: bytes, earlier: CommandRecord) -> Outcome:
        """A resend keeps its first outcome; another command under a used id is refused.

        Either way nothing is appended, and the plan is told as it stands now."""
        plan = self.plans.plan(command.plan_uuid)
        if same_command(self._codec, earlier, body):
            return outcome_of(command, earlier.outcome, earlier.reason, plan, "earlier", record=earlier)
        return outcome_of(command, "rejected", reused_id_reason(earlier), plan, "reused")

    # ---------------------------------------------------------------- one command, answered at once

    def handle(self, command: Command) -> Outcome:
        """One command, handled before this returns (the embedded backend's path)."""
        validate_command(command)
        try:
            body = self._codec.encode(type(command).__name__, to_record(command))
        except SerializationError as exc:  # a value no record can carry (text that is not Unicode, say): bad input
            raise CommandValidationError(str(exc)) from None
        done, lost = self.handle_batch([(command, body)])
        if lost:
            raise StaleVersionError(command.plan_uuid, -1, -1)
        [(_, outcome)] = done
        if outcome.how == "raced":  # handled by another writer meanwhile: its outcome is the one
            earlier = self.plans.handled(command.command_id)
            if earlier is None:
                raise DuplicateCommandError(command.command_id)
            outcome = self._seen_before(command, body, earlier)
        if outcome.how == "reused":  # kept for the audit
            self._log.record_refused(_command_record(command, body, "rejected", outcome.reason))
        return outcome


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
