"""An events topic written by 0.2.0 is read on: its records carried every event's hash, a uuid append id and headers.

0.3.0 writes only the last hash of a record (``head``) and no headers. A topic an older handler
wrote must still be folded, chained on, verified and audited: the records are written here as
0.2.0 wrote them (framed with its own schema from ``avro/history/v2``, by fastavro, with a plain
producer), then today's writer appends on top and every reader agrees on one chain.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from pathlib import Path
from typing import Any

import fastavro
from confluent_kafka import Producer
from fastavro.schema import fingerprint, load_schema, to_parsing_canonical_form

from eventstore.codec import AvroCodec
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.io import topic_pages
from eventstore.kafka.log import KafkaEventLog
from eventstore.log import NewEvent
from projections.kafka.read_model import KafkaReadModelPart
from projections.read_model import ReadModel

from tests import factories as f
from tests.support.appends import A, new_events, record_of
from tests.support.wire import WireLog

V2 = Path(__file__).resolve().parents[2] / "avro" / "history" / "v2" / "watcher_es.EventsAppended.avsc"


def as_0_2_0(plan: str, expected: int, events: list[NewEvent], previous: str, command: Any, body: bytes) -> tuple[bytes, str]:
    """An ``EventsAppended`` framed with 0.2.0's schema, every event carrying its hash; and the head it leaves."""
    schema = load_schema(str(V2), _write_hint=False)
    fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))
    items, head = [], previous
    for e in events:
        head = hashlib.sha256(head.encode("ascii") + e.body).hexdigest()
        items.append({"event_id": e.event_id, "event_type": e.event_type, "occurred_at": e.occurred_at, "body": e.body, "hash": head})
    record = {
        "append_id": str(uuid.uuid4()), "command_id": command.command_id, "command_type": type(command).__name__, "plan_uuid": plan,
        "expected_version": expected, "writer": "old-host:1:0a0b0c0d", "appended_at": f.T0, "outcome": "accepted", "reason": "",
        "command": body, "events": items,
    }
    buf = io.BytesIO()
    buf.write(b"\xc3\x01" + fp)
    fastavro.schemaless_writer(buf, schema, record)
    return buf.getvalue(), head


def test_a_topic_of_0_2_0_is_folded_chained_on_verified_and_audited(kafka: KafkaSettings, tmp_path: Path) -> None:
    codec = AvroCodec()
    plan = str(uuid.uuid4())
    register, cancel = f.register(plan, "ONGOING", [f.action(A[0], "ONGOING"), f.action(A[1])]), f.cancel(plan)
    registered, events = new_events(codec, None, register)
    cancelled, more = new_events(codec, registered, cancel)
    first, head = as_0_2_0(plan, 0, events, "", register, record_of(codec, register).body)
    second, head = as_0_2_0(plan, len(events), more, head, cancel, record_of(codec, cancel).body)
    old = Producer({"bootstrap.servers": kafka.bootstrap_servers, "partitioner": "murmur2_random"})
    for value in (first, second):
        old.produce(kafka.topics.events, key=plan.encode(), value=value, headers=[("ce_type", b"EventsAppended"), ("ce_id", b"x")])
    assert old.flush(30) == 0

    writer = KafkaEventLog(kafka, codec)
    try:
        writer.refresh()
        version = len(events) + len(more)
        assert (writer.state.version(plan), writer.state.head(plan)) == (version, head), "folded with its head"
        abort = f.abort_ok(plan, A[0])
        _, last = new_events(codec, cancelled, abort)
        writer.append(plan, version, last, record_of(codec, abort))
    finally:
        writer.close()

    oracle = WireLog(kafka.bootstrap_servers, kafka.topics.events).read_plan(plan)  # raises if the chain breaks anywhere
    assert [e.version for e in oracle] == list(range(1, version + len(last) + 1))
    hashes = [e.hash for e in oracle]
    assert [e.hash for page in topic_pages(kafka, codec) for e in page if e.plan_uuid == plan] == hashes, "verify's reading"

    model = ReadModel(tmp_path / "model.db", codec)
    part = KafkaReadModelPart(kafka, None, model, codec, park_to_topic=False, commit=False)
    try:
        part.catch_up()
        assert [e.hash for e in part.trail.read_plan(plan)] == hashes, "the audit trail's chain"
        assert [c.command_id for c in part.trail.plan_commands(plan)] == [register.command_id, cancel.command_id, abort.command_id]
        assert model.db.conn.execute("SELECT state FROM action_plans WHERE uuid = ?", (plan,)).fetchone() == ("CANCELLED",)
    finally:
        part.close()
        model.close()
