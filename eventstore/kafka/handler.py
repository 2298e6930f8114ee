"""The command handler on Kafka: commands topic in, fenced appends and outcomes out.

State comes from the events topic itself, read through the same fence as every other reader:
at start, after a rebalance and before every batch the handler folds the topic to its end. For
each command it decides on that state (``decide``, the same pure rules as the embedded log),
appends one ``EventsAppended`` record at the plan's version (an append for a rejection or a
no-op too: a decision made on a stale state must not stand either), confirms delivery, then
reads the topic back to its end. An append of its own that stands is reported in the outcomes
topic; one that lost to another writer (a deposed or paused handler, a second group member the
same plan's commands reached) is recorded in the dead-letter topic and decided again on the
state that won. Command offsets are committed only after that. A command id already applied is
not handled again, so redelivery after a crash takes effect once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from confluent_kafka import Consumer, Message, TopicPartition

from ..codec import AvroCodec
from ..domain.decide import DEFAULT_ABORT_TIMEOUT_US
from ..domain.messages import COMMAND_TYPES, Command, from_record
from ..domain.plan import Plan, evolve
from ..domain.validation import validate_command
from ..exceptions import CommandValidationError, CorruptRecordError, PoisonRecordError, SerializationError, StaleAppendError, UnknownSchemaError
from ..faults import fault_point
from ..handler import Decision, decide_command, decode_event
from ..log import Outcome
from .appends import Append, Fence, PreparedAppend, new_writer_id, prepare_append, standing
from .config import KafkaSettings
from .io import DeadLetters, Publisher, TopicFollower, commit_offsets, new_consumer, subscribe
from .records import record_headers

log = logging.getLogger(__name__)

POISON = (CorruptRecordError, UnknownSchemaError, CommandValidationError, PoisonRecordError, SerializationError)

#: How many times a command is decided again after its append lost to another writer's.
ATTEMPTS = 5


def decode_command(codec: AvroCodec, msg: Message) -> Command:
    """A commands-topic record as a validated command, or a PoisonRecordError saying why not."""
    where = f"{msg.topic()}/{msg.partition()} offset {msg.offset()}"
    name, record = codec.decode(msg.value() or b"", where)
    cls = COMMAND_TYPES.get(name)
    if cls is None:
        raise PoisonRecordError(f"{where}: a {name} record is not a command")
    try:
        command: Command = from_record(cls, record)
    except (KeyError, TypeError) as exc:
        raise PoisonRecordError(f"{where}: {name} record does not fit the command: {exc}") from None
    validate_command(command)
    return command


@dataclass(frozen=True)
class _Applied:
    outcome: Outcome
    reason: str
    event_types: tuple[str, ...]


@dataclass(frozen=True)
class _Pending:
    command: Command
    decision: Decision
    append: PreparedAppend


class KafkaCommandHandler:
    """One member of the handler group."""

    GROUP = "handler"

    def __init__(self, settings: KafkaSettings, codec: AvroCodec, clock: Callable[[], int], abort_timeout_us: int = DEFAULT_ABORT_TIMEOUT_US) -> None:
        self._settings = settings
        self._topics = settings.topics
        self._codec = codec
        self._clock = clock
        self._abort_timeout_us = abort_timeout_us
        self.writer = new_writer_id()
        self.plans: dict[str, Plan] = {}
        self._hashes: dict[str, str] = {}
        #: Command ids whose append stands, with the outcome it recorded (to say it again after a crash).
        self._applied: dict[str, _Applied] = {}
        self._own: dict[str, _Pending] = {}  # this attempt's appends, by append id
        self._seen_appends: dict[str, bool] = {}  # our own appends read back: stood or lost
        self._fence = Fence()
        self._publisher = Publisher(settings)
        self._dead = DeadLetters(self._publisher, self._topics.dead_letters)
        self._events = TopicFollower(settings, self._topics.events)
        self._stale = True
        self._consumer = new_consumer(settings.consumer_config(self.GROUP))
        subscribe(self._consumer, self._topics.commands, on_assign=self._on_assign)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._stale = True  # plans may have moved to us: fold the topic to its end before deciding

    def close(self) -> None:
        self._publisher.flush()
        for c in (self._consumer, self._events.consumer):
            c.close()

    # ---------------------------------------------------------------- state from the topic

    def refresh(self) -> None:
        """Fold the events topic to its end through the fence."""
        for page in self._events.pages():
            for append in standing(self._codec, page, self._fence, on_poison=self._unusable, on_conflict=self._conflict):
                self._apply(append)
        self._stale = False

    def _apply(self, append: Append) -> None:
        outcome = cast(Outcome, append.outcome)
        self._applied[append.command_id] = _Applied(outcome, append.reason, tuple(e.event_type for e in append.events))
        if append.append_id in self._own:
            self._seen_appends[append.append_id] = True
        plan = self.plans.get(append.plan_uuid)
        try:
            for stored in append.events:
                plan = evolve(plan, decode_event(self._codec, stored))
        except Exception as exc:  # the handler must not stop on one bad event; the projections park it
            log.error("%s cannot be folded: %s", append.where, exc)
            return
        if plan is not None:
            self.plans[append.plan_uuid] = plan
        if append.last_hash is not None:
            self._hashes[append.plan_uuid] = append.last_hash

    def _conflict(self, append: Append, error: StaleAppendError) -> None:
        pending = self._own.get(append.append_id)
        if pending is not None:
            self._seen_appends[append.append_id] = False  # ours lost: record it where operators look
            self._dead.park_record(append.source, append.offset, append.plan_uuid, pending.append.value, "fence", error)

    def _unusable(self, msg: Message, error: Exception) -> None:
        log.error("events %s/%s offset %s cannot be read: %s", msg.topic(), msg.partition(), msg.offset(), error)

    # ---------------------------------------------------------------- handling

    def poll(self, timeout: float = 0.2) -> int:
        """Handle one batch of commands; returns how many records were consumed."""
        messages = [m for m in self._consumer.consume(500, timeout) if m.error() is None]
        if self._stale or messages:
            self.refresh()
        commands: list[Command] = []
        for msg in messages:
            try:
                commands.append(decode_command(self._codec, msg))
            except POISON as exc:
                self._dead.park(msg, "handler", exc)
        for _ in range(ATTEMPTS):
            if not commands:
                break
            commands = self._attempt(commands)
        for command in commands:
            log.error("command %s lost to other writers %d times; it stays unhandled until redelivered", command.command_id, ATTEMPTS)
        if messages:
            self._publisher.flush()
            if not commands:
                commit_offsets(self._consumer, messages)
            else:  # redeliver from the first unhandled one: its command id keeps it from taking effect twice
                self._stale = True
        return len(messages)

    def _attempt(self, commands: list[Command]) -> list[Command]:
        """Decide, append and confirm; returns the commands whose append lost (to decide again)."""
        self._own = {}
        working: dict[str, Plan | None] = {}
        heads: dict[str, str] = {}
        versions: dict[str, int] = {}  # the version each append expects: the fence's, moved on by this batch
        for command in commands:
            if command.command_id in self._own_commands():
                continue  # the same command twice in one batch
            done = self._applied.get(command.command_id)
            if done is not None:  # appended before (a redelivery, or a crash before its outcome): say it again
                plan = self.plans.get(command.plan_uuid)
                self._publish_outcome(command, Decision(done.outcome, done.reason, [], [], plan), done.event_types)
                continue
            uuid = command.plan_uuid
            plan = working[uuid] if uuid in working else self.plans.get(uuid)
            decision = decide_command(self._codec, plan, command, self._clock(), self._abort_timeout_us)
            prepared = prepare_append(
                self._codec, command_id=command.command_id, command_type=type(command).__name__, plan_uuid=uuid,
                expected_version=versions.get(uuid, self._fence.version(uuid)), writer=self.writer, appended_at=self._clock(),
                outcome=decision.outcome, reason=decision.reason, events=decision.new_events,
                previous_hash=heads.get(uuid, self._hashes.get(uuid, "")),
            )
            if not self._own:
                fault_point("stop-before-append")  # a paused handler, deposed while it holds a decided batch
            self._publisher.produce(self._topics.events, uuid, prepared.value, prepared.headers)
            self._own[prepared.append_id] = _Pending(command, decision, prepared)
            working[uuid], heads[uuid] = decision.plan, prepared.last_hash
            versions[uuid] = versions.get(uuid, self._fence.version(uuid)) + len(decision.new_events)
        if not self._own:
            return []
        self._publisher.flush()
        self._seen_appends = {}
        while len(self._seen_appends) < len(self._own):
            self.refresh()  # reads our own appends back: the partition order says which stood
        lost: list[Command] = []
        for append_id, pending in self._own.items():
            if self._seen_appends[append_id]:
                self._publish_outcome(pending.command, pending.decision)
            else:
                lost.append(pending.command)
        self._own = {}
        return lost

    def _own_commands(self) -> set[str]:
        return {p.command.command_id for p in self._own.values()}

    def _publish_outcome(self, command: Command, decision: Decision, event_types: tuple[str, ...] | None = None) -> None:
        plan, events = decision.plan, decision.events
        types = list(event_types) if event_types is not None else [type(e).__name__ for e in events]
        last = plan.version if plan and events else None
        record: dict[str, Any] = {
            "command_id": command.command_id, "command_type": type(command).__name__, "plan_uuid": command.plan_uuid,
            "issued_by": command.issued_by, "origin": command.origin, "issued_at": command.issued_at,
            "handled_at": self._clock(), "outcome": decision.outcome, "reason": decision.reason,
            "first_seq": (last - len(events) + 1) if last is not None else None, "last_seq": last,
            "event_types": types,
            "plan_state": plan.state if plan else None,
            "action_states": [{"uuid": a.uuid, "action_type": a.action_type, "state": a.state} for a in plan.actions] if plan else [],
        }
        value = self._codec.encode("CommandHandled", record)
        headers = record_headers(
            type_="CommandHandled", id_=command.command_id, subject=command.plan_uuid, time_us=record["handled_at"],
            content_type="application/avro", fingerprint=self._codec.fingerprint_of("CommandHandled"), sequence=last,
        )
        self._publisher.produce(self._topics.outcomes, command.plan_uuid, value, headers)
