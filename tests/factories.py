"""Builders for commands and plans, shared by the tests (a module, not fixtures, so hypothesis can use them)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable

from eventstore.domain.messages import (
    Action,
    Audit,
    CancelActionPlan,
    Command,
    EnforceAbortDeadline,
    Fault,
    RegisterActionPlan,
    ReportAbortResult,
    ReportActionPlanProgress,
    ReportActionProgress,
    Strategy,
)
from eventstore.times import parse_time

T0 = parse_time("t", "2016-10-18T09:52:05Z") or 0
_ids = itertools.count(1)


def cid() -> str:
    return f"cmd-{next(_ids)}-{uuid.uuid4()}"


def action(uuid_: str | None = None, state: str = "PENDING", action_type: str = "nop", input_parameters: str = '{"param1": 1, "param2": 2}') -> Action:
    return Action(uuid_ or str(uuid.uuid4()), action_type, input_parameters, (), state, T0)


def register(
    plan_uuid: str | None = None, state: str = "RECOMMENDED", actions: Iterable[Action] = (), *,
    audit_uuid: str = "10a47dd1-4874-4298-91cf-eff046dbdb8d", strategy_uuid: str = "cb3d0b58-4415-4d90-b75b-1e96878730e3",
    at: int = T0,
) -> RegisterActionPlan:
    actions = tuple(actions) or (action(),)  # a plan has at least one action
    return RegisterActionPlan(
        command_id=cid(), issued_at=at, issued_by="watcher-decision-engine", origin="tests",
        plan_uuid=plan_uuid or str(uuid.uuid4()), state=state, global_efficacy="{}", created_at=T0, updated_at=None, deleted_at=None,
        audit=Audit(audit_uuid, "bc830f84-8ae3-4fc6-8bc6-e3dd15e8b49a", "75234dfe-87e3-4f11-a0e0-3c3305d86a39", "ONESHOT", "SUCCEEDED", "[]", "{}", None, T0),
        strategy=Strategy(strategy_uuid, "TEST", "test strategy", "{}", T0),
        actions=tuple(actions),
    )


def cancel(plan_uuid: str, by: str = "admin", reason: str = "maintenance", at: int = T0) -> CancelActionPlan:
    return CancelActionPlan(cid(), at, by, "tests", plan_uuid, reason)


def abort_ok(plan_uuid: str, action_uuid: str, at: int = T0) -> ReportAbortResult:
    return ReportAbortResult(cid(), at, "watcher-applier", "tests", plan_uuid, action_uuid, None)


def abort_failed(plan_uuid: str, action_uuid: str, fault: Fault | None = None, at: int = T0) -> ReportAbortResult:
    fault = fault or Fault("WatcherException", "TEST", "watcher.applier", "abort")
    return ReportAbortResult(cid(), at, "watcher-applier", "tests", plan_uuid, action_uuid, fault)


def plan_progress(plan_uuid: str, state: str, at: int = T0) -> ReportActionPlanProgress:
    return ReportActionPlanProgress(cid(), at, "watcher-applier", "tests", plan_uuid, state)


def action_progress(plan_uuid: str, action_uuid: str, state: str, at: int = T0) -> ReportActionProgress:
    return ReportActionProgress(cid(), at, "watcher-applier", "tests", plan_uuid, action_uuid, state)


def deadline(plan_uuid: str, at: int) -> EnforceAbortDeadline:
    return EnforceAbortDeadline(cid(), at, "deadline pass", "tests", plan_uuid)


def cancellation_story(plan_uuid: str | None = None, abort_fails: bool = False) -> list[Command]:
    """One plan's whole life: registered ONGOING (one action done, one running, one pending),
    cancelled, the running action's abort reported, then a second cancel that is rejected."""
    plan = plan_uuid or str(uuid.uuid4())
    done, running, pending = action(state="SUCCEEDED"), action(state="ONGOING"), action()
    abort_result = abort_failed(plan, running.uuid) if abort_fails else abort_ok(plan, running.uuid)
    return [
        register(plan, "ONGOING", [done, running, pending]),
        cancel(plan, by="operator-" + plan[:8], reason=f"maintenance of {plan[:8]}"),
        abort_result,
        cancel(plan, reason="once more"),
    ]


def interleaved(stories: Iterable[list[Command]]) -> list[Command]:
    """Round-robin over several plans' stories, so the log mixes plans as production does."""
    queues = [list(s) for s in stories]
    out: list[Command] = []
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out
