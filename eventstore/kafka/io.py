"""A thin, lazy layer over confluent-kafka: confirmed produces, and reading topics to their end.

Appends are done only when their delivery reports say so: errors are collected in the
delivery callback and raised by ``flush``. Reading "to the end" relies on partition EOF
events, never on ``get_watermark_offsets`` (some Kafka-protocol brokers report it wrong).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from confluent_kafka.admin import AdminClient
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from eventstore import metrics
from eventstore.codec import AvroCodec
from eventstore.exceptions import (
    ClusterUnreachableError, ConfigurationError, DeliveryError, KafkaClientError, KafkaUnavailableError, MissingTopicError, StaleAppendError,
)
from eventstore.kafka.client_log import CLIENT_LOG, unreachable, why
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.appends import Append, Fence, admitted, appends_in
from eventstore.kafka.records import Headers, dead_letter_headers, header_pairs, offset_of, partition_of, source_of, topic_partition, where_of
from eventstore.log import ParkedRecord, StoredEvent
from eventstore.position import where

logger = logging.getLogger(__name__)

T = TypeVar("T")


def kafka_error(exc: BaseException) -> KafkaClientError | None:
    """The client's errors as ours (``boundary.guarded``): what the cluster or librdkafka said."""
    return KafkaClientError(str(exc)) if isinstance(exc, KafkaException) else None


def _client(factory: Callable[[dict[str, Any]], T], config: dict[str, Any], what: str) -> T:
    """A librdkafka client; a property it refuses becomes one readable configuration error."""
    try:
        return factory({**config, "logger": CLIENT_LOG})  # its log lines into ours (client_log.py)
    except (KafkaException, ValueError, TypeError) as exc:
        raise ConfigurationError(f"librdkafka refused the {what} configuration: {exc}") from None


def new_consumer(config: dict[str, Any]) -> Consumer:
    return _client(Consumer, config, "consumer")


def new_admin(config: dict[str, Any]) -> AdminClient:
    return _client(AdminClient, config, "admin")


