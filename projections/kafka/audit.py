"""The audit trail on Kafka: each plan's commands, events, conflicts and notifications, kept in the model.

The read-model part (``kafka_parts``) hands every batch to the trail inside the transaction that
applies it to the model, so ``audit`` reads a handful of indexed rows of one plan instead of
scanning five topics:

- *commands*: those of the appends that stand, rejections and no-ops included (they are appended
  too); what the handler only answered on the outcomes topic (a re-delivery, a reused command
  id) changed nothing and is not shown;
- *events*: those of the appends that stand, bodies and chain hashes as appended;
- *conflicts*: appends that lost the fence, with their writer, as every reader skips them;
- *notifications*: ours (records with a ``watcher_es_event_id`` header; Watcher's own are
  ignored) as published, one row per message id (a re-send is the same message), keeping only
  what the audit shows (``what_audit_shows``). Recorded, not derived again with the translator:
  the notification level and payload set in force when an event was translated may differ from
  today's, and the audit must show what consumers received.

Positions: the trail's own tracking rows (consumer ``audit-trail``) say, per partition of the
events topic and of both notification topics, the next record it has consumed up to, skipped
records included; the read model's rows (consumer ``read-model``) keep their meaning (the last
event applied), which ``verify`` and ``replay`` compare with the log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import sqlite_utils
from confluent_kafka import Message

from eventstore.codec import AvroCodec
from eventstore.exceptions import StaleAppendError
from eventstore.kafka.appends import Append
from eventstore.kafka.records import header_map, offset_of, source_of, unwrap_oslo_envelope, where_of
from eventstore.log import CommandRecord, RejectedAppend, StoredEvent
from eventstore.frozen import changed
from eventstore.position import where
from eventstore.sqlite_support import rows_for

from projections.read_model import sorted_json
from projections.tracking import track
from projections.translator import Notification, Priority

logger = logging.getLogger(__name__)

CONSUMER = "audit-trail"


class AuditTrail:
    """Writes (inside the caller's write transaction) and reads one model file's audit trail."""

    def __init__(self, db: sqlite_utils.Database, codec: AvroCodec) -> None:
        self.db = db
        self._codec = codec

    # ---------------------------------------------------------------- positions

    def positions(self) -> dict[str, int]:
        rows = self.db.conn.execute("SELECT source, position FROM tracking WHERE consumer = ?", (CONSUMER,))
        return {source: int(position) for source, position in rows}

    def track(self, source: str, position: int) -> None:
        track(self.db, CONSUMER, position, source)

    def plan_versions(self, uuids: Iterable[str]) -> dict[str, int]:
        """Each plan's version as the trail's events leave it (the trail's own fence state)."""
        rows = rows_for(self.db.conn.execute, "SELECT plan_uuid, max(version) FROM trail_events WHERE plan_uuid IN ({keys}) GROUP BY plan_uuid", uuids)
        return {uuid: int(version) for uuid, version in rows}

    # ---------------------------------------------------------------- recording (inside a write transaction)

    def _heads(self, uuids: Iterable[str]) -> dict[str, str]:
        """Each plan's last hash in the trail: where the chain of a record that carries only its last one goes on from."""
        rows = rows_for(
            self.db.conn.execute,
            "SELECT e.plan_uuid, e.hash FROM trail_events e JOIN (SELECT plan_uuid, max(version) AS version FROM trail_events"
            " WHERE plan_uuid IN ({keys}) GROUP BY plan_uuid) m ON e.plan_uuid = m.plan_uuid AND e.version = m.version",
            uuids,
        )
        return dict(rows)

    def record(self, appends: Sequence[Append], conflicts: Sequence[tuple[Append, StaleAppendError]]) -> None:
        commands: list[tuple[object, ...]] = []
        events: list[tuple[object, ...]] = []
        heads = self._heads({a.plan_uuid for a in appends if a.events and not all(e.hash for e in a.events)})
        for append in appends:
            chained = append.chained(heads.get(append.plan_uuid, ""))
            if chained:
                heads[append.plan_uuid] = chained[-1].hash
            # Who asked, from where and when are in the command's own record: read when `audit` shows it, not
            # decoded here for every command (a registration's is the whole plan). A record without one has none.
            who = (None, None, None) if append.command else ("", "", append.appended_at)
            commands.append((
                append.plan_uuid, append.position, append.source, append.command_id, append.command_type, *who,
                append.command, append.outcome, append.reason, append.position if append.events else None,
            ))
            events.extend(
                (e.plan_uuid, e.version, e.position, e.source, e.event_id, e.event_type, e.command_id, e.occurred_at, e.body, e.hash)
                for e in chained
            )
        self.db.conn.executemany(
            "INSERT OR REPLACE INTO trail_commands (plan_uuid, position, source, command_id, command_type, issued_by, origin,"
            " issued_at, body, outcome, reason, first_position) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", commands,
        )
        self.db.conn.executemany(
            "INSERT OR REPLACE INTO trail_events (plan_uuid, version, position, source, event_id, event_type, command_id,"
            " occurred_at, body, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", events,
        )
        self.db.conn.executemany(
            "INSERT OR REPLACE INTO trail_conflicts (plan_uuid, position, source, appended_at, command_id, command_type, writer,"
            " expected_version, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (a.plan_uuid, a.position, a.source, a.appended_at, a.command_id, a.command_type, a.writer, a.expected_version, str(error))
                for a, error in conflicts
            ],
        )

    def record_notifications(self, messages: Iterable[Message], priorities: Mapping[str, str] | None = None) -> None:
        """Our notifications among these records; anything else on the topics is not ours and is ignored.

        ``priorities``: the priority each notification topic carries (``.info``, ``.error``): with it, a
        record that has the summary header is recorded from its headers alone, its id and kind being
        ``ce_id`` and ``ce_type``, as the translator sends them, and no JSON is parsed.
        """
        rows = []
        for msg in messages:
            h = header_map(msg.headers(), _TRAIL_HEADERS)
            event_id, plan_uuid = h.get("watcher_es_event_id"), h.get("ce_subject")
            if not event_id or not plan_uuid:
                continue
            try:
                summary = h.get(AUDIT_HEADER)
                priority = priorities.get(str(msg.topic())) if priorities else None
                if summary and priority and "ce_id" in h and "ce_type" in h:
                    message_id, event_type = h["ce_id"], h["ce_type"]
                else:
                    # The translator says what the audit shows in a header; a record of an earlier
                    # release has none, and its whole message is read instead.
                    shown = json.loads(summary) if summary else what_audit_shows(unwrap_oslo_envelope(msg.value() or b""))
                    message_id, event_type, priority = shown["message_id"], shown["event_type"], shown["priority"]
                plan_seq = int(h.get("ce_sequence", 0))
            except (ValueError, KeyError, TypeError) as exc:
                logger.warning("not recording %s in the audit trail: %s", where_of(msg), exc)
                continue
            rows.append((
                plan_uuid, message_id, event_id, event_type, priority, plan_seq, h.get("watcher_es_payload_set", "1.0"),
                summary or sorted_json(shown), source_of(msg), offset_of(msg) + 1,
            ))
        self.db.conn.executemany(  # a re-send is the same message: the first one recorded stays
            "INSERT OR IGNORE INTO trail_notifications (plan_uuid, message_id, event_id, event_type, priority, plan_seq,"
            " payload_set, envelope, source, position) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows,
        )

    # ---------------------------------------------------------------- reading one plan (what `plan_story` asks)

    def read_plan(self, plan_uuid: str, until_position: int | None = None) -> list[StoredEvent]:
        rows = self.db.conn.execute(
            "SELECT position, plan_uuid, version, event_id, event_type, command_id, occurred_at, body, hash, source"
            " FROM trail_events WHERE plan_uuid = ? ORDER BY version", (plan_uuid,),
        )
        events = [StoredEvent(*row) for row in rows]
        return [e for e in events if until_position is None or e.position <= until_position]

    def plan_commands(self, plan_uuid: str) -> list[CommandRecord]:
        rows = self.db.conn.execute(
            "SELECT command_id, command_type, plan_uuid, issued_by, origin, issued_at, body, outcome, reason, first_position,"
            " first_position FROM trail_commands WHERE plan_uuid = ? ORDER BY position", (plan_uuid,),
        )
        return [self._who(CommandRecord(*row)) for row in rows]

    def _who(self, c: CommandRecord) -> CommandRecord:
        """The row with who asked, from where and when, read from the command's record where the row leaves them out."""
        if c.issued_by is not None:
            return c
        _, r = self._codec.decode(c.body, f"the command {c.command_id} of plan {c.plan_uuid}")
        return changed(c, issued_by=r["issued_by"], origin=r["origin"], issued_at=r["issued_at"])

    def conflicts(self, plan_uuid: str) -> list[RejectedAppend]:
        rows = self.db.conn.execute(
            "SELECT position, source, appended_at, command_id, command_type, writer, expected_version, reason"
            " FROM trail_conflicts WHERE plan_uuid = ? ORDER BY position", (plan_uuid,),
        )
        return [
            RejectedAppend(position, where(source, position), at, command_id, command_type, writer, expected, reason)
            for position, source, at, command_id, command_type, writer, expected, reason in rows
        ]

    def notifications(self, plan_uuid: str) -> list[Notification]:
        """The plan's notifications as published, each placed at the position of the event that caused it."""
        rows = self.db.conn.execute(
            "SELECT n.message_id, n.event_type, n.priority, n.plan_uuid, n.plan_seq, coalesce(e.position, 0), n.event_id,"
            " n.envelope, n.payload_set FROM trail_notifications n"
            " LEFT JOIN trail_events e ON e.plan_uuid = n.plan_uuid AND e.event_id = n.event_id"
            " WHERE n.plan_uuid = ? ORDER BY n.plan_seq, n.message_id", (plan_uuid,),
        )
        return [
            Notification(message_id, event_type, cast(Priority, priority), plan, seq, position, event_id, json.loads(envelope), payload_set)
            for message_id, event_type, priority, plan, seq, position, event_id, envelope, payload_set in rows
        ]


#: The header in which the translator sends ``audit_summary`` beside each notification.
AUDIT_HEADER = "watcher_es_audit"
#: What the trail reads of a notification's headers.
_TRAIL_HEADERS = frozenset({"watcher_es_event_id", "ce_subject", AUDIT_HEADER, "ce_sequence", "watcher_es_payload_set", "ce_id", "ce_type"})


def audit_summary(envelope: dict[str, Any]) -> str:
    """``what_audit_shows`` as the trail keeps it: the read model records it without parsing the message."""
    return sorted_json(what_audit_shows(envelope))


def what_audit_shows(envelope: dict[str, Any]) -> dict[str, Any]:
    """The part of an envelope the audit shows (``audit._notification_entry``), not the whole payload.

    A whole envelope carries the plan's (or action's) full versioned object, several KB each, four
    or five per cancelled plan: kept whole they were most of the model file. The message itself
    stays on its topic, and ``notifications --plan`` shows it whole.
    """
    data = envelope.get("payload", {}).get("watcher_object.data", {})
    kept = {k: data[k] for k in ("uuid", "state", "fault") if k in data}
    return {
        **{k: envelope[k] for k in ("message_id", "event_type", "priority", "publisher_id", "timestamp") if k in envelope},
        "payload": {"watcher_object.data": kept},
    }
