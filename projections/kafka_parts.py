"""The read model on Kafka: a replicated view of every partition, and what the group parts share.

``KafkaReadModelPart`` is no member of a consumer group: it assigns itself every partition of
the events topic (and of both notification topics, for the audit trail), so the model of every
`serve`, and of a CLI away from any `serve`, is complete and answers for any plan. Each batch is
applied, with each partition's position, in one SQLite write transaction; the positions are
read inside that transaction, so several processes may share one model file (a `serve` and the
CLI on one host), and a process resumes from the stored positions, never from offset 0 after
the first time. Partitions added later (``init --partitions``) are picked up as it goes.

``EventsPart`` is what the group members on the events topic share (the translator, in
``kafka_translator``, takes a share of the partitions as before).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from eventstore.codec import AvroCodec
from eventstore.exceptions import KafkaUnavailableError, PoisonRecordError, StaleAppendError
from eventstore.kafka.appends import Append, Fence, append_of, events_of
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.io import (
    DeadLetters, Publisher, new_consumer, next_batch, offset_of, parked_record, partition_of, partitions_of, subscribe,
)
from eventstore.log import DeadLetterSink, StoredEvent
from eventstore.sqlite_support import write_transaction

from .dead_letters import ParkingLot
from .kafka_history import AuditTrail
from .read_model import ReadModel

log = logging.getLogger(__name__)


def source_of(tp: TopicPartition) -> str:
    return f"{tp.topic}/{tp.partition}"


class EventsPart:
    """What both parts share: a group consumer on the events topic that parks poison records."""

    GROUP = ""

    def __init__(self, settings: KafkaSettings, publisher: Publisher, codec: AvroCodec, fence: Fence) -> None:
        self._settings = settings
        self._publisher = publisher
        self._codec = codec
        self.fence = fence
        self._dead: DeadLetterSink = DeadLetters(publisher, settings.topics.dead_letters)
        #: Records parked because their headers were unusable: never tracked, so remembered here.
        self._parked: set[tuple[str, int]] = set()
        self.consumer = new_consumer(settings.consumer_config(self.GROUP, prompt=True))  # on the way from a cancel to its notification
        subscribe(self.consumer, settings.topics.events, on_assign=self._on_assign)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.consumer.close()

    def _consume(self, timeout: float) -> tuple[list[Message], list[Append], dict[tuple[str, int], Message]]:
        """One poll's records as appends; a record that is not one is parked and remembered."""
        messages = [m for m in next_batch(self.consumer, 1000, timeout) if m.error() is None]
        appends: list[Append] = []
        by_place: dict[tuple[str, int], Message] = {}
        for msg in messages:
            try:
                append = append_of(self._codec, msg)
            except PoisonRecordError as exc:
                self._dead.park(parked_record(msg), self.GROUP, exc)
                self._parked.add((f"{msg.topic()}/{partition_of(msg)}", offset_of(msg) + 1))
                continue
            appends.append(append)
            by_place[(append.source, append.position)] = msg
        return messages, appends, by_place

    def _standing(self, appends: list[Append]) -> list[Append]:
        """The appends the fence lets through; a skipped one is remembered like a parked one."""
        self.fence.prime(a.plan_uuid for a in appends)
        out = []
        for append in appends:
            if self.fence.admit(append) is None:
                out.append(append)
            else:  # the handler whose append lost records it in the dead-letter topic; here it is only skipped
                self._parked.add((append.source, append.position))
        return out

    def _parker(self, by_place: dict[tuple[str, int], Message]):  # type: ignore[no-untyped-def]
        def park(event: StoredEvent, error: Exception) -> None:
            self._dead.park(parked_record(by_place[(event.source, event.position)]), self.GROUP, error)
        return park


def _split(source: str) -> TopicPartition:
    topic, _, partition = source.rpartition("/")
    return TopicPartition(topic, int(partition))


