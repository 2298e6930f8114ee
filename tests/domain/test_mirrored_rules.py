"""The rules for plans that mirror Watcher, one table row each, on the pure ``decide``/``evolve``.

A mirrored plan is registered by the bridge and every command about it reports a fact Watcher
already made (it carries the Watcher notification). The rows state what each fact records:
what Watcher does differently from a managed plan (it lets a running action finish, a cancel
during the last action is lost, a plan ends CANCELLED although an abort failed) is a rule
here, not a special case in the bridge. README.md's second rules table says the same.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from eventstore.domain.decide import NO_DEADLINE, CommandRejected, decide
from eventstore.domain.messages import (
    ActionCancellationFailed, ActionPlanCancellationFailed, ActionPlanCancellationStarted, Command, Event, Fault, WatcherNotification,
)
from eventstore.domain.plan import Plan, fold

from tests import factories as f

PLAN = "9f1b2a3c-4d5e-4f60-8a7b-1c2d3e4f5a6b"
A = [f"00000000-0000-4000-8000-0000000001{i:02d}" for i in range(4)]
T0 = f.T0
NOTE = WatcherNotification("m-1", "action_plan.update", "infra-optim:api-1", T0, "u-1", "p-1", "req-1", "greq-1")
FAULT = Fault("ActionNotFound", "Action 1 could not be found", "watcher.db.sqlalchemy.api", "_get_action")


def fact(command: Command) -> Command:
    """The command as the bridge sends it: a fact, with the notification it reports."""
    reported: Command = dataclasses.replace(command, watcher=NOTE)  # type: ignore[arg-type]  # (EnforceAbortDeadline has none: never given here)
    return reported


def history(*commands: Command) -> Plan:
    plan: Plan | None = None
    for command in commands:
        plan = fold(plan, decide(plan, command, T0))
    assert plan is not None
    return plan


def mirrored(state: str, *action_states: str, then: tuple[Command, ...] = ()) -> Plan:
    return history(fact(f.register(PLAN, state, [f.action(A[i], s) for i, s in enumerate(action_states)])), *then)


def cancel() -> Command:
    return fact(f.cancel(PLAN, by="u-1 (project p-1)", reason="cancelled through Watcher's API"))


def plan_state(state: str) -> Command:
    return fact(f.plan_progress(PLAN, state))


def action_state(i: int, state: str) -> Command:
    return fact(f.action_progress(PLAN, A[i], state))


def cancelling(*action_states: str) -> Plan:
    """An ONGOING mirrored plan whose cancel Watcher's API accepted."""
    return mirrored("ONGOING", *action_states, then=(cancel(),))


@dataclass(frozen=True)
class Row:
    id: str
    given: Callable[[], Plan | None]
    command: Callable[[], Command]
    events: tuple[str, ...] = ()
    plan_state: str | None = None
    action_states: tuple[str, ...] | None = None
    rejected: str | None = None
    check: Callable[[Plan, list[Event]], Any] | None = None


def _notes(*expected: str) -> Callable[[Plan, list[Event]], None]:
    def check(plan: Plan, events: list[Event]) -> None:
        faults = [e.fault.exception for e in events if isinstance(e, (ActionCancellationFailed, ActionPlanCancellationFailed))]
        assert faults == list(expected)

    return check


def _no_deadline(plan: Plan, events: list[Event]) -> None:
    started = [e for e in events if isinstance(e, ActionPlanCancellationStarted)]
    assert started and all(e.abort_deadline == NO_DEADLINE for e in started)
    assert plan.cancellation is not None and plan.cancellation.requested_by == "u-1 (project p-1)"


