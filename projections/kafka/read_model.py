"""The read model on Kafka: a replicated view of every partition (and ``read_appends``, which the translator shares).

``KafkaReadModelPart`` is no member of a consumer group: it assigns itself every partition of
the events topic (and of both notification topics, for the audit trail), so the model of every
`serve`, and of a CLI away from any `serve`, is complete and answers for any plan. Each batch is
applied, with each partition's position, in one SQLite write transaction; the positions are
read inside that transaction, so several processes may share one model file (a `serve` and the
CLI on one host), and a process resumes from the stored positions, never from offset 0 after
the first time. Partitions added later (``init --partitions``) are picked up as it goes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from confluent_kafka import KafkaError, KafkaException, Message

from eventstore.boundary import guarded
from eventstore.codec import AvroCodec
from eventstore.exceptions import KafkaUnavailableError, StaleAppendError
from eventstore.kafka.appends import Append, Fence, admitted, appends_in, events_of
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.io import DeadLetters, Publisher, kafka_error, new_consumer, next_batch, parked_record, partitions_of
from eventstore.kafka.records import offset_of, partition_source, source_of, topic_partition
from eventstore.log import DeadLetterSink, StoredEvent
from eventstore.sqlite_support import sqlite_error, write_transaction

from projections.dead_letters import ParkingLot
from projections.kafka.audit import AuditTrail
from projections.read_model import ReadModel

logger = logging.getLogger(__name__)


def read_appends(
    codec: AvroCodec, messages: Sequence[Message], dead: DeadLetterSink, stage: str,
) -> tuple[list[Append], Callable[[StoredEvent, Exception], None]]:
    """The appends these records are (a record that is not one is parked), and how to park the record of an event."""

    def park(msg: Message, error: Exception) -> None:
        dead.park(parked_record(msg), stage, error)

    def park_event(event: StoredEvent, error: Exception) -> None:  # rare: the record is looked for only then
        park(next(m for m in messages if source_of(m) == event.source and offset_of(m) + 1 == event.position), error)

    return appends_in(codec, messages, park), park_event


@guarded(kafka_error, sqlite_error)
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
        self._publisher = publisher if park_to_topic else None
        self._dead: DeadLetterSink = (
            DeadLetters(publisher, settings.topics.dead_letters) if publisher is not None and park_to_topic else ParkingLot(model.db)
        )
        self._codec = codec
        self._commit = commit
        t = settings.topics
        self._events = t.events
        self._notifications = (t.notification_topic("INFO"), t.notification_topic("ERROR"))
        self._priorities = {t.notification_topic(p): p for p in ("INFO", "ERROR")}
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
        wanted: list[str] = [partition_source(self._events, p) for p in partitions_of(self.consumer, self._events)]
        try:  # one request for all topics: asking for a missing one by name waits for it
            listed = self.consumer.list_topics(timeout=10).topics
        except KafkaException as exc:
            raise KafkaUnavailableError(f"cannot read the cluster's topics: {exc}") from exc
        for topic in self._notifications:
            info = listed.get(topic)
            if info is None or info.error is not None or not info.partitions:
                logger.warning("no topic %s: the audit trail shows no notifications until it exists", topic)
                continue
            wanted.extend(partition_source(topic, p) for p in sorted(info.partitions))
        new = [s for s in wanted if s not in self._at_end]
        if not new:
            return
        with write_transaction(self.model.db):
            start = self.trail.positions()  # every record consumed, skipped ones too
        self._at_end.update(dict.fromkeys(new, False))
        # position = offset + 1 of the last record consumed = next offset
        self.consumer.incremental_assign([topic_partition(source, start.get(source, 0)) for source in new])

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
            source = source_of(msg)
            if error is None:
                self._at_end[source] = False
                out.append(msg)
            elif error.code() == KafkaError._PARTITION_EOF:
                self._at_end[source] = True
            elif error.fatal():
                raise KafkaUnavailableError(f"reading {source}: {error.str()}")
            else:
                logger.warning("reading %s: %s", source, error.str())
        return out

    def _apply(self, messages: Sequence[Message]) -> None:
        by_source: dict[str, list[Message]] = {}
        for msg in messages:
            by_source.setdefault(source_of(msg), []).append(msg)
        with write_transaction(self.model.db):
            consumed = self.trail.positions()  # read inside the transaction: another process may share this file
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
                    logger.warning("%s: records %d..%d are no longer on the topic; the read model goes on from %d", source, at, first - 2, first - 1)
                if last <= at:  # another process sharing the file got further: skip ahead
                    if last < at:
                        self._seek(source, at)
                    continue
                kept = [m for m in batch if offset_of(m) + 1 > at]
                (fresh_events if is_events else fresh_notes).extend(kept)
                reached[source] = last
            self._apply_events(fresh_events, applied)
            self.trail.record_notifications(fresh_notes, self._priorities)
            for source, position in reached.items():
                self.trail.track(source, position)
            if self._publisher is not None:
                self._publisher.flush()  # any dead letters are confirmed before the positions pass them
        if self._commit and reached:
            self._commit_positions(reached)

    def _apply_events(self, messages: list[Message], applied: dict[str, int]) -> None:
        """Apply the records past each position: to the model those past its own, to the trail the rest."""
        appends, park = read_appends(self._codec, messages, self._dead, self.GROUP)
        # The model: appends past its own position (a replayed model may be ahead of the trail), through its fence.
        mine = [a for a in appends if a.position > applied.get(a.source, 0)]
        events = events_of(admitted(mine, Fence(known=self.model.plan_versions)))
        if events:
            self.model.apply(events, on_poison=park)
        # The trail: every append past its position, and the fence's verdict on it.
        conflicts: list[tuple[Append, StaleAppendError]] = []
        stood = admitted(appends, Fence(known=self.trail.plan_versions), lambda append, error: conflicts.append((append, error)))
        self.trail.record(stood, conflicts)

    def _seek(self, source: str, position: int) -> None:
        self.consumer.seek(topic_partition(source, position))  # position p means "read from offset p"
        self._at_end[source] = False

    def _commit_positions(self, reached: dict[str, int]) -> None:
        """Informative only (see the class docstring): a refused commit is logged, never an error."""
        try:
            self.consumer.commit(offsets=[topic_partition(source, position) for source, position in reached.items()], asynchronous=True)
        except KafkaException as exc:
            logger.debug("the read model's informative commit was refused: %s", exc)
