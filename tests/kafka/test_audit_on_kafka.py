"""The auditor's questions answered from the topics alone."""

from __future__ import annotations

import json
from pathlib import Path

from eventstore.kafka_config import KafkaSettings

from .conftest import Serve, cli_env, run_cli


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
