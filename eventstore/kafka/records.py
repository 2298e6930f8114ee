"""What our Kafka records carry besides the value: CloudEvents-style headers, dead-letter headers, their place.

Headers follow the CloudEvents Kafka binding (``ce_*``) so generic tooling can route and
order them: ``ce_type`` (record type), ``ce_id`` (command, event or message id),
``ce_sequence`` (the plan's sequence number, for merging ``.info`` and ``.error`` back into
order), ``ce_subject`` (the plan), ``ce_dataschema`` (the Avro fingerprint). Dead letters use
Kafka Connect's ``__connect.errors.*`` names, which existing tooling reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final

from confluent_kafka import Message, TopicPartition

from eventstore.position import where

Headers = list[tuple[str, str | bytes | None]]
#: What confluent-kafka hands back as a message's headers.
ReceivedHeaders = Sequence[tuple[str, str | bytes | None]] | dict[str, str | bytes | None] | None

SPEC_VERSION = "1.0"
SOURCE = "watcher-es"


def partition_of(msg: Message) -> int:
    """A consumed record's partition (confluent-kafka types it optional: only produced ones lack it)."""
    partition = msg.partition()
    return -1 if partition is None else partition


def offset_of(msg: Message) -> int:
    offset = msg.offset()
    return -1 if offset is None else offset


@lru_cache(maxsize=4096)
def partition_source(topic: str, partition: int) -> str:
    """The ``topic/partition`` key every stored position of a Kafka partition is kept under
    (cached: asked several times for every record a part reads, of a handful of partitions)."""
    return f"{topic}/{partition}"


def source_of(msg: Message) -> str:
    """A consumed record's ``partition_source``."""
    return partition_source(str(msg.topic()), partition_of(msg))


def where_of(msg: Message) -> str:
    """A consumed record's place, as every message names it (``position.where``)."""
    return where(source_of(msg), offset_of(msg) + 1)


def topic_partition(source: str, offset: int) -> TopicPartition:
    """An offset of a ``topic/partition`` source."""
    topic, _, partition = source.rpartition("/")
    return TopicPartition(topic, int(partition), offset)


def iso_micros(us: int) -> str:
    """``ce_time`` of every record: the second's text is cached, as the records of a burst share it."""
    seconds, micros = divmod(us, 1_000_000)
    return f"{_second_text(seconds)}.{micros:06d}Z" if micros else f"{_second_text(seconds)}Z"


@lru_cache(maxsize=256)
def _second_text(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None).isoformat()


def parse_iso_micros(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(dt.timestamp()) * 1_000_000 + dt.microsecond


@lru_cache(maxsize=1024)
def iso_of_oslo_timestamp(timestamp: str) -> str:
    """``iso_micros`` of the instant an oslo timestamp (``YYYY-MM-DD HH:MM:SS.ffffff``) names, from its text
    (cached: a command's events, and so their notifications, share their time)."""
    head, _, micros = timestamp.partition(".")
    return f"{head.replace(' ', 'T')}{'' if micros.strip('0') == '' else '.' + micros}Z"


def record_headers(
    *, type_: str, id_: str, subject: str, content_type: str, time_us: int | None = None, time_text: str | None = None,
    fingerprint: str | None = None, sequence: int | None = None, extra: Sequence[tuple[str, str]] = (),
) -> Headers:
    """``ce_time`` from ``time_us``, or ``time_text`` already formatted (a notification has its time as text only)."""
    if time_text is None:
        if time_us is None:
            raise ValueError("record_headers needs time_us or time_text")
        time_text = iso_micros(time_us)
    headers: Headers = [
        _SPEC_VERSION, ("ce_id", id_.encode()), _SOURCE, ("ce_type", _constant(type_)),
        ("ce_subject", subject.encode()), ("ce_time", time_text.encode()), ("content-type", _constant(content_type)),
    ]
    if fingerprint is not None:
        headers.append(("ce_dataschema", _constant(f"urn:avro:crc-64-avro:{fingerprint}")))
    if sequence is not None:
        headers.append(("ce_sequence", str(sequence).encode()))
    headers.extend((k, v.encode()) for k, v in extra)
    return headers


_SPEC_VERSION: Final = ("ce_specversion", SPEC_VERSION.encode())
_SOURCE: Final = ("ce_source", SOURCE.encode())
#: Header values that recur on every record (types, content types, schemas): encoded once.
_constant: Callable[[str], bytes] = lru_cache(maxsize=256)(str.encode)


def header_pairs(headers: ReceivedHeaders) -> Headers:
    """Headers as confluent-kafka hands them back (a list, a dict or None), as one list of pairs."""
    return list(headers.items()) if isinstance(headers, dict) else list(headers or ())


def header_map(headers: ReceivedHeaders, only: frozenset[str] | None = None) -> dict[str, str]:
    """``only``: the headers a reader of many records wants; the others are not decoded."""
    out: dict[str, str] = {}
    for key, value in header_pairs(headers):
        if value is not None and (only is None or key in only):
            out[key] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return out


def oslo_envelope(notification: dict[str, Any]) -> bytes:
    """oslo.messaging 2.0 serialization of a notification, as its Kafka driver publishes it.

    The bytes of ``json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps({**notification,
    "_context": {}})})``, without copying the notification or encoding the outer object."""
    if "_context" in notification:  # it keeps its place, emptied
        message = json.dumps({**notification, "_context": {}})
    else:
        message = json.dumps(notification)[:-1] + ', "_context": {}}' if notification else '{"_context": {}}'
    return f'{{"oslo.version": "2.0", "oslo.message": {_json_string(message)}}}'.encode()


#: A str as JSON (``json.dumps`` of a str, escapes and all), C speed.
_json_string: Callable[[str], str] = json.encoder.encode_basestring_ascii


def unwrap_oslo_envelope(value: bytes) -> dict[str, Any]:
    outer = json.loads(value)
    message: dict[str, Any] = json.loads(outer["oslo.message"])
    message.pop("_context", None)
    return message


def dead_letter_headers(
    *, topic: str, partition: int, offset: int, stage: str, error: BaseException, original: ReceivedHeaders,
) -> Headers:
    """Kafka Connect's error headers, so the record says where it came from and why it was parked."""
    ours: list[tuple[str, str]] = [
        ("__connect.errors.topic", topic), ("__connect.errors.partition", str(partition)),
        ("__connect.errors.offset", str(offset)), ("__connect.errors.stage", stage),
        ("__connect.errors.exception.class.name", f"{type(error).__module__}.{type(error).__qualname__}"),
        ("__connect.errors.exception.message", str(error)),
    ]
    return [(k, v.encode()) for k, v in ours] + header_pairs(original)
