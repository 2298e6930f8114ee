"""Every rule of spec section 3, one table row each, on the pure ``decide``/``evolve``.

A row says where the plan stands (``given``), which command arrives (and when), and either the
events the command must produce and the states they leave, or the reason it must be rejected.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import pytest

from eventstore.domain.decide import DEFAULT_ABORT_TIMEOUT_US, CommandRejected, decide
from eventstore.domain.messages import (
    ActionCancellationFailed,
    ActionCancellationStarted,
    ActionCancelled,
    ActionPlanCancellationFailed,
    ActionPlanCancellationStarted,
    Command,
    Event,
    Fault,
)
from eventstore.domain.plan import Plan, evolve, fold
from projections.sqlite.backend import EmbeddedBackend

from tests import factories as f

PLAN = "76be87bd-3422-43f9-93a0-e85a577e3061"
OTHER_PLAN = "0b5f4b1e-5a53-4f0a-8d77-7f4d7d8c2a01"
A = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(6)]
UNKNOWN_ACTION = "00000000-0000-4000-8000-0000000000ff"
T0 = f.T0
SECOND = 1_000_000
FAULT = Fault("ActionExecutionFailure", "the live migration cannot be aborted", "watcher.applier.actions.migration", "abort")
OTHER_FAULT = Fault("WatcherException", "TEST", "watcher.applier", "abort")


# ---------------------------------------------------------------- building the "given" plans


def history(*commands: Command, now: int = T0, abort_timeout_us: int = DEFAULT_ABORT_TIMEOUT_US) -> Plan:
    """The plan the commands leave, each decided at ``now`` and folded."""
    plan: Plan | None = None
    for command in commands:
        plan = fold(plan, decide(plan, command, now, abort_timeout_us))
    if plan is None:
        raise AssertionError("the history registers no plan")
    return plan


def registered(state: str, *action_states: str) -> Plan:
    return history(f.register(PLAN, state, [f.action(A[i], s) for i, s in enumerate(action_states)]))


def cancelling(*action_states: str, then: tuple[Command, ...] = ()) -> Plan:
    """An ONGOING plan with these actions, cancelled at T0 (with the default abort timeout)."""
    return history(
        f.register(PLAN, "ONGOING", [f.action(A[i], s) for i, s in enumerate(action_states)]), f.cancel(PLAN), *then,
    )


def reached(state: str) -> Plan:
    """A plan in a terminal state, reached the way the rules allow."""
    match state:
        case "SUCCEEDED" | "FAILED":
            return history(f.register(PLAN, "ONGOING", [f.action(A[0], "SUCCEEDED")]), f.plan_progress(PLAN, state))
        case "CANCELLED":
            return history(f.register(PLAN, "PENDING", [f.action(A[0])]), f.cancel(PLAN))
        case "FAILED_BY_CANCELLATION":
            return cancelling("ONGOING", then=(f.abort_failed(PLAN, A[0], FAULT),))
        case "DELETED":  # no command leads there (Watcher soft-deletes elsewhere): construct it
            return dataclasses.replace(registered("SUCCEEDED", "SUCCEEDED"), state="DELETED")
    raise ValueError(state)


# ---------------------------------------------------------------- the table


@dataclass(frozen=True)
class Row:
    id: str
    given: Callable[[], Plan | None]
    command: Callable[[], Command]
    events: tuple[str, ...] = ()
    plan_state: str | None = None
    action_states: tuple[str, ...] | None = None
    rejected: str | None = None
    now: int = T0
    abort_timeout_us: int = DEFAULT_ABORT_TIMEOUT_US
    check: Callable[[Plan, list[Event]], None] | None = field(default=None, compare=False)


STARTED, ACT_START, ACT_END, ACT_ERROR = (
    "ActionPlanCancellationStarted", "ActionCancellationStarted", "ActionCancelled", "ActionCancellationFailed",
)
PLAN_END, PLAN_ERROR = "ActionPlanCancelled", "ActionPlanCancellationFailed"


def _cancelled_in_plan_order(uuids: list[str]) -> Callable[[Plan, list[Event]], None]:
    def check(plan: Plan, events: list[Event]) -> None:
        touched = [e.action_uuid for e in events if isinstance(e, (ActionCancellationStarted, ActionCancelled))]
        assert touched == uuids
    return check


def _carries_fault(fault: Fault) -> Callable[[Plan, list[Event]], None]:
    def check(plan: Plan, events: list[Event]) -> None:
        assert isinstance(events[-1], ActionPlanCancellationFailed)
        assert events[-1].fault == fault, "action_plan.cancel.error must carry the fault of the abort that failed"
        assert plan.fault == fault
    return check


def _failed_abort_recorded(plan: Plan, events: list[Event]) -> None:
    failed = [e for e in events if isinstance(e, ActionCancellationFailed)]
    assert [e.fault for e in failed] == [FAULT]
    action = plan.action(A[0])
    assert action is not None and action.fault == FAULT
    assert plan.fault == FAULT


def _timed_out(aborted: list[str], deadline: int, plan_fault_action: str | None = None) -> Callable[[Plan, list[Event]], None]:
    def check(plan: Plan, events: list[Event]) -> None:
        failed = [e for e in events if isinstance(e, ActionCancellationFailed)]
        assert [e.action_uuid for e in failed] == aborted
        for e in failed:
            assert e.fault.exception == "AbortTimeout"
            assert e.action_uuid in e.fault.exception_message
            view = plan.action(e.action_uuid)
            assert view is not None and view.state == "FAILED" and view.fault == e.fault
        assert plan.fault is not None
        if plan_fault_action is None:
            assert plan.fault.exception == "AbortTimeout" and plan.fault.exception_message.find(aborted[0]) >= 0
        else:
            assert plan.fault == FAULT  # the first abort that failed is the cancellation's fault
        assert plan.cancellation is not None and plan.cancellation.abort_deadline == deadline
    return check


def _deadline_is(deadline: int) -> Callable[[Plan, list[Event]], None]:
    def check(plan: Plan, events: list[Event]) -> None:
        started = events[0]
        assert isinstance(started, ActionPlanCancellationStarted)
        assert started.abort_deadline == deadline
        assert (started.requested_by, started.reason) == ("admin", "maintenance")
    return check


def _unchanged(given: Plan) -> Callable[[Plan, list[Event]], None]:
    def check(plan: Plan, events: list[Event]) -> None:
        assert plan == given
    return check


CANCEL = lambda: f.cancel(PLAN)  # noqa: E731
TEN_SECONDS = 10 * SECOND

CANCEL_ROWS = [
    # ---- direct cancellations: bracketed by start/end, PENDING actions cancelled, nothing aborted
    # Registration refuses a plan without actions now; a log written before may still hold one.
    Row("recommended, no actions", lambda: history(dataclasses.replace(f.register(PLAN, "RECOMMENDED"), actions=())), CANCEL, (STARTED, PLAN_END), "CANCELLED", ()),
    Row(
        "recommended, pending actions", lambda: registered("RECOMMENDED", "PENDING", "PENDING"), CANCEL,
        (STARTED, ACT_START, ACT_END, ACT_START, ACT_END, PLAN_END), "CANCELLED", ("CANCELLED", "CANCELLED"),
        check=_cancelled_in_plan_order([A[0], A[0], A[1], A[1]]),
    ),
    Row(
        "pending, pending actions", lambda: registered("PENDING", "PENDING", "PENDING", "PENDING"), CANCEL,
        (STARTED, ACT_START, ACT_END, ACT_START, ACT_END, ACT_START, ACT_END, PLAN_END), "CANCELLED", ("CANCELLED",) * 3,
    ),
    Row(
        "pending, finished actions untouched", lambda: registered("PENDING", "SKIPPED", "PENDING"), CANCEL,
        (STARTED, ACT_START, ACT_END, PLAN_END), "CANCELLED", ("SKIPPED", "CANCELLED"),
        check=_cancelled_in_plan_order([A[1], A[1]]),
    ),
    Row("pending, no actions", lambda: history(dataclasses.replace(f.register(PLAN, "PENDING"), actions=())), CANCEL, (STARTED, PLAN_END), "CANCELLED", ()),
    # ---- ONGOING: plan CANCELLING, PENDING actions cancelled, ONGOING actions aborted, finished ones left
    Row(
        "ongoing, every kind of action", lambda: registered("ONGOING", "SUCCEEDED", "FAILED", "SKIPPED", "ONGOING", "PENDING"), CANCEL,
        (STARTED, ACT_START, ACT_START, ACT_END), "CANCELLING", ("SUCCEEDED", "FAILED", "SKIPPED", "CANCELLING", "CANCELLED"),
        check=_cancelled_in_plan_order([A[3], A[4], A[4]]),
    ),
    Row(
        "ongoing, two running actions", lambda: registered("ONGOING", "ONGOING", "ONGOING"), CANCEL,
        (STARTED, ACT_START, ACT_START), "CANCELLING", ("CANCELLING", "CANCELLING"),
    ),
    Row(
        "ongoing, only pending actions left: ends at once", lambda: registered("ONGOING", "SUCCEEDED", "PENDING"), CANCEL,
        (STARTED, ACT_START, ACT_END, PLAN_END), "CANCELLED", ("SUCCEEDED", "CANCELLED"),
    ),
    Row(
        "ongoing, every action finished: ends at once", lambda: registered("ONGOING", "SUCCEEDED", "SKIPPED", "FAILED"), CANCEL,
        (STARTED, PLAN_END), "CANCELLED", ("SUCCEEDED", "SKIPPED", "FAILED"),
    ),
    Row(
        "abort deadline is now + default timeout", lambda: registered("ONGOING", "ONGOING"), CANCEL,
        (STARTED, ACT_START), "CANCELLING", now=T0 + 7, check=_deadline_is(T0 + 7 + DEFAULT_ABORT_TIMEOUT_US),
    ),
    Row(
        "abort deadline honours the configured timeout", lambda: registered("ONGOING", "ONGOING"), CANCEL,
        (STARTED, ACT_START), "CANCELLING", now=T0 + 7, abort_timeout_us=TEN_SECONDS, check=_deadline_is(T0 + 7 + TEN_SECONDS),
    ),
    # ---- cancelling a cancellation in progress changes nothing
    Row("cancelling, cancelled again", lambda: cancelling("ONGOING"), CANCEL, (), "CANCELLING", ("CANCELLING",)),
    # ---- terminal plans cannot be cancelled: rejected with the reason
    *(
        Row(f"registered {state}", partial(registered, state, "SUCCEEDED"), CANCEL,
            rejected=f"action plan {PLAN} is {state} and cannot be cancelled")
        for state in ("SUCCEEDED", "FAILED", "SUPERSEDED")
    ),
    *(
        Row(f"reached {how}", partial(reached, how), CANCEL, rejected=f"action plan {PLAN} is {state} and cannot be cancelled")
        for how, state in (
            ("SUCCEEDED", "SUCCEEDED"), ("FAILED", "FAILED"), ("CANCELLED", "CANCELLED"),
            ("FAILED_BY_CANCELLATION", "FAILED"), ("DELETED", "DELETED"),
        )
    ),
    Row("unknown plan", lambda: None, CANCEL, rejected=f"action plan {PLAN} is not registered"),
    Row("another plan's uuid", lambda: None, lambda: f.cancel(OTHER_PLAN), rejected=f"action plan {OTHER_PLAN} is not registered"),
]

ABORT_ROWS = [
    Row(
        "abort succeeded, others still awaited", lambda: cancelling("ONGOING", "ONGOING"), lambda: f.abort_ok(PLAN, A[0]),
        (ACT_END,), "CANCELLING", ("CANCELLED", "CANCELLING"),
    ),
    Row(
        "abort succeeded, the last one: plan ends CANCELLED", lambda: cancelling("ONGOING", "SUCCEEDED"), lambda: f.abort_ok(PLAN, A[0]),
        (ACT_END, PLAN_END), "CANCELLED", ("CANCELLED", "SUCCEEDED"),
    ),
    Row(
        "second abort succeeded: plan ends CANCELLED",
        lambda: cancelling("ONGOING", "ONGOING", then=(f.abort_ok(PLAN, A[0]),)), lambda: f.abort_ok(PLAN, A[1]),
        (ACT_END, PLAN_END), "CANCELLED", ("CANCELLED", "CANCELLED"),
    ),
    Row(
        "abort failed: action FAILED, plan cancellation fails with its fault", lambda: cancelling("ONGOING"),
        lambda: f.abort_failed(PLAN, A[0], FAULT), (ACT_ERROR, PLAN_ERROR), "FAILED", ("FAILED",), check=_failed_abort_recorded,
    ),
    Row(
        "abort failed while another is awaited: plan waits", lambda: cancelling("ONGOING", "ONGOING"),
        lambda: f.abort_failed(PLAN, A[0], FAULT), (ACT_ERROR,), "CANCELLING", ("FAILED", "CANCELLING"),
    ),
    Row(
        "last abort succeeded after one failed: plan fails with the first fault",
        lambda: cancelling("ONGOING", "ONGOING", then=(f.abort_failed(PLAN, A[0], FAULT),)), lambda: f.abort_ok(PLAN, A[1]),
        (ACT_END, PLAN_ERROR), "FAILED", ("FAILED", "CANCELLED"), check=_carries_fault(FAULT),
    ),
    Row(
        "two aborts failed: plan fails with the first fault",
        lambda: cancelling("ONGOING", "ONGOING", then=(f.abort_failed(PLAN, A[0], FAULT),)),
        lambda: f.abort_failed(PLAN, A[1], OTHER_FAULT), (ACT_ERROR, PLAN_ERROR), "FAILED", ("FAILED", "FAILED"),
        check=_carries_fault(FAULT),
    ),
    # ---- an abort result for an action whose abort is not awaited is rejected
    *(
        Row(f"abort result for a {state} action", partial(cancelling, "ONGOING", state), lambda: f.abort_ok(PLAN, A[1]),
            rejected=f"action {A[1]} is {expected}, not CANCELLING: no abort is awaited")
        for state, expected in (("PENDING", "CANCELLED"), ("SUCCEEDED", "SUCCEEDED"), ("FAILED", "FAILED"), ("SKIPPED", "SKIPPED"))
    ),
    Row(
        "abort result reported twice", lambda: cancelling("ONGOING", "ONGOING", then=(f.abort_ok(PLAN, A[0]),)),
        lambda: f.abort_failed(PLAN, A[0]), rejected=f"action {A[0]} is CANCELLED, not CANCELLING: no abort is awaited",
    ),
    Row(
        "abort result for a running action of an uncancelled plan", lambda: registered("ONGOING", "ONGOING"),
        lambda: f.abort_ok(PLAN, A[0]), rejected=f"action {A[0]} is ONGOING, not CANCELLING: no abort is awaited",
    ),
    Row(
        "abort result for an unknown action", lambda: cancelling("ONGOING"), lambda: f.abort_ok(PLAN, UNKNOWN_ACTION),
        rejected=f"action {UNKNOWN_ACTION} is not part of action plan {PLAN}",
    ),
    Row("abort result for an unknown plan", lambda: None, lambda: f.abort_ok(PLAN, A[0]), rejected=f"action plan {PLAN} is not registered"),
]

DEADLINE = T0 + DEFAULT_ABORT_TIMEOUT_US
DEADLINE_ROWS = [
    Row(
        "deadline not passed yet", lambda: cancelling("ONGOING"), lambda: f.deadline(PLAN, DEADLINE - 1), now=DEADLINE - 1,
        rejected=f"action plan {PLAN}: the abort deadline has not passed yet",
    ),
    Row(
        "deadline reached: every awaited abort fails with AbortTimeout", lambda: cancelling("ONGOING", "ONGOING", "SUCCEEDED"),
        lambda: f.deadline(PLAN, DEADLINE), (ACT_ERROR, ACT_ERROR, PLAN_ERROR), "FAILED", ("FAILED", "FAILED", "SUCCEEDED"),
        now=DEADLINE, check=_timed_out([A[0], A[1]], DEADLINE),
    ),
    Row(
        "long past the deadline: only the awaited abort fails",
        lambda: cancelling("ONGOING", "ONGOING", then=(f.abort_ok(PLAN, A[0]),)), lambda: f.deadline(PLAN, DEADLINE + 3600 * SECOND),
        (ACT_ERROR, PLAN_ERROR), "FAILED", ("CANCELLED", "FAILED"), now=DEADLINE + 3600 * SECOND, check=_timed_out([A[1]], DEADLINE),
    ),
    Row(
        "deadline after a real abort failure: the plan keeps the first fault",
        lambda: cancelling("ONGOING", "ONGOING", then=(f.abort_failed(PLAN, A[0], FAULT),)), lambda: f.deadline(PLAN, DEADLINE),
        (ACT_ERROR, PLAN_ERROR), "FAILED", ("FAILED", "FAILED"), now=DEADLINE, check=_timed_out([A[1]], DEADLINE, A[0]),
    ),
    Row(
        "configured timeout: not passed one microsecond before",
        lambda: history(f.register(PLAN, "ONGOING", [f.action(A[0], "ONGOING")]), f.cancel(PLAN), abort_timeout_us=TEN_SECONDS),
        lambda: f.deadline(PLAN, T0 + TEN_SECONDS - 1), now=T0 + TEN_SECONDS - 1, abort_timeout_us=TEN_SECONDS,
        rejected=f"action plan {PLAN}: the abort deadline has not passed yet",
    ),
    Row(
        "configured timeout: passed at cancel time + timeout",
        lambda: history(f.register(PLAN, "ONGOING", [f.action(A[0], "ONGOING")]), f.cancel(PLAN), abort_timeout_us=TEN_SECONDS),
        lambda: f.deadline(PLAN, T0 + TEN_SECONDS), (ACT_ERROR, PLAN_ERROR), "FAILED", ("FAILED",), now=T0 + TEN_SECONDS,
        check=_timed_out([A[0]], T0 + TEN_SECONDS),
    ),
    Row(
        "deadline on a plan that is not cancelling", lambda: registered("ONGOING", "ONGOING"), lambda: f.deadline(PLAN, DEADLINE),
        now=DEADLINE, rejected=f"action plan {PLAN} is ONGOING: no abort is awaited",
    ),
    Row(
        "deadline on a cancellation that ended", lambda: reached("FAILED_BY_CANCELLATION"), lambda: f.deadline(PLAN, DEADLINE),
        now=DEADLINE, rejected=f"action plan {PLAN} is FAILED: no abort is awaited",
    ),
    Row("deadline on an unknown plan", lambda: None, lambda: f.deadline(PLAN, DEADLINE), now=DEADLINE, rejected=f"action plan {PLAN} is not registered"),
]

PROGRESS_ROWS = [
    *(
        Row(f"plan {old} -> {new}", partial(registered, old, action), partial(f.plan_progress, PLAN, new),
            ("ActionPlanStateChanged",), new, (action,))
        for old, new, action in (
            ("RECOMMENDED", "PENDING", "PENDING"), ("RECOMMENDED", "ONGOING", "PENDING"), ("PENDING", "ONGOING", "PENDING"),
            ("ONGOING", "SUCCEEDED", "SUCCEEDED"), ("ONGOING", "FAILED", "PENDING"),
        )
    ),
    *(
        Row(f"plan {old} -> {new} rejected", partial(registered, old), partial(f.plan_progress, PLAN, new),
            rejected=f"action plan {PLAN} cannot go from {old} to {new}")
        for old, new in (
            ("RECOMMENDED", "SUCCEEDED"), ("PENDING", "RECOMMENDED"), ("ONGOING", "PENDING"), ("ONGOING", "CANCELLED"),
            ("ONGOING", "CANCELLING"), ("SUCCEEDED", "ONGOING"), ("FAILED", "SUCCEEDED"), ("SUPERSEDED", "PENDING"),
        )
    ),
    Row("plan progress while cancelling rejected", lambda: cancelling("ONGOING"), lambda: f.plan_progress(PLAN, "SUCCEEDED"),
        rejected=f"action plan {PLAN} cannot go from CANCELLING to SUCCEEDED"),
    Row("plan progress after cancellation rejected", lambda: reached("CANCELLED"), lambda: f.plan_progress(PLAN, "ONGOING"),
        rejected=f"action plan {PLAN} cannot go from CANCELLED to ONGOING"),
    *(
        Row(f"plan {state} -> {state} is a no-op", partial(registered, state, "PENDING"),
            partial(f.plan_progress, PLAN, state), (), state, ("PENDING",))
        for state in ("RECOMMENDED", "ONGOING", "SUCCEEDED")
    ),
    *(
        Row(f"action {old} -> {new}", partial(registered, "ONGOING", old, "PENDING"),
            partial(f.action_progress, PLAN, A[0], new), ("ActionStateChanged",), "ONGOING", (new, "PENDING"))
        for old, new in (("PENDING", "ONGOING"), ("PENDING", "SKIPPED"), ("PENDING", "FAILED"), ("ONGOING", "SUCCEEDED"), ("ONGOING", "FAILED"))
    ),
    *(
        Row(f"action {old} -> {new} rejected", partial(registered, "ONGOING", old), partial(f.action_progress, PLAN, A[0], new),
            rejected=f"action {A[0]} cannot go from {old} to {new}")
        for old, new in (
            ("PENDING", "SUCCEEDED"), ("PENDING", "CANCELLED"), ("ONGOING", "PENDING"), ("ONGOING", "CANCELLING"),
            ("SUCCEEDED", "ONGOING"), ("FAILED", "SUCCEEDED"), ("SKIPPED", "ONGOING"),
        )
    ),
    Row("action progress while its abort is awaited rejected", lambda: cancelling("ONGOING"),
        lambda: f.action_progress(PLAN, A[0], "SUCCEEDED"),
        rejected=f"action {A[0]} is being cancelled: report the abort result instead"),
    Row("action progress after it was cancelled rejected", lambda: cancelling("PENDING"),
        lambda: f.action_progress(PLAN, A[0], "ONGOING"), rejected=f"action {A[0]} cannot go from CANCELLED to ONGOING"),
    *(
        Row(f"action {state} -> {state} is a no-op", partial(registered, "ONGOING", state),
            partial(f.action_progress, PLAN, A[0], state), (), "ONGOING", (state,))
        for state in ("PENDING", "ONGOING", "SUCCEEDED")
    ),
    Row("action progress for an unknown action", lambda: registered("ONGOING", "PENDING"),
        lambda: f.action_progress(PLAN, UNKNOWN_ACTION, "ONGOING"), rejected=f"action {UNKNOWN_ACTION} is not part of action plan {PLAN}"),
    Row("plan reported SUCCEEDED with an action still running rejected", lambda: registered("ONGOING", "SUCCEEDED", "ONGOING"),
        lambda: f.plan_progress(PLAN, "SUCCEEDED"), rejected=f"action plan {PLAN} cannot be SUCCEEDED while action {A[1]} is ONGOING"),
    Row("plan progress for an unknown plan", lambda: None, lambda: f.plan_progress(PLAN, "ONGOING"), rejected=f"action plan {PLAN} is not registered"),
    Row("action progress for an unknown plan", lambda: None, lambda: f.action_progress(PLAN, A[0], "ONGOING"),
        rejected=f"action plan {PLAN} is not registered"),
]

REGISTER_ROWS = [
    Row("register", lambda: None, lambda: f.register(PLAN, "ONGOING", [f.action(A[0], "ONGOING"), f.action(A[1])]),
        ("ActionPlanRegistered",), "ONGOING", ("ONGOING", "PENDING")),
    Row("register twice rejected", lambda: registered("RECOMMENDED"), lambda: f.register(PLAN, "RECOMMENDED"),
        rejected=f"action plan {PLAN} is already registered (state RECOMMENDED)"),
    Row("register again after cancellation rejected", lambda: reached("CANCELLED"), lambda: f.register(PLAN, "PENDING"),
        rejected=f"action plan {PLAN} is already registered (state CANCELLED)"),
]

ROWS = [*CANCEL_ROWS, *ABORT_ROWS, *DEADLINE_ROWS, *PROGRESS_ROWS, *REGISTER_ROWS]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_rule(row: Row) -> None:
    given = row.given()
    command = row.command()
    if row.rejected is not None:
        with pytest.raises(CommandRejected) as rejected:
            decide(given, command, row.now, row.abort_timeout_us)
        assert rejected.value.reason == row.rejected
        return
    events = decide(given, command, row.now, row.abort_timeout_us)
    assert [type(e).__name__ for e in events] == list(row.events)
    after = fold(given, events)
    assert after is not None
    if not events:
        assert after == given, "a command that changes nothing leaves the plan exactly as it was"
    if row.plan_state is not None:
        assert after.state == row.plan_state
    if row.action_states is not None:
        assert tuple(a.state for a in after.actions) == row.action_states
    for e in events:
        assert (e.plan_uuid, e.command_id, e.occurred_at) == (command.plan_uuid, command.command_id, row.now)
    if row.check is not None:
        row.check(after, events)


def test_every_row_id_is_unique() -> None:
    assert len({r.id for r in ROWS}) == len(ROWS)


def test_the_same_command_decides_the_same_events() -> None:
    """Event ids derive from the command id: re-deciding a retried command mints no new identities."""
    given = registered("ONGOING", "ONGOING", "PENDING")
    command = f.cancel(PLAN)
    assert decide(given, command, T0) == decide(given, command, T0)
    assert len({e.event_id for e in decide(given, command, T0)}) == 4


def test_rejection_changes_nothing() -> None:
    given = reached("CANCELLED")
    frozen = dataclasses.replace(given)
    with pytest.raises(CommandRejected):
        decide(given, f.cancel(PLAN), T0)
    assert given == frozen


def test_evolve_keeps_the_cancellation_request() -> None:
    plan = cancelling("ONGOING")
    assert plan.cancellation is not None
    assert (plan.cancellation.requested_by, plan.cancellation.reason, plan.cancellation.started_at) == ("admin", "maintenance", T0)
    assert plan.version == 3  # registered, cancellation started, action cancellation started


def test_evolve_refuses_an_event_before_registration() -> None:
    from eventstore.domain.plan import UnexpectedEventError

    event = decide(registered("ONGOING", "ONGOING"), f.cancel(PLAN), T0)[0]
    with pytest.raises(UnexpectedEventError):
        evolve(None, event)


def test_a_repeated_action_report_says_the_action_is_already_in_that_state(service: EmbeddedBackend) -> None:
    action = f.action(state="ONGOING")
    plan = f.register(state="ONGOING", actions=[action])
    service.submit(plan)
    result = service.submit(f.action_progress(plan.plan_uuid, action.uuid, "ONGOING"))
    assert result.outcome == "unchanged"
    assert result.reason == f"action {action.uuid} is already ONGOING: nothing to change"
