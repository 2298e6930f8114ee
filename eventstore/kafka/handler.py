"""The command handler on Kafka: commands topic in, fenced appends and outcomes out (ARCHITECTURE.md, "One cancel, on Kafka").

Its state (a ``PlanStateStore`` at ``state_path``) is folded from the events topic through the
fence (``appends.py``), as every other reader's: at start, after a rebalance and before every batch, from the
stored positions. It follows every events partition, not only those of its commands partitions:
a foreign producer may put a plan's command in another partition, and the fence needs every
plan's true version. Rejections and no-ops are appended too: a decision made on a stale state
must not stand either. An append of its own that lost (a deposed or paused handler, a second
group member the same plan's commands reached) is dead-lettered and decided again on the state
that won. Command offsets are committed only after that, and a command id already applied is
not handled again, so redelivery after a crash takes effect once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from eventstore import metrics
from eventstore.boundary import guarded
from eventstore.codec import AvroCodec
from eventstore.domain.decide import DEFAULT_ABORT_TIMEOUT_US
from eventstore.domain.messages import COMMAND_TYPES, Command, from_record
from eventstore.domain.plan import Plan, evolve
from eventstore.domain.validation import validate_command
from eventstore.exceptions import CommandValidationError, CorruptRecordError, PoisonRecordError, SerializationError, UnknownSchemaError
from eventstore.handler import CommandHandler, decode_event
from eventstore.log import CommandRecord, DeadLetterSink, Outcome
from eventstore.kafka.appends import Append
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.io import DeadLetters, Publisher, commit_offsets, kafka_error, new_consumer, next_batch, parked_record, subscribe
from eventstore.kafka.log import KafkaEventLog
from eventstore.kafka.state_store import PlanStateStore
from eventstore.kafka.records import offset_of, partition_of, record_headers, where_of
from eventstore.sqlite_support import sqlite_error

logger = logging.getLogger(__name__)

POISON = (CorruptRecordError, UnknownSchemaError, CommandValidationError, PoisonRecordError, SerializationError)

#: Plans kept in memory (about 3 KB each with two actions); a miss reads one row of the store
#: and decodes it (about 20 µs), so the cache only needs to hold the plans being worked on.
CACHE_SIZE = 5_000

def decode_command(codec: AvroCodec, msg: Message) -> Command:
    """A commands-topic record as a validated command, or a PoisonRecordError saying why not."""
    where = where_of(msg)
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


class StorePlans:
    """The handler's ``PlanStates`` on Kafka: its state store, kept current by the log it writes through.

    ``log`` folds every append that stands into ``state`` as it judges it (where it landed, or
    read back), in the same transaction as the positions, so nothing is left to do when one of
    ours stood or lost: the state already holds the plan that won.
    """

    def __init__(self, settings: KafkaSettings, codec: AvroCodec, state: PlanStateStore, publisher: Publisher | None = None) -> None:
        self._codec = codec
        self._state = state
        self.log = KafkaEventLog(settings, codec, publisher, state=state, listener=self._fold)

    def _fold(self, append: Append, known: Plan | None) -> None:
        """Fold a standing append into the plan's state; ``known`` is the plan our own decision produced."""
        if not append.events:
            return
        if known is not None and known.version == append.expected_version + len(append.events):
            self._state.put_plan(known)
            return
        plan = self._state.plan(append.plan_uuid)
        try:
            for stored in append.events:
                plan = evolve(plan, decode_event(self._codec, stored))
        except Exception as exc:  # the handler must not stop on one bad event; the projections park it
            logger.error("%s cannot be folded: %s", append.where, exc)
            return
        if plan is not None:
            self._state.put_plan(plan)

    def plan(self, plan_uuid: str) -> Plan | None:
        return self._state.plan(plan_uuid)

    def version(self, plan_uuid: str) -> int:
        return self.log.version(plan_uuid)

    def handled(self, command_id: str) -> CommandRecord | None:
        return self._state.command(command_id)

    def look_up(self, commands: Sequence[Command]) -> None:
        self._state.look_up_commands(c.command_id for c in commands)
        self.log.prime(c.plan_uuid for c in commands)

    def stood(self, plan: Plan) -> None:
        """Folded as the log judged the append."""

    def stale(self, plan_uuid: str) -> None:
        """The log has folded the append that won (it read it before judging ours)."""


