"""One of Watcher's notifications as the bridge reads it: oslo.messaging's envelope opened, the
fields the bridge uses taken by presence, so every payload version Watcher has sent reads.

Watcher 17.0.0 sends ``{"oslo.version": "2.0", "oslo.message": "<JSON text>"}``; older
oslo.messaging drivers may send the message itself. The subject is a plan (``action_plan.*``),
an action (``action.*``, naming its plan in ``payload.action_plan``) or an audit
(``audit.*``); anything else is a notification the bridge has no use for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from eventstore.domain.messages import Fault, WatcherNotification
from eventstore.exceptions import UnusableNotificationError

Subject = Literal["plan", "action", "audit", "other"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ReceivedNotification:
    """What the bridge reads of one Watcher notification (``data``: the payload's object, whole)."""

    event_type: str
    message_id: str
    publisher_id: str
    #: The envelope's timestamp, UTC microseconds (the emitting host's clock).
    timestamp: int
    context: dict[str, Any]
    subject: Subject
    #: The plan it is about (for an audit notification, the audit's uuid).
    uuid: str
    plan_uuid: str
    state: str | None
    data: dict[str, Any] = field(repr=False)

    @property
    def action_uuid(self) -> str:
        return self.uuid

    @property
    def user(self) -> str | None:
        return _text(self.context.get("user"))

    @property
    def fault(self) -> Fault | None:
        raw = _object(self.data.get("fault"))
        if not raw:
            return None
        return Fault(
            str(raw.get("exception") or "WatcherException"), str(raw.get("exception_message") or ""),
            str(raw.get("module_name") or ""), str(raw.get("function_name") or ""),
        )

    @property
    def status_message(self) -> str | None:
        return _text(self.data.get("status_message"))

    def recorded(self) -> WatcherNotification:
        """What a command keeps of it: which notification, and who asked, as Watcher's context says."""
        c = self.context
        return WatcherNotification(
            self.message_id, self.event_type, self.publisher_id, self.timestamp,
            _text(c.get("user")), _text(c.get("project_id")), _text(c.get("request_id")), _text(c.get("global_request_id")),
        )


def parse(value: bytes, where: str) -> ReceivedNotification:
    """A record of Watcher's notification topics; UnusableNotificationError says why it is not one."""
    try:
        outer = json.loads(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UnusableNotificationError(f"{where}: not JSON ({exc})") from None
    message = outer
    if isinstance(outer, dict) and "oslo.message" in outer:
        try:
            message = json.loads(outer["oslo.message"])
        except (ValueError, TypeError) as exc:
            raise UnusableNotificationError(f"{where}: oslo.message is not JSON text ({exc})") from None
    if not isinstance(message, dict):
        raise UnusableNotificationError(f"{where}: not an oslo.messaging notification (a JSON object with event_type and payload)")
    event_type, message_id = message.get("event_type"), message.get("message_id")
    if not isinstance(event_type, str) or not event_type:
        raise UnusableNotificationError(f"{where}: no event_type: not an oslo.messaging notification")
    if not isinstance(message_id, str) or not message_id:
        raise UnusableNotificationError(f"{where}: {event_type} has no message_id")
    subject: Subject = "plan" if event_type.startswith("action_plan.") else "action" if event_type.startswith("action.") else (
        "audit" if event_type.startswith("audit.") else "other"
    )
    timestamp = _timestamp(message.get("timestamp"), where, event_type)
    raw_context, raw_publisher = message.get("_context"), message.get("publisher_id")
    context: dict[str, Any] = raw_context if isinstance(raw_context, dict) else {}
    publisher = raw_publisher if isinstance(raw_publisher, str) else ""
    if subject == "other":
        return ReceivedNotification(event_type, message_id, publisher, timestamp, context, subject, "", "", None, {})
    data = _object(message.get("payload"))
    if data is None:
        raise UnusableNotificationError(f"{where}: {event_type} {message_id}: the payload is not a Watcher versioned object")
    uuid = _required_text(data, "uuid", where, event_type)
    plan_uuid: str | None = uuid
    if subject == "action":
        plan = _object(data.get("action_plan"))
        plan_uuid = _text(plan.get("uuid")) if plan else _text(data.get("action_plan_uuid"))  # (the declared field is never set in 17.0)
    if not plan_uuid:
        raise UnusableNotificationError(f"{where}: {event_type} {message_id}: action {uuid} names no action plan")
    state = data.get("state")
    if subject != "audit" and not isinstance(state, str):
        raise UnusableNotificationError(f"{where}: {event_type} {message_id}: {subject} {uuid} has no state")
    return ReceivedNotification(event_type, message_id, publisher, timestamp, context, subject, uuid, plan_uuid, state, data)


def _object(value: Any) -> dict[str, Any] | None:
    """A Watcher versioned object's fields (``watcher_object.data``), or a plain dict as it is."""
    if not isinstance(value, dict):
        return None
    inner = value.get("watcher_object.data", value)
    return inner if isinstance(inner, dict) else None


def nested(data: dict[str, Any], key: str) -> dict[str, Any] | None:
    return _object(data.get(key))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _required_text(data: dict[str, Any], key: str, where: str, event_type: str) -> str:
    value = _text(data.get(key))
    if value is None:
        raise UnusableNotificationError(f"{where}: {event_type}: the payload has no {key}")
    return value


def _timestamp(value: Any, where: str, event_type: str) -> int:
    """oslo's ``YYYY-MM-DD HH:MM:SS.ffffff`` (UTC), or ISO 8601."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
            return (moment - _EPOCH) // timedelta(microseconds=1)
    raise UnusableNotificationError(f"{where}: {event_type}: timestamp {value!r} is not a time")
