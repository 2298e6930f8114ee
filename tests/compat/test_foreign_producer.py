"""A producer that is not ours gets every command handled: the wire contract is docs/wire-contract.md, not our code.

Anyone may write commands (a Java applier, a Go operator tool, kcat with a script), so this test
builds them the way such a producer would: plain dicts shaped by the ``avro/*.avsc`` files,
framed by hand as Avro single-object encoding (``C3 01`` + the little-endian CRC-64-AVRO of the
schema's Parsing Canonical Form + the binary body), keyed by the plan uuid, placed by a
pure-Python port of Java's ``Utils.murmur2`` and sent with a plain confluent-kafka ``Producer``
to an explicit partition. It imports none of our encoder, codec, client or records code; the only
import from the product is ``KafkaSettings`` (to prove our producers place a key where Java would).
What became of each command is read back from the outcomes topic the same foreign way.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import fastavro
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from fastavro.schema import fingerprint, load_schema, to_parsing_canonical_form

from eventstore.kafka.config import KafkaSettings

from tests.support.serve import Serve, cli_env
from tests.support.waiting import wait_until

SCHEMAS = Path(__file__).resolve().parents[2] / "avro"
MARKER = b"\xc3\x01"
HEADER_SIZE = 10  # marker (2) + fingerprint (8)
TIMEOUT_S = 120.0  # the first consumer-group join on the test broker takes a while

Record = dict[str, Any]


# ---------------------------------------------------------------------------- the wire contract's rules


def murmur2(data: bytes) -> int:
    """Java's ``org.apache.kafka.common.utils.Utils.murmur2``, as a signed 32-bit int."""
    m, r, mask = 0x5BD1E995, 24, 0xFFFFFFFF
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & mask
        k ^= k >> r
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    tail = length % 4
    base = length - tail
    if tail == 3:
        h ^= data[base + 2] << 16
    if tail >= 2:
        h ^= data[base + 1] << 8
    if tail >= 1:
        h ^= data[base]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def java_partition(key: bytes, partitions: int) -> int:
    """Java's default partitioner for a keyed record: ``toPositive(murmur2(key)) % numPartitions``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


CRC64_EMPTY = 0xC15D213AA4D7A795


def _crc64_table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (CRC64_EMPTY & -(fp & 1))
        table.append(fp)
    return table


CRC64_TABLE = _crc64_table()


def crc64_avro(data: bytes) -> int:
    """The Avro specification's CRC-64-AVRO (Rabin) fingerprint, as an unsigned 64-bit int."""
    fp = CRC64_EMPTY
    for byte in data:
        fp = (fp >> 8) ^ CRC64_TABLE[(fp ^ byte) & 0xFF]
    return fp


def load(name: str) -> tuple[Any, bytes]:
    """A schema (sibling named types inlined by fastavro) and its 8 fingerprint bytes as framed."""
    schema = load_schema(str(SCHEMAS / f"watcher_es.{name}.avsc"), _write_hint=False)
    canonical = str(to_parsing_canonical_form(schema))
    ours = crc64_avro(canonical.encode()).to_bytes(8, "little")  # single-object encoding: little-endian
    assert ours == bytes.fromhex(str(fingerprint(canonical, "CRC-64-AVRO"))), name
    return schema, ours


def frame(name: str, record: Mapping[str, Any]) -> bytes:
    schema, fp = load(name)
    buf = io.BytesIO()
    buf.write(MARKER + fp)
    fastavro.schemaless_writer(buf, schema, dict(record))
    return buf.getvalue()


def unframe(name: str, value: bytes) -> Record:
    schema, fp = load(name)
    assert value[:HEADER_SIZE] == MARKER + fp, f"not a {name} record: {value[:HEADER_SIZE].hex()}"
    return cast(Record, fastavro.schemaless_reader(io.BytesIO(value[HEADER_SIZE:]), schema))


