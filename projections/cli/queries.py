"""Commands that only read: status, plans, notifications."""

from __future__ import annotations

import json
from itertools import islice
from typing import Annotated, Any, Optional

import typer

from eventstore.domain.states import PLAN_STATES
from eventstore.domain.identity import canonical_uuid
from eventstore.exceptions import CommandValidationError
from eventstore.times import format_time
from projections.cli import render
from projections.cli.context import err, friendly_errors, json_line, open_store_of, out

JsonOpt = Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")]


def _readable(row: dict[str, Any]) -> dict[str, Any]:
    result = {}
    for key, value in row.items():
        if key == "abort_deadline" and value == 0:
            value = None  # a plan that mirrors Watcher: no deadline of ours
        elif key.endswith("_at") or key == "abort_deadline":
            value = format_time(value)
        elif key == "mirrored":
            value = bool(value)
        elif key in ("fault", "global_efficacy", "input_parameters", "parents") and isinstance(value, str):
            value = json.loads(value)
        result[key] = value
    return result


@friendly_errors
def status(
    ctx: typer.Context,
    plan: Annotated[Optional[str], typer.Argument(help="Action plan uuid; without it, each consumer's position and lag.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a plan and its actions; without PLAN, where each consumer part is and its lag behind the log."""
    if plan is None:
        _consumer_status(ctx, as_json)
        return
    with open_store_of(ctx) as store:
        row, actions = store.plan(canonical_uuid("PLAN", plan))
    if as_json:
        json_line({"plan": _readable(row), "actions": [_readable(a) for a in actions]})
        return
    out.print(render.table(f"Action plan {plan}", ("field", "value"), (
        (k, render.state(v) if k == "state" else v) for k, v in _readable(row).items()
    )))
    out.print(render.actions_table("Actions", actions))


def _consumer_status(ctx: typer.Context, as_json: bool) -> None:
    with open_store_of(ctx) as store:
        rows = store.consumers()
        missing = store.unregistered()
    if as_json:
        for r in rows:
            json_line({"part": r.part, "source": r.source, "position": r.position, "lag": r.lag})
        for m in missing:
            json_line({"unregistered_plan": m.plan_uuid, "missing": m.missing, "notifications": m.notifications,
                       "last_event_type": m.last_event_type, "last_seen": format_time(m.last_seen)})
        return
    out.print(render.table("Consumers", ("part", "source", "position", "lag"), (
        (r.part, r.source, "not started" if r.position is None else r.position, r.lag) for r in rows
    )))
    if missing:
        out.print(render.table("Plans Watcher named that the bridge could not register", ("plan", "missing", "notifications", "last"), (
            (m.plan_uuid, m.missing, m.notifications, f"{m.last_event_type} at {format_time(m.last_seen)}") for m in missing
        )))


@friendly_errors
def plans(
    ctx: typer.Context,
    state: Annotated[Optional[str], typer.Option(help="Only plans in this state.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List action plans."""
    wanted = state.upper() if state else None
    if wanted is not None and wanted not in PLAN_STATES:
        raise CommandValidationError(f"--state: {state!r} is not one of {', '.join(sorted(PLAN_STATES))}")
    with open_store_of(ctx) as store:
        rows = store.plans(wanted)
    if as_json:
        for row in rows:
            json_line(_readable(row))
    else:
        out.print(render.plans_table(rows))


@friendly_errors
def notifications(
    ctx: typer.Context,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new notifications as they are emitted.")] = False,
    plan: Annotated[Optional[str], typer.Option(help="Only this plan's notifications.")] = None,
    after: Annotated[int, typer.Option(help="Start after this notification number.")] = 0,
    as_json: JsonOpt = False,
    replay: Annotated[bool, typer.Option("--replay", help="Re-emit from the log: translate a range of it again, same message_ids as the first time.")] = False,
    from_position: Annotated[int, typer.Option(help="With --replay: the first log position (inclusive).")] = 1,
    to_position: Annotated[Optional[int], typer.Option(help="With --replay: the last log position (inclusive; default the end).")] = None,
    publish: Annotated[bool, typer.Option("--publish", help="With --replay on Kafka: send them to the notification topics again (same message_ids).")] = False,
) -> None:
    """Print emitted notifications in order (full envelopes with --json), or re-emit them with --replay."""
    plan = canonical_uuid("--plan", plan) if plan else None
    if replay:
        if follow or after:
            raise CommandValidationError("--replay reads the log, not the emitted notifications: drop --follow/--after")
        _replay_notifications(ctx, plan, from_position, to_position, as_json, publish)
        return
    if from_position != 1 or to_position is not None:
        raise CommandValidationError("--from-position/--to-position only apply with --replay")
    with open_store_of(ctx) as store:
        try:
            for batch in store.notifications(plan, after, follow):
                if as_json:
                    for _, envelope in batch:
                        json_line(envelope)
                else:
                    out.print(render.table("Notifications", render.NOTIFICATION_COLUMNS, (render.notification_row(n, e) for n, e in batch)))
        except KeyboardInterrupt:
            pass


def _replay_notifications(ctx: typer.Context, plan: str | None, first: int, last: int | None, as_json: bool, publish: bool) -> None:
    """A fresh translator over the log: identical to the first emission, to stdout or (``--publish``) to the topics."""
    with open_store_of(ctx) as store:
        notes = store.replayed_notifications(plan, first, last)
        if publish:
            err.print(f"re-emitted {store.publish(notes)} notifications")
            return
        if as_json:
            for note in notes:
                json_line(note.envelope)
            return
        while rows := [render.notification_row(note.position, note.envelope) for note in islice(notes, 500)]:
            out.print(render.table("Notifications (re-emitted; # is the log position)", render.NOTIFICATION_COLUMNS, rows))
