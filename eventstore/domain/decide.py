"""``decide(plan, command, now, abort_timeout) -> events``: Watcher's cancellation rules, pure.

An empty list means the command is accepted and changes nothing (a plan already CANCELLING
being cancelled again). A command that breaks a rule raises ``CommandRejected`` with the reason;
nothing changes then either.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from eventstore.exceptions import WatcherEsError
from eventstore.domain.messages import (
    ActionCancellationFailed, ActionCancellationStarted, ActionCancelled, ActionPlanCancellationFailed,
    ActionPlanCancellationStarted, ActionPlanCancelled, ActionPlanRegistered, ActionPlanStateChanged,
    ActionStateChanged, CancelActionPlan, Command, EnforceAbortDeadline, Event, Fault, RegisterActionPlan,
    ReportAbortResult, ReportActionPlanProgress, ReportActionProgress,
)
from eventstore.domain.identity import name_uuid
from eventstore.domain.plan import Plan, evolve
from eventstore.domain.states import ACTION_FINISHED, ACTION_PROGRESS, PLAN_PROGRESS, PLAN_TERMINAL
from eventstore.domain.states import DEFAULT_ABORT_TIMEOUT_US as DEFAULT_ABORT_TIMEOUT_US  # where the rules' callers look for it

_EVENT_IDS = uuid.UUID("5b0c7f8e-7d0e-4a43-9a52-5f1b8b6d2c11")


class CommandRejected(WatcherEsError):
    """The command breaks a rule of the cancellation semantics; nothing changed."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def event_id(command_id: str, index: int) -> str:
    """Stable across re-handling the same command, so a retry cannot mint new identities."""
    return name_uuid(_EVENT_IDS, f"{command_id}/{index}")


class _Emitter:
    """Collects a decision's events, stamping ids and applying each to a running state."""

    def __init__(self, plan: Plan | None, command: Command, now: int) -> None:
        self.plan = plan
        self.events: list[Event] = []
        self._command = command
        self._now = now

    def emit(self, cls: type[Any], **fields: Any) -> None:
        event = cls(
            event_id=event_id(self._command.command_id, len(self.events)),
            command_id=self._command.command_id, plan_uuid=self._command.plan_uuid,
            occurred_at=self._now, **fields,
        )
        self.plan = evolve(self.plan, event)
        self.events.append(event)


def decide(plan: Plan | None, command: Command, now: int, abort_timeout_us: int = DEFAULT_ABORT_TIMEOUT_US) -> list[Event]:
    return decide_and_fold(plan, command, now, abort_timeout_us)[0]


def decide_and_fold(
    plan: Plan | None, command: Command, now: int, abort_timeout_us: int = DEFAULT_ABORT_TIMEOUT_US,
) -> tuple[list[Event], Plan | None]:
    """``decide``, and the plan as its events leave it (folded once, while deciding)."""
    if isinstance(command, RegisterActionPlan):
        return _register(plan, command, now)
    if plan is None:
        raise CommandRejected(f"action plan {command.plan_uuid} is not registered")
    out = _Emitter(plan, command, now)
    match command:
        case CancelActionPlan():
            _cancel(out, plan, command, now, abort_timeout_us)
        case ReportAbortResult():
            _abort_result(out, plan, command)
        case EnforceAbortDeadline():
            _enforce_deadline(out, plan, now)
        case ReportActionPlanProgress():
            _plan_progress(out, plan, command)
        case ReportActionProgress():
            _action_progress(out, plan, command)
    return out.events, out.plan


def unchanged_reason(plan: Plan | None, command: Command) -> str:
    """Why an accepted command changed nothing (``decide`` returned no events)."""
    if plan is not None and isinstance(command, ReportActionProgress):
        action = plan.action(command.action_uuid)
        if action is not None:
            return f"action {action.uuid} is already {action.state}: nothing to change"
    return f"action plan {command.plan_uuid} is already {plan.state if plan else 'unknown'}: nothing to change"


def _register(plan: Plan | None, command: RegisterActionPlan, now: int) -> tuple[list[Event], Plan | None]:
    if plan is not None:
        raise CommandRejected(f"action plan {command.plan_uuid} is already registered (state {plan.state})")
    out = _Emitter(None, command, now)
    out.emit(
        ActionPlanRegistered, state=command.state, global_efficacy=command.global_efficacy,
        created_at=command.created_at, updated_at=command.updated_at, deleted_at=command.deleted_at,
        audit=command.audit, strategy=command.strategy, actions=command.actions, status_message=command.status_message,
    )
    return out.events, out.plan


