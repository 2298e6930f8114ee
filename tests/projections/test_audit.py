"""audit PLAN: the demo plan's whole story, commands with who/where/when/why, every event and
every notification with its message_id, rejected commands with their reasons; on Kafka answered
from the topics alone, with the re-emission of a plan's notifications."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eventstore.kafka.config import KafkaSettings
from projections.cli import app
from projections.demo import OPERATOR, DemoReport, run_demo
from projections.sqlite.demo import EmbeddedDemo
from projections.sqlite.backend import EmbeddedBackend
from projections.audit import PlanStory, plan_story
from projections.exceptions import NoSuchPlanError
from projections.sqlite.notifications import stored_notifications

from tests import factories as f
from tests.support.embedded import open_store
from tests.support.serve import Serve, cli_env, run_cli


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[EmbeddedBackend, DemoReport]]:
    service = open_store(tmp_path / "w.db")
    yield service, run_demo(EmbeddedDemo(service))
    service.close()


def story_of(service: EmbeddedBackend, plan: str) -> PlanStory:
    return plan_story(plan, service.log, service.log, stored_notifications(service.outbox, plan), service.codec)


def test_the_demo_plans_story_has_the_cancel_every_event_and_every_notification(demo: tuple[EmbeddedBackend, DemoReport]) -> None:
    service, report = demo
    plan, _ = report.plans[0]
    story = story_of(service, plan)

    cancels = [e for e in story.of_kind("command") if e.type == "CancelActionPlan"]
    assert len(cancels) == 1
    cancel = cancels[0]
    assert cancel.issued_by == OPERATOR and cancel.details["reason"] == "maintenance window closed"
    assert (cancel.origin or "").startswith("watcher-es demo@") and cancel.outcome == "accepted" and cancel.at > 0

    stream = service.log.read_plan(plan)
    assert [(e.id, e.position, e.type) for e in story.of_kind("event")] == [(s.event_id, s.position, s.event_type) for s in stream]
    assert [e.details["hash"] for e in story.of_kind("event")] == [s.hash for s in stream]

    emitted = stored_notifications(service.outbox, plan)
    demo_ids = {n["message_id"] for n in report.notifications if plan in json.dumps(n["payload"])}
    assert [(e.id, e.type, e.details["event_id"]) for e in story.of_kind("notification")] == [(n.message_id, n.event_type, n.event_id) for n in emitted]
    assert {e.id for e in story.of_kind("notification")} == demo_ids and len(demo_ids) == 10  # plan start/end, 2 aborted (start/end), 2 pending (start/end)

    # commands, their events and the notifications they caused, in the order they happened
    kinds = [e.kind for e in story.entries]
    at_cancel = story.entries.index(cancel)
    assert kinds[at_cancel + 1 : at_cancel + 3] == ["event", "notification"]
    assert story.entries[at_cancel + 1].type == "ActionPlanCancellationStarted"
    assert story.entries[at_cancel + 2].type == "action_plan.cancel.start"
    positions = [e.position for e in story.entries if e.position is not None]
    assert positions == sorted(positions)
    for i, entry in enumerate(story.entries):
        if entry.kind == "notification":
            assert story.entries[i - 1].kind in ("event", "notification")
            assert entry.command_id == cancel.command_id or entry.position > cancel.position  # type: ignore[operator]


def test_a_rejected_command_is_in_the_story_with_its_reason(demo: tuple[EmbeddedBackend, DemoReport]) -> None:
    service, report = demo
    plan, _ = report.plans[0]
    result = service.submit(f.cancel(plan, by="late-operator", reason="too late"))
    assert result.outcome == "rejected"

    story = story_of(service, plan)

    last = story.entries[-1]
    assert (last.kind, last.id, last.outcome, last.position) == ("command", result.command_id, "rejected", None)
    assert last.issued_by == "late-operator" and last.details["reason"] == "too late"
    assert last.outcome_reason is not None and "cannot be cancelled" in last.outcome_reason


def test_a_rejected_command_sits_where_it_was_handled(tmp_path: Path) -> None:
    service = open_store(tmp_path / "w.db")
    try:
        stories = [f.cancellation_story(), f.cancellation_story()]
        plan = stories[0][0].plan_uuid
        for command in f.interleaved(stories):
            service.submit(command)
        story = story_of(service, plan)
    finally:
        service.close()
    commands = story.of_kind("command")
    assert [c.outcome for c in commands] == ["accepted", "accepted", "accepted", "rejected"]
    assert story.entries[-1] == commands[-1] and commands[-1].details["reason"] == "once more"


def test_an_unknown_plan_is_an_error(demo: tuple[EmbeddedBackend, DemoReport]) -> None:
    service, _ = demo
    with pytest.raises(NoSuchPlanError):
        story_of(service, "00000000-0000-4000-8000-000000000000")


def test_cli_audit_as_table_and_as_json(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    runner = CliRunner()
    assert runner.invoke(app, ["--db", str(db), "demo", "--json"]).exit_code == 0
    plans = [json.loads(line)["uuid"] for line in runner.invoke(app, ["--db", str(db), "plans", "--json"]).stdout.splitlines()]

    result = runner.invoke(app, ["--db", str(db), "audit", plans[0], "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["plan_uuid"] == plans[0]
    kinds = [e["kind"] for e in document["entries"]]
    assert {"command", "event", "notification"} == set(kinds)
    assert all(e["time"].endswith("Z") for e in document["entries"])

    result = runner.invoke(app, ["--db", str(db), "audit", plans[0]], env={"COLUMNS": "250"})  # a wide terminal: no cell is cut short
    assert result.exit_code == 0, result.output
    assert "CancelActionPlan" in result.stdout and "action_plan.cancel.start" in result.stdout
    assert f"{OPERATOR} @ watcher-es demo@" in result.stdout and "reason=maintenance window closed" in result.stdout
    assert f"{kinds.count('notification')} notifications" in result.stdout

    result = runner.invoke(app, ["--db", str(db), "audit", "00000000-0000-4000-8000-000000000000"])
    assert result.exit_code == 1 and "no command and no event" in " ".join(result.stderr.split())


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
