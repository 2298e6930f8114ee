"""Rich tables for people; the JSON paths never come through here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.table import Table

from ..plan_file import format_time

STATE_STYLE = {
    "CANCELLED": "yellow", "CANCELLING": "magenta", "FAILED": "red", "SUCCEEDED": "green",
    "ONGOING": "cyan", "PENDING": "white", "SKIPPED": "dim",
}


def state(value: str | None) -> str:
    if value is None:
        return ""
    style = STATE_STYLE.get(value)
    return f"[{style}]{value}[/{style}]" if style else value


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c)
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    return t


def plans_table(plans: Sequence[dict[str, Any]]) -> Table:
    return table("Action plans", ("uuid", "state", "actions", "cancelled by", "reason", "last change"), (
        (p["uuid"], state(p["state"]), p.get("action_count", ""), p["cancel_requested_by"], p["cancel_reason"], format_time(p["last_event_at"]))
        for p in plans
    ))


def actions_table(title: str, actions: Sequence[dict[str, Any]]) -> Table:
    return table(title, ("#", "action", "type", "state", "fault"), (
        (a["idx"], a["uuid"], a["action_type"], state(a["state"]), a["fault"] or "") for a in actions
    ))


def notification_row(seq: int, n: dict[str, Any]) -> tuple[Any, ...]:
    data = n["payload"]["watcher_object.data"]
    fault = data.get("fault")
    fault_text = f"{fault['watcher_object.data']['exception']}: {fault['watcher_object.data']['exception_message']}" if fault else ""
    subject = data["uuid"] if n["event_type"].startswith("action.") else f"plan {data['uuid']}"
    return (seq, n["timestamp"], n["event_type"], n["priority"], subject, state(data["state"]), fault_text, n["message_id"])


NOTIFICATION_COLUMNS = ("#", "timestamp", "event_type", "priority", "subject", "state", "fault", "message_id")
