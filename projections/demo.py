"""The demo scenario: two realistic plans cancelled, one cleanly and one with a failed abort.

A library function so that the CLI only presents it and the tests can drive it with a clock.
"""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from eventstore.domain.messages import CancelActionPlan, Command, Fault, ReportAbortResult, ReportActionPlanProgress, ReportActionProgress
from eventstore.exceptions import WatcherEsError
from eventstore.plan_file import parse_plan_document
from eventstore.times import format_time

OPERATOR = "admin (project: admin)"


@dataclass(frozen=True)
class PlanSnapshot:
    uuid: str
    state: str
    actions: list[tuple[str, str, str]]  # uuid, action_type, state


@dataclass
class DemoReport:
    plans: list[tuple[str, str]] = field(default_factory=list)  # uuid, label
    before: list[PlanSnapshot] = field(default_factory=list)
    after: list[PlanSnapshot] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)


def _plan_document(label: str, now: int) -> dict[str, Any]:
    created = format_time(now - 3_600_000_000)
    audit_uuid, strategy_uuid, goal_uuid = (str(uuid.uuid4()) for _ in range(3))

    def host(n: int) -> str:
        return f"compute-{n}.{label}.example.org"

    actions = [
        ("change_nova_service_state", {"resource_id": host(1), "state": "disabled", "disabled_reason": "watcher_disabled"}),
        ("migrate", {"migration_type": "live", "resource_id": str(uuid.uuid4()), "source_node": host(1), "destination_node": host(3)}),
        ("migrate", {"migration_type": "live", "resource_id": str(uuid.uuid4()), "source_node": host(1), "destination_node": host(4)}),
        ("migrate", {"migration_type": "live", "resource_id": str(uuid.uuid4()), "source_node": host(2), "destination_node": host(4)}),
        ("change_nova_service_state", {"resource_id": host(2), "state": "disabled", "disabled_reason": "watcher_disabled"}),
    ]
    uuids = [str(uuid.uuid4()) for _ in actions]
    return {
        "uuid": str(uuid.uuid4()), "state": "RECOMMENDED", "global_efficacy": [
            {"name": "released_nodes_ratio", "description": "Ratio of released compute nodes", "unit": "%", "value": 40.0}
        ],
        "created_at": created, "updated_at": None, "deleted_at": None,
        "audit": {
            "uuid": audit_uuid, "goal_uuid": goal_uuid, "strategy_uuid": strategy_uuid, "audit_type": "ONESHOT",
            "state": "SUCCEEDED", "scope": [{"compute": [{"host_aggregates": [{"name": f"{label}-aggregate"}]}]}],
            "parameters": {"period": 3600, "granularity": 300}, "interval": None, "created_at": created,
            "name": f"consolidate-{label}", "auto_trigger": False, "next_run_time": None,
        },
        "strategy": {
            "uuid": strategy_uuid, "name": "vm_workload_consolidation", "display_name": "VM Workload Consolidation Strategy",
            "parameters_spec": {"properties": {"period": {"type": "number", "default": 3600}}}, "created_at": created,
        },
        "actions": [
            {"uuid": u, "action_type": t, "input_parameters": p, "parents": [uuids[i - 1]] if i else [], "state": "PENDING", "created_at": created}
            for i, (u, (t, p)) in enumerate(zip(uuids, actions, strict=True))
        ],
    }


class DemoFailed(WatcherEsError):
    """A demo step was not accepted; the store is not the fresh one the demo expects."""


class DemoBackend(Protocol):
    """Where the demo runs: the embedded backend, or a cluster through `serve`."""

    def clock(self) -> int: ...

    def submit(self, command: Command) -> tuple[str, str]:
        """The outcome and reason of a handled command."""

    def snapshot(self, plan_uuid: str) -> PlanSnapshot: ...

    def notifications(self, plan_uuids: list[str]) -> list[dict[str, Any]]:
        """Every notification emitted for these plans since the demo began, in emission order."""


def run_demo(backend: DemoBackend) -> DemoReport:
    """Register two plans, run them part-way, cancel both, report how the aborts ended; report everything."""
    origin = f"watcher-es demo@{socket.gethostname()}"
    applier = "watcher-applier"

    def submit(command: Command, step: str) -> None:
        outcome, reason = backend.submit(command)
        if outcome == "rejected":
            raise DemoFailed(f"{step} was rejected: {reason}")

    def send(command_type: type[Any], issued_by: str = applier, **fields: Any) -> None:
        command: Command = command_type(command_id=str(uuid.uuid4()), issued_at=backend.clock(), issued_by=issued_by, origin=origin, **fields)
        submit(command, f"demo step {command_type.__name__}")

    report = DemoReport()
    for label in ("rack-a", "rack-b"):
        doc = _plan_document(label, backend.clock())
        command = parse_plan_document(doc, command_id=str(uuid.uuid4()), issued_at=backend.clock(), issued_by="watcher-decision-engine", origin=origin)
        submit(command, "registering the demo plan")
        plan, actions = doc["uuid"], [a["uuid"] for a in doc["actions"]]
        report.plans.append((plan, label))
        send(ReportActionPlanProgress, plan_uuid=plan, state="ONGOING")
        for action, state in ((actions[0], "ONGOING"), (actions[0], "SUCCEEDED"), (actions[1], "ONGOING"), (actions[2], "ONGOING")):
            send(ReportActionProgress, plan_uuid=plan, action_uuid=action, state=state)
    report.before = [backend.snapshot(p) for p, _ in report.plans]
    for (plan, _), reason in zip(report.plans, ("maintenance window closed", "capacity needed for a tenant burst"), strict=True):
        send(CancelActionPlan, issued_by=OPERATOR, plan_uuid=plan, reason=reason)
    (first, _), (second, _) = report.plans
    for action in _cancelling(backend, first):
        send(ReportAbortResult, plan_uuid=first, action_uuid=action)
    stuck, *others = _cancelling(backend, second)
    for action in others:
        send(ReportAbortResult, plan_uuid=second, action_uuid=action)
    send(ReportAbortResult, plan_uuid=second, action_uuid=stuck, fault=Fault(
        exception="ActionExecutionFailure",
        exception_message=f"live migration of action {stuck} cannot be aborted: it has entered its switch-over phase",
        module_name="watcher.applier.actions.migration", function_name="abort",
    ), status_message="abort refused: the migration is switching over")
    report.after = [backend.snapshot(p) for p, _ in report.plans]
    report.notifications = backend.notifications([p for p, _ in report.plans])
    return report


def _cancelling(backend: DemoBackend, plan_uuid: str) -> list[str]:
    return [uuid_ for uuid_, _, state in backend.snapshot(plan_uuid).actions if state == "CANCELLING"]
