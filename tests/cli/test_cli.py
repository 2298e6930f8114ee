"""The ``watcher-es`` CLI through CliRunner on a temp store: exit codes, outputs, and errors as one line."""

from __future__ import annotations

import functools
import json
import sqlite3
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from projections.cli import app

from tests.support.plan_documents import A, OTHER, PLAN, plan_document, write_plan
from tests.support.waiting import wait_until

ENVELOPE_KEYS = {"event_type", "priority", "publisher_id", "message_id", "timestamp", "payload"}


@pytest.fixture
def runner() -> CliRunner:
    """No WATCHER_ES_* or Kafka settings leak in from the environment; wide, plain output."""
    isolated: dict[str, str | None] = {
        name: None for name in (
            "WATCHER_ES_DB", "WATCHER_ES_PUBLISHER_ID", "WATCHER_ES_NOTIFICATION_LEVEL", "WATCHER_ES_ABORT_TIMEOUT",
            "WATCHER_ES_BOOTSTRAP_SERVERS", "WATCHER_ES_KAFKA_CONFIG", "WATCHER_ES_TOPIC_PREFIX",
            "WATCHER_ES_NOTIFICATION_TOPIC", "WATCHER_ES_GROUP_PREFIX", "WATCHER_ES_PAYLOAD_VERSION", "OS_USERNAME",
        )
    }
    return CliRunner(env={**isolated, "NO_COLOR": "1", "COLUMNS": "250", "TERM": "dumb"})


class Cli:
    def __init__(self, runner: CliRunner, db: Path, options: tuple[str, ...] = ()) -> None:
        self.runner, self.db, self.options = runner, db, options

    def __call__(self, *args: str, code: int = 0, options: tuple[str, ...] = ()) -> Result:
        result = self.runner.invoke(app, ["--db", str(self.db), "--publisher-id", "infra-optim:test", *self.options, *options, *args])
        assert "Traceback" not in result.output, result.output
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        assert result.exit_code == code, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
        return result

    def json(self, *args: str, options: tuple[str, ...] = ()) -> Any:
        return json.loads(self(*args, "--json", options=options).stdout)

    def lines(self, *args: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self(*args, "--json").stdout.splitlines()]


@pytest.fixture
def cli(runner: CliRunner, tmp_path: Path) -> Cli:
    return Cli(runner, tmp_path / "x.db")


def running_plan(cli: Cli, tmp_path: Path, plan: str = PLAN) -> None:
    """A plan ONGOING with action 0 done, actions 1 and 2 running, action 3 pending."""
    cli("register", write_plan(tmp_path, plan_document(plan, ("PENDING",) * 4), f"{plan}.json"))
    cli("report-progress", plan, "ongoing")
    for action, state in ((A[0], "ONGOING"), (A[0], "SUCCEEDED"), (A[1], "ONGOING"), (A[2], "ONGOING")):
        cli("report-progress", plan, state, "--action", action)


def nothing_registered(cli: Cli) -> bool:
    """No log at all (a read command never creates one), or one without plans."""
    if not cli.db.exists():
        return "no event log" in cli("plans", code=1).stderr and not cli.db.exists()
    return cli.lines("plans") == []


def action_states(status: dict[str, Any]) -> list[str]:
    return [a["state"] for a in status["actions"]]


# ---------------------------------------------------------------- the happy paths


def test_register_and_status(cli: Cli, tmp_path: Path) -> None:
    result = cli("register", write_plan(tmp_path, plan_document()))
    assert "accepted" in result.stdout and PLAN in result.stdout
    status = cli.json("status", PLAN)
    assert status["plan"]["uuid"] == PLAN and status["plan"]["state"] == "RECOMMENDED"
    assert status["plan"]["created_at"] == "2016-10-18T09:52:05Z"
    assert [a["uuid"] for a in status["actions"]] == A[:3]
    assert status["actions"][0]["input_parameters"] == {"migration_type": "live", "resource_id": "vm-0"}
    human = cli("status", PLAN)
    assert PLAN in human.stdout and "RECOMMENDED" in human.stdout