class KafkaReadModelPart:
    """The read model and its audit trail, fed from every partition (see the module docstring).

    ``park_to_topic``: where the records it cannot use go. `serve` parks them in the dead-letter
    topic (stage ``read-model``), as every Kafka consumer does; a CLI's own model keeps them in
    its file's ``dead_letters`` table instead, since a read command writes nothing to the cluster.
    ``commit``: `serve` also commits its positions to the ``read-model`` group, only so that a
    host without the model can see how far the serves are (``consumers``); they are never read back.
    """

    GROUP = "read-model"
    #: How often the partitions of the topics are looked up again (a partition may be added).
    REFRESH_S = 30.0

    def __init__(
        self, settings: KafkaSettings, publisher: Publisher | None, model: ReadModel, codec: AvroCodec, *,
        park_to_topic: bool = True, commit: bool = True,
    ) -> None:
        self.model = model
        self.trail = AuditTrail(model.db, codec)
        self._settings = settings
        self._publisher = publisher if park_to_topic else None
        self._dead: DeadLetterSink = (
            DeadLetters(publisher, settings.topics.dead_letters) if publisher is not None and park_to_topic else ParkingLot(model.db)
        )
        self._codec = codec
        self._commit = commit
        t = settings.topics
        self._events = t.events
        self._notifications = (t.notification_topic("INFO"), t.notification_topic("ERROR"))
        # A query waits for its own model's catch-up: the fetch is prompt and reads far ahead.
        self.consumer = new_consumer(settings.consumer_config(self.GROUP, prompt=not park_to_topic, catch_up=not park_to_topic))
        self._at_end: dict[str, bool] = {}
        #: Where a gap made this part seek back to; the same gap again means the records are gone.
        self._rewound: dict[str, int] = {}
        self._next_refresh = 0.0
        #: Records consumed since this part started (what a test counts: a restart reads only the tail).
        self.consumed = 0
        self.refresh_partitions()

    def close(self) -> None:
        self.consumer.close()

    @property
    def at_end(self) -> bool:
        """Every partition read to its end (EOF seen since its last record)."""
        return all(self._at_end.values())

    # ---------------------------------------------------------------- partitions

    def refresh_partitions(self) -> None:
        """Assign every partition not assigned yet, at the position the model's file holds."""
        self._next_refresh = time.monotonic() + self.REFRESH_S
        wanted: list[str] = [f"{self._events}/{p}" for p in partitions_of(self.consumer, self._events)]
        try:  # one request for all topics: asking for a missing one by name waits for it
            listed = self.consumer.list_topics(timeout=10).topics
        except KafkaException as exc:
            raise KafkaUnavailableError(f"cannot read the cluster's topics: {exc}") from exc
        for topic in self._notifications:
            info = listed.get(topic)
            if info is None or info.error is not None or not info.partitions:
                log.warning("no topic %s: the audit trail shows no notifications until it exists", topic)
                continue
            wanted.extend(f"{topic}/{p}" for p in sorted(info.partitions))
        new = [s for s in wanted if s not in self._at_end]
        if not new:
            return
        with write_transaction(self.model.db):
            start = self._starts()
        tps = []
        for source in new:
            tp = _split(source)
            tp.offset = start.get(source, 0)  # position = offset + 1 of the last record consumed = next offset
            tps.append(tp)
            self._at_end[source] = False
        self.consumer.incremental_assign(tps)

    def _starts(self) -> dict[str, int]:
        """Where each source is read from: the trail's position (every record consumed, skipped ones too)."""
        return self.trail.positions()

    # ---------------------------------------------------------------- consuming

    def catch_up(self, idle_limit_s: float = 60.0) -> int:
        """Apply everything up to the end of every partition (partition EOF, not watermarks); returns records consumed.

        Meant for a fresh part: librdkafka tells a partition's EOF once per end reached, so on a
        part that was at the end before, records appended since may not be fetched yet when it
        returns (``KafkaStore.model`` builds a part for each catch-up).
        """
        done = 0
        deadline = time.monotonic() + idle_limit_s
        while True:
            polled = self.poll(0.05)
            done += polled
            if polled:
                deadline = time.monotonic() + idle_limit_s
            elif self.at_end:
                return done
            elif time.monotonic() > deadline:
                behind = sorted(s for s, end in self._at_end.items() if not end)
                raise KafkaUnavailableError(f"the read model is not at the end of {', '.join(behind)} after {idle_limit_s:.0f} s")

    def poll(self, timeout: float = 0.2) -> int:
        """One batch, applied in one transaction; returns how many records were consumed."""
        if time.monotonic() >= self._next_refresh:
            self.refresh_partitions()
        messages = self._consume(timeout)
        if messages:
            self._apply(messages)
            self.consumed += len(messages)
        return len(messages)

    def _consume(self, timeout: float) -> list[Message]:
        out = []
        for msg in next_batch(self.consumer, 1000, timeout):
            error = msg.error()
            source = f"{msg.topic()}/{partition_of(msg)}"
            if error is None:
                self._at_end[source] = False
                out.append(msg)
            elif error.code() == KafkaError._PARTITION_EOF:
                self._at_end[source] = True
            elif error.fatal():
                raise KafkaUnavailableError(f"reading {source}: {error.str()}")
            else:
                log.warning("reading %s: %s", source, error.str())
        return out

    def _apply(self, messages: Sequence[Message]) -> None:
        by_source: dict[str, list[Message]] = {}
        for msg in messages:
            by_source.setdefault(f"{msg.topic()}/{partition_of(msg)}", []).append(msg)
        parked = False
        with write_transaction(self.model.db):
            consumed = self._starts()  # read inside the transaction: another process may share this file
            applied = self.model.positions()
            fresh_events: list[Message] = []
            fresh_notes: list[Message] = []
            reached: dict[str, int] = {}
            for source, batch in by_source.items():
                at = consumed.get(source, 0)
                first, last = offset_of(batch[0]) + 1, offset_of(batch[-1]) + 1
                is_events = source.startswith(f"{self._events}/")
                if first > at + 1 and is_events and self._rewound.get(source) != at:
                    # A gap: the file is behind this consumer (a replay swapped an older one in): read from where it is.
                    self._rewound[source] = at
                    self._seek(source, at)
                    continue
                if first > at + 1:  # records before it are gone (a notification topic's retention): nothing to read there
                    log.warning("%s: records %d..%d are no longer on the topic; the read model goes on from %d", source, at, first - 2, first - 1)
                if last <= at:  # another process sharing the file got further: skip ahead
                    if last < at:
                        self._seek(source, at)
                    continue
                kept = [m for m in batch if offset_of(m) + 1 > at]
                (fresh_events if is_events else fresh_notes).extend(kept)
                reached[source] = last
            parked = self._apply_events(fresh_events, consumed, applied)
            self.trail.record_notifications(fresh_notes)
            for source, position in reached.items():
                self.trail.track(source, position)
            if parked and self._publisher is not None:
                self._publisher.flush()  # the dead letters are confirmed before the positions pass them
        if self._commit and reached:
            self._commit_positions(reached)

    def _apply_events(self, messages: list[Message], consumed: dict[str, int], applied: dict[str, int]) -> bool:
        """Apply the records past each position: to the model those past its own, to the trail the rest."""
        appends: list[Append] = []
        by_place: dict[tuple[str, int], Message] = {}
        parked = False
        for msg in messages:
            try:
                append = append_of(self._codec, msg)
            except PoisonRecordError as exc:
                self._park_message(msg, exc)
                parked = True
                continue
            appends.append(append)
            by_place[(append.source, append.position)] = msg
        # The model: appends past its own position (a replayed model may be ahead of the trail), through its fence.
        model_fence = Fence(known=self.model.plan_versions)
        mine = [a for a in appends if a.position > applied.get(a.source, 0)]
        model_fence.prime(a.plan_uuid for a in mine)
        standing = [a for a in mine if model_fence.admit(a) is None]
        events = events_of(standing)
        if events:
            failures: list[bool] = []

            def park(event: StoredEvent, error: Exception) -> None:
                failures.append(True)
                self._dead.park(parked_record(by_place[(event.source, event.position)]), self.GROUP, error)

            self.model.apply(events, on_poison=park)
            parked = parked or bool(failures)
        # The trail: every append past its position, and the fence's verdict on it.
        trail_fence = Fence(known=self.trail.plan_versions)
        trail_fence.prime(a.plan_uuid for a in appends)
        stood: list[Append] = []
        conflicts: list[tuple[Append, StaleAppendError]] = []
        for append in appends:
            conflict = trail_fence.admit(append)
            if conflict is None:
                stood.append(append)
            else:
                conflicts.append((append, conflict))
        self.trail.record(stood, conflicts)
        return parked

    def _park_message(self, msg: Message, error: Exception) -> None:
        self._dead.park(parked_record(msg), self.GROUP, error)

    def _seek(self, source: str, position: int) -> None:
        tp = _split(source)
        tp.offset = position  # position p means "read from offset p"
        self.consumer.seek(tp)
        self._at_end[source] = False

    def _commit_positions(self, reached: dict[str, int]) -> None:
        """Informative only (see the class docstring): a refused commit is logged, never an error."""
        offsets = []
        for source, position in reached.items():
            tp = _split(source)
            tp.offset = position
            offsets.append(tp)
        try:
            self.consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:
            log.debug("the read model's informative commit was refused: %s", exc)
