"""The demo on the embedded store: each step handled in this process, the notifications read from the outbox."""

from __future__ import annotations

from typing import Any

from eventstore.domain.messages import Command
from projections.demo import DemoFailed, PlanSnapshot
from projections.sqlite.backend import EmbeddedBackend


class EmbeddedDemo:
    def __init__(self, service: EmbeddedBackend) -> None:
        self.service = service
        self._start_seq = service.outbox.last_seq()

    def clock(self) -> int:
        return self.service.clock()

    def submit(self, command: Command) -> tuple[str, str]:
        result = self.service.submit(command)
        return result.outcome, result.reason

    def snapshot(self, plan_uuid: str) -> PlanSnapshot:
        plan = self.service.model.plan(plan_uuid)
        if plan is None:
            raise DemoFailed(f"plan {plan_uuid} is missing from the read model")
        return PlanSnapshot(plan_uuid, plan["state"], [(a["uuid"], a["action_type"], a["state"]) for a in self.service.model.actions(plan_uuid)])

    def notifications(self, plan_uuids: list[str]) -> list[dict[str, Any]]:
        return [envelope for _, envelope in self.service.outbox.iterate(self._start_seq)]