def test_register_json_outcome(cli: Cli, tmp_path: Path) -> None:
    outcome = cli.json("register", write_plan(tmp_path, plan_document()), "--by", "decision-engine-1")
    assert (outcome["outcome"], outcome["plan_uuid"], outcome["events"], outcome["duplicate"]) == (
        "accepted", PLAN, ["ActionPlanRegistered"], False,
    )


def test_register_takes_watcher_17_objects_and_keeps_their_fields(cli: Cli, tmp_path: Path) -> None:
    document = plan_document()
    document["status_message"] = "recommended by the nightly audit"
    document["global_efficacy"] = {"name": "released_nodes_ratio", "description": "", "unit": "%", "value": 40.0}
    document["audit"].update(name="nightly", auto_trigger=True, next_run_time="2016-10-19T09:52:05Z", interval=3600, audit_type="CONTINUOUS")
    document["actions"][0]["status_message"] = "queued"
    cli("register", write_plan(tmp_path, document))
    cli("report-progress", PLAN, "PENDING", "--status-message", "approved by admin")
    cli("cancel", PLAN, "--reason", "no longer needed", options=("--payload-version", "latest"))  # it emits them
    [start, *_] = cli.lines("notifications")
    data = start["payload"]["watcher_object.data"]
    audit = data["audit"]["watcher_object.data"]
    assert (audit["name"], audit["auto_trigger"], audit["next_run_time"], audit["interval"]) == ("nightly", True, "2016-10-19T09:52:05Z", "3600")
    assert data["status_message"] == "approved by admin"
    assert data["global_efficacy"] == [document["global_efficacy"]]


def test_report_progress(cli: Cli, tmp_path: Path) -> None:
    running_plan(cli, tmp_path)
    status = cli.json("status", PLAN)
    assert status["plan"]["state"] == "ONGOING"
    assert action_states(status) == ["SUCCEEDED", "ONGOING", "ONGOING", "PENDING"]
    same = cli.json("report-progress", PLAN, "ONGOING")
    assert (same["outcome"], same["events"]) == ("unchanged", [])


def test_cancel_an_ongoing_plan_then_report_the_aborts(cli: Cli, tmp_path: Path) -> None:
    running_plan(cli, tmp_path)
    result = cli.json("cancel", PLAN, "--reason", "maintenance window closed", "--by", "operator-7")
    assert result["outcome"] == "accepted"
    assert result["events"] == [
        "ActionPlanCancellationStarted", "ActionCancellationStarted", "ActionCancellationStarted",
        "ActionCancellationStarted", "ActionCancelled",
    ]
    status = cli.json("status", PLAN)
    assert status["plan"]["state"] == "CANCELLING"
    assert (status["plan"]["cancel_requested_by"], status["plan"]["cancel_reason"]) == ("operator-7", "maintenance window closed")
    assert action_states(status) == ["SUCCEEDED", "CANCELLING", "CANCELLING", "CANCELLED"]

    cli("report-abort", PLAN, A[1], "--succeeded")
    failed = cli.json(
        "report-abort", PLAN, A[2], "--failed", "--exception", "ActionExecutionFailure",
        "--message", "cannot abort a live migration in switch-over", "--module", "watcher.applier.actions.migration",
        "--function", "abort",
    )
    assert failed["events"] == ["ActionCancellationFailed", "ActionPlanCancellationFailed"]
    status = cli.json("status", PLAN)
    fault = {
        "exception": "ActionExecutionFailure", "exception_message": "cannot abort a live migration in switch-over",
        "module_name": "watcher.applier.actions.migration", "function_name": "abort",
    }
    assert status["plan"]["state"] == "FAILED" and status["plan"]["fault"] == fault
    assert action_states(status) == ["SUCCEEDED", "CANCELLED", "FAILED", "CANCELLED"]
    assert status["actions"][2]["fault"] == fault


