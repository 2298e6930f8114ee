"""``decide(plan, command, now, abort_timeout) -> events``: Watcher's cancellation rules, pure.

An empty list means the command is accepted and changes nothing (a plan already CANCELLING
being cancelled again). A command that breaks a rule raises ``CommandRejected`` with the reason;
nothing changes then either.

Two kinds of plan, two sets of rules. A plan registered by an operator or a service is
*managed*: its commands are requests, and these rules decide what a cancel does, when an abort
has failed and when the cancellation ends. A plan the bridge registered from Watcher's
notifications *mirrors* Watcher: Watcher decides, and its commands (each carrying the Watcher
notification it reports) are facts to record, stated by the rules under "Plans that mirror
Watcher" below. A command of one kind is refused for a plan of the other.
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
    reported = getattr(command, "watcher", None) is not None
    if plan.mirrored or reported:
        if not plan.mirrored:
            raise CommandRejected(f"action plan {plan.uuid} is managed by watcher-es: a Watcher notification cannot change it")
        if not reported:
            raise CommandRejected(
                f"action plan {plan.uuid} mirrors Watcher, which decides it: ask Watcher's API; only the bridge reports what Watcher did"
            )
        _mirror(out, plan, command)
        return out.events, out.plan
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
        mirrored=command.watcher is not None,
    )
    return out.events, out.plan


def _cancel(out: _Emitter, plan: Plan, command: CancelActionPlan, now: int, abort_timeout_us: int) -> None:
    if plan.state == "CANCELLING":
        return  # the same cancellation is already in progress
    if plan.state in PLAN_TERMINAL:
        raise CommandRejected(f"action plan {plan.uuid} is {plan.state} and cannot be cancelled")
    _start_cancellation(out, plan, command, now + abort_timeout_us, cancel_pending=True)
    _end_if_no_abort_awaited(out)


def _start_cancellation(out: _Emitter, plan: Plan, command: CancelActionPlan, abort_deadline: int, cancel_pending: bool) -> None:
    """The plan goes CANCELLING; ONGOING actions await their abort; PENDING ones are cancelled at once if ``cancel_pending``."""
    out.emit(ActionPlanCancellationStarted, requested_by=command.issued_by, reason=command.reason, abort_deadline=abort_deadline)
    for action in plan.actions:
        if action.state == "PENDING" and cancel_pending:
            out.emit(ActionCancellationStarted, action_uuid=action.uuid)
            out.emit(ActionCancelled, action_uuid=action.uuid)
        elif action.state == "ONGOING":
            out.emit(ActionCancellationStarted, action_uuid=action.uuid)  # the applier aborts it


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


# ---------------------------------------------------------------- plans that mirror Watcher
#
# Watcher decides; a command reports what it did, so each rule records a fact: what Watcher's
# database now says. The bridge sends them in the order Watcher did them (an action's outcome
# before its plan's). What the notifications say differs from a managed plan where Watcher does
# differently: it lets a running action finish instead of aborting it, a cancel during the last
# action is lost, and a plan ends CANCELLED even when an abort failed. No abort deadline applies:
# Watcher ends its own aborts.

#: A mirrored plan's cancellation awaits no deadline of ours (``abort_deadline`` 0).
NO_DEADLINE = 0


def _mirror(out: _Emitter, plan: Plan, command: Command) -> None:
    if plan.state == "DELETED":
        raise CommandRejected(f"action plan {plan.uuid} is DELETED: Watcher reports nothing more of it")
    match command:
        case CancelActionPlan():
            _mirror_cancel(out, plan, command)
        case ReportActionPlanProgress():
            _mirror_plan_state(out, plan, command)
        case ReportActionProgress():
            _mirror_action_state(out, plan, command)
        case ReportAbortResult():
            _mirror_abort_result(out, plan, command)
        case _:
            raise CommandRejected(f"action plan {plan.uuid} mirrors Watcher: {type(command).__name__} does not apply to it")


def not_cancelled_fault(action_uuid: str, state: str) -> Fault:
    return Fault(
        exception="ActionNotCancelled",
        exception_message=(
            f"action {action_uuid} ended {state} while its plan was being cancelled: Watcher did not cancel it "
            "(it finished before an abort, or its abort did not succeed)"
        ),
        module_name=__name__, function_name="mirror_action_state",
    )


def cancel_too_late_fault(plan_uuid: str, state: str) -> Fault:
    return Fault(
        exception="CancelTooLate",
        exception_message=(
            f"action plan {plan_uuid} ended {state} before the cancel took effect: Watcher lets the running action "
            "finish, and a cancel during the last action is lost"
        ),
        module_name=__name__, function_name="mirror_plan_state",
    )


def _mirror_cancel(out: _Emitter, plan: Plan, command: CancelActionPlan) -> None:
    """Watcher's API moved the plan to CANCELLING (an ONGOING plan) or CANCELLED (RECOMMENDED, PENDING)."""
    if plan.state == "CANCELLING":
        return
    if plan.state in ("SUCCEEDED", "FAILED"):  # the cancel was accepted, but Watcher had finished the plan first
        out.emit(ActionPlanCancellationStarted, requested_by=command.issued_by, reason=command.reason, abort_deadline=NO_DEADLINE)
        out.emit(ActionPlanCancellationFailed, fault=cancel_too_late_fault(plan.uuid, plan.state), state=plan.state)
        return
    if plan.state in PLAN_TERMINAL:
        raise CommandRejected(f"action plan {plan.uuid} is {plan.state} and cannot be cancelled")
    running = any(a.state == "ONGOING" for a in plan.actions) or plan.state == "ONGOING"
    # Watcher cancels a plan that has not started at once, every action with it; a running one
    # action by action, as its applier gets to them: those actions wait for their facts.
    _start_cancellation(out, plan, command, NO_DEADLINE, cancel_pending=not running)
    if not running:
        out.emit(ActionPlanCancelled)


