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
from eventstore.domain.messages import COMMAND_TYPES, EVENT_TYPES, Action, Audit, Fault, Strategy
from projections import payloads

RECORD_TYPES: dict[str, type[Any]] = {
    **COMMAND_TYPES, **EVENT_TYPES, "Fault": Fault, "Audit": Audit, "Strategy": Strategy, "Action": Action,
}

# CRC-64-AVRO of each schema's parsing canonical form (Version 1 of every record).
FINGERPRINTS = {
    "Action": "bd5059f388dc9b56",
    "ActionCancellationFailed": "73f35c88773d2fff",
    "ActionCancellationStarted": "123a4ed9dd64aa02",
    "ActionCancelled": "d7c7d4569adbd54e",
    "ActionPlanCancellationFailed": "51acca0abdaaf0d1",
    "ActionPlanCancellationStarted": "838b8f537b799dc4",
    "ActionPlanCancelled": "e0c4ee2ec69e09be",
    "ActionPlanRegistered": "b97255694e844501",
    "ActionPlanStateChanged": "71b5024c54a2b433",
    "ActionStateChanged": "2da9a65dd315ca94",
    "Audit": "41e789bc8b4a410d",
    "CancelActionPlan": "83545508a3e2070b",
    "CommandHandled": "d57568cb1abf0c2a",
    "EnforceAbortDeadline": "b6830fe139c3f72a",
    "Fault": "14e6c1190b49081c",
    "RegisterActionPlan": "03d4588e1ff88839",
    "ReportAbortResult": "4f28ac1199a07937",
    "ReportActionPlanProgress": "5f4856378c791eac",
    "ReportActionProgress": "693c38e685d8d49c",
    "Strategy": "94160cac555c0d17",
}

# Watcher's payloads (name, version) and their fields, as the notification samples show them.
PAYLOADS = {
    "ActionPlanCancelPayload": ("1.0", [
        "uuid", "state", "global_efficacy", "audit_uuid", "strategy_uuid", "audit", "strategy", "fault",
        "created_at", "updated_at", "deleted_at",
    ]),
    "ActionCancelPayload": ("1.0", [
        "uuid", "action_type", "input_parameters", "parents", "state", "action_plan", "fault",
        "created_at", "updated_at", "deleted_at",
    ]),
    "TerseActionPlanPayload": ("1.0", [
        "uuid", "state", "global_efficacy", "audit_uuid", "strategy_uuid", "created_at", "updated_at", "deleted_at",
    ]),
    "TerseAuditPayload": ("1.0", [
        "uuid", "goal_uuid", "strategy_uuid", "audit_type", "state", "scope", "parameters", "interval",
        "created_at", "updated_at", "deleted_at",
    ]),
    "StrategyPayload": ("1.0", ["uuid", "name", "display_name", "parameters_spec", "created_at", "updated_at", "deleted_at"]),
    "ExceptionPayload": ("1.0", ["exception", "exception_message", "module_name", "function_name"]),
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


ALL_PAYLOADS = [
    payloads.ACTION_PLAN_CANCEL, payloads.ACTION_CANCEL, payloads.TERSE_ACTION_PLAN, payloads.TERSE_AUDIT,
    payloads.STRATEGY, payloads.EXCEPTION,
]


@pytest.mark.parametrize("payload", ALL_PAYLOADS, ids=lambda p: p.name)
def test_payload_fields_are_pinned(payload: payloads.Payload) -> None:
    version, fields = PAYLOADS[payload.name]
    assert (payload.version, sorted(payload.fields)) == (version, sorted(fields)), (
        f"{payload.name} changed: Watcher consumers read these fields; bump its version "
        "(a new field is a minor bump, a removed or retyped one a major bump) and update PAYLOADS"
    )


def test_every_payload_is_pinned() -> None:
    assert sorted(p.name for p in ALL_PAYLOADS) == sorted(PAYLOADS)
