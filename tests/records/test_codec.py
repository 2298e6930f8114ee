"""AvroCodec: single-object framing, round trips, clear errors, and reading records of older schemas."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastavro.schema import fingerprint, load_schema, to_parsing_canonical_form

from eventstore.codec import HEADER_SIZE, MARKER, AvroCodec, WriterSchema, schema_dir
from eventstore.domain.decide import decide
from eventstore.domain.messages import (
    COMMAND_TYPES,
    EVENT_TYPES,
    Action,
    Audit,
    Command,
    Event,
    Fault,
    Strategy,
    from_record,
    to_record,
)
from eventstore.domain.plan import Plan, evolve
from eventstore.exceptions import CorruptRecordError, SchemaError, SerializationError, UnknownSchemaError
from eventstore.sqlite.log import SqliteEventLog

from tests import factories as f

PLAN = "76be87bd-3422-43f9-93a0-e85a577e3061"
OTHER = "0b5f4b1e-5a53-4f0a-8d77-7f4d7d8c2a01"
A = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(3)]
FAULT = Fault("ActionExecutionFailure", "cannot abort: \u00e9t\u00e9 \u2013 switch-over", "watcher.applier.actions.migration", "abort")


def every_command() -> list[Command]:
    return [
        f.register(PLAN, "RECOMMENDED", [f.action(A[0]), f.action(A[1]), f.action(A[2])]),
        f.plan_progress(PLAN, "ONGOING"),
        f.action_progress(PLAN, A[0], "ONGOING"),
        f.action_progress(PLAN, A[1], "ONGOING"),
        f.cancel(PLAN, reason="capacity needed"),
        f.abort_ok(PLAN, A[0]),
        f.abort_failed(PLAN, A[1], FAULT),
        f.register(OTHER, "PENDING"),
        f.cancel(OTHER),
        f.deadline(OTHER, f.T0),
    ]


def every_event() -> list[Event]:
    plans: dict[str, Plan | None] = {}
    events: list[Event] = []
    for command in every_command()[:-1]:
        for event in decide(plans.get(command.plan_uuid), command, f.T0):
            plans[command.plan_uuid] = evolve(plans.get(command.plan_uuid), event)
            events.append(event)
    return events


def nested_records() -> list[Any]:
    return [
        FAULT,
        Audit(PLAN, A[0], A[1], "CONTINUOUS", "ONGOING", '[{"compute": []}]', '{"period": 3600}', "3600", f.T0, f.T0 + 1, None),
        Strategy(PLAN, "basic", "Basic offline consolidation", "{}", f.T0, None, f.T0 + 2),
        Action(A[0], "migrate", '{"migration_type": "live"}', (A[1], A[2]), "ONGOING", f.T0, f.T0 + 5, None),
    ]


def every_record() -> list[Any]:
    return [*every_command(), *every_event(), *nested_records()]


def test_the_samples_cover_every_record_type(codec: AvroCodec) -> None:
    names = {type(r).__name__ for r in every_record()}
    assert names >= set(COMMAND_TYPES) | set(EVENT_TYPES) | {"Fault", "Audit", "Strategy", "Action"}
    assert names <= set(codec.names)


@pytest.mark.parametrize("record", every_record(), ids=lambda r: type(r).__name__)
def test_round_trip(codec: AvroCodec, record: Any) -> None:
    name = type(record).__name__
    data = codec.encode(name, to_record(record))
    decoded_name, decoded = codec.decode(data, "position 1")
    assert decoded_name == name == codec.name_of(data)
    assert from_record(type(record), decoded) == record


# ---------------------------------------------------------------- the frame


def crc64_avro(data: bytes) -> int:
    """The Avro specification's CRC-64-AVRO (Rabin) fingerprint, written out independently."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


@pytest.mark.parametrize("name", sorted(n for n in COMMAND_TYPES | EVENT_TYPES) + ["Fault", "Audit", "Strategy", "Action"])
def test_frame_is_marker_then_the_schema_fingerprint(codec: AvroCodec, name: str) -> None:
    record = next(r for r in every_record() if type(r).__name__ == name)
    data = codec.encode(name, to_record(record))
    canonical = to_parsing_canonical_form(load_schema(str(schema_dir() / f"watcher_es.{name}.avsc"), _write_hint=False))
    assert data[:2] == MARKER == b"\xc3\x01"
    assert data[2:HEADER_SIZE] == bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
    # The specification: the 8-byte fingerprint, little-endian.
    assert data[2:HEADER_SIZE] == crc64_avro(canonical.encode("utf-8")).to_bytes(8, "little")
    assert codec.fingerprint_of(name) == data[2:HEADER_SIZE].hex()


