"""Shape checks on a command before any rule is applied: which field, which value, why."""

from __future__ import annotations

import json
from typing import Any

from eventstore.exceptions import CommandValidationError
from eventstore.domain.messages import Command, RegisterActionPlan, ReportAbortResult, ReportActionPlanProgress, ReportActionProgress
from eventstore.domain.identity import canonical_uuid
from eventstore.domain.states import ACTION_REGISTRABLE, ACTION_STATES, PLAN_REGISTRABLE, PLAN_STATES


def _uuid(field: str, value: str) -> None:
    """Inside the log a uuid has one spelling, so one plan is one plan whatever a producer typed."""
    canonical = canonical_uuid(field, value)
    if canonical != value:
        raise CommandValidationError(f"{field}: {value!r} is not a canonical UUID (lower-case, hyphenated: {canonical!r})")


def _json_object(field: str, value: str) -> None:
    if not isinstance(_json(field, value), dict):
        raise CommandValidationError(f"{field}: {value!r} is not a JSON object")


def _json(field: str, value: str) -> Any:
    try:
        return json.loads(value)
    except (ValueError, TypeError) as exc:
        raise CommandValidationError(f"{field}: {value!r} is not valid JSON ({exc})") from None


def _one_of(field: str, value: str, allowed: frozenset[str]) -> None:
    if value not in allowed:
        raise CommandValidationError(f"{field}: {value!r} is not one of {', '.join(sorted(allowed))}")


def validate_command(command: Command) -> None:
    if not command.command_id:
        raise CommandValidationError("command_id: must not be empty")
    _uuid("plan_uuid", command.plan_uuid)
    if not command.issued_by:
        raise CommandValidationError("issued_by: must say who sent the command")
    if isinstance(command, RegisterActionPlan):
        _validate_register(command)
    elif isinstance(command, ReportActionPlanProgress):
        _one_of("state", command.state, PLAN_STATES)
    elif isinstance(command, ReportActionProgress):
        _uuid("action_uuid", command.action_uuid)
        _one_of("state", command.state, ACTION_STATES)
    elif isinstance(command, ReportAbortResult):
        _uuid("action_uuid", command.action_uuid)
        if command.fault is not None and not command.fault.exception:
            raise CommandValidationError("fault.exception: a failed abort must name its exception class")


#: The most actions a plan may have: a cancel appends about two events per action in one command,
#: and a plan far beyond what Watcher's strategies produce is refused rather than stalling the store.
MAX_ACTIONS = 10_000

#: Watcher's audit types.
AUDIT_TYPES = frozenset({"ONESHOT", "CONTINUOUS", "EVENT"})


def _validate_register(c: RegisterActionPlan) -> None:
    _one_of("state", c.state, PLAN_REGISTRABLE)
    _one_of("audit.audit_type", c.audit.audit_type, AUDIT_TYPES)
    if not c.actions:
        raise CommandValidationError("actions: a plan has at least one action (there is nothing to cancel otherwise)")
    if len(c.actions) > MAX_ACTIONS:
        raise CommandValidationError(f"actions: {len(c.actions):,} actions is more than the {MAX_ACTIONS:,} a plan may have")
    _json("global_efficacy", c.global_efficacy)
    _uuid("audit.uuid", c.audit.uuid)
    _uuid("audit.goal_uuid", c.audit.goal_uuid)
    _uuid("audit.strategy_uuid", c.audit.strategy_uuid)
    _json("audit.scope", c.audit.scope)
    _json("audit.parameters", c.audit.parameters)
    _uuid("strategy.uuid", c.strategy.uuid)
    _json("strategy.parameters_spec", c.strategy.parameters_spec)
    seen: set[str] = set()
    for i, a in enumerate(c.actions):
        where = f"actions[{i}]"
        _uuid(f"{where}.uuid", a.uuid)
        if a.uuid in seen:
            raise CommandValidationError(f"{where}.uuid: {a.uuid} appears twice in the plan")
        seen.add(a.uuid)
        _one_of(f"{where}.state", a.state, ACTION_REGISTRABLE)
        _json_object(f"{where}.input_parameters", a.input_parameters)
        if not a.action_type:
            raise CommandValidationError(f"{where}.action_type: must not be empty")
    for i, a in enumerate(c.actions):
        for j, parent in enumerate(a.parents):
            _uuid(f"actions[{i}].parents[{j}]", parent)
            if parent not in seen:
                raise CommandValidationError(f"actions[{i}].parents[{j}]: {parent} is not an action of this plan")
