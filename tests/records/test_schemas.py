"""Versions are data: every record's fields and every schema's fingerprint are pinned here.

A schema whose canonical form changes gets a new fingerprint, and records written with the old
one are only readable if the change is compatible and the old writer schema is kept. So a
change must be deliberate: bump the version, keep the old schema readable (an upcaster if the
change is not backward compatible), then update the pin.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from eventstore.codec import AvroCodec
from eventstore.domain.messages import COMMAND_TYPES, EVENT_TYPES, Action, Audit, Fault, Strategy, WatcherNotification
from projections import payloads

RECORD_TYPES: dict[str, type[Any]] = {
    **COMMAND_TYPES, **EVENT_TYPES, "Fault": Fault, "Audit": Audit, "Strategy": Strategy, "Action": Action,
    "WatcherNotification": WatcherNotification,
}

# CRC-64-AVRO of each schema's parsing canonical form: version 1 (0.1.0), or version 2 (0.2.0) or
# 3 (0.3.0) where noted. Every released set is kept in avro/history/ and tests/records/test_schema_evolution.py reads it.
FINGERPRINTS = {
    "Action": "cee5d193fadb8b21",  # version 2
    "ActionCancellationFailed": "2d8506cbf5227215",  # version 3
    "ActionCancellationStarted": "123a4ed9dd64aa02",
    "ActionCancelled": "0b5185cc31e9b12d",  # version 2
    "ActionPlanCancellationFailed": "f3127be117b128d4",  # version 3
    "ActionPlanCancellationStarted": "838b8f537b799dc4",
    "ActionPlanCancelled": "e0c4ee2ec69e09be",
    "ActionPlanRegistered": "e2117d2ab64c0846",  # version 3
    "ActionPlanStateChanged": "98b8ea77ed952ae7",  # version 2
    "ActionStateChanged": "0f0a01e2568a8abd",  # version 2
    "Audit": "db147bbc88905240",  # version 2
    "CancelActionPlan": "0c997bd33b08ddd6",  # version 3
    "CommandHandled": "d57568cb1abf0c2a",
    "EnforceAbortDeadline": "b6830fe139c3f72a",
    "EventsAppended": "90c986219fdf672c",  # version 2 (0.3.0): the last hash alone, as head (version 1, 0.2.0: 8a1b87603959ba3f)
    "Fault": "14e6c1190b49081c",
    "RegisterActionPlan": "a3389df5a984aec1",  # version 3
    "ReportAbortResult": "1342f0703c40afac",  # version 3
    "ReportActionPlanProgress": "c7247a211cc3fe7b",  # version 3
    "ReportActionProgress": "9ca54c17c79d339f",  # version 3
    "Strategy": "94160cac555c0d17",
    "WatcherNotification": "eba1e0f52696fb2a",  # version 1 (0.3.0): what a bridged command reports
}

# Watcher's payloads, every version declared, and their fields (python-watcher's classes and the
# version comments in watcher/notifications/*.py; tests/compat/test_watcher_compat.py checks them there).
_PLAN = ["uuid", "state", "global_efficacy", "audit_uuid", "strategy_uuid", "created_at", "updated_at", "deleted_at"]
_AUDIT = [
    "uuid", "goal_uuid", "strategy_uuid", "audit_type", "state", "scope", "parameters", "interval",
    "created_at", "updated_at", "deleted_at",
]
_ACTION = ["uuid", "action_type", "input_parameters", "parents", "state", "action_plan", "fault", "created_at", "updated_at", "deleted_at"]
PAYLOADS = {
    ("ActionPlanCancelPayload", "1.0"): [*_PLAN, "audit", "strategy", "fault"],
    ("ActionPlanCancelPayload", "1.1"): [*_PLAN, "audit", "strategy", "fault"],
    ("ActionPlanCancelPayload", "1.2"): [*_PLAN, "audit", "strategy", "fault", "status_message"],
    ("ActionCancelPayload", "1.0"): _ACTION,
    ("ActionCancelPayload", "1.1"): [*_ACTION, "status_message"],
    ("TerseActionPlanPayload", "1.0"): _PLAN,
    ("TerseActionPlanPayload", "1.1"): _PLAN,
    ("TerseActionPlanPayload", "1.2"): [*_PLAN, "status_message"],
    ("TerseAuditPayload", "1.0"): _AUDIT,
    ("TerseAuditPayload", "1.1"): [*_AUDIT, "auto_trigger", "next_run_time"],
    ("TerseAuditPayload", "1.2"): [*_AUDIT, "auto_trigger", "next_run_time", "name"],
    ("TerseAuditPayload", "1.3"): [*_AUDIT, "auto_trigger", "next_run_time", "name", "status_message"],
    ("StrategyPayload", "1.0"): ["uuid", "name", "display_name", "parameters_spec", "created_at", "updated_at", "deleted_at"],
    ("ExceptionPayload", "1.0"): ["exception", "exception_message", "module_name", "function_name"],
}

HOW_TO_CHANGE = (
    "Schema {name} changed (fingerprint {old} -> {new}). Records already in logs were written with {old}: "
    "bump the record's version (add a '# Version N: ...' line beside it in eventstore/domain/messages.py), "
    "make sure the old writer schema still resolves against the new one (new fields need defaults), or add an "
    "upcaster named upcast_vN_vM for an incompatible change, and only then update FINGERPRINTS in {file}."
)


@pytest.mark.parametrize("name", sorted(RECORD_TYPES))
def test_dataclass_fields_are_the_schema_fields_in_order(codec: AvroCodec, name: str) -> None:
    fields = [f.name for f in dataclasses.fields(RECORD_TYPES[name])]
    assert fields == codec.field_names(name), (
        f"{name}: the dataclass in eventstore/domain/messages.py and avro/watcher_es.{name}.avsc disagree; "
        "the .avsc is the source of truth and both must change together (with a version bump)"
    )


def test_every_schema_is_pinned(codec: AvroCodec) -> None:
    assert sorted(codec.names) == sorted(FINGERPRINTS), (
        f"schemas added or removed: pin each new schema's fingerprint in {__file__} (and never reuse a removed name)"
    )


@pytest.mark.parametrize("name", sorted(FINGERPRINTS))
def test_schema_fingerprint_is_pinned(codec: AvroCodec, name: str) -> None:
    if name not in codec.names:
        pytest.fail(f"schema {name} is pinned but avro/watcher_es.{name}.avsc is gone: old records of it become unreadable")
    new = codec.fingerprint_of(name)
    old = FINGERPRINTS[name]
    assert new == old, HOW_TO_CHANGE.format(name=name, old=old, new=new, file=__file__)


def test_every_record_type_has_a_schema(codec: AvroCodec) -> None:
    assert set(RECORD_TYPES) <= set(codec.names)


@pytest.mark.parametrize("key", sorted(payloads.DECLARATIONS), ids="/".join)
def test_payload_fields_are_pinned(key: tuple[str, str]) -> None:
    assert sorted(payloads.DECLARATIONS[key].fields) == sorted(PAYLOADS[key]), (
        f"{key[0]} {key[1]} changed: Watcher consumers read exactly these fields at this version; declare a new "
        "version instead (payloads.py, as Watcher does) and pin it in PAYLOADS"
    )


def test_every_payload_version_is_pinned() -> None:
    assert sorted(payloads.DECLARATIONS) == sorted(PAYLOADS)


@pytest.mark.parametrize("name", sorted(payloads.PAYLOAD_SETS))
def test_every_payload_set_names_a_declared_version_of_each_class(name: str) -> None:
    versions = payloads.PAYLOAD_SETS[name].versions
    assert {c for c, _ in PAYLOADS} == set(versions)
    assert all((c, v) in payloads.DECLARATIONS for c, v in versions.items())
