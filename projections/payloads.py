"""Watcher's versioned payloads, declared the way watcher/notifications/*.py declares them.

Each payload names its class, version and, per field, where the value comes from; nested
payloads are payloads of their own. ``build`` refuses a half-filled payload, so a field added
to a declaration without a source fails loudly instead of shipping a null.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eventstore.domain.messages import Audit, Fault, Strategy
from eventstore.domain.plan import ActionView, Plan

NAMESPACE = "watcher"


class IncompletePayloadError(Exception):
    """A payload declaration has a field its source did not fill."""


def watcher_datetime(us: int | None) -> str | None:
    """Watcher's payload datetime: second precision, UTC, ``Z`` suffix."""
    if us is None:
        return None
    return datetime.fromtimestamp(us // 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Payload:
    name: str
    version: str
    fields: dict[str, Callable[[Any], Any]]

    def build(self, source: Any) -> dict[str, Any]:
        data = {name: get(source) for name, get in self.fields.items()}
        missing = [k for k, v in data.items() if v is _MISSING]
        if missing:
            raise IncompletePayloadError(f"{self.name} {self.version}: no value for {', '.join(missing)}")
        return {
            "watcher_object.namespace": NAMESPACE,
            "watcher_object.name": self.name,
            "watcher_object.version": self.version,
            "watcher_object.data": data,
        }


_MISSING = object()


def attr(name: str) -> Callable[[Any], Any]:
    return lambda src: getattr(src, name, _MISSING)


def json_attr(name: str) -> Callable[[Any], Any]:
    return lambda src: json.loads(getattr(src, name))


def time_attr(name: str) -> Callable[[Any], Any]:
    return lambda src: watcher_datetime(getattr(src, name))


def nested(payload: Payload, get: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def build(src: Any) -> Any:
        value = get(src)
        return None if value is None else payload.build(value)
    return build


def _timestamps() -> dict[str, Callable[[Any], Any]]:
    return {"created_at": time_attr("created_at"), "updated_at": time_attr("updated_at"), "deleted_at": time_attr("deleted_at")}


EXCEPTION = Payload("ExceptionPayload", "1.0", {
    "exception": attr("exception"),
    "exception_message": attr("exception_message"),
    "module_name": attr("module_name"),
    "function_name": attr("function_name"),
})

TERSE_AUDIT = Payload("TerseAuditPayload", "1.0", {
    "uuid": attr("uuid"),
    "goal_uuid": attr("goal_uuid"),
    "strategy_uuid": attr("strategy_uuid"),
    "audit_type": attr("audit_type"),
    "state": attr("state"),
    "scope": json_attr("scope"),
    "parameters": json_attr("parameters"),
    "interval": attr("interval"),
    **_timestamps(),
})

STRATEGY = Payload("StrategyPayload", "1.0", {
    "uuid": attr("uuid"),
    "name": attr("name"),
    "display_name": attr("display_name"),
    "parameters_spec": json_attr("parameters_spec"),
    **_timestamps(),
})


@dataclass(frozen=True)
class PlanView:
    """A plan as one notification shows it: the state the notification kind says, and its fault."""

    plan: Plan
    state: str
    fault: Fault | None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.plan, name)


@dataclass(frozen=True)
class ActionInPlan:
    action: ActionView
    plan: Plan
    state: str
    fault: Fault | None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.action, name)


TERSE_ACTION_PLAN = Payload("TerseActionPlanPayload", "1.0", {
    "uuid": attr("uuid"),
    "state": attr("state"),
    "global_efficacy": json_attr("global_efficacy"),
    "audit_uuid": lambda p: p.audit.uuid,
    "strategy_uuid": lambda p: p.strategy.uuid,
    **_timestamps(),
})

ACTION_PLAN_CANCEL = Payload("ActionPlanCancelPayload", "1.0", {
    "uuid": attr("uuid"),
    "state": attr("state"),
    "global_efficacy": json_attr("global_efficacy"),
    "audit_uuid": lambda v: v.audit.uuid,
    "strategy_uuid": lambda v: v.strategy.uuid,
    "audit": nested(TERSE_AUDIT, lambda v: v.audit),
    "strategy": nested(STRATEGY, lambda v: v.strategy),
    "fault": nested(EXCEPTION, lambda v: v.fault),
    **_timestamps(),
})

ACTION_CANCEL = Payload("ActionCancelPayload", "1.0", {
    "uuid": attr("uuid"),
    "action_type": attr("action_type"),
    "input_parameters": json_attr("input_parameters"),
    "parents": lambda v: list(v.parents),
    "state": attr("state"),
    "action_plan": nested(TERSE_ACTION_PLAN, lambda v: v.plan),
    "fault": nested(EXCEPTION, lambda v: v.fault),
    **_timestamps(),
})


def action_plan_cancel(plan: Plan, state: str, fault: Fault | None) -> dict[str, Any]:
    return ACTION_PLAN_CANCEL.build(PlanView(plan, state, fault))


def action_cancel(plan: Plan, action: ActionView, state: str, fault: Fault | None) -> dict[str, Any]:
    return ACTION_CANCEL.build(ActionInPlan(action, plan, state, fault))


__all__ = ["Audit", "Strategy", "action_cancel", "action_plan_cancel", "watcher_datetime"]