def ce_time(us: int) -> str:
    """``ce_time``: RFC 3339 UTC with ``Z``, microseconds only when not zero (as the wire contract says)."""
    seconds, micros = divmod(us, 1_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{micros:06d}Z" if micros else f"{text}Z"


def headers(name: str, command: Mapping[str, Any]) -> list[tuple[str, bytes]]:
    """The informative headers our own client sends, built from the wire contract alone."""
    _, fp = load(name)
    pairs = [
        ("ce_specversion", "1.0"), ("ce_id", command["command_id"]), ("ce_source", "watcher-es"), ("ce_type", name),
        ("ce_subject", command["plan_uuid"]), ("ce_time", ce_time(command["issued_at"])),
        ("content-type", "application/avro"), ("ce_dataschema", f"urn:avro:crc-64-avro:{fp.hex()}"),
    ]
    return [(k, v.encode()) for k, v in pairs]


# ---------------------------------------------------------------------------- commands as plain dicts


def now_us() -> int:
    return time.time_ns() // 1000


CREATED = 1_476_784_325_000_000  # 2016-10-18T09:52:05Z


def envelope(plan_uuid: str, by: str) -> Record:
    return {"command_id": f"foreign-{uuid.uuid4()}", "issued_at": now_us(), "issued_by": by, "origin": "foreign-producer-test", "plan_uuid": plan_uuid}


def register(plan_uuid: str, running: str, pending: str) -> Record:
    """An ONGOING plan with one ONGOING and one PENDING action."""

    def action(uuid_: str, state: str) -> Record:
        return {"uuid": uuid_, "action_type": "nop", "input_parameters": '{"message": "hi"}', "parents": [], "state": state,
                "created_at": CREATED, "updated_at": None, "deleted_at": None, "status_message": None}

    return {
        **envelope(plan_uuid, "watcher-decision-engine"), "state": "ONGOING", "global_efficacy": "[]",
        "created_at": CREATED, "updated_at": None, "deleted_at": None, "status_message": None,
        "audit": {"uuid": str(uuid.uuid4()), "goal_uuid": str(uuid.uuid4()), "strategy_uuid": str(uuid.uuid4()),
                  "audit_type": "ONESHOT", "state": "SUCCEEDED", "scope": "[]", "parameters": "{}", "interval": None,
                  "created_at": CREATED, "updated_at": None, "deleted_at": None, "name": "foreign", "auto_trigger": False,
                  "next_run_time": None, "status_message": None},
        "strategy": {"uuid": str(uuid.uuid4()), "name": "dummy", "display_name": "Dummy strategy", "parameters_spec": "{}",
                     "created_at": CREATED, "updated_at": None, "deleted_at": None},
        "actions": [action(running, "ONGOING"), action(pending, "PENDING")],
    }


def cancel(plan_uuid: str) -> Record:
    return {**envelope(plan_uuid, "operator"), "reason": "maintenance window closed"}


def abort_ok(plan_uuid: str, action_uuid: str) -> Record:
    return {**envelope(plan_uuid, "watcher-applier"), "action_uuid": action_uuid, "fault": None, "status_message": None}


def story(plan_uuid: str) -> list[tuple[str, Record]]:
    running, pending = str(uuid.uuid4()), str(uuid.uuid4())
    return [("RegisterActionPlan", register(plan_uuid, running, pending)), ("CancelActionPlan", cancel(plan_uuid)),
            ("ReportAbortResult", abort_ok(plan_uuid, running))]


# ---------------------------------------------------------------------------- plain confluent-kafka I/O


def value_of(msg: Message) -> bytes:
    return msg.value() or b""


def key_of(msg: Message) -> bytes:
    return msg.key() or b""


def partition_of(msg: Message) -> int:
    partition = msg.partition()
    assert partition is not None
    return partition


def header_map(msg: Message) -> dict[str, str]:
    raw = msg.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return {k: v.decode() if isinstance(v, bytes) else (v or "") for k, v in pairs}


class Sender:
    """A plain producer (librdkafka's default partitioner, never used: every record names its partition)."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
        self.placed: dict[bytes, int] = {}  # value -> partition the broker confirmed
        self.errors: list[str] = []

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.errors.append(str(err))
        else:
            self.placed[value_of(msg)] = partition_of(msg)

    def send(self, topic: str, partition: int, key: bytes, value: bytes, hdrs: Sequence[tuple[str, bytes]] = ()) -> None:
        self.producer.produce(topic, value=value, key=key, partition=partition, headers=list(hdrs), on_delivery=self._delivered)

    def flush(self) -> None:
        assert self.producer.flush(30) == 0, "records not confirmed"
        assert not self.errors, self.errors


class Reader:
    """Every partition of a topic from the beginning, without committing anything."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"foreign-{uuid.uuid4()}", "enable.auto.commit": False})
        metadata = self.consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions)
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        self.seen: list[Message] = []

    def until(self, done: Callable[[list[Message]], bool], timeout_s: float = TIMEOUT_S) -> list[Message]:
        def read() -> bool:
            if done(self.seen):
                return True
            self.seen.extend(m for m in self.consumer.consume(100, 0.2) if m.error() is None)
            return False

        wait_until(read, timeout_s, lambda: f"the records wanted ({len(self.seen)} read)", interval=0)
        return self.seen

    def close(self) -> None:
        self.consumer.close()


