"""Poison records land in the dead-letter topic with where they came from and why; the rest goes on."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from eventstore.codec import MARKER, AvroCodec
from eventstore.domain.messages import to_record
from eventstore.kafka.client import KafkaClient
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.io import Publisher, TopicFollower
from eventstore.kafka.appends import prepare_append
from eventstore.kafka.records import header_map
from eventstore.log import NewEvent

from .. import factories as f
from tests.support.serve import Serve, cli_env, run_cli


def dead_letters(kafka: KafkaSettings, want: int, timeout: float = 60) -> list[dict[str, str]]:
    follower = TopicFollower(kafka, kafka.topics.dead_letters)
    found: list[dict[str, str]] = []
    deadline = time.monotonic() + timeout
    while len(found) < want and time.monotonic() < deadline:
        found.extend({**header_map(m.headers()), "value": (m.value() or b"").hex()} for m in follower.poll(0.2))
    follower.close()
    return found


def test_poison_records_are_parked_with_their_reason_and_good_ones_processed(kafka: KafkaSettings, serve: Serve, tmp_path: Path) -> None:
    codec = AvroCodec()
    client = KafkaClient(kafka, codec)
    raw = Publisher(kafka)
    commands = kafka.topics.commands
    before, after = f.register(), f.register()
    invalid = f.cancel("not-a-uuid")
    unknown = MARKER + bytes.fromhex("0123456789abcdef") + b"\x00\x00"
    follower = client.follow_outcomes(time.time_ns() // 1_000_000 - 5000)

    client.send(before)
    raw.produce(commands, before.plan_uuid, b"\xde\xad\xbe\xef not avro", [])
    raw.produce(commands, before.plan_uuid, unknown, [])
    raw.produce(commands, "not-a-uuid", codec.encode("CancelActionPlan", to_record(invalid)), [])
    # On the events topic: a record that is not an append, and an append whose event's body is cut short.
    raw.produce(kafka.topics.events, before.plan_uuid, b"junk", [])
    broken = str(uuid.uuid4())
    body = codec.encode("ActionPlanCancelled", {"event_id": "e", "command_id": "c", "plan_uuid": broken, "occurred_at": 1})
    append = prepare_append(
        codec, command_id="c", command_type="CancelActionPlan", plan_uuid=broken, expected_version=0, writer="tests",
        appended_at=1, outcome="accepted", reason="", events=[NewEvent("e", "ActionPlanCancelled", 1, body[:-3])], previous_hash="",
    )
    raw.produce(kafka.topics.events, broken, append.value, append.headers)
    raw.flush()
    client.send(after)

    serve.start()
    assert client.wait_outcome(before.command_id, follower, 120).outcome == "accepted"
    assert client.wait_outcome(after.command_id, follower, 60).outcome == "accepted"

    # 3 commands parked by the handler; 2 events parked by the read model and by the translator each.
    parked = dead_letters(kafka, 7)
    by_stage: dict[str, list[dict[str, str]]] = {}
    for letter in parked:
        by_stage.setdefault(letter["__connect.errors.stage"], []).append(letter)
    assert sorted(by_stage) == ["handler", "read-model", "translator"], parked
    handler = {letter["__connect.errors.exception.class.name"].rsplit(".", 1)[1]: letter for letter in by_stage["handler"]}
    assert set(handler) == {"CorruptRecordError", "UnknownSchemaError", "CommandValidationError"}
    assert "0123456789abcdef" in handler["UnknownSchemaError"]["__connect.errors.exception.message"]
    assert "plan_uuid" in handler["CommandValidationError"]["__connect.errors.exception.message"]
    for letter in parked:
        assert letter["__connect.errors.topic"] in (commands, kafka.topics.events)
        assert int(letter["__connect.errors.offset"]) >= 0
        assert letter["__connect.errors.partition"].isdigit()
    assert len(by_stage["read-model"]) == len(by_stage["translator"]) == 2

    # The CLI lists them.
    listed = run_cli(cli_env(kafka, tmp_path / "client.db"), "dlq", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {r["stage"] for r in rows} == {"handler", "read-model", "translator"}
    follower.close()
    client.close()