def _cancel(out: _Emitter, plan: Plan, command: CancelActionPlan, now: int, abort_timeout_us: int) -> None:
    if plan.state == "CANCELLING":
        return  # the same cancellation is already in progress
    if plan.state in PLAN_TERMINAL:
        raise CommandRejected(f"action plan {plan.uuid} is {plan.state} and cannot be cancelled")
    out.emit(ActionPlanCancellationStarted, requested_by=command.issued_by, reason=command.reason, abort_deadline=now + abort_timeout_us)
    for action in plan.actions:
        if action.state == "PENDING":
            out.emit(ActionCancellationStarted, action_uuid=action.uuid)
            out.emit(ActionCancelled, action_uuid=action.uuid)
        elif action.state == "ONGOING":
            out.emit(ActionCancellationStarted, action_uuid=action.uuid)  # the applier aborts it
    _end_if_no_abort_awaited(out)


def _abort_result(out: _Emitter, plan: Plan, command: ReportAbortResult) -> None:
    action = plan.action(command.action_uuid)
    if action is None:
        raise CommandRejected(f"action {command.action_uuid} is not part of action plan {plan.uuid}")
    if action.state != "CANCELLING":
        raise CommandRejected(f"action {action.uuid} is {action.state}, not CANCELLING: no abort is awaited")
    if command.fault is None:
        out.emit(ActionCancelled, action_uuid=action.uuid, status_message=command.status_message)
    else:
        out.emit(ActionCancellationFailed, action_uuid=action.uuid, fault=command.fault, status_message=command.status_message)
    _end_if_no_abort_awaited(out)


def abort_timeout_fault(action_uuid: str, deadline: int) -> Fault:
    when = datetime.fromtimestamp(deadline / 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Fault(
        exception="AbortTimeout",
        exception_message=f"abort of action {action_uuid} did not report back by its deadline {when}",
        module_name=__name__, function_name="enforce_abort_deadline",
    )


def _enforce_deadline(out: _Emitter, plan: Plan, now: int) -> None:
    c = plan.cancellation
    if plan.state != "CANCELLING" or c is None:
        raise CommandRejected(f"action plan {plan.uuid} is {plan.state}: no abort is awaited")
    if now < c.abort_deadline:
        raise CommandRejected(f"action plan {plan.uuid}: the abort deadline has not passed yet")
    for action in plan.aborts_pending:
        out.emit(ActionCancellationFailed, action_uuid=action.uuid, fault=abort_timeout_fault(action.uuid, c.abort_deadline))
    _end_if_no_abort_awaited(out)


def _end_if_no_abort_awaited(out: _Emitter) -> None:
    """When no abort is awaited any more, the cancellation ends, failed if any abort failed."""
    plan = out.plan
    if plan is None or plan.state != "CANCELLING" or plan.aborts_pending:
        return
    fault = plan.cancellation.fault if plan.cancellation else None
    if fault is None:
        out.emit(ActionPlanCancelled)
    else:
        out.emit(ActionPlanCancellationFailed, fault=fault)


def _plan_progress(out: _Emitter, plan: Plan, command: ReportActionPlanProgress) -> None:
    if command.state == plan.state:
        return
    if command.state not in PLAN_PROGRESS.get(plan.state, frozenset()):
        raise CommandRejected(f"action plan {plan.uuid} cannot go from {plan.state} to {command.state}")
    unfinished = [a for a in plan.actions if a.state not in ACTION_FINISHED]
    if command.state == "SUCCEEDED" and unfinished:
        a = unfinished[0]
        raise CommandRejected(f"action plan {plan.uuid} cannot be SUCCEEDED while action {a.uuid} is {a.state}")
    out.emit(ActionPlanStateChanged, state=command.state, status_message=command.status_message)


def _action_progress(out: _Emitter, plan: Plan, command: ReportActionProgress) -> None:
    action = plan.action(command.action_uuid)
    if action is None:
        raise CommandRejected(f"action {command.action_uuid} is not part of action plan {plan.uuid}")
    if command.state == action.state:
        return
    if action.state == "CANCELLING":
        raise CommandRejected(f"action {action.uuid} is being cancelled: report the abort result instead")
    if command.state not in ACTION_PROGRESS.get(action.state, frozenset()):
        raise CommandRejected(f"action {action.uuid} cannot go from {action.state} to {command.state}")
    out.emit(ActionStateChanged, action_uuid=action.uuid, state=command.state, status_message=command.status_message)
