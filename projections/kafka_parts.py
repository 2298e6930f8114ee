"""The read model as a member of a Kafka consumer group on the events topic, and what every such part shares.

The read model keeps each partition's position in its own SQLite file, in the transaction
that applies the batch, and resumes from there: group commits are only informative. The
translator, the other member of this family, is in ``kafka_translator``.
"""

from __future__ import annotations

import logging
from confluent_kafka import Consumer, Message, TopicPartition

from eventstore.codec import AvroCodec
from eventstore.exceptions import PoisonRecordError
from eventstore.kafka.appends import Append, Fence, append_of, events_of
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.io import (
    DeadLetters, Publisher, commit_offsets, new_consumer, offset_of, partition_of, subscribe,
)
from eventstore.log import StoredEvent

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


class KafkaReadModelPart(EventsPart):
    GROUP = "read-model"

    def __init__(self, settings: KafkaSettings, publisher: Publisher, model: ReadModel, codec: AvroCodec) -> None:
        self.model = model
        # Versions of plans not in this batch are the model's own: it resumes from its stored positions.
        super().__init__(settings, publisher, codec, Fence(known=model.plan_versions))

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            tp.offset = self.model.position(source_of(tp))  # position = last applied offset + 1 = next offset
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
