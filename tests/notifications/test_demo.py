"""``watcher-es demo``: the whole product once, checked the way a notification consumer sees it,
on the embedded store and through a real broker with `serve` running as its own process."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from eventstore.codec import AvroCodec
from eventstore.kafka.config import KafkaSettings
from projections.cli import app
from eventstore.sqlite.log import SqliteEventLog
from projections.sqlite.notifications import NotificationOutbox
from projections.tracking import catch_up
from projections.translator import Translator

from tests.support.serve import Serve, cli_env, run_cli

PUBLISHER = "infra-optim:demo-test"
SIX_KINDS = {
    "action_plan.cancel.start", "action_plan.cancel.end", "action_plan.cancel.error",
    "action.cancel.start", "action.cancel.end", "action.cancel.error",
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo") / "x.db"


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner(env={"WATCHER_ES_BOOTSTRAP_SERVERS": None, "WATCHER_ES_DB": None, "NO_COLOR": "1", "COLUMNS": "250"})


@pytest.fixture(scope="module")
def demo_stdout(runner: CliRunner, store: Path) -> str:
    result = runner.invoke(app, ["--db", str(store), "--publisher-id", PUBLISHER, "demo", "--json"])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def notes(demo_stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in demo_stdout.splitlines()]


def plan_of(note: dict[str, Any]) -> str:
    data = note["payload"]["watcher_object.data"]
    if note["event_type"].startswith("action_plan."):
        return str(data["uuid"])
    return str(data["action_plan"]["watcher_object.data"]["uuid"])


def by_plan(notes: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for note in notes:
        grouped[plan_of(note)].append(note)
    return grouped


def test_stdout_is_only_json_lines(demo_stdout: str) -> None:
    lines = demo_stdout.splitlines()
    assert lines, "the demo emitted nothing"
    assert demo_stdout.endswith("\n")
    for line in lines:
        assert isinstance(json.loads(line), dict), line


def test_every_kind_of_notification_appears(notes: list[dict[str, Any]]) -> None:
    assert {n["event_type"] for n in notes} == SIX_KINDS
    assert {n["publisher_id"] for n in notes} == {PUBLISHER}
    for n in notes:
        assert n["priority"] == ("ERROR" if n["event_type"].endswith(".error") else "INFO")


def test_each_plan_is_bracketed(notes: list[dict[str, Any]]) -> None:
    plans = list(by_plan(notes).items())
    assert len(plans) == 2
    for (uuid, mine), ending in zip(plans, ("action_plan.cancel.end", "action_plan.cancel.error"), strict=True):
        kinds = [n["event_type"] for n in mine]
        assert kinds[0] == "action_plan.cancel.start", uuid
        assert kinds[-1] == ending, uuid
        assert all(k.startswith("action.") for k in kinds[1:-1]), kinds
        assert kinds[1:-1], "the actions' notifications come between the plan's start and end"
    (_, first), (_, second) = plans
    assert "action.cancel.error" not in [n["event_type"] for n in first]
    assert [n["event_type"] for n in second].count("action.cancel.error") == 1


def test_action_notifications_follow_each_action(notes: list[dict[str, Any]]) -> None:
    """Every action cancelled starts before it ends; an abort error is the end of its action."""
    seen: dict[str, list[str]] = defaultdict(list)
    for n in notes:
        if n["event_type"].startswith("action."):
            seen[n["payload"]["watcher_object.data"]["uuid"]].append(n["event_type"].rsplit(".", 1)[1])
    assert seen and all(kinds in (["start", "end"], ["start", "error"]) for kinds in seen.values()), seen


def test_the_succeeded_action_emits_nothing(runner: CliRunner, store: Path, notes: list[dict[str, Any]]) -> None:
    notified = {n["payload"]["watcher_object.data"]["uuid"] for n in notes if n["event_type"].startswith("action.")}
    for plan_uuid in by_plan(notes):
        result = runner.invoke(app, ["--db", str(store), "status", plan_uuid, "--json"])
        assert result.exit_code == 0, result.output
        actions = json.loads(result.stdout)["actions"]
        succeeded = {a["uuid"] for a in actions if a["state"] == "SUCCEEDED"}
        assert succeeded, "the demo runs one action to completion in each plan"
        assert not succeeded & notified
        assert {a["uuid"] for a in actions if a["state"] != "SUCCEEDED"} <= notified


def test_message_ids_are_unique(notes: list[dict[str, Any]]) -> None:
    ids = [n["message_id"] for n in notes]
    assert len(set(ids)) == len(ids)


def test_translating_the_log_again_gives_identical_envelopes(store: Path, notes: list[dict[str, Any]], tmp_path: Path) -> None:
    log = SqliteEventLog(store)
    codec = AvroCodec()
    codec.learn(log.writer_schemas())
    outbox = NotificationOutbox(tmp_path / "again.notifications.db", Translator(codec, log, PUBLISHER))
    try:
        catch_up(log, outbox, batch_size=5)
        again = [envelope for _, envelope in outbox.iterate()]
    finally:
        outbox.close()
        log.close()
    assert again == notes
    assert [json.dumps(n) for n in again] == [json.dumps(n) for n in notes], "byte-identical, key order included"


def test_the_human_demo_mentions_every_kind(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["--db", str(tmp_path / "human.db"), "demo"])
    assert result.exit_code == 0, result.output
    for kind in SIX_KINDS:
        assert kind in result.stdout, kind


def test_demo_cancels_both_plans_and_all_six_kinds_come_back_from_the_topics(kafka: KafkaSettings, serve: Serve, tmp_path: Path) -> None:
    serve.start()
    result = run_cli(cli_env(kafka, tmp_path / "client.db"), "demo", "--json")
    assert result.returncode == 0, result.stderr + serve.log()
    notes = [json.loads(line) for line in result.stdout.splitlines()]
    assert {n["event_type"] for n in notes} == SIX_KINDS
    plans = list(dict.fromkeys(plan_of(n) for n in notes))
    assert len(plans) == 2
    for plan, last in zip(plans, ("action_plan.cancel.end", "action_plan.cancel.error"), strict=True):
        kinds = [n["event_type"] for n in notes if plan_of(n) == plan]
        assert kinds[0] == "action_plan.cancel.start"
        assert kinds[-1] == last
        assert all(k.startswith("action.") for k in kinds[1:-1])
    assert len({n["message_id"] for n in notes}) == len(notes)
    assert all(n["publisher_id"] == "infra-optim:tests" for n in notes)
