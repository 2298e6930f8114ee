"""Topic creation (`watcher-es init`), consumer positions and lag (`status`), dead letters (`dlq`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from eventstore.exceptions import KafkaUnavailableError
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.io import TopicFollower, new_admin, new_consumer, partitions_of
from eventstore.kafka.records import header_map, partition_of, partition_source
from eventstore.log import DeadLetter

#: History must not expire: the events are the record, the commands and outcomes its audit trail.
FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}


@dataclass(frozen=True)
class TopicResult:
    topic: str
    partitions: int
    created: bool
    detail: str


def init_topics(settings: KafkaSettings, partitions: int, replication_factor: int, timeout: float = 30.0) -> list[TopicResult]:
    """Create every topic; topics that exist already are left as they are (safe to run twice)."""
    t = settings.topics
    wanted = [
        (t.commands, FOREVER), (t.events, FOREVER), (t.outcomes, FOREVER), (t.dead_letters, FOREVER),
        (t.notification_topic("INFO"), {}), (t.notification_topic("ERROR"), {}),
    ]
    admin = new_admin(settings.admin_config())
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=replication_factor, config=config) for name, config in wanted],
        operation_timeout=timeout, request_timeout=timeout,
    )
    results = []
    for name, _ in wanted:
        try:
            futures[name].result()
            results.append(TopicResult(name, partitions, True, "created"))
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise KafkaUnavailableError(f"cannot create topic {name}: {error.str()}") from exc
            results.append(TopicResult(name, partitions, False, "exists already"))
    return results


@dataclass(frozen=True)
class PartPosition:
    part: str
    topic: str
    partition: int
    position: int | None  # next offset to process; None if the part has not started
    lag: int


def _lag_from(settings: KafkaSettings, topic: str, starts: dict[int, int]) -> dict[int, int]:
    """Records after each start offset, counted by reading to partition EOF (watermarks can lie)."""
    follower = TopicFollower(settings, topic, start=lambda p: max(starts.get(p, 0), 0))
    try:
        counts = dict.fromkeys(follower.partitions, 0)
        for msg in follower.drain():
            counts[partition_of(msg)] += 1
        return counts
    finally:
        follower.close()


def consumer_positions(settings: KafkaSettings, model_positions: dict[str, int] | None = None) -> list[PartPosition]:
    """Each part's committed position and its lag behind the log.

    The read model is no group member (every `serve` replicates every partition): its row is
    the model at --db (``model_positions``) when there is one, else the informative positions
    the serves commit to the ``read-model`` group (the last one to commit a partition wins).
    """
    t = settings.topics
    rows: list[PartPosition] = []
    for part, topic in (("handler", t.commands), ("read-model", t.events), ("translator", t.events)):
        consumer = new_consumer(settings.consumer_config(part))
        try:
            parts = partitions_of(consumer, topic)
            committed = {tp.partition: tp.offset for tp in consumer.committed([TopicPartition(topic, p) for p in parts], timeout=30)}
        finally:
            consumer.close()
        if part == "read-model" and model_positions is not None:
            # The read model's own tracking is the truth; group commits only follow it.
            committed = {p: model_positions.get(partition_source(topic, p), 0) for p in parts}
        lags = _lag_from(settings, topic, committed)
        for p in parts:
            position = committed.get(p, -1)
            rows.append(PartPosition(part, topic, p, position if position >= 0 else None, lags[p]))
    return rows


def dead_letters(settings: KafkaSettings, limit: int = 1000) -> list[dict[str, Any]]:
    follower = TopicFollower(settings, settings.topics.dead_letters)
    try:
        out = []
        for msg in follower.drain()[:limit]:
            h = header_map(msg.headers())
            out.append({
                "dlq_partition": msg.partition(), "dlq_offset": msg.offset(),
                "topic": h.get("__connect.errors.topic"), "partition": h.get("__connect.errors.partition"),
                "offset": h.get("__connect.errors.offset"), "stage": h.get("__connect.errors.stage"),
                "error": h.get("__connect.errors.exception.class.name"), "message": h.get("__connect.errors.exception.message"),
                "key": (msg.key() or b"").decode("utf-8", "replace"), "bytes": len(msg.value() or b""),
            })
        return out
    finally:
        follower.close()


def letters(settings: KafkaSettings, limit: int = 1000) -> list[DeadLetter]:
    """What ``dlq`` lists: the dead-letter topic's records as the rows every store gives."""
    out = []
    for d in dead_letters(settings, limit):
        partition, offset = d["partition"], d["offset"]
        known = partition is not None and partition.isdigit() and offset is not None and offset.lstrip("-").isdigit()
        source = partition_source(d["topic"] or "", int(partition)) if known else (d["topic"] or "")
        out.append(DeadLetter.of(
            source, int(offset) + 1 if known else 0, d["stage"] or "", d["error"] or "", d["message"] or "", d["key"], d["bytes"],
            (d["dlq_partition"], d["dlq_offset"]),
        ))
    return out
