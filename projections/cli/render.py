"""Rich tables for people; the JSON paths never come through here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # rich loads when a table is drawn: `--help` and `--json` never pay for it
    from rich.table import Table
    from rich.text import Text

from eventstore.times import format_time
from projections.cli.context import clean

STATE_STYLE = {
    "CANCELLED": "yellow", "CANCELLING": "magenta", "FAILED": "red", "SUCCEEDED": "green",
    "ONGOING": "cyan", "PENDING": "white", "SKIPPED": "dim",
}


def state(value: str | None) -> Text:
    from rich.text import Text

    return Text("" if value is None else clean(value), style=STATE_STYLE.get(value or "", ""))


#: Columns that must stay whole (people copy uuids into the next command).
WHOLE = frozenset({"#", "uuid", "event_type", "message_id", "time (UTC)", "source", "topic", "from", "state", "subject"})


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    from rich.table import Table
    from rich.text import Text

    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c, no_wrap=c in WHOLE)
    for row in rows:
        t.add_row(*(v if isinstance(v, Text) else Text("" if v is None else clean(str(v))) for v in row))
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
    subject = data["uuid"][:8]  # the event_type says whether it is the plan or an action
    return (seq, n["timestamp"][11:23], n["event_type"], subject, state(data["state"]), fault["watcher_object.data"]["exception"] if fault else "")


def faults(notifications: Iterable[dict[str, Any]]) -> list[str]:
    """The fault messages, in full, for under a timeline whose fault column has only the class."""
    out = []
    for n in notifications:
        fault = n["payload"]["watcher_object.data"].get("fault")
        if fault:
            f = fault["watcher_object.data"]
            out.append(f"{n['event_type']} {n['payload']['watcher_object.data']['uuid']}: {f['exception']}: {f['exception_message']} ({f['module_name']}.{f['function_name']})")
    return out


#: The timeline shows short uuids to fit a terminal; `--json` has every envelope whole.
NOTIFICATION_COLUMNS = ("#", "time (UTC)", "event_type", "subject", "state", "fault")
