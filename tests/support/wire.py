"""The Kafka topics read the way the wire contract tells a foreign consumer to: the tests' oracle.

Written from the contract's text alone, so that a test judging our code with it does not judge
it with the same code: a plain confluent-kafka ``Consumer`` reads every partition from its first
offset to its end, each value is unframed by hand (Avro single-object encoding: ``C3 01``, the
8-byte CRC-64-AVRO fingerprint of the schema's Parsing Canonical Form, then the Avro binary body)
and decoded by fastavro with the schema from ``avro/*.avsc`` (or ``avro/history/v*/`` for a record
of an earlier release) whose fingerprint it names. Nothing is imported from ``eventstore.kafka`` or
``eventstore.codec``; ``StoredEvent`` and ``Position`` are only the shapes the results are handed
back in, so tests compare them with what the embedded log gives.

The events topic is read through the rule of docs/wire-contract.md, "Events: `<prefix>.events`",
sections "The fence, which every reader must apply" and "The chain" (until that page lands, the
same text is README.md's "Events: <prefix>.events"):

    Keep a version for each plan uuid; a plan not seen is at version 0. Read each partition in
    offset order. A record that is not an EventsAppended (it does not decode, has an unknown
    fingerprint or is another record type) is skipped and changes no version. If
    expected_version equals the plan's version v the record stands: its event i has version
    v + 1 + i and the plan's version becomes v + len(events); otherwise it is a conflict, skipped
    entirely. hash(n) = sha256(ascii(hash(n - 1)) + body(n)), hash(0) = "". A record carries
    its last event's hash as ``head`` (raw bytes, the hash is their lower-case hex) and leaves its
    events' ``hash`` empty; a record of 0.2.0 has no head and carries every event's hash.

Every hash is recomputed so, and each one a record carries is compared; one that differs, or a
record whose last event's hash it does not carry at all, raises ``ChainBroken``. A position
is what the product calls one (ARCHITECTURE.md, glossary): offset + 1 in ``<topic>/<partition>``.
Each call reads the topic again from offset 0: an oracle, never a product path.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, cast

import fastavro
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from fastavro.schema import fingerprint, load_schema, to_parsing_canonical_form

from eventstore.log import StoredEvent
from eventstore.position import Position

SCHEMAS = Path(__file__).resolve().parents[2] / "avro"
MARKER = b"\xc3\x01"
HEADER_SIZE = len(MARKER) + 8
APPEND = "EventsAppended"

Record = dict[str, Any]


class NotFramed(Exception):
    """A value that is no single-object-encoded record of a known schema (or has bytes left over)."""


class ChainBroken(AssertionError):
    """A standing event whose ``hash`` is not the one the chain rule gives."""


# ---------------------------------------------------------------------------- the schemas, by fingerprint


@dataclass(frozen=True)
class Schema:
    name: str
    writer: Any
    #: The current schema of that name, where the writer is an earlier release's (fastavro resolves).
    reader: Any | None


def _load(path: Path) -> tuple[str, Any, bytes]:
    schema = load_schema(str(path), _write_hint=False)
    canonical = str(to_parsing_canonical_form(schema))
    return path.name.removeprefix("watcher_es.").removesuffix(".avsc"), schema, bytes.fromhex(str(fingerprint(canonical, "CRC-64-AVRO")))


@cache
def schemas() -> Mapping[bytes, Schema]:
    known: dict[bytes, Schema] = {}
    current: dict[str, Any] = {}
    for path in sorted(SCHEMAS.glob("watcher_es.*.avsc")):
        name, schema, fp = _load(path)
        current[name] = schema
        known[fp] = Schema(name, schema, None)
    for release in sorted(p for p in (SCHEMAS / "history").glob("v*") if p.is_dir()):
        for path in sorted(release.glob("watcher_es.*.avsc")):
            name, schema, fp = _load(path)
            if fp not in known and name in current:
                known[fp] = Schema(name, schema, current[name])
    return known


def unframe(value: bytes) -> tuple[str, Record]:
    """A single-object-encoded value: its record name and fields (``NotFramed`` if it is none)."""
    if len(value) < HEADER_SIZE or value[: len(MARKER)] != MARKER:
        raise NotFramed(f"no single-object frame: {value[:HEADER_SIZE].hex()}")
    schema = schemas().get(value[len(MARKER) : HEADER_SIZE])
    if schema is None:
        raise NotFramed(f"unknown fingerprint {value[len(MARKER):HEADER_SIZE].hex()}")
    body = io.BytesIO(value)
    body.seek(HEADER_SIZE)
    try:
        record = cast(Record, fastavro.schemaless_reader(body, schema.writer, schema.reader))
    except Exception as exc:  # whatever fastavro raises on bytes that are not this record
        raise NotFramed(f"{schema.name} body does not decode: {exc}") from None
    if body.tell() != len(value):
        raise NotFramed(f"{schema.name} body has {len(value) - body.tell()} bytes left over")
    return schema.name, record


# ---------------------------------------------------------------------------- reading a topic


@dataclass(frozen=True)
class Read:
    """One record as consumed: where it was, and its key, value and headers."""

    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    @property
    def source(self) -> str:
        return f"{self.topic}/{self.partition}"

    @property
    def position(self) -> int:
        return self.offset + 1

    def header(self, name: str) -> str | None:
        found = [v for k, v in self.headers if k == name]
        return found[0].decode() if found else None


def read_topic(bootstrap_servers: str, topic: str, timeout_s: float = 60.0) -> list[Read]:
    """Every record of every partition, from its first offset to its end (partition EOF), in offset order per partition."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers, "group.id": f"wire-oracle-{uuid.uuid4()}", "enable.auto.commit": False,
        "enable.partition.eof": True, "auto.offset.reset": "earliest",
    })
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        at_end: set[int] = set()
        out: list[Read] = []
        deadline = time.monotonic() + timeout_s
        while len(at_end) < len(partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: partitions {sorted(set(partitions) - at_end)} not read to their end in {timeout_s:.0f} s")
            for msg in consumer.consume(500, 0.1):
                partition = cast(int, msg.partition())
                error = msg.error()
                if error is None:
                    at_end.discard(partition)
                    raw = msg.headers() or []
                    pairs = raw.items() if isinstance(raw, dict) else raw
                    out.append(Read(
                        topic, partition, cast(int, msg.offset()), msg.key() or b"", msg.value() or b"",
                        tuple((k, v if isinstance(v, bytes) else (v or "").encode()) for k, v in pairs),
                    ))
                elif error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(partition)
                else:
                    raise RuntimeError(f"reading {topic}/{partition}: {error.str()}")
    finally:
        consumer.close()
    return sorted(out, key=lambda r: (r.partition, r.offset))


# ---------------------------------------------------------------------------- the events topic, through the fence


@dataclass(frozen=True)
class Judged:
    """An ``EventsAppended`` record and the fence's verdict on it."""

    read: Read
    record: Record
    stands: bool
    #: Its events as the plan's history numbers them (none for a conflict).
    events: tuple[StoredEvent, ...]


def judge(records: Iterable[Read]) -> list[Judged]:
    """The fence and the chain, exactly as the contract states them (see the module docstring)."""
    versions: dict[str, int] = {}
    heads: dict[str, str] = {}
    out: list[Judged] = []
    for read in sorted(records, key=lambda r: (r.partition, r.offset)):
        try:
            name, r = unframe(read.value)
        except NotFramed:
            continue  # not an EventsAppended: skipped, no version changes
        if name != APPEND:
            continue
        plan = r["plan_uuid"]
        v = versions.get(plan, 0)
        if r["expected_version"] != v:
            out.append(Judged(read, r, False, ()))
            continue
        events = []
        for i, e in enumerate(r["events"]):
            head = hashlib.sha256(heads.get(plan, "").encode("ascii") + e["body"]).hexdigest()
            last = i == len(r["events"]) - 1
            # 0.3.0: the record's last hash is its head, raw; the events' own are empty. 0.2.0: each event has its own.
            carried = r["head"].hex() if last and r.get("head") else e["hash"]
            if (carried or last) and carried != head:
                raise ChainBroken(f"plan {plan} version {v + 1 + i} at {read.source} offset {read.offset}: hash {carried!r}, the chain gives {head}")
            heads[plan] = head
            events.append(StoredEvent(
                position=read.position, plan_uuid=plan, version=v + 1 + i, event_id=e["event_id"], event_type=e["event_type"],
                command_id=r["command_id"], occurred_at=e["occurred_at"], body=e["body"], hash=head, source=read.source,
            ))
        versions[plan] = v + len(events)
        out.append(Judged(read, r, True, tuple(events)))
    return out


class WireLog:
    """The events topic as a foreign consumer reads it: what stands, what lost, each event decoded.

    Reads the whole topic on every call (see the module docstring).
    """

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic

    def appends(self) -> list[Judged]:
        return judge(read_topic(self.bootstrap_servers, self.topic))

    def conflicts(self) -> list[Judged]:
        return [a for a in self.appends() if not a.stands]

    def events(self) -> list[StoredEvent]:
        """Every standing event, partition after partition, each in version order."""
        return [e for a in self.appends() for e in a.events]

    def decoded(self) -> Iterator[tuple[StoredEvent, str, Record]]:
        """Every standing event with its body decoded; a body that is not the record its ``event_type`` names raises."""
        for event in self.events():
            name, record = unframe(event.body)
            if name != event.event_type:
                raise NotFramed(f"{event.where}: event_type {event.event_type}, but the body is a {name}")
            yield event, name, record

    # What the contract suite asks of a reader of what was appended (the embedded log answers it itself).

    def read_plan(self, plan_uuid: str, until_position: int | None = None) -> list[StoredEvent]:
        return [e for e in self.events() if e.plan_uuid == plan_uuid and (until_position is None or e.position <= until_position)]

    def events_after(self, after: Position, limit: int = 1000) -> list[StoredEvent]:
        """Events past ``after`` in each partition, about ``limit`` of them: one record's events are never split."""
        out: list[StoredEvent] = []
        for event in self.events():
            if event.position <= after[event.source]:
                continue
            if len(out) >= limit and (out[-1].source, out[-1].position) != (event.source, event.position):
                break
            out.append(event)
        return out


# ---------------------------------------------------------------------------- the notification topics


@dataclass(frozen=True)
class Delivered:
    """A notification as the contract's "Notifications" section describes its record."""

    topic: str
    key: str
    message: Record
    message_id: str
    plan_uuid: str
    plan_seq: int
    event_id: str
    payload_set: str


def notifications(bootstrap_servers: str, topics: Sequence[str]) -> list[Delivered]:
    """Every record of the ``.info`` and ``.error`` topics: the oslo.messaging 2.0 envelope unwrapped, its headers read."""
    out = []
    for topic in topics:
        for read in read_topic(bootstrap_servers, topic):
            outer = json.loads(read.value)
            assert outer["oslo.version"] == "2.0", outer
            message = json.loads(outer["oslo.message"])
            assert message.pop("_context") == {}, message
            out.append(Delivered(
                topic, read.key.decode(), message, read.header("ce_id") or "", read.header("ce_subject") or "",
                int(read.header("ce_sequence") or 0), read.header("watcher_es_event_id") or "", read.header("watcher_es_payload_set") or "",
            ))
    return out