@guarded(kafka_error, sqlite_error)
class KafkaCommandHandler:
    """One member of the handler group: the consumer around ``CommandHandler`` over the fenced Kafka event log."""

    GROUP = "handler"

    def __init__(
        self, settings: KafkaSettings, codec: AvroCodec, clock: Callable[[], int], abort_timeout_us: int = DEFAULT_ABORT_TIMEOUT_US,
        *, state_path: Path | None = None, cache_size: int = CACHE_SIZE,
    ) -> None:
        self._topics = settings.topics
        self._codec = codec
        self._clock = clock
        self._publisher = Publisher(settings, report_offsets=True)  # the log judges its appends where they landed
        self._dead: DeadLetterSink = DeadLetters(self._publisher, self._topics.dead_letters)
        self._state = PlanStateStore(state_path, cache_size, changelog=self._topics.events)
        self.plans = StorePlans(settings, codec, self._state, self._publisher)
        self.log = self.plans.log
        self.handler = CommandHandler(self.log, codec, clock, abort_timeout_us, self.plans)
        self._stale = True
        self._consumer = new_consumer(settings.consumer_config(self.GROUP, prompt=True))  # on the way from a cancel to its notification
        subscribe(self._consumer, self._topics.commands, on_assign=self._on_assign)

    @property
    def consumer(self) -> Consumer:
        """Its consumer of the commands topic, which `serve`'s check of the part asks through."""
        return self._consumer

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._stale = True  # plans may have moved to us: fold the topic to its end before deciding

    def close(self) -> None:
        self._publisher.flush()
        self._consumer.close()
        self.log.close()

    # ---------------------------------------------------------------- handling

    def poll(self, timeout: float = 0.2) -> int:
        """Handle one batch of commands; returns how many records were consumed."""
        messages = [m for m in next_batch(self._consumer, 500, timeout) if m.error() is None]
        try:
            return self._handle(messages)
        except BaseException:  # nothing of the batch is committed: it is read again, and its handled ids keep it from acting twice
            self._stale = True
            if messages:
                try:
                    self._rewind(messages)
                except KafkaException as exc:  # deposed meanwhile: the partitions' new owner reads them from the committed offsets
                    logger.warning("cannot read the failed batch again: %s", exc)
            raise

    def _handle(self, messages: list[Message]) -> int:
        if self._stale:  # after a (re)assignment or a failure; otherwise a decision on a stale state loses at the fence and is retried
            self.log.refresh(wait_s=0.01)
            self._stale = False
        commands: list[tuple[Command, bytes]] = []
        for msg in messages:
            try:
                commands.append((decode_command(self._codec, msg), msg.value() or b""))
            except POISON as exc:
                self._dead.park(parked_record(msg), "handler", exc)
        done, lost = self.handler.handle_batch(commands)
        for command, outcome in done:
            if outcome.how != "raced":  # another writer's append of it stood meanwhile: its outcome is said on redelivery
                self._publish_outcome(command, outcome)
        metrics.commands_handled((type(c).__name__, o.outcome) for c, o in done if o.how != "raced")
        for command, _ in lost:
            logger.error(
                "command %s lost to other writers %d times; its batch is read again", command.command_id, CommandHandler.ATTEMPTS,
                extra={"plan": command.plan_uuid, "command": command.command_id},
            )
        if messages:
            self._publisher.flush()
            if not lost:
                if not commit_offsets(self._consumer, messages):
                    self._stale = True  # deposed meanwhile: read the topic again before deciding anything
            else:  # not committed, and read again from the batch's start: its handled ids keep them from taking effect twice
                self._stale = True
                self._rewind(messages)
        self.log.checkpoint()
        return len(messages)

    def _rewind(self, messages: list[Message]) -> None:
        first: dict[tuple[str, int], int] = {}
        for msg in messages:
            place = (msg.topic() or "", partition_of(msg))
            first[place] = min(first.get(place, offset_of(msg)), offset_of(msg))
        for (topic, partition), offset in first.items():
            self._consumer.seek(TopicPartition(topic, partition, offset))

    def _publish_outcome(self, command: Command, outcome: Outcome) -> None:
        event_types = list(outcome.event_types)
        last = outcome.plan_version if outcome.plan_state is not None and event_types else None
        record: dict[str, Any] = {
            "command_id": command.command_id, "command_type": type(command).__name__, "plan_uuid": command.plan_uuid,
            "issued_by": command.issued_by, "origin": command.origin, "issued_at": command.issued_at,
            "handled_at": self._clock(), "outcome": outcome.outcome, "reason": outcome.reason,
            "first_seq": (last - len(event_types) + 1) if last is not None else None, "last_seq": last,
            "event_types": event_types,
            "plan_state": outcome.plan_state,
            "action_states": [{"uuid": u, "action_type": t, "state": s} for u, t, s in outcome.action_states],
        }
        value = self._codec.encode("CommandHandled", record)
        headers = record_headers(
            type_="CommandHandled", id_=command.command_id, subject=command.plan_uuid, time_us=record["handled_at"],
            content_type="application/avro", fingerprint=self._codec.fingerprint_of("CommandHandled"), sequence=last,
        )
        self._publisher.produce(self._topics.outcomes, command.plan_uuid, value, headers)
