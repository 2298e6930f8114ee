"""The read model and the translator as members of Kafka consumer groups on the events topic.

The read model keeps each partition's position in its own SQLite file, in the transaction
that applies the batch, and resumes from there: group commits are only informative. The
translator's output is Kafka itself, so it commits group offsets after its notifications are
confirmed, and on (re)assignment folds each partition from the start without emitting up to
its committed offset: a re-sent notification is then byte-identical to the first.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from eventstore.codec import AvroCodec
from eventstore.exceptions import PoisonRecordError
from eventstore.kafka.appends import Append, Fence, append_of, events_of
from eventstore.kafka.client import delivered_notifications
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.io import (
    DeadLetters, Publisher, commit_offsets, new_consumer, offset_of, partition_of, subscribe, topic_pages,
)
from eventstore.kafka.records import oslo_envelope, parse_iso_micros, record_headers
from eventstore.log import StoredEvent

from .read_model import ReadModel
from .translator import Notification, RecordedPayloads, Translator

log = logging.getLogger(__name__)


def _source(tp: TopicPartition) -> str:
    return f"{tp.topic}/{tp.partition}"


class _EventsPart:
    """What both parts share: a group consumer on the events topic that parks poison records."""

    GROUP = ""

    def __init__(self, settings: KafkaSettings, publisher: Publisher, codec: AvroCodec, fence: Fence) -> None:
        self._settings = settings
        self._publisher = publisher
        self._codec = codec
        self.fence = fence
        self._dead = DeadLetters(publisher, settings.topics.dead_letters)
        #: Records parked because their headers were unusable: never tracked, so remembered here.
        self._parked: set[tuple[str, int]] = set()
        self.consumer = new_consumer(settings.consumer_config(self.GROUP))
        subscribe(self.consumer, settings.topics.events, on_assign=self._on_assign)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.consumer.close()

    def _consume(self, timeout: float) -> tuple[list[Message], list[Append], dict[tuple[str, int], Message]]:
        """One poll's records as appends; a record that is not one is parked and remembered."""
        messages = [m for m in self.consumer.consume(1000, timeout) if m.error() is None]
        appends: list[Append] = []
        by_place: dict[tuple[str, int], Message] = {}
        for msg in messages:
            try:
                append = append_of(self._codec, msg)
            except PoisonRecordError as exc:
                self._dead.park(msg, self.GROUP, exc)
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
            self._dead.park(by_place[(event.source, event.position)], self.GROUP, error)
        return park


class KafkaReadModelPart(_EventsPart):
    GROUP = "read-model"

    def __init__(self, settings: KafkaSettings, publisher: Publisher, model: ReadModel, codec: AvroCodec) -> None:
        self.model = model
        # Versions of plans not in this batch are the model's own: it resumes from its stored positions.
        super().__init__(settings, publisher, codec, Fence(known=model.plan_versions))

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            tp.offset = self.model.position(_source(tp))  # position = last applied offset + 1 = next offset
        consumer.assign(partitions)

    def poll(self, timeout: float = 0.2) -> int:
        messages, appends, by_place = self._consume(timeout)
        self.fence.forget()  # what the last batch did is in the model's tables now
        fresh = events_of(self._standing(self._in_sequence(appends, self._parked)))
        if fresh:
            self.model.process(fresh, on_poison=self._parker(by_place))
        if messages:
            self._publisher.flush()  # dead letters confirmed before moving on
            commit_offsets(self.consumer, messages)
        return len(messages)


    def _in_sequence(self, events: list[Append], parked: set[tuple[str, int]]) -> list[Append]:
        """The appends that come next after the model's own tracked positions.

        The tracking row is the truth, not this consumer's fetch position: a replay may have
        swapped in a model that is further on (those events are skipped) or behind (the
        partition is re-read from where the model is, never leaving a gap).
        """
        tracked = self.model.positions()
        fresh: list[Append] = []
        rewound: set[str] = set()
        for event in events:
            if event.source in rewound:
                continue
            expected = tracked.get(event.source, 0) + 1
            while (event.source, expected) in parked:
                expected += 1
            if event.position < expected:
                continue  # applied already
            if event.position > expected:
                topic, _, partition = event.source.rpartition("/")
                self.consumer.seek(TopicPartition(topic, int(partition), expected - 1))  # position p is offset p - 1
                rewound.add(event.source)
                continue
            fresh.append(event)
            tracked[event.source] = event.position
        return fresh


