"""The CLI against a cluster, as an operator uses it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from eventstore.kafka.config import KafkaSettings

from tests.support.serve import Serve, cli_env, run_cli
from tests.support.tansu import free_port
from tests.support.waiting import wait_until


def plan_file(tmp_path: Path, actions: list[tuple[str, str]], state: str = "ONGOING") -> tuple[Path, str]:
    plan = str(uuid.uuid4())
    doc = {
        "uuid": plan, "state": state, "global_efficacy": {}, "created_at": "2026-11-26T10:00:00Z",
        "audit": {"uuid": str(uuid.uuid4()), "goal_uuid": str(uuid.uuid4()), "strategy_uuid": str(uuid.uuid4()), "created_at": "2026-11-26T09:00:00Z"},
        "strategy": {"uuid": str(uuid.uuid4()), "name": "basic", "created_at": "2026-11-26T09:00:00Z"},
        "actions": [{"uuid": a, "action_type": "migrate", "state": s, "created_at": "2026-11-26T10:00:00Z"} for a, s in actions],
    }
    path = tmp_path / f"{plan}.json"
    path.write_text(json.dumps(doc))
    return path, plan


def test_init_is_safe_to_run_twice(kafka: KafkaSettings, tmp_path: Path) -> None:
    env = cli_env(kafka, tmp_path / "w.db")
    first = run_cli(env, "init", "--partitions", "3", "--json")
    assert first.returncode == 0, first.stderr
    rows = [json.loads(line) for line in first.stdout.splitlines()]
    assert {r["topic"] for r in rows} == {
        kafka.topics.commands, kafka.topics.events, kafka.topics.outcomes, kafka.topics.dead_letters,
        kafka.topics.notification_topic("INFO"), kafka.topics.notification_topic("ERROR"),
    }
    assert not any(r["created"] for r in rows)  # the fixture created them already


def test_cancel_wait_reports_cancelled_rejected_and_failed(kafka: KafkaSettings, serve: Serve, tmp_path: Path) -> None:
    env = cli_env(kafka, tmp_path / "client.db")
    serve.start()
    ongoing, pending = str(uuid.uuid4()), str(uuid.uuid4())
    path, plan = plan_file(tmp_path, [(ongoing, "ONGOING"), (pending, "PENDING")])
    registered = run_cli(env, "register", str(path), "--wait")
    assert registered.returncode == 0, registered.stderr + serve.log()

    waiting = subprocess.Popen(
        [sys.executable, "-m", "projections", "cancel", plan, "--reason", "window closed", "--by", "ops", "--wait", "--timeout", "120"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    wait_until(lambda: '"CANCELLING"' in run_cli(env, "status", plan, "--json").stdout, 100, "the cancellation to be in progress", interval=0.5)
    aborted = run_cli(env, "report-abort", plan, ongoing, "--failed", "--exception", "ActionExecutionFailure", "--message", "stuck", "--wait")
    assert aborted.returncode == 0, aborted.stderr
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 1, out + err
    assert "FAILED" in err and "ActionExecutionFailure: stuck" in err

    again = run_cli(env, "cancel", plan, "--reason", "again", "--wait")
    assert again.returncode == 1
    assert "FAILED and cannot be cancelled" in again.stderr

    path, plan = plan_file(tmp_path, [(str(uuid.uuid4()), "PENDING")], state="PENDING")
    assert run_cli(env, "register", str(path), "--wait").returncode == 0
    direct = run_cli(env, "cancel", plan, "--reason", "not needed", "--wait", "--json")
    assert direct.returncode == 0, direct.stderr
    assert json.loads(direct.stdout.splitlines()[-1]) == {"plan_uuid": plan, "final_state": "CANCELLED", "fault": None}

    unknown = run_cli(env, "cancel", str(uuid.uuid4()), "--reason", "x", "--wait")
    assert unknown.returncode == 1 and "is not registered" in unknown.stderr


def test_the_deadline_pass_fails_an_abort_that_never_reports(kafka: KafkaSettings, tmp_path: Path) -> None:
    env = cli_env(kafka, tmp_path / "client.db")
    serve = Serve({**cli_env(kafka, tmp_path / "serve.db"), "WATCHER_ES_ABORT_TIMEOUT": "1"}, tmp_path / "serve.log", ("--interval", "0.5"))
    serve.start()
    try:
        path, plan = plan_file(tmp_path, [(str(uuid.uuid4()), "ONGOING")])
        assert run_cli(env, "register", str(path), "--wait").returncode == 0
        cancelled = run_cli(env, "cancel", plan, "--reason", "r", "--wait", "--timeout", "60")
        assert cancelled.returncode == 1, cancelled.stdout + cancelled.stderr + serve.log()
        assert "AbortTimeout" in cancelled.stderr
    finally:
        serve.stop()


def test_status_shows_positions_and_lag(kafka: KafkaSettings, serve: Serve, tmp_path: Path) -> None:
    env = cli_env(kafka, tmp_path / "client.db")
    for _ in range(3):
        assert run_cli(env, "register", str(plan_file(tmp_path, [(str(uuid.uuid4()), "PENDING")])[0])).returncode == 0
    before = [json.loads(line) for line in run_cli(env, "status", "--json").stdout.splitlines()]
    assert sum(r["lag"] for r in before if r["part"] == "handler") == 3
    serve.start()

    def caught_up() -> list[dict[str, Any]] | None:
        rows = [json.loads(line) for line in run_cli(env, "status", "--json").stdout.splitlines()]
        done = rows and all(r["lag"] == 0 for r in rows) and sum(r["position"] or 0 for r in rows if r["part"] == "translator") == 3
        return rows if done else None

    rows = wait_until(caught_up, 120, "every part at the end of its topics, the translator past the 3 commands' events", interval=0.5)
    assert {r["part"] for r in rows} == {"handler", "read-model", "translator"}


def test_librdkafka_properties_pass_through_and_secrets_never_show(kafka: KafkaSettings, tmp_path: Path) -> None:
    env = cli_env(kafka, tmp_path / "w.db")
    properties = tmp_path / "client.properties"
    properties.write_text("# from a file, as kcat -F reads it\nclient.id=from-file\nsasl.password=hunter2-file\n")
    serve = Serve(env, tmp_path / "serve.log", options=(
        "-F", str(properties), "-X", "client.id=from-flag", "-X", "sasl.password=hunter2", "-X", "consumer.fetch.min.bytes=1",
    )).start()
    try:
        # Every part at work with those properties: a cancel handled, then notified by the translator.
        path, plan = plan_file(tmp_path, [(str(uuid.uuid4()), "PENDING")], state="PENDING")
        assert run_cli(env, "register", str(path), "--wait").returncode == 0, serve.log()
        assert run_cli(env, "cancel", plan, "--reason", "r", "--wait").returncode == 0, serve.log()
        wait_until(lambda: "action_plan.cancel.end" in run_cli(env, "notifications", "--plan", plan).stdout, 60,
                   lambda: f"the cancel notified by a serve given those properties\n{serve.log()}", interval=0.5)
    finally:
        serve.stop()
    output = serve.log()
    assert "client.id': 'from-flag'" in output  # the flag wins over the file
    assert "hunter2" not in output
    assert "********" in output

    bad = run_cli(env, "-X", "no-equals-sign", "plans")
    assert bad.returncode == 2 and "not key=value" in bad.stderr
    unknown = run_cli(env, "-X", "no.such.property=1", "plans")
    assert unknown.returncode != 0 and "no.such.property" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_payload_version_on_kafka_and_reemission_at_the_version_emitted(kafka: KafkaSettings, serve: Serve, tmp_path: Path) -> None:
    """`serve` emits what Watcher 17 emits when told; re-emission keeps each one's version unless told otherwise."""
    env = cli_env(kafka, tmp_path / "client.db")
    serve.env["WATCHER_ES_PAYLOAD_VERSION"] = "latest"
    serve.start()
    path, plan = plan_file(tmp_path, [(str(uuid.uuid4()), "PENDING")], state="PENDING")
    assert run_cli(env, "register", str(path), "--wait").returncode == 0, serve.log()
    assert run_cli(env, "cancel", plan, "--reason", "r", "--wait").returncode == 0, serve.log()

    def versions(*options: str) -> set[str]:
        result = run_cli({**env, **dict(o.split("=", 1) for o in options)}, "notifications", "--replay", "--plan", plan, "--json")
        assert result.returncode == 0, result.stderr
        return {json.loads(line)["payload"]["watcher_object.version"] for line in result.stdout.splitlines()}

    def all_four() -> list[str] | None:  # the translator publishes asynchronously
        delivered = run_cli(env, "notifications", "--plan", plan, "--json").stdout.splitlines()
        assert len(delivered) <= 4, delivered
        return delivered if len(delivered) == 4 else None

    delivered = wait_until(all_four, 60, "the cancel's 4 notifications delivered", interval=0.5)
    assert {json.loads(line)["payload"]["watcher_object.version"] for line in delivered} == {"1.2", "1.1"}
    assert versions() == {"1.2", "1.1"}, "re-emitted at the version each was emitted"
    assert versions("WATCHER_ES_PAYLOAD_VERSION=1.0") == {"1.0"}, "unless told otherwise"


def test_with_no_cluster_a_write_fails_after_its_timeout_and_a_read_in_one_line(tmp_path: Path) -> None:
    """Nothing listens at the cluster's address: one clear line each, exit 3, no librdkafka retries on stderr."""
    env = cli_env(KafkaSettings(f"127.0.0.1:{free_port()}"), tmp_path / "w.db")
    started = time.monotonic()
    cancel = run_cli(env, "cancel", str(uuid.uuid4()), "--reason", "r", "--timeout", "2", "--wait")
    took = time.monotonic() - started
    assert cancel.returncode == 3, cancel.stderr
    assert cancel.stderr.strip().count("\n") == 0 and "did not answer within 2 s" in cancel.stderr, cancel.stderr
    assert "Connection refused" in cancel.stderr
    assert took < 2 + 8, f"the write took {took:.1f} s for a --timeout of 2"  # 2 s, and the interpreter's start on a busy machine
    status = run_cli(env, "status")
    assert status.returncode == 3 and status.stderr.strip().count("\n") == 0 and "did not answer" in status.stderr, status.stderr
