"""Watcher's versioned payloads, declared the way watcher/notifications/*.py declares them.

Each payload class and version is one declaration: its name, its version and, per field, where
the value comes from. A later version is written as the earlier one plus its changes, the way
Watcher's ``# Version 1.1: ...`` comments read, so adding a version is data, not code. Nested
payloads are named by class, and the *payload set* in force picks their version: the spec's
``1.0`` everywhere, or what a given Watcher release emits. ``build`` refuses a half-filled
payload, so a field declared without a source fails loudly instead of shipping a null.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import UTC, datetime
from typing import Any, Final, Union

from eventstore.domain.messages import Fault
from eventstore.domain.plan import ActionView, Plan
from eventstore.exceptions import ConfigurationError
from eventstore.frozen import quick_init

NAMESPACE = "watcher"

Source = Callable[[Any], Any]
#: Where a field's value comes from: a function of the source, or a nested payload.
Field = Union[Source, "Nested"]


class IncompletePayloadError(Exception):
    """A payload declaration has a field its source did not fill."""


@lru_cache(maxsize=4096)
def watcher_datetime(us: int | None) -> str | None:
    """Watcher's payload datetime: second precision, UTC, ``Z`` suffix.

    Cached: a plan's few timestamps recur in every payload of it, and formatting one costs more
    than the rest of its field."""
    if us is None:
        return None
    return datetime.fromtimestamp(us // 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class PayloadSet:
    """Which version of each payload class one notification is built with.

    ``name`` is what is recorded beside every notification, so a re-emission can build the
    same bytes again whatever the default has become since.
    """

    name: str
    versions: Mapping[str, str]

    def declaration(self, payload_class: str) -> Payload:
        return DECLARATIONS[payload_class, self.versions[payload_class]]


@dataclass(frozen=True)
class Payload:
    name: str
    version: str
    fields: Mapping[str, Field]
    #: ``fields`` with each nested one told apart once, not at every build.
    _getters: tuple[tuple[str, Field, bool], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_getters", tuple((name, get, isinstance(get, Nested)) for name, get in self.fields.items()))

    def build(self, source: Any, payloads: PayloadSet) -> dict[str, Any]:
        data = {name: get(source, payloads) if nested else get(source) for name, get, nested in self._getters}  # type: ignore[call-arg]
        if _MISSING in data.values():
            missing = [k for k, v in data.items() if v is _MISSING]
            raise IncompletePayloadError(f"{self.name} {self.version}: no value for {', '.join(missing)}")
        return {
            "watcher_object.namespace": NAMESPACE,
            "watcher_object.name": self.name,
            "watcher_object.version": self.version,
            "watcher_object.data": data,
        }

    def next_version(self, version: str, *, add: Mapping[str, Field] = {}, change: Mapping[str, Field] = {}) -> Payload:
        """The next version of this payload: some fields added, some fields' types changed."""
        unknown = set(change) - set(self.fields)
        if unknown:
            raise IncompletePayloadError(f"{self.name} {version}: changes fields it does not have: {', '.join(sorted(unknown))}")
        return Payload(self.name, version, {**self.fields, **change, **add})


_MISSING = object()


def attr(name: str) -> Source:
    return lambda src: getattr(src, name, _MISSING)


#: A JSON attribute parsed once per text: a plan's parameters recur in every notification of it.
#: The values are shared between payloads, which are only ever serialized, never changed.
_parsed: Callable[[str], Any] = lru_cache(maxsize=4096)(json.loads)


def json_attr(name: str) -> Source:
    return lambda src: _parsed(getattr(src, name))


def time_attr(name: str) -> Source:
    return lambda src: watcher_datetime(getattr(src, name))


@dataclass(frozen=True)
class Nested:
    """A nested payload, by class name: its version comes from the payload set in force."""

    payload_class: str
    get: Source

    def __call__(self, src: Any, payloads: PayloadSet) -> Any:
        value = self.get(src)
        if value is None:
            return None
        return payloads.declaration(self.payload_class).build(value, payloads)


