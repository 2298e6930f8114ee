"""One plan's records read back from the topics, for the audit trail on Kafka.

The commands topic has what was asked (who, from where, when, why), the outcomes topic what
became of it, the events topic what happened, and the notification topics what the world was
told. Each topic is scanned to its end once, keeping only the plan's records (a plan's records
share a key, so they are ordered in their partitions). Positions are the events' ``offset + 1``.
"""

from __future__ import annotations

from typing import cast

from .translator import Notification, Priority

from eventstore.codec import AvroCodec
from eventstore.domain.messages import COMMAND_TYPES
from eventstore.exceptions import CorruptRecordError, StaleAppendError, UnknownSchemaError
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.appends import Append, Fence, events_of, standing
from eventstore.kafka.io import TopicFollower
from eventstore.kafka.records import header_map, unwrap_oslo_envelope
from eventstore.log import CommandRecord, Outcome, RejectedAppend, StoredEvent


def _scan(settings: KafkaSettings, topic: str, plan_uuid: str) -> list:  # type: ignore[type-arg]
    follower = TopicFollower(settings, topic)
    try:
        return [m for m in follower.drain() if (m.key() or b"").decode("utf-8", "replace") == plan_uuid]
    finally:
        follower.close()


class KafkaPlanHistory:
    """The EventLog and CommandHistory sides `plan_story` reads, for one plan on a cluster."""

    def __init__(self, settings: KafkaSettings, codec: AvroCodec, plan_uuid: str) -> None:
        self.plan_uuid = plan_uuid
        topics = settings.topics
        self._conflicts: list[RejectedAppend] = []

        def conflict(append: Append, error: StaleAppendError) -> None:
            self._conflicts.append(RejectedAppend(
                append.position, append.where, append.appended_at, append.command_id, append.command_type, append.writer,
                append.expected_version, str(error),
            ))

        appends = standing(codec, _scan(settings, topics.events, plan_uuid), Fence(), on_poison=lambda m, e: None, on_conflict=conflict)
        self._events = events_of(appends)
        positions: dict[str, list[int]] = {}
        for e in self._events:
            positions.setdefault(e.command_id, []).append(e.position)
        outcomes: dict[str, tuple[Outcome, str]] = {}
        for msg in _scan(settings, topics.outcomes, plan_uuid):
            _, r = codec.decode(msg.value() or b"")
            outcomes[r["command_id"]] = (cast(Outcome, r["outcome"]), r["reason"])
        self._commands: list[CommandRecord] = []
        for msg in _scan(settings, topics.commands, plan_uuid):
            try:
                name, r = codec.decode(msg.value() or b"")
            except (CorruptRecordError, UnknownSchemaError):
                continue  # parked in the dead-letter topic, never a command of this plan
            if name not in COMMAND_TYPES or r["command_id"] in {c.command_id for c in self._commands}:
                continue  # a re-sent command took effect once; show it once
            outcome, reason = outcomes.get(r["command_id"], ("pending", "not handled yet"))
            at = positions.get(r["command_id"], [])
            self._commands.append(CommandRecord(
                r["command_id"], name, plan_uuid, r["issued_by"], r["origin"], r["issued_at"], msg.value() or b"",
                outcome, reason, min(at) if at else None, max(at) if at else None,
            ))
        by_event = {e.event_id: e for e in self._events}
        self._notifications: list[Notification] = []
        seen: set[str] = set()
        for topic in (topics.notification_topic("INFO"), topics.notification_topic("ERROR")):
            for msg in _scan(settings, topic, plan_uuid):
                h = header_map(msg.headers())
                envelope = unwrap_oslo_envelope(msg.value() or b"")
                if envelope["message_id"] in seen:
                    continue  # at-least-once: a re-send is the same message
                seen.add(envelope["message_id"])
                cause = by_event.get(h.get("watcher_es_event_id", ""))
                self._notifications.append(Notification(
                    envelope["message_id"], envelope["event_type"], cast(Priority, envelope["priority"]), plan_uuid,
                    int(h.get("ce_sequence", 0)), cause.position if cause else 0, h.get("watcher_es_event_id", ""), envelope,
                ))

    def read_plan(self, plan_uuid: str, until_position: int | None = None) -> list[StoredEvent]:
        return [e for e in self._events if until_position is None or e.position <= until_position]

    def plan_commands(self, plan_uuid: str) -> list[CommandRecord]:
        return list(self._commands)

    def notifications(self) -> list[Notification]:
        return list(self._notifications)

    def conflicts(self) -> list[RejectedAppend]:
        return list(self._conflicts)