def _mirror_plan_state(out: _Emitter, plan: Plan, command: ReportActionPlanProgress) -> None:
    state = command.state
    if state == plan.state:
        return
    if state in ("CANCELLING", "CANCELLED") and plan.state != "CANCELLING":
        raise CommandRejected(f"action plan {plan.uuid} is {plan.state}: a cancel is reported as CancelActionPlan, not as progress")
    if plan.state in PLAN_TERMINAL and state != "DELETED":
        raise CommandRejected(f"action plan {plan.uuid} is {plan.state}: only its deletion can follow")
    if state in ("SUCCEEDED", "CANCELLED") or plan.state == "CANCELLING":
        unfinished = [a for a in plan.actions if a.state not in ACTION_FINISHED]
        if unfinished and state != "DELETED":
            a = unfinished[0]
            raise CommandRejected(f"action plan {plan.uuid} cannot be {state} while action {a.uuid} is {a.state}: report the action first")
    if plan.state == "CANCELLING":
        if state in ("CANCELLED", "DELETED"):
            out.emit(ActionPlanCancelled)  # Watcher's word: CANCELLED, even if an abort failed
        elif state in ("SUCCEEDED", "FAILED"):
            fault = plan.cancellation.fault if plan.cancellation and plan.cancellation.fault and state == "FAILED" else None
            out.emit(ActionPlanCancellationFailed, fault=fault or cancel_too_late_fault(plan.uuid, state), state=state)
        else:
            raise CommandRejected(f"action plan {plan.uuid} is being cancelled and cannot go back to {state}")
        if state != "DELETED":
            return
    out.emit(ActionPlanStateChanged, state=state, status_message=command.status_message)


def _mirror_action_state(out: _Emitter, plan: Plan, command: ReportActionProgress) -> None:
    action = plan.action(command.action_uuid)
    if action is None:
        raise CommandRejected(f"action {command.action_uuid} is not part of action plan {plan.uuid}")
    state, message = command.state, command.status_message
    if state == action.state:
        return
    if action.state == "DELETED":
        raise CommandRejected(f"action {action.uuid} is DELETED: Watcher reports nothing more of it")
    if state == "DELETED":
        out.emit(ActionStateChanged, action_uuid=action.uuid, state=state, status_message=message)
    elif action.state == "CANCELLING":  # awaiting the end of its abort, or of its run
        if state == "CANCELLED":
            out.emit(ActionCancelled, action_uuid=action.uuid, status_message=message)
        elif state in ACTION_FINISHED:
            out.emit(ActionCancellationFailed, action_uuid=action.uuid, fault=not_cancelled_fault(action.uuid, state), state=state, status_message=message)
        else:
            raise CommandRejected(f"action {action.uuid} is being cancelled and cannot go back to {state}")
    elif state == "CANCELLED":  # an action the applier never started, cancelled as it got to it
        if plan.state != "CANCELLING":
            raise CommandRejected(f"action {action.uuid} cannot be CANCELLED while its plan is {plan.state}: report the plan's cancel first")
        out.emit(ActionCancellationStarted, action_uuid=action.uuid)
        out.emit(ActionCancelled, action_uuid=action.uuid, status_message=message)
    elif state == "CANCELLING" or action.state in ACTION_FINISHED:
        raise CommandRejected(f"action {action.uuid} cannot go from {action.state} to {state}")
    else:
        out.emit(ActionStateChanged, action_uuid=action.uuid, state=state, status_message=message)


def _mirror_abort_result(out: _Emitter, plan: Plan, command: ReportAbortResult) -> None:
    """Watcher's own abort result: ``action.cancel.end`` (no fault) or ``action.cancel.error`` (its fault)."""
    action = plan.action(command.action_uuid)
    if action is None:
        raise CommandRejected(f"action {command.action_uuid} is not part of action plan {plan.uuid}")
    if action.state != "CANCELLING":
        raise CommandRejected(f"action {action.uuid} is {action.state}, not CANCELLING: no abort is awaited")
    if command.fault is None:
        out.emit(ActionCancelled, action_uuid=action.uuid, status_message=command.status_message)
    else:
        out.emit(ActionCancellationFailed, action_uuid=action.uuid, fault=command.fault, status_message=command.status_message)
