"""Watcher's notification topics as the bridge's source: ``<topic>.info`` and ``<topic>.error``.

oslo.messaging's Kafka driver publishes each priority to a topic of its own, with no key, so
one plan's notifications are on every partition of both: the bridge reads them all (no consumer
group: its positions are stored with its state) and puts them back in order itself. A topic
Watcher has not written to yet may not exist (the driver creates none): it is looked up again
every ``REFRESH_S`` and read from its start once it is there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

from eventstore.boundary import guarded
from eventstore.bridge.part import Incoming
from eventstore.exceptions import KafkaUnavailableError
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.checks import ConsumerCheck
from eventstore.kafka.io import kafka_error, new_consumer, next_batch
from eventstore.kafka.records import header_pairs, offset_of, partition_source, source_of, topic_partition

logger = logging.getLogger(__name__)

#: oslo.messaging's priorities that Watcher sends (``notification_level`` drops below INFO).
PRIORITIES = ("info", "error")


def watcher_topics(topic: str) -> tuple[str, ...]:
    return tuple(f"{topic}.{p}" for p in PRIORITIES)


@guarded(kafka_error)
class WatcherTopics:
    """Every partition of Watcher's topics, from the positions given (their start the first time)."""

    REFRESH_S = 30.0

    def __init__(self, settings: KafkaSettings, topic: str, start: Mapping[str, int]) -> None:
        self._topics = watcher_topics(topic)
        self._start = dict(start)
        self.consumer = new_consumer(settings.consumer_config(None, prompt=True))
        self._at_end: dict[str, bool] = {}
        self._missing_said: set[str] = set()
        self._next_refresh = 0.0
        self._refresh()

    @property
    def sources(self) -> list[str]:
        return list(self._at_end)

    def at_end(self) -> Mapping[str, bool]:
        return self._at_end

    def close(self) -> None:
        self.consumer.close()

    def check(self, timeout: float) -> int | None:
        """Whether Watcher's cluster answers, and the records still to read (``checks.py``)."""
        return ConsumerCheck(self.consumer, self._topics[0])(timeout)

    def poll(self, timeout: float) -> list[Incoming]:
        if time.monotonic() >= self._next_refresh:
            self._refresh()
        out = []
        for msg in next_batch(self.consumer, 1000, timeout):
            error = msg.error()
            source = source_of(msg)
            if error is None:
                self._at_end[source] = False
                out.append(Incoming(source, offset_of(msg) + 1, msg.value() or b"", (msg.key() or b"").decode("utf-8", "replace"), header_pairs(msg.headers())))
            elif error.code() == KafkaError._PARTITION_EOF:
                self._at_end[source] = True
            elif error.fatal():
                raise KafkaUnavailableError(f"reading {source}: {error.str()}")
            else:
                logger.warning("reading %s: %s", source, error.str())
        return out

    def _refresh(self) -> None:
        """Assign every partition not assigned yet, at its stored position (or its start)."""
        self._next_refresh = time.monotonic() + self.REFRESH_S
        try:
            listed = self.consumer.list_topics(timeout=10).topics
        except KafkaException as exc:
            raise KafkaUnavailableError(f"cannot read the cluster's topics: {exc}") from exc
        new: list[TopicPartition] = []
        for topic in self._topics:
            info = listed.get(topic)
            if info is None or info.error is not None or not info.partitions:
                if topic not in self._missing_said:
                    logger.warning("no topic %s yet: Watcher has sent nothing there; looking again every %.0f s", topic, self.REFRESH_S)
                    self._missing_said.add(topic)
                continue
            for partition in sorted(info.partitions):
                source = partition_source(topic, partition)
                if source not in self._at_end:
                    self._at_end[source] = False
                    position = self._start.get(source)
                    new.append(topic_partition(source, position) if position else TopicPartition(topic, partition, OFFSET_BEGINNING))
        if new:
            self.consumer.incremental_assign(new)