def test_current_schemas_are_what_the_frames_name(codec: AvroCodec) -> None:
    kept = {w.name: w for w in codec.current_schemas()}
    assert sorted(kept) == codec.names
    for name, w in kept.items():
        assert w.fingerprint == codec.fingerprint_of(name)
        assert fingerprint(w.canonical, "CRC-64-AVRO") == w.fingerprint


# ---------------------------------------------------------------- bad bytes say what and where


def encoded(codec: AvroCodec) -> bytes:
    return codec.encode("CancelActionPlan", to_record(f.cancel(PLAN, reason="maintenance window closed")))


def test_unknown_fingerprint_names_it_and_the_place(codec: AvroCodec) -> None:
    data = encoded(codec)
    unknown = bytes(8 * [0xAB])
    with pytest.raises(UnknownSchemaError) as raised:
        codec.decode(data[:2] + unknown + data[HEADER_SIZE:], "position 42")
    assert raised.value.fingerprint == unknown.hex()
    assert unknown.hex() in str(raised.value)
    assert "position 42" in str(raised.value)
    with pytest.raises(UnknownSchemaError, match="position 7"):
        codec.name_of(data[:2] + unknown + data[HEADER_SIZE:], "position 7")


@pytest.mark.parametrize(("how", "mangle"), [
    ("bad marker", lambda d: b"\xc3\x02" + d[2:]),
    ("no marker at all", lambda d: b"\x00" + d[1:]),
    ("empty", lambda d: b""),
    ("truncated header", lambda d: d[:HEADER_SIZE - 1]),
    ("header only", lambda d: d[:HEADER_SIZE]),
    ("truncated body", lambda d: d[:-5]),
    ("one byte short", lambda d: d[:-1]),
    ("trailing garbage", lambda d: d + b"\x00garbage"),
    ("one trailing byte", lambda d: d + b"\x00"),
    ("string length beyond the end", lambda d: d[:HEADER_SIZE] + b"\xfe\xff\xff\xff\x0f" + d[HEADER_SIZE + 1:]),
    ("negative string length", lambda d: d[:HEADER_SIZE] + b"\x7f" + d[HEADER_SIZE + 1:]),
])
def test_corrupt_bytes_are_refused_with_the_position(codec: AvroCodec, how: str, mangle: Any) -> None:
    with pytest.raises(CorruptRecordError) as raised:
        codec.decode(mangle(encoded(codec)), "position 1234")
    assert "position 1234" in str(raised.value), how


def test_a_union_branch_that_does_not_exist_is_corruption(codec: AvroCodec) -> None:
    data = codec.encode("ReportAbortResult", to_record(f.abort_ok(PLAN, A[0])))
    assert data[-1:] == b"\x00"  # fault: branch 0, null
    with pytest.raises(CorruptRecordError, match="position 9"):
        codec.decode(data[:-1] + b"\x04", "position 9")


@pytest.mark.parametrize(("name", "change", "field"), [
    ("CancelActionPlan", lambda r: r.update(issued_at="yesterday"), "issued_at"),
    ("CancelActionPlan", lambda r: r.update(reason=None), "reason"),
    ("CancelActionPlan", lambda r: r.pop("reason"), "reason"),
    ("RegisterActionPlan", lambda r: r["audit"].update(created_at="now"), "created_at"),
    ("RegisterActionPlan", lambda r: r["actions"].append({**r["actions"][0], "uuid": 1}), "uuid"),
    ("ReportAbortResult", lambda r: r["fault"].update(exception=3), "exception"),
])
def test_a_record_that_does_not_fit_names_the_field(codec: AvroCodec, name: str, change: Any, field: str) -> None:
    record = to_record({
        "CancelActionPlan": f.cancel(PLAN),
        "RegisterActionPlan": f.register(PLAN, "ONGOING", [f.action(A[0])]),
        "ReportAbortResult": f.abort_failed(PLAN, A[0]),
    }[name])
    change(record)
    with pytest.raises(SerializationError) as raised:
        codec.encode(name, record)
    assert name in str(raised.value)
    assert field in str(raised.value)


