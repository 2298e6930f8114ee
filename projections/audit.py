"""The audit trail of one plan: every command, every event it caused, every notification emitted.

Three sources merged into one ordered story. Log positions are commit order and a command's
events are appended with it in one transaction, so the story is ordered by position: each
command, then its events in order, each followed by the notification it caused. A command that
changed nothing (rejected, or unchanged) has no position; it sits where it was handled, after
the events of the command handled before it.

Notifications are passed in as they were stored when first emitted, so the story shows what
consumers actually received.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from eventstore.codec import AvroCodec, Record
from eventstore.log import CommandRecord, RejectedAppend, StoredEvent
from eventstore.times import format_time

from projections.exceptions import NoSuchPlanError
from projections.translator import Notification

EntryKind = Literal["command", "event", "notification", "conflict"]

#: Fields every command or event carries; the entry shows them as columns, not as details.
_ENVELOPE_FIELDS = frozenset({"command_id", "event_id", "plan_uuid", "issued_at", "issued_by", "origin", "occurred_at"})


class PlanStream(Protocol):
    """All audit needs of the log: one plan's events in order (the embedded log, or the audit trail on Kafka)."""

    def read_plan(self, plan_uuid: str, until_position: int | None = None) -> list[StoredEvent]: ...


class CommandHistory(Protocol):
    """The one thing audit needs beyond the plan's events: the commands it received."""

    def plan_commands(self, plan_uuid: str) -> list[CommandRecord]:
        """Every command for the plan with its outcome, in the order they were handled."""


@dataclass(frozen=True)
class AuditEntry:
    """One line of the story. ``at`` is UTC microseconds; ``position`` is None for a command
    that appended nothing. ``outcome``/``outcome_reason`` are set on commands only."""

    kind: EntryKind
    at: int
    position: int | None
    type: str
    id: str
    command_id: str
    issued_by: str | None = None
    origin: str | None = None
    outcome: str | None = None
    outcome_reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"time": format_time(self.at), **asdict(self)}


@dataclass(frozen=True)
class PlanStory:
    plan_uuid: str
    entries: list[AuditEntry]

    def of_kind(self, kind: EntryKind) -> list[AuditEntry]:
        return [e for e in self.entries if e.kind == kind]

    def to_json(self) -> dict[str, Any]:
        return {"plan_uuid": self.plan_uuid, "entries": [e.to_json() for e in self.entries]}


def plan_story(
    plan_uuid: str, events: PlanStream, commands: CommandHistory, notifications: Sequence[Notification], codec: AvroCodec,
    conflicts: Sequence[RejectedAppend] = (),
) -> PlanStory:
    """The whole story of ``plan_uuid``, in the order it happened; ``conflicts`` are appends the
    log skipped because another writer got to the plan's version first (Kafka only)."""
    stream = events.read_plan(plan_uuid)
    received = commands.plan_commands(plan_uuid)
    if not stream and not received:
        raise NoSuchPlanError(plan_uuid)
    # Each event is followed by the notification it caused: on Kafka one command's events share a
    # position, so the event's version orders them within it, as positions do on the embedded log.
    keyed: list[tuple[tuple[int, int, int, int], AuditEntry]] = []
    anchor = 0  # the last position appended so far, in handling order
    for seq, command in enumerate(received):
        if command.first_position is not None:
            keyed.append(((command.first_position, 0, seq, 0), _command_entry(command, codec)))
            anchor = command.last_position or command.first_position
        else:
            keyed.append(((anchor, 3, seq, 0), _command_entry(command, codec)))
    by_id: dict[str, StoredEvent] = {}
    for stored in stream:
        keyed.append(((stored.position, 1, stored.version, 0), _event_entry(stored, codec)))
        by_id[stored.event_id] = stored
    for note in notifications:
        keyed.append(((note.position, 1, note.plan_seq, 1), _notification_entry(note, by_id.get(note.event_id))))
    for conflict in conflicts:
        keyed.append(((conflict.position, 4, 0, 0), AuditEntry(
            "conflict", conflict.appended_at, conflict.position, conflict.command_type, conflict.command_id, conflict.command_id,
            issued_by=conflict.writer, outcome="skipped", outcome_reason=conflict.reason,
            details={"writer": conflict.writer, "expected_version": conflict.expected_version, "where": conflict.where},
        )))
    keyed.sort(key=lambda pair: pair[0])
    return PlanStory(plan_uuid, [entry for _, entry in keyed])


def _details(name: str, record: Record) -> dict[str, Any]:
    """What a command or event says beyond who/when; a registration is summarised, not dumped."""
    if name in ("RegisterActionPlan", "ActionPlanRegistered"):
        return {
            "state": record["state"], "actions": len(record["actions"]),
            "audit_uuid": record["audit"]["uuid"], "strategy": record["strategy"]["name"],
        }
    return {k: v for k, v in record.items() if k not in _ENVELOPE_FIELDS}


def _command_entry(command: CommandRecord, codec: AvroCodec) -> AuditEntry:
    name, record = codec.decode(command.body, f"command {command.command_id}")
    return AuditEntry(
        "command", command.issued_at, command.first_position, command.command_type, command.command_id, command.command_id,
        issued_by=command.issued_by, origin=command.origin, outcome=command.outcome, outcome_reason=command.reason or None,
        details=_details(name, record),
    )


def _event_entry(stored: StoredEvent, codec: AvroCodec) -> AuditEntry:
    name, record = codec.decode(stored.body, stored.where)
    details = {"version": stored.version, "hash": stored.hash, **_details(name, record)}
    return AuditEntry("event", stored.occurred_at, stored.position, stored.event_type, stored.event_id, stored.command_id, details=details)


def _notification_entry(note: Notification, cause: StoredEvent | None) -> AuditEntry:
    """A notification as emitted; ``cause`` is the event it was translated from."""
    data = note.envelope["payload"]["watcher_object.data"]
    details = {
        "event_id": note.event_id, "priority": note.priority, "publisher_id": note.envelope["publisher_id"],
        "timestamp": note.envelope["timestamp"], "subject": data.get("uuid"), "state": data.get("state"),
    }
    if data.get("fault"):
        details["fault"] = data["fault"]["watcher_object.data"]
    at = cause.occurred_at if cause is not None else _envelope_time(note.envelope["timestamp"])
    command_id = cause.command_id if cause is not None else ""
    return AuditEntry("notification", at, note.position, note.event_type, note.message_id, command_id, details=details)


def _envelope_time(timestamp: str) -> int:
    moment = datetime.strptime(timestamp, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
