"""Commands and events as frozen dataclasses, one per record in avro/.

The .avsc files are the source of truth; tests/test_schemas.py pins every dataclass's fields
to its schema's, so the two cannot drift apart. Times are UTC microseconds since the epoch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar, Union

from eventstore.frozen import filled

# Version 1 (0.1.0): the initial records.
# Version 2 (0.2.0): optional fields of Watcher 17's objects (audit name, auto_trigger,
#   next_run_time; status_message of audit, plan and action), all with defaults.
# Version 3 (0.3.0): plans that mirror Watcher: a command may carry the Watcher notification it
#   reports (``watcher``), a registration says the plan is ``mirrored``, and a failed
#   cancellation says the state it left (``state``: a mirrored Watcher may finish what it did not abort).


@dataclass(frozen=True)
class Fault:
    exception: str
    exception_message: str
    module_name: str
    function_name: str


@dataclass(frozen=True)
class Audit:
    uuid: str
    goal_uuid: str
    strategy_uuid: str
    audit_type: str
    state: str
    scope: str
    parameters: str
    interval: str | None
    created_at: int
    updated_at: int | None = None
    deleted_at: int | None = None
    name: str | None = None
    auto_trigger: bool = False
    next_run_time: int | None = None
    status_message: str | None = None


@dataclass(frozen=True)
class Strategy:
    uuid: str
    name: str
    display_name: str
    parameters_spec: str
    created_at: int
    updated_at: int | None = None
    deleted_at: int | None = None


@dataclass(frozen=True)
class WatcherNotification:
    """The Watcher notification a bridged command reports, with the request context it came in."""

    message_id: str
    event_type: str
    publisher_id: str
    timestamp: int
    user: str | None = None
    project_id: str | None = None
    request_id: str | None = None
    global_request_id: str | None = None


@dataclass(frozen=True)
class Action:
    uuid: str
    action_type: str
    input_parameters: str
    parents: tuple[str, ...]
    state: str
    created_at: int
    updated_at: int | None = None
    deleted_at: int | None = None
    status_message: str | None = None


# ---------------------------------------------------------------- commands


@dataclass(frozen=True)
class RegisterActionPlan:
    command_id: str
    issued_at: int
    issued_by: str
    origin: str
    plan_uuid: str
    state: str
    global_efficacy: str
    created_at: int
    updated_at: int | None
    deleted_at: int | None
    audit: Audit
    strategy: Strategy
    actions: tuple[Action, ...]
    status_message: str | None = None
    watcher: WatcherNotification | None = None


@dataclass(frozen=True)
class ReportActionPlanProgress:
    command_id: str
    issued_at: int
    issued_by: str
    origin: str
    plan_uuid: str
    state: str
    status_message: str | None = None
    watcher: WatcherNotification | None = None


@dataclass(frozen=True)
class ReportActionProgress:
    command_id: str
    issued_at: int
    issued_by: str
    origin: str
    plan_uuid: str
    action_uuid: str
    state: str
    status_message: str | None = None
    watcher: WatcherNotification | None = None


@dataclass(frozen=True)
class CancelActionPlan:
    command_id: str
    issued_at: int
    issued_by: str
    origin: str
    plan_uuid: str
    reason: str
    watcher: WatcherNotification | None = None


@dataclass(frozen=True)
class ReportAbortResult:
    command_id: str
    issued_at: int
    issued_by: str
    origin: str
    plan_uuid: str
    action_uuid: str
    fault: Fault | None = None
    status_message: str | None = None
    watcher: WatcherNotification | None = None


@dataclass(frozen=True)
class EnforceAbortDeadline:
    command_id: str
    issued_at: int
    issued_by: str
    origin: str
    plan_uuid: str


Command = Union[
    RegisterActionPlan, ReportActionPlanProgress, ReportActionProgress,
    CancelActionPlan, ReportAbortResult, EnforceAbortDeadline,
]

# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class ActionPlanRegistered:
    event_id: str
    command_id: str
    plan_uuid: str
    occurred_at: int
    state: str
    global_efficacy: str
    created_at: int
    updated_at: int | None
    deleted_at: int | None
    audit: Audit
    strategy: Strategy
    actions: tuple[Action, ...]
    status_message: str | None = None
    mirrored: bool = False


@dataclass(frozen=True)
class ActionPlanStateChanged:
    event_id: str
    command_id: str
    plan_uuid: str
    occurred_at: int
    state: str
    status_message: str | None = None


@dataclass(frozen=True)
class ActionStateChanged:
    event_id: str
    command_id: str
    plan_uuid: str
    occurred_at: int
    action_uuid: str
    state: str
    status_message: str | None = None


@dataclass(frozen=True)
class ActionPlanCancellationStarted:
    event_id: str
    command_id: str
    plan_uuid: str
    occurred_at: int
    requested_by: str
    reason: str
    abort_deadline: int


@dataclass(frozen=True)
class ActionCancellationStarted:
    event_id: str
    command_id: str
    plan_uuid: str
    occurred_at: int
    action_uuid: str


@dataclass(frozen=True)
class ActionCancelled:
    event_id: str
    command_id: str
    plan_uuid: str
    occurred_at: int
    action_uuid: str
    status_message: str | None = None


@dataclass(frozen=True)
class ActionCancellationFailed:
    event_id: str
    command_id: str
    plan_uuid: str
    occurred_at: int
    action_uuid: str
    fault: Fault
    status_message: str | None = None
    state: str = "FAILED"


@dataclass(frozen=True)
class ActionPlanCancelled:
    event_id: str
    command_id: str
    plan_uuid: str
    occurred_at: int


@dataclass(frozen=True)
class ActionPlanCancellationFailed:
    event_id: str
    command_id: str
    plan_uuid: str
    occurred_at: int
    fault: Fault
    state: str = "FAILED"


Event = Union[
    ActionPlanRegistered, ActionPlanStateChanged, ActionStateChanged,
    ActionPlanCancellationStarted, ActionCancellationStarted, ActionCancelled,
    ActionCancellationFailed, ActionPlanCancelled, ActionPlanCancellationFailed,
]

COMMAND_TYPES: dict[str, type[Any]] = {c.__name__: c for c in Command.__args__}  # type: ignore[attr-defined]
EVENT_TYPES: dict[str, type[Any]] = {e.__name__: e for e in Event.__args__}  # type: ignore[attr-defined]

# Field name -> nested record type: the only places records nest.
_NESTED: dict[str, type[Any]] = {"audit": Audit, "strategy": Strategy, "fault": Fault, "actions": Action, "watcher": WatcherNotification}

T = TypeVar("T")


_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {}


def _field_names(cls: type[Any]) -> tuple[str, ...]:
    """Asked for every record encoded or decoded: ``dataclasses.fields`` each time cost more than the copy."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def to_record(message: Any) -> dict[str, Any]:
    """The Avro record of a command or event (tuples become lists, as fastavro wants)."""
    out: dict[str, Any] = {}
    for name in _field_names(type(message)):
        value = getattr(message, name)
        if value is not None and name in _NESTED:
            value = [to_record(v) for v in value] if isinstance(value, tuple) else to_record(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[name] = value
    return out


def from_record(cls: type[T], record: dict[str, Any]) -> T:
    """Build a message from its decoded Avro record."""
    kwargs: dict[str, Any] = {}
    for name in _field_names(cls):
        value = record[name]
        nested = _NESTED.get(name)
        if value is not None and nested is not None:
            value = tuple(from_record(nested, v) for v in value) if isinstance(value, list) else from_record(nested, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return filled(cls, kwargs)  # the fields as decoded: no __init__ here validates, and it cost a third of a decode