def one_indicator(src: Any) -> Any:
    """Before 1.1 a plan had one global efficacy indicator, a dict: the first of a list, or ``{}``."""
    value = _parsed(src.global_efficacy)
    if isinstance(value, list):
        return value[0] if value else {}
    return value


def indicator_list(src: Any) -> Any:
    """From 1.1 on, global efficacy is a list of indicators; a single registered dict becomes one."""
    value = _parsed(src.global_efficacy)
    if isinstance(value, dict):
        return [value] if value else []
    return value


def interval_seconds(src: Any) -> int | None:
    """TerseAuditPayload 1.0's interval is an integer: seconds, or null (a cron string cannot be one)."""
    interval = src.interval
    if interval is None:  # the usual case, told apart without raising (a raise cost more than the payload)
        return None
    try:
        return int(interval)
    except (TypeError, ValueError):  # null, or a cron string
        return None


def audit_name(src: Any) -> str:
    """Watcher's audit name is never null; an audit registered without one is named by its uuid."""
    return str(src.name) if src.name is not None else str(src.uuid)


def _timestamps() -> dict[str, Field]:
    return {"created_at": time_attr("created_at"), "updated_at": time_attr("updated_at"), "deleted_at": time_attr("deleted_at")}


@quick_init
@dataclass(frozen=True)
class Shown:
    """A plan, or one of its actions, as one notification shows it: the state the notification kind says, and its fault."""

    subject: Plan | ActionView
    plan: Plan
    state: str
    fault: Fault | None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.subject, name)


# ---------------------------------------------------------------- declarations, oldest first

EXCEPTION_1_0 = Payload("ExceptionPayload", "1.0", {
    "exception": attr("exception"),
    "exception_message": attr("exception_message"),
    "module_name": attr("module_name"),
    "function_name": attr("function_name"),
})

STRATEGY_1_0 = Payload("StrategyPayload", "1.0", {
    "uuid": attr("uuid"),
    "name": attr("name"),
    "display_name": attr("display_name"),
    "parameters_spec": json_attr("parameters_spec"),
    **_timestamps(),
})

# Version 1.0: Initial version
TERSE_AUDIT_1_0 = Payload("TerseAuditPayload", "1.0", {
    "uuid": attr("uuid"),
    "goal_uuid": attr("goal_uuid"),
    "strategy_uuid": attr("strategy_uuid"),
    "audit_type": attr("audit_type"),
    "state": attr("state"),
    "scope": json_attr("scope"),
    "parameters": json_attr("parameters"),
    "interval": interval_seconds,
    **_timestamps(),
})
# Version 1.1: Added 'auto_trigger' and 'next_run_time'; 'interval' is a string
TERSE_AUDIT_1_1 = TERSE_AUDIT_1_0.next_version("1.1", change={"interval": attr("interval")}, add={
    "auto_trigger": attr("auto_trigger"), "next_run_time": time_attr("next_run_time"),
})
# Version 1.2: Added 'name'
TERSE_AUDIT_1_2 = TERSE_AUDIT_1_1.next_version("1.2", add={"name": audit_name})
# Version 1.3: Added 'status_message'
TERSE_AUDIT_1_3 = TERSE_AUDIT_1_2.next_version("1.3", add={"status_message": attr("status_message")})


def _plan_versions(name: str, **nested: Field) -> tuple[Payload, Payload, Payload]:
    """TerseActionPlanPayload, and ActionPlanCancelPayload with ``nested`` added: the same three versions."""
    # Version 1.0: Initial version
    v1_0 = Payload(name, "1.0", {
        "uuid": attr("uuid"),
        "state": attr("state"),
        "global_efficacy": one_indicator,
        "audit_uuid": lambda p: p.audit.uuid,
        "strategy_uuid": lambda p: p.strategy.uuid,
        **nested,
        **_timestamps(),
    })
    # Version 1.1: 'global_efficacy' is a list of indicators
    v1_1 = v1_0.next_version("1.1", change={"global_efficacy": indicator_list})
    # Version 1.2: Added 'status_message'
    return v1_0, v1_1, v1_1.next_version("1.2", add={"status_message": attr("status_message")})


