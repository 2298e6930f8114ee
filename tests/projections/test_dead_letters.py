"""A consumer that meets a record it cannot use parks it with the reason and goes on.

Embedded: the read model and the outbox park an unusable event in their own files. Kafka: poison
records land in the dead-letter topic with where they came from and why, from the handler (on
the commands topic), the read model and the translator (on the events topic); the rest goes on.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from typer.testing import CliRunner

from projections.cli import app
from eventstore.codec import MARKER, AvroCodec
from eventstore.config import Settings
from eventstore.domain.messages import to_record
from eventstore.kafka.appends import prepare_append
from eventstore.kafka.client import KafkaClient
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.io import Publisher, TopicFollower
from eventstore.kafka.records import header_map
from eventstore.log import DeadLetterSink, NewEvent, ParkedRecord
from projections.dead_letters import ParkingLot, parked
from projections.sqlite.backend import EmbeddedBackend
from projections.translator import NotificationSink

from tests import factories as f
from tests.support.serve import Serve, cli_env, run_cli
from tests.support.waiting import wait_until


def test_a_corrupt_event_is_parked_by_both_consumers_and_the_rest_goes_on(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    service = EmbeddedBackend(Settings(db=db, publisher_id="infra-optim:tests"))
    broken, healthy = f.register(state="ONGOING", actions=[f.action(state="ONGOING")]), f.register(actions=[f.action()])
    service.handler.handle(broken)  # logged but not yet projected
    service.log.db.conn.execute("DROP TRIGGER events_append_only_update")  # someone with access to the file
    service.log.db.conn.execute("UPDATE events SET body = X'C301DEADBEEF' WHERE plan_uuid = ?", (broken.plan_uuid,))
    service.submit(f.cancel(broken.plan_uuid))  # decided from the handler's cache; its events cannot be projected
    service.submit(healthy)
    service.submit(f.cancel(healthy.plan_uuid))

    assert service.model.plan(healthy.plan_uuid)["state"] == "CANCELLED"  # type: ignore[index]
    assert service.model.plan(broken.plan_uuid) is None
    assert [n["event_type"] for _, n in service.outbox.read(plan_uuid=healthy.plan_uuid)] == [
        "action_plan.cancel.start", "action.cancel.start", "action.cancel.end", "action_plan.cancel.end",
    ]
    service.close()

    result = CliRunner().invoke(app, ["--db", str(db), "dlq", "--json"])
    assert result.exit_code == 0, result.output
    letters = [json.loads(line) for line in result.stdout.splitlines()]
    assert {letter["stage"] for letter in letters} == {"read-model", "translator"}
    assert all(letter["plan_uuid"] == broken.plan_uuid for letter in letters)
    first = [letter for letter in letters if letter["offset"] == 1]
    assert {letter["error"].rsplit(".", 1)[1] for letter in first} == {"CorruptRecordError"}
    later = [letter for letter in letters if letter["offset"] > 1]
    assert later and all("UnusableEventError" in letter["error"] for letter in later)


def test_every_consumer_goes_past_a_poison_event_and_an_unrelated_overdue_plan_is_still_failed(tmp_path: Path) -> None:
    """serve --once, enforce-deadlines, replay and re-emission all go on; verify names the event."""
    db = tmp_path / "w.db"
    service = EmbeddedBackend(Settings(db=db, publisher_id="infra-optim:tests", abort_timeout_us=1))
    broken = f.register(state="ONGOING", actions=[f.action(state="ONGOING")])
    overdue = f.register(state="ONGOING", actions=[f.action(state="ONGOING")])
    service.handler.handle(broken)
    service.log.db.conn.execute("DROP TRIGGER events_append_only_update")
    service.log.db.conn.execute("UPDATE events SET body = X'C3010123456789ABCDEF00' WHERE plan_uuid = ?", (broken.plan_uuid,))
    service.submit(overdue)
    service.submit(f.cancel(overdue.plan_uuid))  # its abort deadline passes at once
    service.close()

    runner = CliRunner(env={"WATCHER_ES_DB": None, "WATCHER_ES_BOOTSTRAP_SERVERS": None})

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, ["--db", str(db), "--publisher-id", "infra-optim:tests", *args])
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output
        return result.stdout

    run("serve", "--once")
    status = json.loads(run("status", overdue.plan_uuid, "--json"))
    assert status["plan"]["state"] == "FAILED", "the deadline pass failed the overdue abort"
    run("enforce-deadlines")
    assert "rebuilt the read model" in run("replay")
    kinds = [json.loads(line)["event_type"] for line in run("notifications", "--replay", "--json").splitlines()]
    assert kinds.count("action_plan.cancel.error") == 1
    finding = json.loads(run("verify", "--json", code=1))
    assert (finding["plan_uuid"], finding["position"]) == (broken.plan_uuid, 1), "verify names the event"
    letters = [json.loads(line) for line in run("dlq", "--json").splitlines()]
    assert letters and all(letter["plan_uuid"] == broken.plan_uuid for letter in letters)


def test_the_embedded_sinks_are_the_ports_consumers_are_written_against(tmp_path: Path) -> None:
    """mypy checks the assignments; the rows say where a record parked by the port lands."""
    with EmbeddedBackend(Settings(db=tmp_path / "w.db")) as service:
        lot: DeadLetterSink = ParkingLot(service.model.db)
        outbox: NotificationSink = service.outbox
        outbox.send([])
        lot.park(ParkedRecord("log", 7, "plan-1", b"\x00"), "read-model", ValueError("no such field"))
        assert [(r["consumer"], r["source"], r["position"], r["plan_uuid"], r["error"], r["message"]) for r in parked(service.model.db)] == [
            ("read-model", "log", 7, "plan-1", "builtins.ValueError", "no such field"),
        ]


def dead_letters(kafka: KafkaSettings, want: int, timeout: float = 60) -> list[dict[str, str]]:
    """The first ``want`` records of the dead-letter topic (their headers, and the value in hex)."""
    follower = TopicFollower(kafka, kafka.topics.dead_letters)
    found: list[dict[str, str]] = []

    def read() -> bool:
        found.extend({**header_map(m.headers()), "value": (m.value() or b"").hex()} for m in follower.poll(0.2))
        return len(found) >= want

    try:
        wait_until(read, timeout, lambda: f"{want} dead letters ({len(found)} so far)", interval=0)
    finally:
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
    raw.produce(kafka.topics.events, broken, append.value, None)
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