ROWS = [
    # registration
    Row("register from Watcher's creation", lambda: None, lambda: fact(f.register(PLAN, "RECOMMENDED", [f.action(A[0]), f.action(A[1])])),
        ("ActionPlanRegistered",), "RECOMMENDED", ("PENDING", "PENDING"), check=lambda p, _: p.mirrored or pytest.fail("not mirrored")),
    # the cancel, as Watcher's API does it
    Row("cancel RECOMMENDED: everything at once, the spec's full sequence", lambda: mirrored("RECOMMENDED", "PENDING", "PENDING"), cancel,
        ("ActionPlanCancellationStarted", "ActionCancellationStarted", "ActionCancelled", "ActionCancellationStarted", "ActionCancelled",
         "ActionPlanCancelled"), "CANCELLED", ("CANCELLED", "CANCELLED"), check=_no_deadline),
    Row("cancel PENDING: the same", lambda: mirrored("PENDING", "PENDING"), cancel,
        ("ActionPlanCancellationStarted", "ActionCancellationStarted", "ActionCancelled", "ActionPlanCancelled"), "CANCELLED", ("CANCELLED",)),
    Row("cancel ONGOING: the running action awaits its end, the pending ones the applier", lambda: mirrored("ONGOING", "SUCCEEDED", "ONGOING", "PENDING"),
        cancel, ("ActionPlanCancellationStarted", "ActionCancellationStarted"), "CANCELLING", ("SUCCEEDED", "CANCELLING", "PENDING"), check=_no_deadline),
    Row("cancel ONGOING between two actions: nothing ends yet", lambda: mirrored("ONGOING", "SUCCEEDED", "PENDING"), cancel,
        ("ActionPlanCancellationStarted",), "CANCELLING", ("SUCCEEDED", "PENDING")),
    Row("cancel again while CANCELLING: unchanged", lambda: cancelling("ONGOING"), cancel, ()),
    Row("cancel after Watcher finished the plan: recorded too late", lambda: mirrored("ONGOING", "SUCCEEDED", then=(plan_state("SUCCEEDED"),)),
        cancel, ("ActionPlanCancellationStarted", "ActionPlanCancellationFailed"), "SUCCEEDED", ("SUCCEEDED",), check=_notes("CancelTooLate")),
    Row("cancel a CANCELLED plan: rejected", lambda: mirrored("RECOMMENDED", "PENDING", then=(cancel(),)), cancel,
        rejected=f"action plan {PLAN} is CANCELLED and cannot be cancelled"),
    # actions, as the applier reports them while the plan is CANCELLING
    Row("the running action finished: not aborted, cancel.error, SUCCEEDED as Watcher says", lambda: cancelling("ONGOING", "PENDING"),
        lambda: action_state(0, "SUCCEEDED"), ("ActionCancellationFailed",), "CANCELLING", ("SUCCEEDED", "PENDING"), check=_notes("ActionNotCancelled")),
    Row("the running action failed on its own", lambda: cancelling("ONGOING"), lambda: action_state(0, "FAILED"),
        ("ActionCancellationFailed",), "CANCELLING", ("FAILED",), check=_notes("ActionNotCancelled")),
    Row("the next action cancelled by the applier: cancel.start and .end", lambda: cancelling("SUCCEEDED", "PENDING"),
        lambda: action_state(1, "CANCELLED"), ("ActionCancellationStarted", "ActionCancelled"), "CANCELLING", ("SUCCEEDED", "CANCELLED")),
    Row("an aborted action's abort succeeded (cancel.end, CANCELLED)", lambda: cancelling("ONGOING"), lambda: action_state(0, "CANCELLED"),
        ("ActionCancelled",), "CANCELLING", ("CANCELLED",)),
    Row("an abort's bookkeeping failed (cancel.error): Watcher's fault", lambda: cancelling("ONGOING"),
        lambda: fact(f.abort_failed(PLAN, A[0], FAULT)), ("ActionCancellationFailed",), "CANCELLING", ("FAILED",), check=_notes("ActionNotFound")),
    Row("an abort result for an action not CANCELLING: rejected", lambda: cancelling("SUCCEEDED", "PENDING"),
        lambda: fact(f.abort_ok(PLAN, A[1])), rejected=f"action {A[1]} is PENDING, not CANCELLING: no abort is awaited"),
    Row("a pending action started despite the cancel (a race): recorded", lambda: cancelling("SUCCEEDED", "PENDING"),
        lambda: action_state(1, "ONGOING"), ("ActionStateChanged",), "CANCELLING", ("SUCCEEDED", "ONGOING")),
    Row("an action CANCELLED while its plan is not cancelling: rejected", lambda: mirrored("ONGOING", "ONGOING", "PENDING"),
        lambda: action_state(1, "CANCELLED"), rejected=f"action {A[1]} cannot be CANCELLED while its plan is ONGOING: report the plan's cancel first"),
    # the plan's end, as Watcher reports it
    Row("the plan CANCELLED although an abort failed: cancel.end, as Watcher says",
        lambda: history(*_cancelling_then(action_state(0, "FAILED"), action_state(1, "CANCELLED"))),
        lambda: plan_state("CANCELLED"), ("ActionPlanCancelled",), "CANCELLED", ("FAILED", "CANCELLED")),
    Row("the plan SUCCEEDED while an action is PENDING: rejected",
        lambda: history(*_cancelling_then(action_state(0, "SUCCEEDED"))), lambda: plan_state("SUCCEEDED"),
        rejected=f"action plan {PLAN} cannot be SUCCEEDED while action {A[1]} is PENDING: report the action first"),
    Row("the plan SUCCEEDED after its last action: cancel.error, the cancel was lost",
        lambda: history(fact(f.register(PLAN, "ONGOING", [f.action(A[0], "SUCCEEDED"), f.action(A[1], "ONGOING")])), cancel(), action_state(1, "SUCCEEDED")),
        lambda: plan_state("SUCCEEDED"), ("ActionPlanCancellationFailed",), "SUCCEEDED", ("SUCCEEDED", "SUCCEEDED"), check=_notes("CancelTooLate")),
    Row("the plan's end before an action's: rejected, the bridge reports the action first", lambda: cancelling("ONGOING"),
        lambda: plan_state("CANCELLED"), rejected=f"action plan {PLAN} cannot be CANCELLED while action {A[0]} is CANCELLING: report the action first"),
    Row("CANCELLED reported as progress without a cancel: rejected", lambda: mirrored("ONGOING", "ONGOING"), lambda: plan_state("CANCELLED"),
        rejected=f"action plan {PLAN} is ONGOING: a cancel is reported as CancelActionPlan, not as progress"),
    # progress, deletion, expiry: whatever Watcher did
    Row("started by Watcher's API", lambda: mirrored("RECOMMENDED", "PENDING"), lambda: plan_state("PENDING"), ("ActionPlanStateChanged",), "PENDING"),
    Row("an action runs", lambda: mirrored("ONGOING", "PENDING"), lambda: action_state(0, "ONGOING"), ("ActionStateChanged",), "ONGOING", ("ONGOING",)),
    Row("a repeated state: unchanged", lambda: mirrored("ONGOING", "ONGOING"), lambda: action_state(0, "ONGOING"), ()),
    Row("expiry: SUPERSEDED", lambda: mirrored("RECOMMENDED", "PENDING"), lambda: plan_state("SUPERSEDED"), ("ActionPlanStateChanged",), "SUPERSEDED", ("PENDING",)),
    Row("an action DELETED", lambda: mirrored("RECOMMENDED", "PENDING"), lambda: action_state(0, "DELETED"), ("ActionStateChanged",), "RECOMMENDED", ("DELETED",)),
    Row("the plan DELETED", lambda: mirrored("RECOMMENDED", "PENDING", then=(action_state(0, "DELETED"),)), lambda: plan_state("DELETED"),
        ("ActionPlanStateChanged",), "DELETED", ("DELETED",)),
    Row("a CANCELLED plan DELETED later", lambda: mirrored("RECOMMENDED", "PENDING", then=(cancel(),)), lambda: plan_state("DELETED"),
        ("ActionPlanStateChanged",), "DELETED"),
    Row("nothing after DELETED", lambda: mirrored("RECOMMENDED", "PENDING", then=(plan_state("DELETED"),)), lambda: action_state(0, "ONGOING"),
        rejected=f"action plan {PLAN} is DELETED: Watcher reports nothing more of it"),
    Row("a finished plan only goes on to DELETED", lambda: mirrored("ONGOING", "SUCCEEDED", then=(plan_state("SUCCEEDED"),)),
        lambda: plan_state("ONGOING"), rejected=f"action plan {PLAN} is SUCCEEDED: only its deletion can follow"),
    # two kinds of plan, two kinds of command
    Row("a request for a mirrored plan: rejected, Watcher decides it", lambda: mirrored("ONGOING", "ONGOING"), lambda: f.cancel(PLAN),
        rejected=f"action plan {PLAN} mirrors Watcher, which decides it: ask Watcher's API; only the bridge reports what Watcher did"),
    Row("the deadline pass for a mirrored plan: rejected", lambda: cancelling("ONGOING"), lambda: f.deadline(PLAN, T0 + 10**12),
        rejected=f"action plan {PLAN} mirrors Watcher, which decides it: ask Watcher's API; only the bridge reports what Watcher did"),
    Row("a fact for a managed plan: rejected", lambda: history(f.register(PLAN, "ONGOING", [f.action(A[0], "ONGOING")])), cancel,
        rejected=f"action plan {PLAN} is managed by watcher-es: a Watcher notification cannot change it"),
]


