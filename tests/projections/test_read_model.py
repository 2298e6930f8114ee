"""The read model users query: plans and their actions as the log left them.

On Kafka queries read a read model kept current incrementally, complete on every `serve` and CLI.
Each `serve`'s model is a replicated view of every partition, so any instance answers for any
plan; a CLI away from `serve` keeps its own model at --db and catches it up from its stored
positions, reading only the tail after the first time; the audit trail and the deadline pass
read the model, not the topics.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from eventstore.codec import AvroCodec
from eventstore.config import Settings
from eventstore.kafka.appends import prepare_append
from eventstore.kafka.client import KafkaClient
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.io import Publisher
from eventstore.log import NewEvent
from projections.kafka.audit import AuditTrail
from projections.kafka.store import KafkaStore
from projections.read_model import ReadModel
from projections.sqlite.backend import EmbeddedBackend

from tests import factories as f
from tests.support.outcomes import handled
from tests.support.serve import Serve, cli_env, run_cli
from tests.support.waiting import wait_until


def model_of(db: Path) -> ReadModel:
    return ReadModel(Settings(db=db).paths.model, AvroCodec())


#: How long the read model may take to show what was sent (the first consumer-group joins included).
TIMEOUT_S = 90


def test_plans_sharing_an_action_uuid_keep_their_own_action_rows(service: EmbeddedBackend) -> None:
    shared = "10a47dd1-4874-4298-91cf-eff046dbdb8d"  # the spec's samples reuse uuids across objects
    first, second = f.register(actions=[f.action(shared)]), f.register(actions=[f.action(shared)])
    for command in (first, second, f.cancel(first.plan_uuid)):
        assert service.submit(command).outcome == "accepted"
    assert [a["state"] for a in service.model.actions(first.plan_uuid)] == ["CANCELLED"]
    assert [a["state"] for a in service.model.actions(second.plan_uuid)] == ["PENDING"]


def test_two_serves_each_answer_for_the_plans_of_every_partition(kafka: KafkaSettings, tmp_path: Path) -> None:
    a = Serve(cli_env(kafka, tmp_path / "a.db"), tmp_path / "a.log").start()
    b = Serve(cli_env(kafka, tmp_path / "b.db"), tmp_path / "b.log").start()
    try:
        client = KafkaClient(kafka, AvroCodec())
        plans = [str(uuid.uuid4()) for _ in range(9)]
        outcomes = handled(client, [f.register(p) for p in plans])
        assert set(outcomes.values()) == {"accepted"}, a.log() + b.log()
        client.close()
        for serve, db in ((a, tmp_path / "a.db"), (b, tmp_path / "b.db")):
            # The model the serve keeps, read as it is (no catch-up here): it has every plan.
            model = model_of(db)
            try:
                wait_until(lambda: len(model.plans()) == len(plans), TIMEOUT_S, lambda: f"every plan in a serve's model\n{serve.log()[-3000:]}")
                assert {r["uuid"] for r in model.plans()} == set(plans)
                assert len({s for s in model.positions() if s.startswith(f"{kafka.topics.events}/")}) > 1  # plans of several partitions
            finally:
                model.close()
            for plan in plans:
                status = run_cli(serve.env, "status", plan, "--json")
                assert status.returncode == 0, status.stderr
                assert json.loads(status.stdout)["plan"]["uuid"] == plan
    finally:
        a.stop()
        b.stop()


def test_a_cli_away_from_serve_catches_up_once_then_reads_only_the_tail(kafka: KafkaSettings, serve: Serve, tmp_path: Path) -> None:
    serve.start()
    client = KafkaClient(kafka, AvroCodec())
    first, second = f.cancellation_story(), f.cancellation_story(abort_fails=True)
    assert handled(client, first + second)
    settings = Settings(db=tmp_path / "client.db")

    store = KafkaStore(settings, kafka)
    try:
        row, actions = store.plan(first[0].plan_uuid)
        assert row["state"] == "CANCELLED" and len(actions) == 3
        assert store._feed is not None
        read_first = store._feed.consumed
        assert read_first >= len(first) + len(second)  # every append (and the notifications published so far)
    finally:
        store.close()

    def positions() -> dict[str, int]:
        model = model_of(settings.db)
        try:
            return AuditTrail(model.db, AvroCodec()).positions()
        finally:
            model.close()

    late = f.register()
    assert handled(client, [late]) == {late.command_id: "accepted"}
    client.close()
    before = positions()
    store = KafkaStore(settings, kafka)  # another CLI process on the same --db
    try:
        row, _ = store.plan(late.plan_uuid)
        assert row["state"] == "RECOMMENDED"
        assert store._feed is not None
        read, after = store._feed.consumed, positions()
        assert {r["uuid"] for r in store.plans(None)} == {first[0].plan_uuid, second[0].plan_uuid, late.plan_uuid}
    finally:
        store.close()
    # Only the tail, nothing from offset 0: the one append since on the events topic, and on the
    # notification topics whatever the translator published after the first query.
    assert read == sum(after[s] - before.get(s, 0) for s in after)
    assert sum(after[s] - before.get(s, 0) for s in after if s.startswith(f"{kafka.topics.events}/")) == 1


def test_a_deleted_model_is_rebuilt_and_answers_the_same(kafka: KafkaSettings, serve: Serve, tmp_path: Path) -> None:
    env = cli_env(kafka, tmp_path / "client.db")
    serve.start()
    demo = run_cli(env, "demo", "--json")
    assert demo.returncode == 0, demo.stderr + serve.log()
    plans = [json.loads(line)["uuid"] for line in run_cli(env, "plans", "--json").stdout.splitlines()]
    assert len(plans) == 2

    def answers() -> list[str]:
        out = [run_cli(env, "plans", "--json").stdout]
        for plan in plans:
            out.append(run_cli(env, "status", plan, "--json").stdout)
            out.append(run_cli(env, "audit", plan, "--json").stdout)
        return out

    def complete(story: str) -> bool:  # the translator publishes beside the handler: wait until it has
        return len([e for e in json.loads(story)["entries"] if e["kind"] == "notification"]) >= 3

    wait_until(lambda: all(complete(run_cli(env, "audit", p, "--json").stdout) for p in plans), TIMEOUT_S, "every plan's notifications", interval=0.2)
    before = answers()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{Settings(db=tmp_path / 'client.db').paths.model}{suffix}").unlink(missing_ok=True)
    assert answers() == before


def test_audit_reads_commands_outcomes_conflicts_and_notifications_from_the_model(kafka: KafkaSettings, serve: Serve, tmp_path: Path) -> None:
    serve.start()
    client = KafkaClient(kafka, AvroCodec())
    story = f.cancellation_story(abort_fails=True)
    plan = story[0].plan_uuid
    outcomes = handled(client, story)
    assert list(outcomes.values()) == ["accepted", "accepted", "accepted", "rejected"], serve.log()
    client.close()
    # A writer that lost the fence: an append at version 1, long after the plan moved on.
    codec = AvroCodec()
    body = codec.encode("ActionPlanCancelled", {"event_id": str(uuid.uuid4()), "command_id": "late", "plan_uuid": plan, "occurred_at": 1})
    append = prepare_append(
        codec, command_id="late", command_type="CancelActionPlan", plan_uuid=plan, expected_version=1, writer="paused-writer",
        appended_at=1, outcome="accepted", reason="", events=[NewEvent(str(uuid.uuid4()), "ActionPlanCancelled", 1, body)],
        previous_hash="",
    )
    publisher = Publisher(kafka)
    publisher.produce(kafka.topics.events, plan, append.value, None)
    publisher.flush()

    env = cli_env(kafka, tmp_path / "client.db")
    entries: list[dict[str, Any]] = []

    def told() -> bool:  # the cancellation's notifications: plan start, 3 action ones, plan error
        audited = run_cli(env, "audit", plan, "--json")
        assert audited.returncode == 0, audited.stderr
        entries[:] = json.loads(audited.stdout)["entries"]
        return len([e for e in entries if e["kind"] == "notification"]) >= 5 and any(e["kind"] == "conflict" for e in entries)

    wait_until(told, TIMEOUT_S, "every notification and the conflict in the audit", interval=0.2)
    commands = [e for e in entries if e["kind"] == "command"]
    assert [c["outcome"] for c in commands] == ["accepted", "accepted", "accepted", "rejected"]
    assert commands[1]["issued_by"] == "operator-" + plan[:8] and commands[1]["details"]["reason"] == f"maintenance of {plan[:8]}"
    assert "FAILED" in (commands[3]["outcome_reason"] or "")
    events = [e for e in entries if e["kind"] == "event"]
    assert [e["details"]["version"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "ActionPlanCancellationFailed"
    [conflict] = [e for e in entries if e["kind"] == "conflict"]
    assert conflict["details"]["writer"] == "paused-writer" and conflict["outcome"] == "skipped"
    notes = [e for e in entries if e["kind"] == "notification"]
    assert {n["type"] for n in notes} >= {"action_plan.cancel.start", "action_plan.cancel.error"}

    # All of it is in the model's audit trail at --db, where the CLI answered from.
    model = model_of(tmp_path / "client.db")
    try:
        trail = AuditTrail(model.db, codec)
        assert len(trail.plan_commands(plan)) == 4 and len(trail.conflicts(plan)) == 1
        assert {n.message_id for n in trail.notifications(plan)} == {n["id"] for n in notes}
    finally:
        model.close()


def test_enforce_deadlines_fails_an_overdue_plan_found_by_the_model_query(kafka: KafkaSettings, tmp_path: Path) -> None:
    # The handler alone: no read model in this serve, so no deadline pass but the CLI's.
    handler = Serve({**cli_env(kafka, tmp_path / "serve.db"), "WATCHER_ES_ABORT_TIMEOUT": "1"}, tmp_path / "serve.log", ("--only", "handler"))
    handler.start()
    try:
        client = KafkaClient(kafka, AvroCodec())
        running = f.action(state="ONGOING")
        plan = str(uuid.uuid4())
        outcomes = handled(client, [f.register(plan, "ONGOING", [running]), f.cancel(plan)])
        assert set(outcomes.values()) == {"accepted"}, handler.log()
        client.close()
        env = cli_env(kafka, tmp_path / "client.db")
        sent: list[dict[str, Any]] = []

        def enforced() -> bool:
            result = run_cli(env, "enforce-deadlines", "--json")
            assert result.returncode == 0, result.stderr
            sent.extend(json.loads(line) for line in result.stdout.splitlines())
            return bool(sent)

        wait_until(enforced, TIMEOUT_S, "the deadline pass to find the overdue plan", interval=0.2)
        assert {s["plan_uuid"] for s in sent} == {plan}
        wait_until(lambda: '"FAILED"' in run_cli(env, "status", plan, "--json").stdout, TIMEOUT_S, lambda: "the overdue plan failed\n" + handler.log(), interval=0.2)
        fault = json.loads(run_cli(env, "status", plan, "--json").stdout)["plan"]["fault"]
        assert "AbortTimeout" in json.dumps(fault)
    finally:
        handler.stop()



def test_partitions_that_appear_later_are_read_too(kafka: KafkaSettings, tmp_path: Path) -> None:
    """Tansu has no CreatePartitions, so the partitions that appear are a notification topic's, created late."""
    from dataclasses import replace

    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    from eventstore.kafka.records import oslo_envelope, record_headers
    from projections.kafka.read_model import KafkaReadModelPart

    late = replace(kafka, topics=replace(kafka.topics, notifications=f"late{uuid.uuid4().hex[:8]}"))
    model = model_of(tmp_path / "client.db")
    part = KafkaReadModelPart(late, None, model, AvroCodec(), park_to_topic=False, commit=False)
    try:
        assert part.catch_up() == 0  # no notification topics yet: the events topic alone
        admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})  # kept: the futures need their client alive
        topic = late.topics.notification_topic("INFO")
        admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(30)
        plan, message_id = str(uuid.uuid4()), str(uuid.uuid4())
        envelope = {
            "message_id": message_id, "event_type": "action_plan.cancel.start", "priority": "INFO", "publisher_id": "tests",
            "timestamp": "2026-11-29 05:00:00.000000", "payload": {"watcher_object.data": {"uuid": plan, "state": "CANCELLING"}},
        }
        headers = record_headers(
            type_="action_plan.cancel.start", id_=message_id, subject=plan, time_us=1, content_type="application/json",
            sequence=2, extra=(("watcher_es_event_id", str(uuid.uuid4())),),
        )
        publisher = Publisher(late)
        publisher.produce(topic, plan, oslo_envelope(envelope), headers)
        publisher.flush()
        trail = AuditTrail(model.db, AvroCodec())
        part.refresh_partitions()  # what `poll` does every REFRESH_S seconds
        wait_until(lambda: part.poll(0.1) >= 0 and bool(trail.notifications(plan)), TIMEOUT_S, "the new topic's partitions read", interval=0)
        assert {f"{topic}/0", f"{topic}/1"} <= set(part._at_end)
    finally:
        part.close()
        model.close()
