"""The translator as a member of the translator consumer group on the events topic.

Its output is Kafka itself, so it commits group offsets after its notifications are
confirmed, and on (re)assignment folds each partition from the start without emitting up to
its committed offset: a re-sent notification is then byte-identical to the first.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from eventstore.codec import AvroCodec
from eventstore.kafka.appends import Fence, events_of
from eventstore.kafka.client import delivered_notifications
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.io import Publisher, commit_offsets, topic_pages
from eventstore.kafka.records import oslo_envelope, parse_iso_micros, record_headers
from eventstore.log import StoredEvent

from .kafka_parts import EventsPart, source_of
from .translator import Notification, RecordedPayloads, Translator


class KafkaTranslatorPart(EventsPart):
    GROUP = "translator"

    def __init__(self, settings: KafkaSettings, publisher: Publisher, translator: Translator, codec: AvroCodec) -> None:
        self.translator = translator
        self._emit_from: dict[str, int] = {}
        super().__init__(settings, publisher, codec, Fence())

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        committed = consumer.committed(partitions, timeout=30)
        for tp, done in zip(partitions, committed, strict=True):
            self._emit_from[source_of(tp)] = max(done.offset, 0) + 1  # positions are offset + 1
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
