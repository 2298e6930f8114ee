"""The translator as a member of the translator consumer group on the events topic.

Its output is Kafka itself. The plan states it builds payloads from and each partition's
position are kept in a local ``PlanStateStore`` (``state_path``); on (re)assignment it resumes
each partition from its stored position. Each batch's notifications are produced and its states
staged; about once a second (``PlanStateStore.due``), when its partitions are revoked and when it
closes, the notifications are confirmed, then the states and positions committed in one
transaction, then the group's offsets: so each notification is emitted at least once, and a
failure re-sends at most the second since. A new store (or a deleted one) folds a partition from
its start without emitting up to the group's committed offset: a re-sent notification is
byte-identical to the first either way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition

from eventstore.boundary import guarded
from eventstore.codec import AvroCodec
from eventstore.kafka.appends import Append, Fence, admitted, events_of
from eventstore.kafka.client import delivered_notifications
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.io import DeadLetters, Publisher, commit_positions, kafka_error, new_consumer, next_batch, positions_reached, subscribe, topic_pages
from eventstore.kafka.records import iso_of_oslo_timestamp, oslo_envelope, partition_source, record_headers
from eventstore.kafka.state_store import PlanStateStore
from eventstore.log import DeadLetterSink, StoredEvent
from eventstore.sqlite_support import sqlite_error

from projections.kafka.audit import AUDIT_HEADER, audit_summary
from projections.kafka.measures import confirmed
from projections.kafka.read_model import read_appends
from projections.translator import Notification, RecordedPayloads, Translator


logger = logging.getLogger(__name__)

#: Plan states the translator keeps in memory (about 3 KB each with two actions, as the
#: handler's); one not there is read back from the store (one row, about 20 µs to decode). 2,000
#: missed every cancel of a burst of 3,000 registrations followed by their cancels.
CACHE_SIZE = 5_000


@guarded(kafka_error, sqlite_error)
class KafkaTranslatorPart:
    GROUP = "translator"

    def __init__(
        self, settings: KafkaSettings, publisher: Publisher, translator: Translator, codec: AvroCodec,
        *, state_path: Path | None = None, cache_size: int = CACHE_SIZE,
    ) -> None:
        self.translator = translator
        self.notifications = NotificationTopics(publisher, settings)
        self._codec = codec
        self._dead: DeadLetterSink = DeadLetters(publisher, settings.topics.dead_letters)
        # The translator caches the plans it folds; the store only reads them back on a miss.
        self.state = PlanStateStore(state_path, cache_size=0, changelog=settings.topics.events)
        translator.load_plans_from(self.state.plan, cache_size)
        self.fence = Fence(known=self.state.versions)
        self._emit_from: dict[str, int] = {}
        self._closing = False
        self._publisher = publisher
        self.consumer = new_consumer(settings.consumer_config(self.GROUP, prompt=True))  # on the way from a cancel to its notification
        subscribe(self.consumer, settings.topics.events, on_assign=self._on_assign, on_revoke=self._on_revoke)

    def close(self) -> None:
        self._closing = True
        self._confirm()
        self.consumer.close()
        self.state.close()

    def _confirm(self) -> None:
        """Everything produced confirmed, then the states and positions committed, then the group's offsets."""
        staged = {s: p for s, p in self.state.positions().items() if p > self.state.committed_positions().get(s, 0)}
        self._publisher.flush()
        self.state.commit()
        commit_positions(self.consumer, staged)  # informative, and where a rebuilt store starts emitting

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if not self._closing:
            self._confirm()  # what was done for them is said before another member takes them

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._closing:
            return  # an assignment delivered while the client shuts down: its offsets can no longer be asked for
        committed = consumer.committed(partitions, timeout=30)
        for tp, done in zip(partitions, committed, strict=True):
            where = partition_source(tp.topic, tp.partition)
            self._emit_from[where] = max(done.offset, 0) + 1  # positions are offset + 1
            tp.offset = self.state.position(where) or OFFSET_BEGINNING  # position = next offset
        self.fence.forget()
        consumer.assign(partitions)

    def poll(self, timeout: float = 0.2) -> int:
        messages: list[Message] = []
        try:  # a revocation confirms inside the poll: what it could not confirm is read again too
            messages = [m for m in next_batch(self.consumer, 1000, timeout) if m.error() is None]
            if messages:
                appends, park = read_appends(self._codec, messages, self._dead, self.GROUP)
                self._apply(messages, [a for a in appends if a.position > self.state.position(a.source)], park)
            if self.state.due:
                self._confirm()
        except BaseException:
            self._resume_from_store()
            raise
        return len(messages)

    def _apply(self, messages: list[Message], appends: list[Append], park: Callable[[StoredEvent, Exception], None]) -> None:
        """Translate and publish a batch, and stage the plan states and positions it reaches (``_confirm`` makes them durable)."""
        standing = admitted(appends, self.fence)  # an append that lost is only skipped: its writer dead-letters it
        notes: list[Notification] = []
        for run, emit in _runs(events_of(standing), self._emit_from):
            notes.extend(self.translator.translate(run, emit=emit, on_poison=park))
        self.notifications.produce(notes)  # confirmed (dead letters too) before the positions are committed
        confirmed(notes, standing, self._codec)  # produced: librdkafka delivers them within milliseconds; the flush at _confirm makes sure
        for append in standing:
            self.state.mark(append.plan_uuid, self.fence.version(append.plan_uuid))
        for plan in self.translator.changed_plans():
            self.state.put_plan(plan)
        self.state.stage(positions_reached(messages))
        self.fence.forget()  # the versions are in the store now (pending ones included)

    def _resume_from_store(self) -> None:
        """A batch that failed is read again from the stored positions, on the stored states."""
        self.state.discard()
        self.fence.forget()
        self.translator.forget()
        for tp in self.consumer.assignment():
            where = partition_source(tp.topic, tp.partition)
            tp.offset = self.state.position(where) or OFFSET_BEGINNING
            try:
                self.consumer.seek(tp)
            except KafkaException as exc:
                logger.warning("cannot rewind %s to its stored position (%s): it is read again on the next assignment", where, exc)


