"""The JSON document ``watcher-es register`` reads: a plan as Watcher's API would show it.

Datetimes are ISO 8601 (``2016-10-18T09:52:05Z``) or null; JSON-valued fields (parameters,
scope, efficacy, input parameters) are plain JSON. Every error names the field and the value.
Both Watcher's older objects and today's (17.0: audit ``name``, ``auto_trigger``,
``next_run_time``, a string ``interval``, ``status_message`` everywhere, ``global_efficacy`` as a
list) are accepted, and everything is kept in the events so any payload version can be built.
"""

from __future__ import annotations

import json
from typing import Any

from eventstore.domain.messages import Action, Audit, RegisterActionPlan, Strategy
from eventstore.domain.identity import canonical_uuid
from eventstore.exceptions import CommandValidationError
from eventstore.times import parse_time


class _Doc:
    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise CommandValidationError(f"{where or 'document'}: expected a JSON object, got {type(data).__name__}")
        self.data, self.where = data, where

    def _name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def get(self, key: str, default: Any = ...) -> Any:
        if key not in self.data:
            if default is ...:
                raise CommandValidationError(f"{self._name(key)}: missing")
            return default
        return self.data[key]

    def text(self, key: str, default: Any = ...) -> str:
        value = self.get(key, default)
        if not isinstance(value, str):
            raise CommandValidationError(f"{self._name(key)}: {value!r} is not a string")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise CommandValidationError(f"{self._name(key)}: {value!r} is not valid Unicode text (a lone surrogate)") from None
        return value

    def optional_text(self, key: str) -> str | None:
        value = self.get(key, None)
        return None if value is None else self.text(key)

    def json(self, key: str, default: Any = ...) -> str:
        return json.dumps(self.get(key, default), sort_keys=True)

    def flag(self, key: str, default: bool) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise CommandValidationError(f"{self._name(key)}: {value!r} is not true or false")
        return value

    def interval(self, key: str) -> str | None:
        """Watcher's audit interval: seconds (an integer before Watcher's 1.1 payloads) or a cron string."""
        value = self.get(key, None)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise CommandValidationError(f"{self._name(key)}: {value!r} is not a number of seconds or a cron string")

    def efficacy(self, key: str) -> str:
        """Watcher's global efficacy: one indicator (a dict, before Watcher's 1.1 payloads) or a list of them."""
        value = self.get(key, [])
        if isinstance(value, dict) or (isinstance(value, list) and all(isinstance(i, dict) for i in value)):
            return json.dumps(value, sort_keys=True)
        raise CommandValidationError(f"{self._name(key)}: {value!r} is not an indicator object or a list of them")

    def time(self, key: str, default: Any = ...) -> int | None:
        return parse_time(self._name(key), self.get(key, default))

    def required_time(self, key: str) -> int:
        value = self.time(key)
        if value is None:
            raise CommandValidationError(f"{self._name(key)}: must be a datetime, not null")
        return value

    def uuid(self, key: str) -> str:
        return canonical_uuid(self._name(key), self.text(key))

    def child(self, key: str) -> _Doc:
        return _Doc(self.get(key), self._name(key))


def parse_plan_document(data: Any, *, command_id: str, issued_at: int, issued_by: str, origin: str) -> RegisterActionPlan:
    doc = _Doc(data, "")
    a, s = doc.child("audit"), doc.child("strategy")
    audit = Audit(
        uuid=a.uuid("uuid"), goal_uuid=a.uuid("goal_uuid"), strategy_uuid=a.uuid("strategy_uuid"),
        audit_type=a.text("audit_type", "ONESHOT"), state=a.text("state", "SUCCEEDED"), scope=a.json("scope", []),
        parameters=a.json("parameters", {}), interval=a.interval("interval"), created_at=a.required_time("created_at"),
        updated_at=a.time("updated_at", None), deleted_at=a.time("deleted_at", None),
        name=a.optional_text("name"), auto_trigger=a.flag("auto_trigger", False), next_run_time=a.time("next_run_time", None),
        status_message=a.optional_text("status_message"),
    )
    strategy = Strategy(
        uuid=s.uuid("uuid"), name=s.text("name"), display_name=s.text("display_name", s.text("name")),
        parameters_spec=s.json("parameters_spec", {}), created_at=s.required_time("created_at"),
        updated_at=s.time("updated_at", None), deleted_at=s.time("deleted_at", None),
    )
    raw_actions = doc.get("actions")
    if not isinstance(raw_actions, list):
        raise CommandValidationError(f"actions: {raw_actions!r} is not a list")
    actions = []
    for i, raw in enumerate(raw_actions):
        x = _Doc(raw, f"actions[{i}]")
        parents = x.get("parents", [])
        if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
            raise CommandValidationError(f"actions[{i}].parents: {parents!r} is not a list of action uuids")
        parents = [canonical_uuid(f"actions[{i}].parents[{j}]", p) for j, p in enumerate(parents)]
        actions.append(Action(
            uuid=x.uuid("uuid"), action_type=x.text("action_type"), input_parameters=x.json("input_parameters", {}),
            parents=tuple(parents), state=x.text("state", "PENDING"), created_at=x.required_time("created_at"),
            updated_at=x.time("updated_at", None), deleted_at=x.time("deleted_at", None),
            status_message=x.optional_text("status_message"),
        ))
    return RegisterActionPlan(
        command_id=command_id, issued_at=issued_at, issued_by=issued_by, origin=origin,
        plan_uuid=doc.uuid("uuid"), state=doc.text("state", "RECOMMENDED"), global_efficacy=doc.efficacy("global_efficacy"),
        created_at=doc.required_time("created_at"), updated_at=doc.time("updated_at", None), deleted_at=doc.time("deleted_at", None),
        audit=audit, strategy=strategy, actions=tuple(actions), status_message=doc.optional_text("status_message"),
    )