class Outcomes:
    """``CommandHandled`` records by command id, decoded with the .avsc alone."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.reader = Reader(kafka.bootstrap_servers, kafka.topics.outcomes)
        self.by_id: dict[str, Record] = {}
        self.decoded = 0

    def wait(self, command_ids: Iterable[str], timeout_s: float = TIMEOUT_S) -> dict[str, Record]:
        wanted = set(command_ids)

        def done(seen: list[Message]) -> bool:
            for msg in seen[self.decoded :]:
                record = unframe("CommandHandled", value_of(msg))
                assert header_map(msg).get("ce_id") == record["command_id"]
                assert key_of(msg).decode() == record["plan_uuid"]
                self.by_id.setdefault(record["command_id"], record)  # the first outcome is the one
                self.decoded += 1
            return wanted <= set(self.by_id)

        self.reader.until(done, timeout_s)
        return {c: self.by_id[c] for c in wanted}

    def close(self) -> None:
        self.reader.close()


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)]).values():
        future.result(30)


def partitions(kafka: KafkaSettings) -> int:
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    return len(admin.list_topics(kafka.topics.commands, timeout=10).topics[kafka.topics.commands].partitions)


def assert_cancelled(story_: list[tuple[str, Record]], outcomes: Mapping[str, Record]) -> None:
    plan = story_[0][1]["plan_uuid"]
    states = [(outcomes[r["command_id"]]["outcome"], outcomes[r["command_id"]]["plan_state"]) for _, r in story_]
    assert states == [("accepted", "ONGOING"), ("accepted", "CANCELLING"), ("accepted", "CANCELLED")], (plan, states)
    last = outcomes[story_[-1][1]["command_id"]]
    assert sorted(a["state"] for a in last["action_states"]) == ["CANCELLED", "CANCELLED"]
    assert last["event_types"][-1] == "ActionPlanCancelled"


# ---------------------------------------------------------------------------- the tests


def test_murmur2_is_javas() -> None:
    """Reference values of Kafka's own UtilsTest (and librdkafka's rdmurmur2 tests)."""
    cases = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536,
             b"a-little-bit-longer-string": -1486304829, b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
             b"abc": 479470107, b"1": -1993445489, b"12": 126087238, b"123": -267702483, b"1234": -1614185708}
    assert {k: murmur2(k) for k in cases} == cases


def test_fingerprint_is_the_little_endian_crc64_avro_of_the_canonical_form() -> None:
    """The worked example of docs/wire-contract.md."""
    schema, fp = load("CancelActionPlan")
    canonical = str(to_parsing_canonical_form(schema))
    assert canonical.startswith('{"name":"watcher_es.CancelActionPlan","type":"record","fields":[{"name":"command_id"')
    assert crc64_avro(canonical.encode()) == 0xD6DD083BD37B990C
    assert fp.hex() == "0c997bd33b08ddd6"
    value = frame("CancelActionPlan", {"command_id": "c", "issued_at": 0, "issued_by": "a", "origin": "o", "plan_uuid": "p", "reason": "r", "watcher": None})
    assert value[:HEADER_SIZE].hex() == "c3010c997bd33b08ddd6"
    assert value[HEADER_SIZE:] == bytes.fromhex("02 63 00 02 61 02 6f 02 70 02 72 00")
    # Register inlines Audit, Strategy and Action; ReportAbortResult inlines Fault.
    assert '"name":"watcher_es.Audit"' in str(to_parsing_canonical_form(load("RegisterActionPlan")[0]))
    assert '"name":"watcher_es.Fault"' in str(to_parsing_canonical_form(load("ReportAbortResult")[0]))


def test_our_producers_place_a_key_where_java_would_and_the_broker_keeps_explicit_partitions(kafka: KafkaSettings) -> None:
    topic = f"{kafka.topics.commands}.placement"
    create_topic(kafka.bootstrap_servers, topic, 3)
    keys = [str(uuid.uuid4()).encode() for _ in range(24)]

    ours = Producer({**kafka.producer_config(), "delivery.report.only.error": False})  # partitioner=murmur2_random; every report, for the partitions
    ours_placed: dict[bytes, int] = {}

    def delivered(err: KafkaError | None, msg: Message) -> None:
        assert err is None, err
        ours_placed[key_of(msg)] = partition_of(msg)

    for key in keys:
        ours.produce(topic, key=key, value=b"ours", on_delivery=delivered)
    assert ours.flush(30) == 0
    expected = {key: java_partition(key, 3) for key in keys}
    assert ours_placed == expected
    assert len(set(expected.values())) == 3, "24 random keys should cover 3 partitions"

    # A plain producer naming the partition (the opposite one for half the keys) is obeyed.
    foreign = Sender(kafka.bootstrap_servers)
    asked = {key: (expected[key] + (1 if i % 2 else 0)) % 3 for i, key in enumerate(keys)}
    for key in keys:
        foreign.send(topic, asked[key], key, b"foreign:" + key)
    foreign.flush()
    assert {v.removeprefix(b"foreign:"): p for v, p in foreign.placed.items()} == asked

    # Read back: where each record actually is.
    reader = Reader(kafka.bootstrap_servers, topic)
    try:
        seen = reader.until(lambda s: len(s) >= 2 * len(keys))
    finally:
        reader.close()
    stored = {(value_of(m), key_of(m)): partition_of(m) for m in seen}
    assert {k: p for (v, k), p in stored.items() if v == b"ours"} == expected
    assert {k: p for (v, k), p in stored.items() if v.startswith(b"foreign:")} == asked


def test_every_foreign_command_is_handled_and_a_malformed_one_is_parked(kafka: KafkaSettings, serve: Serve) -> None:
    n = partitions(kafka)
    sender = Sender(kafka.bootstrap_servers)
    plans = [str(uuid.uuid4()) for _ in range(3)]
    stories = {plan: story(plan) for plan in plans}

    # First in the first plan's partition: a record whose fingerprint names no schema.
    bad_fp = "0123456789abcdef"
    bad = MARKER + bytes.fromhex(bad_fp) + frame("CancelActionPlan", cancel(plans[0]))[HEADER_SIZE:]
    sender.send(kafka.topics.commands, java_partition(plans[0].encode(), n), plans[0].encode(), bad)
    for i, plan in enumerate(plans):
        key = plan.encode()
        for name, command in stories[plan]:
            # The last plan sends no headers at all: they are informative, the value says everything.
            sender.send(kafka.topics.commands, java_partition(key, n), key, frame(name, command), headers(name, command) if i < 2 else ())
    sender.flush()
    serve.start()

    outcomes = Outcomes(kafka)
    try:
        found = outcomes.wait(c["command_id"] for s in stories.values() for _, c in s)
    finally:
        outcomes.close()
    for plan in plans:
        assert_cancelled(stories[plan], found)

    dlq = Reader(kafka.bootstrap_servers, kafka.topics.dead_letters)
    try:
        parked = dlq.until(lambda s: any(value_of(m) == bad for m in s))
    finally:
        dlq.close()
    letter = next(m for m in parked if value_of(m) == bad)
    hdr = header_map(letter)
    assert hdr["__connect.errors.topic"] == kafka.topics.commands
    assert hdr["__connect.errors.partition"] == str(java_partition(plans[0].encode(), n))
    assert hdr["__connect.errors.stage"] == "handler"
    assert bad_fp in hdr["__connect.errors.exception.message"]


def test_one_plans_commands_in_two_partitions_are_still_handled_in_order(kafka: KafkaSettings, serve: Serve, tmp_path: Path) -> None:
    """A producer that ignores the partitioner: correct because appends are fenced by the plan's version.

    Each command is sent once the previous one's outcome is known (as ``--wait`` does): across
    partitions Kafka keeps no order, so a sender that needs one must wait. A second handler-only
    process joins the group, so the partitions (and this plan's commands) are split between two
    handlers that only share the events topic.
    """
    n = partitions(kafka)
    plan = str(uuid.uuid4())
    key = plan.encode()
    home = java_partition(key, n)
    sender = Sender(kafka.bootstrap_servers)
    serve.start()
    second = Serve(cli_env(kafka, tmp_path / "second.db"), tmp_path / "second.log", ("--only", "handler")).start()
    outcomes = Outcomes(kafka)
    try:
        steps = story(plan)
        for (name, command), partition in zip(steps, (home, (home + 1) % n, (home + 2) % n), strict=True):
            value = frame(name, command)
            sender.send(kafka.topics.commands, partition, key, value, headers(name, command))
            sender.flush()
            assert sender.placed[value] == partition
            outcomes.wait([command["command_id"]])
        found = outcomes.wait(c["command_id"] for _, c in steps)
    finally:
        outcomes.close()
        second.stop()
    assert_cancelled(steps, found)

