"""The demo scenario through a real broker, with `serve` running as its own process."""

from __future__ import annotations

import json
from typing import Any
from pathlib import Path

from eventstore.kafka.config import KafkaSettings

from tests.support.serve import Serve, cli_env, run_cli

KINDS = {
    "action_plan.cancel.start", "action_plan.cancel.end", "action_plan.cancel.error",
    "action.cancel.start", "action.cancel.end", "action.cancel.error",
}


def plan_of(note: dict[str, Any]) -> str:
    data = note["payload"]["watcher_object.data"]
    return str(data["action_plan"]["watcher_object.data"]["uuid"] if "action_plan" in data else data["uuid"])


def test_demo_cancels_both_plans_and_all_six_kinds_come_back_from_the_topics(kafka: KafkaSettings, serve: Serve, tmp_path: Path) -> None:
    serve.start()
    result = run_cli(cli_env(kafka, tmp_path / "client.db"), "demo", "--json")
    assert result.returncode == 0, result.stderr + serve.log()
    notes = [json.loads(line) for line in result.stdout.splitlines()]
    assert {n["event_type"] for n in notes} == KINDS
    plans = list(dict.fromkeys(plan_of(n) for n in notes))
    assert len(plans) == 2
    for plan, last in zip(plans, ("action_plan.cancel.end", "action_plan.cancel.error"), strict=True):
        kinds = [n["event_type"] for n in notes if plan_of(n) == plan]
        assert kinds[0] == "action_plan.cancel.start"
        assert kinds[-1] == last
        assert all(k.startswith("action.") for k in kinds[1:-1])
    assert len({n["message_id"] for n in notes}) == len(notes)
    assert all(n["publisher_id"] == "infra-optim:tests" for n in notes)