class Publisher:
    """A producer created on first use whose ``flush`` raises if any record was not delivered.

    Every writer flushes before it reports or commits anything, and only failed deliveries are
    reported (``delivery.report.only.error``), so nothing is polled per record: that poll, and a
    Python callback per delivered record, cost more than producing it. The handler's publisher
    (``report_offsets``) is the exception: where its appends landed spares it reading them back,
    which costs far more.
    """

    def __init__(self, settings: KafkaSettings, report_offsets: bool = False) -> None:
        self._config = settings.producer_config()
        if report_offsets:  # a writer that needs to know where its records landed
            self._config["delivery.report.only.error"] = False
        self._producer: Producer | None = None
        self._errors: list[str] = []

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            self._producer = _client(Producer, self._config, "producer")
        return self._producer

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}: {err.str()}")

    def produce(
        self, topic: str, key: str, value: bytes, headers: Headers | None, on_placed: Callable[[int, int], None] | None = None,
    ) -> None:
        """``on_placed(partition, offset)`` once the record is confirmed (a Publisher that ``report_offsets``)."""
        callback = self._on_delivery if on_placed is None else functools.partial(self._placed, on_placed)
        while True:
            try:
                self.producer.produce(topic, key=key.encode(), value=value, headers=headers, on_delivery=callback)
                break
            except BufferError:
                self.producer.poll(0.1)  # the local queue is full: let deliveries drain
            except KafkaException as exc:
                raise DeliveryError(f"cannot produce to {topic}: {exc}") from exc

    def _placed(self, then: Callable[[int, int], None], err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._on_delivery(err, msg)
        else:
            then(partition_of(msg), offset_of(msg))

    def flush(self, timeout: float = 30.0) -> None:
        if self._producer is None:
            return
        remaining = self._producer.flush(timeout)
        errors, self._errors = self._errors, []
        if errors:
            raise DeliveryError(f"{len(errors)} record(s) not delivered: {errors[0]}")
        if remaining:
            raise DeliveryError(f"{remaining} record(s) not confirmed by the cluster within {timeout:.0f} s: {why('no answer')}")


def next_batch(consumer: Consumer, max_messages: int, timeout: float) -> list[Message]:
    """Up to ``max_messages`` records: waits at most ``timeout`` for the first, then takes only
    what is already fetched. ``consume(n, timeout)`` waits for n records or for its timeout (or a
    200 ms slice of it), so a command that arrives alone would wait with it."""
    first = consumer.poll(timeout)
    if first is None:
        return []
    return [first, *consumer.consume(max_messages - 1, 0)] if max_messages > 1 else [first]


def partitions_of(consumer: Consumer | Producer, topic: str, timeout: float = 10.0) -> list[int]:
    try:
        metadata = consumer.list_topics(topic, timeout=timeout)
    except KafkaException as exc:
        if unreachable(exc):
            raise ClusterUnreachableError(f"the cluster did not answer within {timeout:g} s (metadata for {topic}): {why(exc)}") from exc
        raise KafkaUnavailableError(f"cannot read metadata for {topic}: {exc}") from exc
    info = metadata.topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        raise MissingTopicError(f"topic {topic} does not exist: run `watcher-es init`")
    return sorted(info.partitions)


class TopicFollower:
    """Reads every partition of a topic from chosen offsets, without a consumer group."""

    def __init__(self, settings: KafkaSettings, topic: str, start: Callable[[int], int] | None = None) -> None:
        config = settings.consumer_config(None, prompt=True)
        self.topic = topic
        self.consumer = new_consumer(config)
        self.partitions = partitions_of(self.consumer, topic)
        starts = {p: (start(p) if start else OFFSET_BEGINNING) for p in self.partitions}
        self.consumer.assign([TopicPartition(topic, p, o) for p, o in starts.items()])
        self._at_end = dict.fromkeys(self.partitions, False)

    def close(self) -> None:
        self.consumer.close()

    def pause(self) -> None:
        """Stop fetching until ``rewind``: a reader that reads only now and then holds nothing fetched ahead meanwhile."""
        self.consumer.pause([TopicPartition(self.topic, p) for p in self.partitions])

    def rewind(self, start: Callable[[int], int]) -> None:
        """Read on from these offsets (each partition's), fetching again, every partition's end to be found again.

        Sought while paused: what was fetched before is dropped, never handed over out of order."""
        for p in self.partitions:
            self.consumer.seek(TopicPartition(self.topic, p, start(p)))
        self.consumer.resume([TopicPartition(self.topic, p) for p in self.partitions])
        self._at_end = dict.fromkeys(self.partitions, False)

    def poll(self, timeout: float) -> list[Message]:
        """Whatever arrives within ``timeout``; notes which partitions have reached their end."""
        out = []
        for msg in next_batch(self.consumer, 500, timeout):
            error = msg.error()
            if error is None:
                self._at_end[partition_of(msg)] = False
                out.append(msg)
            elif error.code() == KafkaError._PARTITION_EOF:
                self._at_end[partition_of(msg)] = True
            elif error.fatal() or error.code() in (KafkaError.OFFSET_OUT_OF_RANGE, KafkaError.UNKNOWN_TOPIC_OR_PART):
                raise KafkaUnavailableError(f"reading {self.topic}: {error.str()}")
            else:
                logger.warning("reading %s: %s", self.topic, error.str())
        return out

    def pages(self, idle_limit_s: float = 60.0, wait_s: float = 0.0) -> Iterator[list[Message]]:
        """Everything up to the end of every partition, a page at a time (constant memory).

        Where every partition was at its end already, what has been fetched since is taken without
        waiting (or waiting up to ``wait_s`` for a first record): an empty fetch costs a whole
        ``fetch.wait.max.ms`` on brokers that hold it, and a caller that only wants to be current
        must not pay that on every call."""
        deadline = time.monotonic() + idle_limit_s
        while True:
            batch = self.poll(wait_s if all(self._at_end.values()) else 0.01)
            if batch:
                deadline = time.monotonic() + idle_limit_s
                yield batch
            elif all(self._at_end.values()):
                return
            elif time.monotonic() > deadline:
                raise KafkaUnavailableError(f"{self.topic}: not at the end of every partition after {idle_limit_s:.0f} s")

    def drain(self, limit_s: float = 60.0) -> list[Message]:
        """Everything up to the end of every partition (EOF seen since its last record)."""
        return [m for page in self.pages(limit_s) for m in page]


def positions_reached(messages: Iterable[Message]) -> dict[str, int]:
    """The position (``topic/partition`` -> offset + 1 of its last record) each partition of a batch reaches."""
    return {source_of(msg): offset_of(msg) + 1 for msg in messages}


def topic_pages(
    settings: KafkaSettings, codec: AvroCodec, on_conflict: Callable[[Append, StaleAppendError], None] | None = None,
) -> Iterator[list[StoredEvent]]:
    """The events topic from its start to its end, a page at a time, through the fence.

    What stands is what every reader applies; conflicts go to ``on_conflict``, and a record that
    is not an append at all is logged and skipped (the live consumers dead-letter it).
    """
    fence = Fence()
    heads: dict[str, str] = {}  # each plan's last hash: the chain the records leave out is computed on from it
    follower = TopicFollower(settings, settings.topics.events)
    try:
        for page in follower.pages():
            events: list[StoredEvent] = []
            for append in admitted(appends_in(codec, page, _skip), fence, on_conflict):
                if append.events:
                    chained = append.chained(heads.get(append.plan_uuid, ""))
                    heads[append.plan_uuid] = chained[-1].hash
                    events.extend(chained)
            yield events
    finally:
        follower.close()


def _skip(msg: Message, error: Exception) -> None:
    logger.warning("skipping %s: %s", where_of(msg), error)


class DeadLetters:
    """The dead-letter sink on Kafka: the record's key and bytes, Kafka Connect's error headers, then its own."""

    def __init__(self, publisher: Publisher, topic: str) -> None:
        self._publisher = publisher
        self.topic = topic

    def park(self, record: ParkedRecord, stage: str, error: BaseException) -> None:
        tp = topic_partition(record.source, record.position - 1)
        logger.warning(
            "dead-lettering %s (%s): %s", where(record.source, record.position), stage, error,
            extra={"plan": record.key, "position": where(record.source, record.position)},
        )
        metrics.dead_lettered(stage)
        headers = dead_letter_headers(
            topic=tp.topic, partition=tp.partition, offset=tp.offset, stage=stage, error=error, original=record.headers,
        )
        self._publisher.produce(self.topic, record.key, record.value, headers)


def parked_record(msg: Message) -> ParkedRecord:
    """A consumed record as the dead-letter sinks keep it."""
    return ParkedRecord(
        source_of(msg), offset_of(msg) + 1, (msg.key() or b"").decode("utf-8", "replace"),
        msg.value() or b"", header_pairs(msg.headers()),
    )


#: A commit refused because this member lost its partitions (paused past its session, deposed).
_LOST_PARTITIONS = frozenset({KafkaError.UNKNOWN_MEMBER_ID, KafkaError.ILLEGAL_GENERATION, KafkaError.REBALANCE_IN_PROGRESS})


def commit_offsets(consumer: Consumer, messages: Iterable[Message]) -> bool:
    """Commit the next offset of each partition seen; called only after the effects are durable.

    A member that lost its partitions meanwhile cannot commit: its records go to their new owner,
    which handles them again (every effect is idempotent). That is no error: returns False.
    """
    return commit_positions(consumer, positions_reached(messages))


def commit_positions(consumer: Consumer, positions: Mapping[str, int]) -> bool:
    """``commit_offsets`` of positions (``topic/partition`` -> offset + 1 of the last record done)."""
    if not positions:
        return True
    try:
        consumer.commit(offsets=[topic_partition(source, position) for source, position in positions.items()], asynchronous=False)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError) and error.code() in _LOST_PARTITIONS:
            logger.warning("commit refused, this member lost its partitions (%s): their new owner takes the records over", error.str())
            return False
        raise
    return True


def subscribe(
    consumer: Consumer, topic: str, on_assign: Callable[[Consumer, list[TopicPartition]], Any],
    on_revoke: Callable[[Consumer, list[TopicPartition]], Any] | None = None,
) -> None:
    partitions_of(consumer, topic)  # a missing topic is an error, not a wait for it
    if on_revoke is None:
        consumer.subscribe([topic], on_assign=on_assign)
    else:
        consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
