"""The auditor's questions answered from the topics alone."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eventstore.codec import AvroCodec
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.io import Publisher
from eventstore.kafka.appends import prepare_append
from eventstore.log import NewEvent
from projections.read_model import ReadModel

from tests.support.serve import Serve, cli_env, run_cli


def test_audit_and_re_emission_from_the_topics(kafka: KafkaSettings, serve: Serve, tmp_path: Path) -> None:
    env = cli_env(kafka, tmp_path / "client.db")
    serve.start()
    demo = run_cli(env, "demo", "--json")
    assert demo.returncode == 0, demo.stderr + serve.log()
    emitted = [json.loads(line) for line in demo.stdout.splitlines()]
    failed_plan = next(n["payload"]["watcher_object.data"]["uuid"] for n in emitted if n["event_type"] == "action_plan.cancel.error")

    audited = run_cli(env, "audit", failed_plan, "--json")
    assert audited.returncode == 0, audited.stderr
    story = json.loads(audited.stdout)
    commands = [e for e in story["entries"] if e["kind"] == "command"]
    cancel = next(c for c in commands if c["type"] == "CancelActionPlan")
    assert cancel["issued_by"] == "admin (project: admin)"
    assert cancel["details"]["reason"] == "capacity needed for a tenant burst"
    assert cancel["origin"].startswith("watcher-es demo@")
    assert all(c["outcome"] == "accepted" for c in commands)
    events = [e for e in story["entries"] if e["kind"] == "event"]
    assert [e["details"]["version"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "ActionPlanCancellationFailed"
    notified = {e["id"] for e in story["entries"] if e["kind"] == "notification"}
    of_plan = {n["message_id"] for n in emitted if failed_plan in json.dumps(n)}
    assert notified == of_plan

    again = run_cli(env, "notifications", "--replay", "--json")
    assert again.returncode == 0, again.stderr
    assert sorted(again.stdout.splitlines()) == sorted(json.dumps(n) for n in emitted)

    published = run_cli(env, "notifications", "--replay", "--publish", "--plan", failed_plan)
    assert published.returncode == 0, published.stderr
    delivered = [json.loads(line) for line in run_cli(env, "notifications", "--json", "--plan", failed_plan).stdout.splitlines()]
    by_id: dict[str, set[str]] = {}
    for n in delivered:
        by_id.setdefault(n["message_id"], set()).add(json.dumps(n, sort_keys=True))
    assert set(by_id) == of_plan
    assert all(len(contents) == 1 for contents in by_id.values())  # re-sent: same id, same content
    assert len(delivered) == 2 * len(of_plan)


def test_verify_checks_the_topic_chains_against_the_model_serve_keeps(kafka: KafkaSettings, serve: Serve, tmp_path: Path) -> None:
    env = cli_env(kafka, tmp_path / "client.db")
    serve.start()
    assert run_cli(env, "demo", "--json").returncode == 0, serve.log()
    at_serve = {**env, "WATCHER_ES_DB": serve.env["WATCHER_ES_DB"]}
    deadline = time.monotonic() + 60
    while True:  # the read model catches up asynchronously
        verified = run_cli(at_serve, "verify", "--json")
        report = json.loads(verified.stdout)
        if verified.returncode == 0 and report["model_position"] == report["log_position"]:
            break
        assert time.monotonic() < deadline, verified.stdout + verified.stderr
        time.sleep(1)
    assert report["verified"] is True and report["plans"] == 2

    # A forged event appended to a plan's stream: right type, right sequence number, wrong chain.
    row = json.loads(run_cli(at_serve, "plans", "--json").stdout.splitlines()[0])
    plan = row["uuid"]
    codec = AvroCodec()
    forged = codec.encode("ActionPlanCancelled", {"event_id": str(uuid.uuid4()), "command_id": "forged", "plan_uuid": plan, "occurred_at": 1})
    append = prepare_append(
        codec, command_id="forged", command_type="CancelActionPlan", plan_uuid=plan, expected_version=row["version"],
        writer="forger", appended_at=1, outcome="accepted", reason="",
        events=[NewEvent(str(uuid.uuid4()), "ActionPlanCancelled", 1, forged)], previous_hash="0" * 64,
    )
    publisher = Publisher(kafka)
    publisher.produce(kafka.topics.events, plan, append.value, append.headers)
    publisher.flush()
    failed = run_cli(at_serve, "verify", "--json")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    finding = json.loads(failed.stdout)
    assert finding["verified"] is False and finding["plan_uuid"] == plan


def wait_verified(env: dict[str, str], plans: int) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        verified = run_cli(env, "verify", "--json")
        report: dict[str, Any] = json.loads(verified.stdout)
        if verified.returncode == 0 and report["model_position"] == report["log_position"] and report["plans"] == plans:
            return report
        assert time.monotonic() < deadline, verified.stdout + verified.stderr
        time.sleep(1)


def test_replay_on_kafka_rebuilds_under_a_running_serve_and_builds_past_states(kafka: KafkaSettings, serve: Serve, tmp_path: Path) -> None:
    env = cli_env(kafka, tmp_path / "client.db")
    at_serve = {**env, "WATCHER_ES_DB": serve.env["WATCHER_ES_DB"]}
    serve.start()
    assert run_cli(env, "demo", "--json").returncode == 0, serve.log()
    wait_verified(at_serve, 2)
    between = datetime.now(UTC)
    time.sleep(1.1)

    rebuilt = run_cli(at_serve, "replay", "--json")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert json.loads(rebuilt.stdout)["events"] > 0
    # serve goes on projecting into the swapped-in model: no event applied twice, none skipped.
    assert run_cli(env, "demo", "--json").returncode == 0, serve.log()
    wait_verified(at_serve, 4)

    as_of = run_cli(at_serve, "replay", "--until", between.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "--json")
    assert as_of.returncode == 0, as_of.stderr
    past = ReadModel(json.loads(as_of.stdout)["path"], AvroCodec())
    assert len(past.plans()) == 2 and {p["state"] for p in past.plans()} == {"CANCELLED", "FAILED"}
    past.close()
    by_position = run_cli(at_serve, "replay", "--until", "12")
    assert by_position.returncode == 2 and "ISO 8601 time" in by_position.stderr