def test_encoding_an_unknown_record_type_is_refused(codec: AvroCodec) -> None:
    with pytest.raises(SerializationError, match="NoSuchRecord"):
        codec.encode("NoSuchRecord", {})


# ---------------------------------------------------------------- schema evolution


def evolved_schemas(tmp_path: Path) -> Path:
    """A copy of avro/ where CancelActionPlan gained an optional ``ticket`` with a default: a compatible change."""
    directory = tmp_path / "avro-next"
    shutil.copytree(schema_dir(), directory, ignore=shutil.ignore_patterns("*.py", "__pycache__", "history"))
    path = directory / "watcher_es.CancelActionPlan.avsc"
    schema = json.loads(path.read_text())
    schema["fields"].append({"name": "ticket", "type": ["null", "string"], "default": None})
    schema["fields"].append({"name": "urgency", "type": "int", "default": 3})
    path.write_text(json.dumps(schema))
    return directory


def test_an_old_record_decodes_into_the_new_shape_once_its_writer_is_learned(tmp_path: Path) -> None:
    old = AvroCodec()
    new = AvroCodec(evolved_schemas(tmp_path))
    assert old.fingerprint_of("CancelActionPlan") != new.fingerprint_of("CancelActionPlan")
    command = f.cancel(PLAN, reason="maintenance")
    data = old.encode("CancelActionPlan", to_record(command))

    with pytest.raises(UnknownSchemaError, match=old.fingerprint_of("CancelActionPlan")):
        new.decode(data, "position 1")
    new.learn(old.current_schemas())
    name, record = new.decode(data, "position 1")
    assert name == "CancelActionPlan"
    assert record == {**to_record(command), "ticket": None, "urgency": 3}
    assert list(record) == new.field_names("CancelActionPlan")

    # Records of the new version still decode as they are, and unchanged types were never affected.
    fresh = new.encode("CancelActionPlan", {**to_record(command), "ticket": "CHG-1", "urgency": 1})
    assert new.decode(fresh)[1]["ticket"] == "CHG-1"
    assert new.fingerprint_of("Fault") == old.fingerprint_of("Fault")


def test_the_log_keeps_writer_schemas_so_a_fresh_codec_reads_old_records(tmp_path: Path) -> None:
    old = AvroCodec()
    command = f.cancel(PLAN, reason="maintenance")
    data = old.encode("CancelActionPlan", to_record(command))
    log = SqliteEventLog(tmp_path / "log.db")
    try:
        log.keep_schemas(old.current_schemas())
        log.keep_schemas(old.current_schemas())  # keeping them again is harmless
        kept = log.writer_schemas()
    finally:
        log.close()
    assert sorted(kept, key=lambda w: w.name) == old.current_schemas()

    reopened = SqliteEventLog(tmp_path / "log.db")
    try:
        new = AvroCodec(evolved_schemas(tmp_path))
        new.learn(reopened.writer_schemas())
        reopened.keep_schemas(new.current_schemas())
        assert len(reopened.writer_schemas()) == len(kept) + 1, "the new CancelActionPlan is kept beside the old one"
    finally:
        reopened.close()
    assert new.decode(data, "position 1")[1] == {**to_record(command), "ticket": None, "urgency": 3}


def test_learning_a_schema_for_a_record_type_no_longer_read_fails(codec: AvroCodec) -> None:
    gone = {"type": "record", "name": "Retired", "namespace": "watcher_es", "fields": [{"name": "x", "type": "long"}]}
    canonical = to_parsing_canonical_form(gone)
    learner = AvroCodec()
    with pytest.raises(SchemaError, match="Retired"):
        learner.learn([WriterSchema(fingerprint(canonical, "CRC-64-AVRO"), "Retired", canonical)])
    with pytest.raises(SchemaError, match="0123456789abcdef"):
        learner.learn([WriterSchema("0123456789abcdef", "CancelActionPlan", "{not json")])


def test_a_schema_folder_without_schemas_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SchemaError):
        AvroCodec(tmp_path)
