"""A plan's state as its events leave it: ``evolve(plan, event) -> plan``, pure.

The handler folds a plan's stream to decide; the translator folds it to build payloads, so the
two can never disagree about what a plan looked like when an event happened.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# ``changed``, not ``dataclasses.replace``: none of these records validates, a plan's ``places``
# is shared on purpose (actions keep their places), and ``replace`` was half of deciding a cancel.
from eventstore.frozen import changed, quick_init
from eventstore.domain.messages import (
    Action, ActionCancellationFailed, ActionCancellationStarted, ActionCancelled, ActionPlanCancellationFailed,
    ActionPlanCancellationStarted, ActionPlanCancelled, ActionPlanRegistered, ActionPlanStateChanged,
    ActionStateChanged, Audit, Event, Fault, Strategy,
)

@quick_init
@dataclass(frozen=True)
class ActionView:
    """One action as it stands now; ``fault`` is set when its abort failed."""

    uuid: str
    action_type: str
    input_parameters: str
    parents: tuple[str, ...]
    state: str
    created_at: int
    updated_at: int | None
    deleted_at: int | None
    fault: Fault | None = None
    status_message: str | None = None


@quick_init
@dataclass(frozen=True)
class Cancellation:
    """The cancellation in progress or done; ``fault`` is the first abort that failed."""

    requested_by: str
    reason: str
    started_at: int
    abort_deadline: int
    started_event_id: str
    fault: Fault | None = None


@dataclass(frozen=True)
class Plan:
    uuid: str
    state: str
    global_efficacy: str
    created_at: int
    updated_at: int | None
    deleted_at: int | None
    audit: Audit
    strategy: Strategy
    actions: tuple[ActionView, ...]
    version: int = 1
    cancellation: Cancellation | None = None
    fault: Fault | None = None
    status_message: str | None = None
    #: Registered by the bridge: Watcher decides this plan, and every command about it reports what Watcher did.
    mirrored: bool = False
    #: Each action's place in ``actions``: the actions never change order, so every plan a plan
    #: evolves into shares it, and finding an action costs O(1) (a cancel of n actions stays linear).
    places: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.places) != len(self.actions):
            object.__setattr__(self, "places", {a.uuid: i for i, a in enumerate(self.actions)})

    def action(self, uuid: str) -> ActionView | None:
        i = self.places.get(uuid)
        return None if i is None else self.actions[i]

    def with_action(self, uuid: str, version: int | None = None, **changes: object) -> Plan:
        """The plan with one action changed (and, in the same step, at ``version``)."""
        i = self.places.get(uuid)
        version = self.version if version is None else version
        if i is None:
            return changed(self, version=version)
        actions = list(self.actions)  # one C-level copy, not a Python loop over every action
        actions[i] = changed(actions[i], **changes)
        return changed(self, actions=tuple(actions), version=version)

    @property
    def aborts_pending(self) -> tuple[ActionView, ...]:
        return tuple(a for a in self.actions if a.state == "CANCELLING")


class UnexpectedEventError(Exception):
    """An event does not fit the plan it is applied to; the log is inconsistent."""


def _view(a: Action) -> ActionView:
    return ActionView(
        a.uuid, a.action_type, a.input_parameters, a.parents, a.state, a.created_at, a.updated_at, a.deleted_at,
        status_message=a.status_message,
    )


def evolve(plan: Plan | None, event: Event) -> Plan:
    if isinstance(event, ActionPlanRegistered):
        if plan is not None:
            raise UnexpectedEventError(f"plan {event.plan_uuid} registered twice")
        return Plan(
            uuid=event.plan_uuid, state=event.state, global_efficacy=event.global_efficacy,
            created_at=event.created_at, updated_at=event.updated_at, deleted_at=event.deleted_at,
            audit=event.audit, strategy=event.strategy, actions=tuple(_view(a) for a in event.actions),
            status_message=event.status_message, mirrored=event.mirrored,
        )
    if plan is None:
        raise UnexpectedEventError(f"{type(event).__name__} for plan {event.plan_uuid} before it was registered")
    v = plan.version + 1  # one replace per event: a cancel of many actions evolves many times
    match event:
        case ActionPlanStateChanged(state=state, status_message=message):
            return changed(plan, state=state, status_message=message, version=v)
        case ActionStateChanged(action_uuid=uuid, state=state, status_message=message):
            return plan.with_action(uuid, v, state=state, status_message=message)
        case ActionPlanCancellationStarted():
            c = Cancellation(event.requested_by, event.reason, event.occurred_at, event.abort_deadline, event.event_id)
            return changed(plan, state="CANCELLING", cancellation=c, version=v)
        case ActionCancellationStarted(action_uuid=uuid):
            return plan.with_action(uuid, v, state="CANCELLING")
        case ActionCancelled(action_uuid=uuid, status_message=message):
            return plan.with_action(uuid, v, state="CANCELLED", status_message=message)
        case ActionCancellationFailed(action_uuid=uuid, fault=fault, status_message=message, state=state):
            plan = plan.with_action(uuid, v, state=state, fault=fault, status_message=message)
            if plan.cancellation is not None and plan.cancellation.fault is None:
                plan = changed(plan, cancellation=changed(plan.cancellation, fault=fault))
            return plan
        case ActionPlanCancelled():
            return changed(plan, state="CANCELLED", version=v)
        case ActionPlanCancellationFailed(fault=fault, state=state):
            return changed(plan, state=state, fault=fault, version=v)
    raise UnexpectedEventError(f"no rule to apply {type(event).__name__}")


def fold(plan: Plan | None, events: Iterable[Event]) -> Plan | None:
    for event in events:
        plan = evolve(plan, event)
    return plan
