"""The demo through a cluster: commands go to the commands topic, `serve` must be running."""

from __future__ import annotations

import time
from typing import Any

from eventstore.domain.messages import Command
from eventstore.kafka.client import KafkaClient
from projections.demo import PlanSnapshot


class KafkaDemo:
    """The demo through a cluster: commands go to the commands topic, `serve` must be running."""

    TERMINAL = ("action_plan.cancel.end", "action_plan.cancel.error")

    def __init__(self, client: KafkaClient, timeout_s: float = 120.0) -> None:
        self.client = client
        self.timeout_s = timeout_s
        self._since_ms = time.time_ns() // 1_000_000 - 5000
        self._outcomes = client.follow_outcomes(self._since_ms)
        self._states: dict[str, PlanSnapshot] = {}

    def clock(self) -> int:
        return time.time_ns() // 1000

    def submit(self, command: Command) -> tuple[str, str]:
        self.client.send(command)
        outcome = self.client.wait_outcome(command.command_id, self._outcomes, self.timeout_s)
        if outcome.plan_state is not None:
            self._states[command.plan_uuid] = PlanSnapshot(command.plan_uuid, outcome.plan_state, list(outcome.action_states))
        return outcome.outcome, outcome.reason

    def snapshot(self, plan_uuid: str) -> PlanSnapshot:
        return self._states[plan_uuid]

    def notifications(self, plan_uuids: list[str]) -> list[dict[str, Any]]:
        def complete(found: list[dict[str, Any]]) -> bool:
            ended = {n["payload"]["watcher_object.data"]["uuid"] for n in found if n["event_type"] in self.TERMINAL}
            return ended >= set(plan_uuids)

        try:
            return self.client.notifications(plan_uuids, self._since_ms, complete, self.timeout_s)
        finally:
            self._outcomes.close()
