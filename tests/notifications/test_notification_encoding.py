"""The translator's shortcuts produce the bytes of the plain spelling they replace."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils
from confluent_kafka import Message

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventstore.kafka.records import iso_micros, iso_of_oslo_timestamp, oslo_envelope, parse_iso_micros
from eventstore.codec import AvroCodec
from projections.kafka.audit import AUDIT_HEADER, AuditTrail, audit_summary
from projections.translator import _MESSAGE_IDS, message_id_for, notification_timestamp

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@given(st.text())
def test_message_ids_are_uuid5(event_id: str) -> None:
    assert message_id_for(event_id) == str(uuid.uuid5(_MESSAGE_IDS, event_id))


# Up to 2200: from about 2242 on, the old round trip through a float timestamp lost the microseconds
# (31_675_287_599_999_999 came back a second late); the text is exact at any date.
@given(st.integers(min_value=0, max_value=7_258_118_399_999_999))
def test_ce_time_from_the_envelope_text_is_the_instant_it_names(us: int) -> None:
    text = notification_timestamp(us)
    assert iso_of_oslo_timestamp(text) == iso_micros(parse_iso_micros(text.replace(" ", "T") + "Z"))


@pytest.mark.parametrize("notification", [
    {}, {"a": 1}, {"é": "ü\u2028\"\\", "x": [1, {"y": None}]}, {"_context": {"x": 1}, "b": 2}, {"b": 2, "_context": None},
])
def test_oslo_envelope_is_oslo_messagings_double_encoding(notification: dict[str, Any]) -> None:
    expected = json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps({**notification, "_context": {}})}).encode()
    assert oslo_envelope(notification) == expected


@given(st.integers(min_value=-(10**15), max_value=253_402_300_799_999_999))
def test_ce_time_is_the_datetime_spelling(us: int) -> None:
    spelled = datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000).isoformat().replace("+00:00", "Z")
    assert iso_micros(us) == spelled


@pytest.mark.parametrize("sample", sorted(p.name for p in GOLDEN.glob("*.json")))
def test_the_audit_trail_records_the_same_row_from_the_header_as_from_the_message(sample: str, tmp_path: Path) -> None:
    """The translator's ``watcher_es_audit`` header spares the read model parsing the message;
    a record of an earlier release, without it, is recorded the same from its message."""
    envelope = json.loads((GOLDEN / sample).read_text())
    headers: list[tuple[str, str | bytes | None]] = [("watcher_es_event_id", b"e1"), ("ce_subject", b"p1"), ("ce_sequence", b"3"), ("watcher_es_payload_set", b"1.0")]
    rows = []
    for with_summary in (True, False):
        extra: list[tuple[str, str | bytes | None]] = [(AUDIT_HEADER, audit_summary(envelope).encode())] if with_summary else []
        msg = Message(topic="n.info", partition=0, offset=7, key=b"p1", value=oslo_envelope(envelope), headers=headers + extra)
        db = sqlite_utils.Database(tmp_path / f"{with_summary}.db")
        db.execute(
            "CREATE TABLE trail_notifications (plan_uuid, message_id, event_id, event_type, priority, plan_seq, payload_set,"
            " envelope, source, position)"
        )
        AuditTrail(db, AvroCodec()).record_notifications([msg])
        rows.append(db.execute("SELECT * FROM trail_notifications").fetchall())
    assert rows[0] == rows[1] and len(rows[0]) == 1
    assert json.loads(rows[0][0][7])["payload"]["watcher_object.data"]["uuid"] == envelope["payload"]["watcher_object.data"]["uuid"]