def _cancelling_then(*commands: Command) -> tuple[Command, ...]:
    return (fact(f.register(PLAN, "ONGOING", [f.action(A[0], "ONGOING"), f.action(A[1])])), cancel(), *commands)


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_mirrored_rule(row: Row) -> None:
    given = row.given()
    command = row.command()
    if row.rejected is not None:
        with pytest.raises(CommandRejected) as rejected:
            decide(given, command, T0)
        assert rejected.value.reason == row.rejected
        return
    events = decide(given, command, T0)
    assert [type(e).__name__ for e in events] == list(row.events)
    after = fold(given, events)
    assert after is not None
    if not events:
        assert after == given
    if row.plan_state is not None:
        assert after.state == row.plan_state
    if row.action_states is not None:
        assert tuple(a.state for a in after.actions) == row.action_states
    if row.check is not None:
        row.check(after, events)


def test_every_row_id_is_unique() -> None:
    assert len({r.id for r in ROWS}) == len(ROWS)


def test_a_mirrored_cancellation_ends_once_whatever_order_its_actions_end() -> None:
    """Every action.cancel.start gets exactly one .end or .error, and the plan exactly one of its own."""
    plan = cancelling("SUCCEEDED", "ONGOING", "PENDING", "PENDING")
    facts = [action_state(1, "SUCCEEDED"), action_state(2, "CANCELLED"), action_state(3, "CANCELLED"), plan_state("CANCELLED")]
    events: list[Event] = []
    for command in facts:
        new = decide(plan, command, T0)
        plan = fold(plan, new) or plan
        events += new
    names = [type(e).__name__ for e in events]
    assert names.count("ActionCancellationStarted") == 2  # the two the applier cancelled (the running one started at the cancel)
    assert names.count("ActionCancelled") + names.count("ActionCancellationFailed") == 3
    assert names[-1] == "ActionPlanCancelled" and plan.state == "CANCELLED"
    assert [a.state for a in plan.actions] == ["SUCCEEDED", "SUCCEEDED", "CANCELLED", "CANCELLED"]
