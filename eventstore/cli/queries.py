"""Commands that only read: status, plans, notifications."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, Optional

import typer

from projections.read_model import ReadModel
from projections.replay import replay_notifications
from projections.kafka_parts import publish_notification, recorded_on_topics, replay_topic_notifications
from projections.translator import translator_for

from ..codec import AvroCodec
from ..exceptions import CommandValidationError, WatcherEsError
from ..kafka.admin import consumer_positions
from ..kafka.client import delivered_notifications
from ..kafka.io import Publisher
from ..plan_file import format_time
from . import render
from .context import err, friendly_errors, json_line, kafka_of, open_client, open_service, out, settings_of
from .views import action_rows, plan_row

JsonOpt = Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")]


class UnknownPlanError(WatcherEsError):
    """The read model has no such plan."""


def _readable(row: dict[str, Any]) -> dict[str, Any]:
    result = {}
    for key, value in row.items():
        if key.endswith("_at") or key == "abort_deadline":
            value = format_time(value)
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
    if kafka_of(ctx) is not None:
        with open_client(ctx) as client:
            found = client.plan(plan)
        if found is None:
            raise UnknownPlanError(f"action plan {plan} is not registered")
        row, actions = plan_row(found), action_rows(found)
    else:
        with open_service(ctx) as service:
            service.catch_up()
            model_row = service.model.plan(plan)
            if model_row is None:
                raise UnknownPlanError(f"action plan {plan} is not registered")
            row, actions = model_row, service.model.actions(plan)
    if as_json:
        json_line({"plan": _readable(row), "actions": [_readable(a) for a in actions]})
        return
    out.print(render.table(f"Action plan {plan}", ("field", "value"), (
        (k, render.state(v) if k == "state" else v) for k, v in _readable(row).items()
    )))
    out.print(render.actions_table("Actions", actions))


def _consumer_status(ctx: typer.Context, as_json: bool) -> None:
    settings = settings_of(ctx)
    if settings.kafka is not None:
        model_positions = None
        if settings.paths.model.exists():  # `serve` on this host: its own tracking is the truth
            model = ReadModel(settings.paths.model, AvroCodec())
            prefix = f"{settings.kafka.topics.events}/"
            model_positions = {k: v for k, v in model.positions().items() if k.startswith(prefix)} or None
            model.close()
        rows = [
            (p.part, f"{p.topic}/{p.partition}", p.position, p.lag)
            for p in consumer_positions(settings.kafka, model_positions)
        ]
    else:
        with open_service(ctx) as service:
            end = service.log.last_position()
            rows = [
                (part, str(settings.paths.log), position, end - position)
                for part, position in (("read-model", service.model.position()), ("translator", service.outbox.position()))
            ]
    if as_json:
        for part, source, position, lag in rows:
            json_line({"part": part, "source": source, "position": position, "lag": lag})
        return
    out.print(render.table("Consumers", ("part", "source", "position", "lag"), (
        (part, source, "not started" if position is None else position, lag) for part, source, position, lag in rows
    )))


@friendly_errors
def plans(
    ctx: typer.Context,
    state: Annotated[Optional[str], typer.Option(help="Only plans in this state.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List action plans."""
    wanted = state.upper() if state else None
    if kafka_of(ctx) is not None:
        with open_client(ctx) as client:
            rows = [plan_row(p) for p in client.plans() if wanted in (None, p.state)]
    else:
        with open_service(ctx) as service:
            service.catch_up()
            rows = service.model.plans(wanted)
            for row in rows:
                row["action_count"] = len(service.model.actions(row["uuid"]))
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
    if replay:
        if follow or after:
            raise CommandValidationError("--replay reads the log, not the emitted notifications: drop --follow/--after")
        _replay_notifications(ctx, plan, from_position, to_position, as_json, publish)
        return
    if from_position != 1 or to_position is not None:
        raise CommandValidationError("--from-position/--to-position only apply with --replay")
    kafka = kafka_of(ctx)
    if kafka is not None:
        if after:
            raise CommandValidationError("--after numbers the embedded store's notifications; on Kafka use --plan or --follow")
        try:
            for number, delivered in enumerate(delivered_notifications(kafka, {plan} if plan else None, follow=follow)):
                if as_json:
                    for d in delivered:
                        json_line(d.envelope)
                elif delivered or number == 0:
                    out.print(render.table("Notifications", render.NOTIFICATION_COLUMNS, (render.notification_row(i + 1, d.envelope) for i, d in enumerate(delivered))))
        except KeyboardInterrupt:
            pass
        return
    with open_service(ctx) as service:
        seq = after
        while True:
            service.catch_up()
            batch = service.outbox.read(seq, plan_uuid=plan)
            if batch:
                seq = batch[-1][0]
                if as_json:
                    for _, envelope in batch:
                        json_line(envelope)
                else:
                    out.print(render.table("Notifications", render.NOTIFICATION_COLUMNS, (render.notification_row(s, n) for s, n in batch)))
            if not follow:
                return
            try:
                time.sleep(0.05)  # a cheap indexed read: followers see a cancel within ms
            except KeyboardInterrupt:
                return


def _replay_notifications(ctx: typer.Context, plan: str | None, first: int, last: int | None, as_json: bool, publish: bool) -> None:
    """A fresh translator over the log range, streamed to stdout (or the topics): identical to the first emission."""
    settings = settings_of(ctx)
    if settings.kafka is not None:
        if first != 1 or last is not None:
            raise CommandValidationError("--from-position/--to-position number the embedded log; on Kafka re-emit all, or one --plan")
        codec = AvroCodec()
        translator = translator_for(settings, codec, None, cache_size=None, recorded=recorded_on_topics(settings.kafka, plan))
        publisher = Publisher(settings.kafka)
        count = 0
        for note in replay_topic_notifications(settings.kafka, translator, codec, plan):
            if publish:
                publish_notification(publisher, settings.kafka, note)
                count += 1
            else:
                json_line(note.envelope) if as_json else out.print(render.table("", render.NOTIFICATION_COLUMNS, [render.notification_row(note.plan_seq, note.envelope)]))
        publisher.flush()
        if publish:
            err.print(f"re-emitted {count} notifications to {settings.kafka.topics.notifications}.info/.error")
        return
    if publish:
        raise CommandValidationError("--publish sends to the Kafka notification topics: it needs --bootstrap-servers")
    with open_service(ctx) as service:
        translator = translator_for(service.settings, service.codec, service.log, recorded=service.outbox.payload_sets_of)
        notes = replay_notifications(service.log, translator, first, last, plan_uuid=plan)
        if as_json:
            for note in notes:
                json_line(note.envelope)
            return
        rows: list[tuple[Any, ...]] = []
        for note in notes:
            rows.append(render.notification_row(note.position, note.envelope))
            if len(rows) == 500:
                out.print(render.table("Notifications (re-emitted; # is the log position)", render.NOTIFICATION_COLUMNS, rows))
                rows = []
        if rows:
            out.print(render.table("Notifications (re-emitted; # is the log position)", render.NOTIFICATION_COLUMNS, rows))


def register_commands(app: typer.Typer) -> None:
    app.command("status")(status)
    app.command("plans")(plans)
    app.command("notifications")(notifications)
