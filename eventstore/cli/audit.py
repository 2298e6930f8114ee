"""Commands for auditors: replay (rebuild, or time travel with --until), audit PLAN, verify."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from projections.audit import AuditEntry, plan_story
from projections.exceptions import VerificationFailed
from projections.outbox import stored_notifications
from projections.read_model import ReadModel
from projections.replay import replay as replay_log
from projections.verify import verify as verify_store

from ..codec import AvroCodec
from ..config import Settings
from ..exceptions import WatcherEsError
from ..plan_file import format_time
from ..kafka.history import KafkaPlanHistory
from ..kafka.io import topic_pages
from ..log import EventLog, StoredEvent
from ..sqlite_log import SqliteEventLog
from . import render
from .context import EXIT_REJECTED, friendly_errors, json_line, kafka_of, open_service, out, settings_of
from .progress import replay_progress

JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document on stdout instead of text.")]


class MissingLogError(WatcherEsError):
    """There is no event log at the configured --db path."""


@contextmanager
def open_log(settings: Settings) -> Iterator[tuple[SqliteEventLog, AvroCodec]]:
    """The embedded log and a codec that reads every schema it was written with; never creates a log."""
    path = settings.paths.log
    if not path.exists():
        raise MissingLogError(f"no event log at {path} (set --db or WATCHER_ES_DB)")
    events = SqliteEventLog(path)
    try:
        codec = AvroCodec()
        codec.learn(events.writer_schemas())
        yield events, codec
    finally:
        events.close()


@contextmanager
def open_events(settings: Settings) -> Iterator[tuple[EventLog | Iterable[list[StoredEvent]], AvroCodec]]:
    """The record to check: the embedded log, or the events topic read to its end.

    On Kafka the live read model is the one `serve` keeps beside --db on this host.
    """
    if settings.kafka is None:
        with open_log(settings) as (events, codec):
            yield events, codec
        return
    if not settings.paths.model.exists():
        raise MissingLogError(f"no read model at {settings.paths.model}: run verify where `serve` keeps it (same --db)")
    codec = AvroCodec()
    yield topic_pages(settings.kafka, codec), codec


@friendly_errors
def replay(
    ctx: typer.Context,
    until: Annotated[Optional[str], typer.Option(help="Build the state as it was at this log POSITION or ISO 8601 TIME (e.g. 2026-11-26T10:00:00Z) into a file of its own.")] = None,
    into: Annotated[Optional[Path], typer.Option(help="With --until: the file to build (default <db stem>.asof-<position>.db).", dir_okay=False)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Rebuild the read model from the start of the log and swap it in atomically when done."""
    settings = settings_of(ctx)
    label = "replaying" if until is None else f"replaying until {until}"
    if settings.kafka is not None:
        kafka = settings.kafka
        with replay_progress(label) as progress:
            codec = AvroCodec()
            result = replay_log(lambda: topic_pages(kafka, codec), codec, settings.paths, until, into, progress=progress)
    else:
        with open_log(settings) as (events, codec), replay_progress(label) as progress:
            result = replay_log(events, codec, settings.paths, until, into, progress=progress)
    summary = {
        "path": str(result.path), "position": result.position.to_json(), "events": result.events,
        "seconds": round(result.seconds, 3), "events_per_second": round(result.events_per_second),
        "as_of": until is not None,
    }
    if as_json:
        json_line(summary)
        return
    what = f"the read model as of position {result.position}" if until is not None else "the read model"
    out.print(
        f"rebuilt {what} from {result.events:,} events in {result.seconds:.1f}s "
        f"({result.events_per_second:,.0f} events/s): {result.path}", soft_wrap=True,
    )


@friendly_errors
def audit(ctx: typer.Context, plan: Annotated[str, typer.Argument(help="Action plan uuid.")], as_json: JsonOpt = False) -> None:
    """Show a plan's whole story: every command (who, from where, when, why), event and notification."""
    kafka = kafka_of(ctx)
    if kafka is not None:
        codec = AvroCodec()
        history = KafkaPlanHistory(kafka, codec, plan)
        story = plan_story(plan, history, history, history.notifications(), codec, history.conflicts())
    else:
        with open_service(ctx) as service:
            service.catch_up()
            story = plan_story(plan, service.log, service.log, stored_notifications(service.outbox, plan), service.codec)
    if as_json:
        json_line(story.to_json())
        return
    out.print(render.table(
        f"Audit trail of action plan {plan}", ("#", "time", "position", "kind", "type", "id", "by / from", "details"),
        (_row(i + 1, e) for i, e in enumerate(story.entries)),
    ))
    counts = {k: len(story.of_kind(k)) for k in ("command", "event", "notification", "conflict")}
    out.print(", ".join(f"{n} {k}s" for k, n in counts.items()))


def _row(n: int, e: AuditEntry) -> tuple[Any, ...]:
    """One table row; every value from the log is escaped so rich never reads it as markup."""
    who = escape(f"{e.issued_by} @ {e.origin}") if e.kind == "command" else ""
    facts = {k: v for k, v in e.details.items() if k not in ("hash", "version", "publisher_id", "timestamp")}
    text = escape(", ".join(f"{k}={v}" for k, v in facts.items()))
    if e.kind == "command":
        outcome = "[red]rejected[/red]" if e.outcome == "rejected" else str(e.outcome)
        if e.outcome_reason:
            outcome += f": {escape(e.outcome_reason)}"
        text = f"{outcome}; {text}" if text else outcome
    return (n, format_time(e.at), e.position, e.kind, e.type, e.id, who, text)


@friendly_errors
def verify(
    ctx: typer.Context,
    on_disk: Annotated[bool, typer.Option("--on-disk", help="Rebuild the model in a temporary file beside the log instead of in memory (flat memory for big logs).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Recompute every plan's hash chain and rebuild the model in memory; exit 1 naming the first difference."""
    settings = settings_of(ctx)
    with open_events(settings) as (events, codec), tempfile.TemporaryDirectory(dir=settings.paths.model.parent, prefix=".verify-") as tmp:
        model = ReadModel(settings.paths.model, codec)
        try:
            report = verify_store(events, codec, model, scratch=Path(tmp) / "fresh.db" if on_disk else ":memory:")
        except VerificationFailed as failed:
            if not as_json:
                raise
            json_line({"verified": False, "kind": failed.kind, "plan_uuid": failed.plan_uuid, "position": failed.position, "detail": failed.detail})
            raise typer.Exit(EXIT_REJECTED) from None
        finally:
            model.close()
    if as_json:
        json_line({
            "verified": True, "events": report.events, "plans": report.plans,
            "log_position": report.log_position.to_json(), "model_position": report.model_position.to_json(),
        })
        return
    out.print(f"log and read model verified: {report.events} events, {report.plans} plans")
    if not report.model_position.covers(report.log_position):
        out.print(
            f"(the read model is at position {report.model_position}; the {report.model_position.behind(report.log_position)} "
            "later positions were chain-checked only)", soft_wrap=True,
        )


def register_commands(app: typer.Typer) -> None:
    app.command("replay")(replay)
    app.command("audit")(audit)
    app.command("verify")(verify)