TERSE_ACTION_PLAN_1_0, TERSE_ACTION_PLAN_1_1, TERSE_ACTION_PLAN_1_2 = _plan_versions("TerseActionPlanPayload")
ACTION_PLAN_CANCEL_1_0, ACTION_PLAN_CANCEL_1_1, ACTION_PLAN_CANCEL_1_2 = _plan_versions(
    "ActionPlanCancelPayload", audit=Nested("TerseAuditPayload", lambda v: v.audit),
    strategy=Nested("StrategyPayload", lambda v: v.strategy), fault=Nested("ExceptionPayload", lambda v: v.fault),
)

# Version 1.0: Initial version
ACTION_CANCEL_1_0 = Payload("ActionCancelPayload", "1.0", {
    "uuid": attr("uuid"),
    "action_type": attr("action_type"),
    "input_parameters": json_attr("input_parameters"),
    "parents": lambda v: list(v.parents),
    "state": attr("state"),
    "action_plan": Nested("TerseActionPlanPayload", lambda v: v.plan),
    "fault": Nested("ExceptionPayload", lambda v: v.fault),
    **_timestamps(),
})
# Version 1.1: Added 'status_message'
ACTION_CANCEL_1_1 = ACTION_CANCEL_1_0.next_version("1.1", add={"status_message": attr("status_message")})

DECLARATIONS: Final[dict[tuple[str, str], Payload]] = {
    (p.name, p.version): p for p in (
        EXCEPTION_1_0, STRATEGY_1_0,
        TERSE_AUDIT_1_0, TERSE_AUDIT_1_1, TERSE_AUDIT_1_2, TERSE_AUDIT_1_3,
        TERSE_ACTION_PLAN_1_0, TERSE_ACTION_PLAN_1_1, TERSE_ACTION_PLAN_1_2,
        ACTION_PLAN_CANCEL_1_0, ACTION_PLAN_CANCEL_1_1, ACTION_PLAN_CANCEL_1_2,
        ACTION_CANCEL_1_0, ACTION_CANCEL_1_1,
    )
}

#: The payload sets a notification can be built with, by the name recorded beside it.
PAYLOAD_SETS: Final[dict[str, PayloadSet]] = {s.name: s for s in (
    # The specification's: every payload at 1.0, which every Watcher consumer from 1.0 on reads.
    PayloadSet("1.0", {
        "ActionPlanCancelPayload": "1.0", "ActionCancelPayload": "1.0", "TerseActionPlanPayload": "1.0",
        "TerseAuditPayload": "1.0", "StrategyPayload": "1.0", "ExceptionPayload": "1.0",
    }),
    # What python-watcher 17.0.0 emits.
    PayloadSet("watcher-17.0", {
        "ActionPlanCancelPayload": "1.2", "ActionCancelPayload": "1.1", "TerseActionPlanPayload": "1.2",
        "TerseAuditPayload": "1.3", "StrategyPayload": "1.0", "ExceptionPayload": "1.0",
    }),
)}
DEFAULT_PAYLOAD_SET: Final = "1.0"
LATEST_PAYLOAD_SET: Final = "watcher-17.0"


def payload_set(name: str) -> PayloadSet:
    """``1.0``, ``latest`` or the name of a recorded set; anything else is a configuration error."""
    key = LATEST_PAYLOAD_SET if name == "latest" else name
    found = PAYLOAD_SETS.get(key)
    if found is None:
        raise ConfigurationError(f"payload version: {name!r} is not one of 1.0, latest ({', '.join(PAYLOAD_SETS)})")
    return found