class KafkaTranslatorPart(_EventsPart):
    GROUP = "translator"

    def __init__(self, settings: KafkaSettings, publisher: Publisher, translator: Translator, codec: AvroCodec) -> None:
        self.translator = translator
        self._emit_from: dict[str, int] = {}
        super().__init__(settings, publisher, codec, Fence())

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        committed = consumer.committed(partitions, timeout=30)
        for tp, done in zip(partitions, committed, strict=True):
            self._emit_from[_source(tp)] = max(done.offset, 0) + 1  # positions are offset + 1
            tp.offset = OFFSET_BEGINNING
        self.fence.forget()  # every partition is read again from its start
        consumer.assign(partitions)

    def poll(self, timeout: float = 0.2) -> int:
        messages, appends, by_place = self._consume(timeout)
        stored = events_of(self._standing(appends))
        park = self._parker(by_place)
        notes: list[Notification] = []
        for run, emit in _runs(stored, self._emit_from):
            notes.extend(self.translator.translate(run, emit=emit, on_poison=park))
        for note in notes:
            publish_notification(self._publisher, self._settings, note)
        if messages:
            self._publisher.flush()
            commit_offsets(self.consumer, messages)
        return len(messages)


def publish_notification(publisher: Publisher, settings: KafkaSettings, note: Notification) -> None:
    """A notification as oslo.messaging's Kafka driver publishes it, plus headers to merge topics by."""
    topic = settings.topics.notification_topic(note.priority)
    headers = record_headers(
        type_=note.event_type, id_=note.message_id, subject=note.plan_uuid,
        time_us=parse_iso_micros(note.envelope["timestamp"].replace(" ", "T") + "Z"),
        content_type="application/json", sequence=note.plan_seq,
        extra=(("watcher_es_event_id", note.event_id), ("watcher_es_payload_set", note.payload_set)),
    )
    publisher.produce(topic, note.plan_uuid, oslo_envelope(note.envelope), headers)


def recorded_on_topics(settings: KafkaSettings, plan_uuid: str | None = None) -> RecordedPayloads:
    """The payload set of every notification already on the topics (of one plan), by event id."""
    recorded: dict[str, str] = {}
    for batch in delivered_notifications(settings, {plan_uuid} if plan_uuid else None):
        recorded.update((d.event_id, d.payload_set) for d in batch if d.event_id)
    return lambda event_ids: {e: recorded[e] for e in event_ids if e in recorded}


def replay_topic_notifications(
    settings: KafkaSettings, translator: Translator, codec: AvroCodec, plan_uuid: str | None = None,
) -> Iterator[Notification]:
    """Every notification the events topic causes, translated afresh: the same message_ids and bytes."""
    for page in topic_pages(settings, codec):
        for note in translator.translate(page):
            if plan_uuid is None or note.plan_uuid == plan_uuid:
                yield note


def _runs(events: Sequence[StoredEvent], emit_from: dict[str, int]) -> list[tuple[list[StoredEvent], bool]]:
    """Split a batch into consecutive runs that are only folded (already emitted) or emitted."""
    runs: list[tuple[list[StoredEvent], bool]] = []
    for event in events:
        emit = event.position >= emit_from.get(event.source, 1)
        if runs and runs[-1][1] == emit:
            runs[-1][0].append(event)
        else:
            runs.append(([event], emit))
    return runs
