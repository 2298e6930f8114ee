"""Kafka helpers for the Watcher peer: topic creation, and a reader that returns every record of
some topics, from the first offset to the end.

The harness itself only needs a ``bootstrap_servers`` string: the smoke test gets it from the
project's ``broker`` fixture, ``record.py`` run as a script from a Tansu of its own
(tests/support/tansu.py, the one the fixture starts).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from tests.support.waiting import wait_until


def notification_topics(topic: str) -> list[str]:
    """Where oslo.messaging's Kafka driver puts notifications of ``topic``: one topic per priority
    (``oslo_messaging/_drivers/impl_kafka.py: target_to_topic``); Watcher sends INFO and ERROR."""
    return [f"{topic}.info", f"{topic}.error"]


def ensure_topics(bootstrap_servers: str, names: Iterable[str], partitions: int = 3, timeout: float = 30) -> None:
    """Creates the topics that do not exist yet and waits until the broker lists them all."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    wanted = list(names)
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in wanted if name not in existing]
    for name, future in admin.create_topics(missing, operation_timeout=timeout).items() if missing else ():
        try:
            future.result(timeout)
        except KafkaException as e:  # created meanwhile by someone else: fine
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                raise
    wait_until(lambda: set(wanted) <= set(admin.list_topics(timeout=timeout).topics), timeout, f"topics {wanted} listed by {bootstrap_servers}")


def _text(data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode("ascii")


def _headers(headers: Any) -> list[list[str | None]]:
    pairs = headers.items() if isinstance(headers, dict) else (headers or [])
    return [[str(name), _text(value.encode() if isinstance(value, str) else value)] for name, value in pairs]


def read_records(bootstrap_servers: str, topics: Iterable[str], timeout: float = 30) -> list[dict[str, Any]]:
    """Every record now in ``topics``, read by partition assignment (no consumer group, so no
    group join), from the first offset to each partition's high watermark at the call.

    Each record: topic, partition, offset, timestamp (ms) and its type, key, headers (list of
    [name, value]) and value, bytes decoded as UTF-8 text. Sorted by (topic, partition, offset).
    """
    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers, "group.id": "watcher-peer-reader", "enable.auto.commit": False,
        "fetch.wait.max.ms": 20, "enable.partition.eof": False,
    })
    try:
        metadata = consumer.list_topics(timeout=timeout)
        ends: dict[tuple[str, int], int] = {}
        assignment = []
        for topic in topics:
            if topic not in metadata.topics:
                continue
            for partition in metadata.topics[topic].partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
                if high > low:
                    ends[(topic, partition)] = high
                    assignment.append(TopicPartition(topic, partition, OFFSET_BEGINNING))
        records: list[dict[str, Any]] = []
        if not assignment:
            return records
        consumer.assign(assignment)
        remaining = set(ends)

        def read_to_the_ends() -> bool:
            for message in consumer.consume(500, timeout=0.2):
                if message.error():
                    raise KafkaException(message.error())
                topic, partition, offset = str(message.topic()), int(message.partition() or 0), int(message.offset() or 0)
                if (topic, partition) not in remaining:
                    continue
                ts_type, ts = message.timestamp()
                records.append({
                    "topic": topic, "partition": partition, "offset": offset, "timestamp": ts, "timestamp_type": ts_type,
                    "key": _text(message.key()),
                    "headers": _headers(message.headers()),
                    "value": _text(message.value()),
                })
                if offset + 1 >= ends[(topic, partition)]:
                    remaining.discard((topic, partition))
            return not remaining

        wait_until(read_to_the_ends, timeout, lambda: f"every record up to the ends, still unread: {sorted(remaining)}", interval=0)
        records.sort(key=lambda r: (r["topic"], r["partition"], r["offset"]))
        return records
    finally:
        consumer.close()
