"""The command handler on Kafka: commands topic in, events and outcomes out.

State comes from the events topic itself: at start, after a rebalance and before every batch
of commands (cheap when already at the end) the handler folds every plan's events to the end of
the topic, and collects every handled command id from the outcomes topic and the events'
``watcher_es_command_id`` headers; its own appends, read back, are recognised by version. A command id already handled
is skipped, so redelivery after a crash (at-least-once) takes effect once. Commands are keyed
by plan uuid, so one plan's commands reach one handler of the group at a time: that is what
makes it the plan's single writer. Offsets are committed only after the produced events and
outcomes are confirmed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition

from ..codec import AvroCodec
from ..domain.decide import DEFAULT_ABORT_TIMEOUT_US, CommandRejected, decide, unchanged_reason
from ..domain.messages import COMMAND_TYPES, Command, Event, from_record, to_record
from ..domain.plan import Plan, evolve
from ..domain.validation import validate_command
from ..exceptions import CorruptRecordError, PoisonRecordError, SerializationError, UnknownSchemaError, CommandValidationError
from ..handler import decode_event
from .config import KafkaSettings
from .io import DeadLetters, Publisher, TopicFollower, commit_offsets, new_consumer, stored_event, subscribe
from .records import COMMAND_HEADER, HASH_HEADER, header_map, record_headers
from ..log import chain_hash

log = logging.getLogger(__name__)

POISON = (CorruptRecordError, UnknownSchemaError, CommandValidationError, PoisonRecordError, SerializationError)


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


class KafkaCommandHandler:
    """One member of the handler group."""

    GROUP = "handler"

    def __init__(self, settings: KafkaSettings, codec: AvroCodec, clock: Callable[[], int], abort_timeout_us: int = DEFAULT_ABORT_TIMEOUT_US) -> None:
        self._settings = settings
        self._topics = settings.topics
        self._codec = codec
        self._clock = clock
        self._abort_timeout_us = abort_timeout_us
        self.plans: dict[str, Plan] = {}
        self._hashes: dict[str, str] = {}
        self._handled: set[str] = set()  # command ids with an outcome record
        self._in_events: set[str] = set()  # command ids some event names
        self._publisher = Publisher(settings)
        self._dead = DeadLetters(self._publisher, self._topics.dead_letters)
        self._events = TopicFollower(settings, self._topics.events)
        self._outcomes = TopicFollower(settings, self._topics.outcomes)
        self._stale = True
        self._consumer = new_consumer(settings.consumer_config(self.GROUP))
        subscribe(self._consumer, self._topics.commands, on_assign=self._on_assign)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._stale = True  # plans may have moved to us: fold the topic to its end before deciding

    def close(self) -> None:
        self._publisher.flush()
        for c in (self._consumer, self._events.consumer, self._outcomes.consumer):
            c.close()

    # ---------------------------------------------------------------- state from the topics

    def refresh(self) -> None:
        for msg in self._events.drain():
            self._fold(msg)
        for msg in self._outcomes.drain():
            command_id = header_map(msg.headers()).get("ce_id")
            if command_id:
                self._handled.add(command_id)
        self._stale = False

    def _fold(self, msg: Message) -> None:
        try:
            stored = stored_event(msg)
            plan = self.plans.get(stored.plan_uuid)
            if plan is not None and stored.version <= plan.version:
                return  # our own append, read back
            event = decode_event(self._codec, stored)
            self.plans[stored.plan_uuid] = evolve(plan, event)
            self._hashes[stored.plan_uuid] = stored.hash
            self._in_events.add(stored.command_id)
        except Exception as exc:  # the handler must not stop on one bad event; the projections park it
            log.error("events %s/%s offset %s cannot be folded: %s", msg.topic(), msg.partition(), msg.offset(), exc)

    # ---------------------------------------------------------------- handling

    def poll(self, timeout: float = 0.2) -> int:
        """Handle one batch of commands; returns how many records were consumed."""
        messages = [m for m in self._consumer.consume(500, timeout) if m.error() is None]
        if self._stale or messages:
            self.refresh()
        for msg in messages:
            try:
                command = decode_command(self._codec, msg)
            except POISON as exc:
                self._dead.park(msg, "handler", exc)
                continue
            self._handle(command, msg.value() or b"")
        if messages:
            self._publisher.flush()
            commit_offsets(self._consumer, messages)
        return len(messages)

    def _handle(self, command: Command, body: bytes) -> None:
        if command.command_id in self._handled:
            return
        plan = self.plans.get(command.plan_uuid)
        if command.command_id in self._in_events:
            # Its events were appended before a crash, its outcome was not: say it now.
            self._publish_outcome(command, plan, "accepted", "", [])
            return
        now = self._clock()
        try:
            events = decide(plan, command, now, self._abort_timeout_us)
        except CommandRejected as rejected:
            self._publish_outcome(command, plan, "rejected", rejected.reason, [])
            return
        version = plan.version if plan else 0
        previous = self._hashes.get(command.plan_uuid, "")
        for event in events:
            version += 1
            name = type(event).__name__
            value = self._codec.encode(name, to_record(event))
            previous = chain_hash(previous, value)
            headers = record_headers(
                type_=name, id_=event.event_id, subject=command.plan_uuid, time_us=event.occurred_at,
                content_type="application/avro", fingerprint=self._codec.fingerprint_of(name), sequence=version,
                extra=((HASH_HEADER, previous), (COMMAND_HEADER, command.command_id)),
            )
            self._publisher.produce(self._topics.events, command.plan_uuid, value, headers)
            plan = evolve(plan, event)
        if plan is not None:
            self.plans[command.plan_uuid] = plan
            self._hashes[command.plan_uuid] = previous
        self._in_events.add(command.command_id)
        outcome = "accepted" if events else "unchanged"
        reason = "" if events else unchanged_reason(plan, command)
        self._publish_outcome(command, plan, outcome, reason, events)

    def _publish_outcome(self, command: Command, plan: Plan | None, outcome: str, reason: str, events: list[Event]) -> None:
        last = plan.version if plan and events else None
        record: dict[str, Any] = {
            "command_id": command.command_id, "command_type": type(command).__name__, "plan_uuid": command.plan_uuid,
            "issued_by": command.issued_by, "origin": command.origin, "issued_at": command.issued_at,
            "handled_at": self._clock(), "outcome": outcome, "reason": reason,
            "first_seq": (last - len(events) + 1) if last is not None else None, "last_seq": last,
            "event_types": [type(e).__name__ for e in events],
            "plan_state": plan.state if plan else None,
            "action_states": [{"uuid": a.uuid, "action_type": a.action_type, "state": a.state} for a in plan.actions] if plan else [],
        }
        value = self._codec.encode("CommandHandled", record)
        headers = record_headers(
            type_="CommandHandled", id_=command.command_id, subject=command.plan_uuid, time_us=record["handled_at"],
            content_type="application/avro", fingerprint=self._codec.fingerprint_of("CommandHandled"), sequence=last,
        )
        self._publisher.produce(self._topics.outcomes, command.plan_uuid, value, headers)
        self._handled.add(command.command_id)