class NotificationTopics:
    """The notification sink on Kafka: what oslo.messaging's Kafka driver publishes, plus headers to merge topics by."""

    def __init__(self, publisher: Publisher, settings: KafkaSettings) -> None:
        self._publisher = publisher
        self._topics = settings.topics

    def send(self, notes: Sequence[Notification]) -> None:
        """Every one produced, then confirmed (with anything else this publisher has pending)."""
        self.produce(notes)
        self._publisher.flush()

    def produce(self, notes: Sequence[Notification]) -> None:
        """Every one produced; confirmed by the publisher's next flush."""
        for note in notes:
            headers = record_headers(
                type_=note.event_type, id_=note.message_id, subject=note.plan_uuid,
                time_text=iso_of_oslo_timestamp(note.envelope["timestamp"]),
                content_type="application/json", sequence=note.plan_seq,
                extra=(
                    ("watcher_es_event_id", note.event_id), ("watcher_es_payload_set", note.payload_set),
                    (AUDIT_HEADER, audit_summary(note.envelope)),
                ),
            )
            self._publisher.produce(self._topics.notification_topic(note.priority), note.plan_uuid, oslo_envelope(note.envelope), headers)


def recorded_on_topics(settings: KafkaSettings, plan_uuid: str | None = None) -> RecordedPayloads:
    """The payload set of every notification already on the topics (of one plan), by event id."""
    recorded: dict[str, str] = {}
    for batch in delivered_notifications(settings, {plan_uuid} if plan_uuid else None):
        recorded.update((d.event_id, d.payload_set) for d in batch if d.event_id)
    return lambda event_ids: {e: recorded[e] for e in event_ids if e in recorded}


def replay_notifications(
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
