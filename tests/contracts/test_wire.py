"""The oracle itself, on the worked examples of the wire contract's fence and chain sections (no broker)."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import fastavro
import pytest
from fastavro.schema import load_schema

from tests.support.wire import APPEND, MARKER, SCHEMAS, ChainBroken, Read, judge, schemas, unframe


def frame(name: str, record: dict[str, Any]) -> bytes:
    """Single-object encoding by hand: the marker, the fingerprint the oracle knows the schema by, the body."""
    [fp] = [fp for fp, s in schemas().items() if s.name == name and s.reader is None]
    buf = io.BytesIO()
    buf.write(MARKER + fp)
    fastavro.schemaless_writer(buf, load_schema(str(SCHEMAS / f"watcher_es.{name}.avsc"), _write_hint=False), record)
    return buf.getvalue()


def append(plan: str, expected: int, bodies: list[bytes], heads: dict[str, str], stands: bool = True, every_hash: bool = False) -> dict[str, Any]:
    """An EventsAppended whose events chain on from ``heads`` (moved on only for one that stands): its last
    hash as ``head``, or, as 0.2.0 wrote them, ``every_hash`` in its event."""
    events, head = [], heads.get(plan, "")
    for i, body in enumerate(bodies):
        head = hashlib.sha256(head.encode("ascii") + body).hexdigest()
        events.append({"event_id": f"{plan}-{expected}-{i}", "event_type": "X", "occurred_at": 1, "body": body, "hash": head if every_hash else ""})
    if stands and bodies:
        heads[plan] = head
    return {
        "append_id": f"a-{plan}-{expected}", "command_id": f"c-{plan}-{expected}", "command_type": "CancelActionPlan", "plan_uuid": plan,
        "expected_version": expected, "writer": "w", "appended_at": 1, "outcome": "accepted", "reason": "", "command": b"", "events": events,
        "head": bytes.fromhex(head) if bodies and not every_hash else b"",
    }


def at(offset: int, value: bytes) -> Read:
    return Read("t.events", 0, offset, b"", value, ())


def test_the_fence_example_of_the_contract() -> None:
    """docs/wire-contract.md, "The fence": offsets 0 to 6 of one partition, plans P and Q."""
    heads: dict[str, str] = {}
    rows = [("P", 0, 1, True), ("P", 1, 2, True), ("P", 1, 1, False), ("Q", 0, 1, True), ("P", 3, 0, True), ("Q", 2, 1, False), ("P", 3, 1, True)]
    records = [
        at(offset, frame(APPEND, append(plan, expected, [bytes([offset, i]) for i in range(n)], heads, stands)))
        for offset, (plan, expected, n, stands) in enumerate(rows)
    ]
    records.insert(2, at(99, b"junk: not an append"))  # skipped, changes nothing
    judged = judge(records)
    assert [(j.record["plan_uuid"], j.read.offset, j.stands) for j in judged] == [
        (plan, offset, stands) for offset, (plan, _, _, stands) in enumerate(rows)
    ]
    assert [[e.version for e in j.events] for j in judged] == [[1], [2, 3], [], [1], [], [], [4]]
    assert all(e.position == j.read.offset + 1 and e.source == "t.events/0" for j in judged for e in j.events)


def test_the_chain_example_of_the_contract() -> None:
    """docs/wire-contract.md, "The chain": bodies shortened to one byte."""
    heads: dict[str, str] = {}
    [judged] = judge([at(0, frame(APPEND, append("P", 0, [b"\x01", b"\x02"], heads)))])
    assert [e.hash for e in judged.events] == [
        "4bf5122f344554c53bde2ebb8cd2b7e3d1600ad631c385a5d7cce23c7785459a",
        "5e6807e1ed2d03b8248ecb64ad36cff8424a67bc8f3273a1a63ad52874c97eb8",
    ]
    forged = append("Q", 0, [b"\x01", b"\x02"], {})
    forged["events"][0]["body"] = b"\x03"  # an edited body: the head no longer follows
    with pytest.raises(ChainBroken):
        judge([at(1, frame(APPEND, forged))])
    headless = append("R", 0, [b"\x01"], {})
    headless["head"] = b""  # a record that proves nothing of its events
    with pytest.raises(ChainBroken):
        judge([at(2, frame(APPEND, headless))])


def released(name: str, record: dict[str, Any]) -> bytes:
    """Framed with the one earlier release's schema of that name (its own fingerprint), as that release wrote it."""
    [(fp, older)] = [(fp, s) for fp, s in schemas().items() if s.name == name and s.reader is not None]
    buf = io.BytesIO()
    buf.write(MARKER + fp)
    fastavro.schemaless_writer(buf, older.writer, {k: v for k, v in record.items() if k in {f["name"] for f in older.writer["fields"]}})
    return buf.getvalue()


def test_a_record_of_0_2_0_carries_every_hash() -> None:
    """Before 0.3.0 each event carried its own hash and there was no head: each is checked."""
    heads: dict[str, str] = {}
    [judged] = judge([at(0, released(APPEND, append("P", 0, [b"\x01", b"\x02"], heads, every_hash=True)))])
    assert [e.hash for e in judged.events] == [
        "4bf5122f344554c53bde2ebb8cd2b7e3d1600ad631c385a5d7cce23c7785459a",
        "5e6807e1ed2d03b8248ecb64ad36cff8424a67bc8f3273a1a63ad52874c97eb8",
    ]
    forged = append("Q", 0, [b"\x01", b"\x02"], {}, every_hash=True)
    forged["events"][0]["hash"] = "0" * 64
    with pytest.raises(ChainBroken):
        judge([at(1, released(APPEND, forged))])


def test_a_record_of_an_earlier_release_is_read_with_its_own_schema() -> None:
    """An ``ActionCancelled`` of release v1 (no ``status_message``) reads as today's, the new field at its default."""
    [(fp, older)] = [(fp, s) for fp, s in schemas().items() if s.name == "ActionCancelled" and s.reader is not None]
    event = {"event_id": "e", "command_id": "c", "plan_uuid": "p", "occurred_at": 1, "action_uuid": "a"}
    buf = io.BytesIO()
    buf.write(MARKER + fp)
    fastavro.schemaless_writer(buf, older.writer, event)
    assert unframe(buf.getvalue()) == ("ActionCancelled", {**event, "status_message": None})
    assert unframe(frame("ActionCancelled", {**event, "status_message": "done"})) == ("ActionCancelled", {**event, "status_message": "done"})