def test_cancel_a_recommended_plan_is_direct_and_bracketed(cli: Cli, tmp_path: Path) -> None:
    cli("register", write_plan(tmp_path, plan_document()))
    result = cli("cancel", PLAN, "--reason", "not wanted", "--by", "admin")
    assert "accepted" in result.stdout
    assert cli.json("status", PLAN)["plan"]["state"] == "CANCELLED"
    kinds = [n["event_type"] for n in cli.lines("notifications")]
    assert kinds == ["action_plan.cancel.start", *["action.cancel.start", "action.cancel.end"] * 3, "action_plan.cancel.end"]


def test_notifications_json_gives_full_envelopes_one_per_line(cli: Cli, tmp_path: Path) -> None:
    running_plan(cli, tmp_path)
    cli("cancel", PLAN, "--reason", "r")
    cli("report-abort", PLAN, A[1])
    cli("report-abort", PLAN, A[2], "--failed", "--exception", "WatcherException", "--message", "TEST")
    raw = cli("notifications", "--json").stdout
    lines = raw.splitlines()
    notes = [json.loads(line) for line in lines]
    assert all(set(n) == ENVELOPE_KEYS for n in notes)
    assert [n["event_type"] for n in notes] == [
        "action_plan.cancel.start", "action.cancel.start", "action.cancel.start", "action.cancel.start",
        "action.cancel.end", "action.cancel.end", "action.cancel.error", "action_plan.cancel.error",
    ]
    assert {n["publisher_id"] for n in notes} == {"infra-optim:test"}
    assert [n["priority"] for n in notes][-2:] == ["ERROR", "ERROR"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", n["timestamp"]) for n in notes)
    error = notes[-1]["payload"]["watcher_object.data"]
    assert error["fault"]["watcher_object.data"]["exception"] == "WatcherException"
    # --plan filters, --after skips, and a second read gives the same bytes.
    assert cli.lines("notifications", "--plan", OTHER) == []
    assert cli.lines("notifications", "--after", "6") == notes[6:]
    assert cli("notifications", "--json").stdout == raw
    table = cli("notifications")
    assert "action_plan.cancel.error" in table.stdout


ALL_KINDS = {"action_plan.cancel.start", "action.cancel.start", "action.cancel.end", "action.cancel.error", "action_plan.cancel.error"}


@pytest.mark.parametrize(("level", "kinds"), [
    ("debug", ALL_KINDS),
    ("WARNING", {"action.cancel.error", "action_plan.cancel.error"}),
    ("critical", set()),
    ("", set()),
])
def test_notification_level_filters_by_priority(runner: CliRunner, tmp_path: Path, level: str, kinds: set[str]) -> None:
    cli = Cli(runner, tmp_path / "x.db", ("--notification-level", level))
    cli("register", write_plan(tmp_path, plan_document(state="ONGOING", action_states=("ONGOING", "ONGOING"))))
    cli("cancel", PLAN, "--reason", "r")
    cli("report-abort", PLAN, A[0])
    cli("report-abort", PLAN, A[1], "--failed", "--exception", "WatcherException")
    assert {n["event_type"] for n in cli.lines("notifications")} == kinds


def test_plans(cli: Cli, tmp_path: Path) -> None:
    running_plan(cli, tmp_path, PLAN)
    cli("register", write_plan(tmp_path, plan_document(OTHER), "other.json"))
    cli("cancel", OTHER, "--reason", "r")
    rows = cli.lines("plans")
    assert {(r["uuid"], r["state"], r["action_count"]) for r in rows} == {(PLAN, "ONGOING", 4), (OTHER, "CANCELLED", 3)}
    assert [r["uuid"] for r in cli.lines("plans", "--state", "cancelled")] == [OTHER]
    human = cli("plans")
    assert PLAN in human.stdout and OTHER in human.stdout


def test_enforce_deadlines(cli: Cli, tmp_path: Path) -> None:
    running_plan(cli, tmp_path)
    assert "no abort is past its deadline" in cli("enforce-deadlines").stdout
    cli("cancel", PLAN, "--reason", "r", options=("--abort-timeout", "0.001"))
    results = wait_until(lambda: cli.lines("enforce-deadlines"), 10, "the pass to find the abort past its 1 ms deadline")
    assert [(r["plan_uuid"], r["outcome"]) for r in results] == [(PLAN, "accepted")]
    assert results[0]["events"] == ["ActionCancellationFailed", "ActionCancellationFailed", "ActionPlanCancellationFailed"]
    status = cli.json("status", PLAN)
    assert status["plan"]["state"] == "FAILED"
    assert status["plan"]["fault"]["exception"] == "AbortTimeout"
    assert action_states(status) == ["SUCCEEDED", "FAILED", "FAILED", "CANCELLED"]
    assert cli.lines("enforce-deadlines") == [], "an ended cancellation is not enforced again"


def test_the_same_command_id_is_handled_once(cli: Cli, tmp_path: Path) -> None:
    cli("register", write_plan(tmp_path, plan_document(state="PENDING")))
    first = cli.json("cancel", PLAN, "--reason", "r", "--command-id", "op-42")
    again = cli.json("cancel", PLAN, "--reason", "r", "--command-id", "op-42")
    assert (first["duplicate"], again["duplicate"]) == (False, True)
    assert again["events"] == [] and again["outcome"] == "accepted"
    assert "already handled" in cli("cancel", PLAN, "--reason", "r", "--command-id", "op-42").stdout


# ---------------------------------------------------------------- refusals


def test_a_rejected_cancel_exits_1_with_the_reason(cli: Cli, tmp_path: Path) -> None:
    cli("register", write_plan(tmp_path, plan_document(state="PENDING")))
    cli("cancel", PLAN, "--reason", "r")
    result = cli("cancel", PLAN, "--reason", "again", code=1)
    assert f"action plan {PLAN} is CANCELLED and cannot be cancelled" in result.stderr
    assert result.stdout == ""
    unknown = cli("cancel", OTHER, "--reason", "r", code=1)
    assert f"action plan {OTHER} is not registered" in unknown.stderr
    as_json = cli("cancel", PLAN, "--reason", "again", "--json", code=1)
    assert json.loads(as_json.stdout)["outcome"] == "rejected"


def test_other_rejections_exit_1(cli: Cli, tmp_path: Path) -> None:
    running_plan(cli, tmp_path)
    assert f"action {A[1]} is ONGOING, not CANCELLING" in cli("report-abort", PLAN, A[1], code=1).stderr
    assert "cannot go from ONGOING to PENDING" in cli("report-progress", PLAN, "PENDING", code=1).stderr
    assert "is already registered" in cli("register", write_plan(tmp_path, plan_document(), "again.json"), code=1).stderr
    assert "not registered" in cli("status", OTHER, code=1).stderr


@pytest.mark.parametrize(("args", "field"), [
    (("cancel", "not-a-uuid", "--reason", "r"), "plan_uuid"),
    (("report-progress", PLAN, "BOGUS"), "state"),
    (("report-progress", PLAN, "ONGOING", "--action", "nope"), "action_uuid"),
    (("report-abort", PLAN, "nope"), "action_uuid"),
    (("report-abort", "nope", A[0]), "plan_uuid"),
    (("report-abort", PLAN, A[0], "--failed", "--exception", ""), "fault.exception"),
])
def test_invalid_arguments_exit_2_naming_the_field(cli: Cli, args: tuple[str, ...], field: str) -> None:
    result = cli(*args, code=2)
    assert field in result.stderr


def test_a_bad_global_option_exits_2(cli: Cli) -> None:
    assert "notification_level" in cli("plans", options=("--notification-level", "loud"), code=2).stderr
    assert "--abort-timeout" in cli("plans", options=("--abort-timeout", "0"), code=2).stderr


def _without(document: dict[str, Any], *path: str | int) -> dict[str, Any]:
    target: Any = document
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return document


def _with(document: dict[str, Any], value: Any, *path: str | int) -> dict[str, Any]:
    target: Any = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return document


@pytest.mark.parametrize(("document", "field"), [
    ("{not json", "not JSON"),
    ("[]", "document"),
    (lambda: _without(plan_document(), "uuid"), "uuid: missing"),
    (lambda: _without(plan_document(), "audit"), "audit: missing"),
    (lambda: _without(plan_document(), "strategy", "name"), "strategy.name: missing"),
    (lambda: _without(plan_document(), "actions", 1, "uuid"), "actions[1].uuid: missing"),
    (lambda: _without(plan_document(), "actions", 0, "created_at"), "actions[0].created_at: missing"),
    (lambda: _with(plan_document(), "not-a-uuid", "audit", "uuid"), "audit.uuid"),
    (lambda: _with(plan_document(), "yesterday", "created_at"), "created_at"),
    (lambda: _with(plan_document(), "CANCELLING", "state"), "state"),
    (lambda: _with(plan_document(), "CANCELLED", "actions", 2, "state"), "actions[2].state"),
    (lambda: _with(plan_document(), A[0], "actions", 1, "uuid"), "actions[1].uuid"),
    (lambda: _with(plan_document(), "x", "actions"), "actions"),
    (lambda: _with(plan_document(), [1], "actions", 0, "parents"), "actions[0].parents"),
    (lambda: _with(plan_document(), 5, "strategy", "name"), "strategy.name"),
    (lambda: _with(plan_document(), "yes", "audit", "auto_trigger"), "audit.auto_trigger"),
    (lambda: _with(plan_document(), 1.5, "audit", "interval"), "audit.interval"),
    (lambda: _with(plan_document(), "tomorrow", "audit", "next_run_time"), "audit.next_run_time"),
    (lambda: _with(plan_document(), 42, "audit", "name"), "audit.name"),
    (lambda: _with(plan_document(), [1, 2], "global_efficacy"), "global_efficacy"),
    (lambda: _with(plan_document(), "high", "global_efficacy"), "global_efficacy"),
    (lambda: _with(plan_document(), 7, "actions", 0, "status_message"), "actions[0].status_message"),
])
def test_an_invalid_plan_file_exits_2_naming_the_field(cli: Cli, tmp_path: Path, document: Any, field: str) -> None:
    result = cli("register", write_plan(tmp_path, document() if callable(document) else document), code=2)
    assert field in result.stderr
    assert nothing_registered(cli), "nothing was registered"


def test_a_missing_plan_file_exits_2(cli: Cli, tmp_path: Path) -> None:
    result = cli("register", str(tmp_path / "nope.json"), code=2)
    assert "nope.json" in result.stderr


# ---------------------------------------------------------------- every command is documented


@functools.cache
def commands() -> dict[str, Any]:
    group: Any = typer.main.get_command(app)
    return dict(group.commands)


def command_names() -> list[str]:
    return sorted(commands())


def test_the_core_commands_exist() -> None:
    assert {"register", "report-progress", "cancel", "report-abort", "status", "plans", "notifications", "enforce-deadlines", "demo"} <= set(command_names())


@pytest.mark.parametrize("name", command_names())
def test_every_command_has_help(runner: CliRunner, name: str) -> None:
    result = runner.invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout
    assert (commands()[name].help or "").strip(), f"`watcher-es {name}` has no help text"


def test_top_level_help_lists_every_command(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in command_names():
        assert name in result.stdout


def test_a_store_that_cannot_be_opened_is_one_readable_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--db", str(tmp_path / "missing" / "w.db"), "cancel", PLAN, "--reason", "r"])
    assert result.exit_code == 1
    assert "does not exist" in result.stderr and "Traceback" not in result.output


def test_replay_reemits_each_notification_at_the_version_it_was_emitted_unless_told(cli: Cli, tmp_path: Path) -> None:
    cli("register", write_plan(tmp_path, plan_document()))
    cli("cancel", PLAN, "--reason", "first at the spec's 1.0")
    cli("register", write_plan(tmp_path, plan_document(OTHER), "other.json"))
    cli("cancel", OTHER, "--reason", "then at Watcher 17's", options=("--payload-version", "latest"))
    emitted = cli.lines("notifications")
    assert cli.lines("notifications", "--replay") == emitted
    assert {n["payload"]["watcher_object.version"] for n in emitted} == {"1.0", "1.2", "1.1"}
    told = [json.loads(line) for line in cli("notifications", "--replay", "--json", options=("--payload-version", "1.0")).stdout.splitlines()]
    assert [n["message_id"] for n in told] == [n["message_id"] for n in emitted]
    assert {n["payload"]["watcher_object.version"] for n in told} == {"1.0"}


@pytest.mark.parametrize("spelling", [str.upper, lambda u: f"urn:uuid:{u}", lambda u: "{" + u + "}", lambda u: u.replace("-", "")])
def test_any_spelling_of_a_uuid_names_the_same_plan(cli: Cli, tmp_path: Path, spelling: Any) -> None:
    document = plan_document()
    document["uuid"] = spelling(PLAN)
    document["actions"][0]["uuid"] = spelling(A[0])
    cli("register", write_plan(tmp_path, document))
    assert cli.json("status", spelling(PLAN))["plan"]["uuid"] == PLAN
    assert cli("register", write_plan(tmp_path, plan_document(), "again.json"), code=1).stderr.count("already registered") == 1
    cancel = cli.json("cancel", spelling(PLAN), "--reason", "r")
    assert (cancel["plan_uuid"], cancel["outcome"]) == (PLAN, "accepted")
    assert {n["payload"]["watcher_object.data"]["uuid"] for n in cli.lines("notifications", "--plan", spelling(PLAN))} >= {PLAN}
    assert [p["uuid"] for p in cli.lines("plans")] == [PLAN]


@pytest.mark.parametrize(("change", "field"), [
    (lambda d: d["actions"][0].update(input_parameters="not-json-obj"), "actions[0].input_parameters"),
    (lambda d: d["actions"][1].update(parents=["not-a-uuid"]), "actions[1].parents[0]"),
    (lambda d: d["actions"][1].update(parents=["11111111-2222-4333-8444-555555555555"]), "actions[1].parents[0]"),
    (lambda d: d["audit"].update(audit_type="WEIRD"), "audit.audit_type"),
    (lambda d: d.update(actions=[]), "actions"),
])
def test_a_plan_watcher_would_not_hold_is_refused_naming_the_field(cli: Cli, tmp_path: Path, change: Any, field: str) -> None:
    document = plan_document()
    change(document)
    assert field in cli("register", write_plan(tmp_path, document), code=2).stderr
    assert nothing_registered(cli)


def test_bad_query_arguments_exit_2(cli: Cli, tmp_path: Path) -> None:
    cli("register", write_plan(tmp_path, plan_document()))
    assert "--state" in cli("plans", "--state", "NOPE", code=2).stderr
    assert "--until" in cli("replay", "--until", "yesterday", code=2).stderr


def test_user_text_is_data_never_markup_and_control_characters_stay_off_the_terminal(cli: Cli, tmp_path: Path) -> None:
    running_plan(cli, tmp_path)
    hostile = "host [compute-1] unreachable [/x] \x1b[31mred\x1b[0m\x07"
    cli("cancel", PLAN, "--reason", hostile)
    failed = cli("report-abort", PLAN, A[1], "--failed", "--exception", "Boom[/]", "--message", hostile)
    assert "Traceback" not in failed.output
    human = cli("plans").stdout
    assert "host [compute-1] unreachable [/x]" in human and "\x1b" not in human and "\x07" not in human
    assert "[/x]" in cli("status", PLAN).stdout
    assert cli.lines("plans")[0]["cancel_reason"] == hostile, "--json keeps the text intact"
    bad = cli("status", "[/x]", code=2)
    assert "'[/x]' is not a UUID" in bad.stderr


def test_db_refuses_a_file_that_is_not_a_log(cli: Cli, tmp_path: Path) -> None:
    cli("register", write_plan(tmp_path, plan_document()))
    model = tmp_path / "x.model.db"
    before = model.read_bytes()
    refused = cli.runner.invoke(app, ["--db", str(model), "plans"])
    assert refused.exit_code == 1 and "is not a watcher-es event log" in refused.stderr and "read-model" in refused.stderr
    assert model.read_bytes() == before and not (tmp_path / "x.model.model.db").exists()


def test_a_damaged_or_read_only_store_is_one_readable_line(cli: Cli, tmp_path: Path) -> None:
    cli("register", write_plan(tmp_path, plan_document()))
    log = tmp_path / "x.db"
    data = bytearray(log.read_bytes())
    data[:16] = b"\x00" * 16  # the header: no longer an SQLite file
    log.write_bytes(bytes(data))
    damaged = cli("plans", code=1)
    assert "Traceback" not in damaged.output and damaged.stderr.count("\n") == 1


def test_a_store_error_names_the_db_it_came_from(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An SQLite error no check caught (a locked or failing disk) still names the --db to look at."""
    cli("register", write_plan(tmp_path, plan_document()))

    def failing(*args: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr("projections.model_view.ModelView.plans", failing)
    failed = cli("plans", code=1)
    assert failed.stderr.count("\n") == 1 and "disk I/O error" in failed.stderr
    assert f"--db {tmp_path / 'x.db'}" in " ".join(failed.stderr.split())


def test_replay_removes_what_a_killed_replay_left(cli: Cli, tmp_path: Path) -> None:
    cli("register", write_plan(tmp_path, plan_document()))
    stray = tmp_path / ".x.model.db.rebuild-999999999.tmp"
    stray.write_bytes(b"half a model")
    cli("replay")
    assert not stray.exists()


def test_a_command_id_reused_for_another_command_is_refused_and_audited(cli: Cli, tmp_path: Path) -> None:
    cli("register", write_plan(tmp_path, plan_document()), "--command-id", "c-1")
    refused = cli("register", write_plan(tmp_path, plan_document(OTHER), "other.json"), "--command-id", "c-1", code=1)
    assert "command id c-1 was already used by another command (RegisterActionPlan of plan " + PLAN in " ".join(refused.stderr.split())
    assert nothing_registered(cli) is False and [p["uuid"] for p in cli.lines("plans")] == [PLAN]
    story = cli.json("audit", OTHER)
    [entry] = [e for e in story["entries"] if e["kind"] == "command"]
    assert (entry["outcome"], entry["id"]) == ("rejected", "c-1") and "already used" in entry["outcome_reason"]

    cli("cancel", PLAN, "--reason", "r", "--command-id", "c-2")
    assert "already used" in cli("report-abort", PLAN, A[0], "--command-id", "c-2", code=1).stderr
    again = cli.json("cancel", PLAN, "--reason", "r", "--command-id", "c-2")
    assert (again["outcome"], again["duplicate"]) == ("accepted", True), "the same command again is a resend"


def test_register_refuses_plans_beyond_the_documented_limits(cli: Cli, tmp_path: Path) -> None:
    document = plan_document()
    document["actions"] = [
        {"uuid": str(uuid.uuid4()), "action_type": "nop", "state": "PENDING", "created_at": "2016-10-18T09:52:05Z"} for _ in range(10_001)
    ]
    assert "more than the 10,000 a plan may have" in cli("register", write_plan(tmp_path, document), code=2).stderr
    huge = tmp_path / "huge.json"
    huge.write_text(" " * (16 * 1024 * 1024 + 1))
    assert "a plan document may have" in cli("register", str(huge), code=2).stderr


def test_the_notification_level_is_the_stores_not_the_readers(cli: Cli, tmp_path: Path) -> None:
    running_plan(cli, tmp_path)
    cli("cancel", PLAN, "--reason", "r", options=("--notification-level", "error"))  # says so: the store's level is now error
    cli("report-abort", PLAN, A[1], "--failed", "--message", "stuck")
    cli("report-abort", PLAN, A[2])
    kinds = [n["event_type"] for n in cli.lines("notifications")]
    assert kinds == ["action.cancel.error", "action_plan.cancel.error"]
    assert [n["event_type"] for n in cli.lines("notifications", "--replay")] == kinds, "re-emitted at the store's level"
    cli("register", write_plan(tmp_path, plan_document(OTHER), "other.json"))
    cli("cancel", OTHER, "--reason", "r")  # not told: the store keeps error
    assert [n["event_type"] for n in cli.lines("notifications")] == kinds
