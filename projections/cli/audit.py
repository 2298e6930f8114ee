"""Commands for auditors: replay (rebuild, or time travel with --until), audit PLAN, verify."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

if TYPE_CHECKING:
    from projections.audit import AuditEntry

from eventstore.domain.identity import canonical_uuid
from eventstore.times import format_time
from projections.cli import render
from projections.cli.context import EXIT_REJECTED, escape, friendly_errors, json_line, open_store_of, out
from projections.cli.progress import replay_progress

JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document on stdout instead of text.")]


@friendly_errors
def replay(
    ctx: typer.Context,
    until: Annotated[Optional[str], typer.Option(help="Build the state as it was at this log POSITION or ISO 8601 TIME (e.g. 2026-11-26T10:00:00Z) into a file of its own.")] = None,
    into: Annotated[Optional[Path], typer.Option(help="With --until: the file to build (default <db stem>.asof-<position>.db).", dir_okay=False)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Rebuild the read model from the start of the log and swap it in atomically when done."""
    label = "replaying" if until is None else f"replaying until {until}"
    with open_store_of(ctx) as store, replay_progress(label) as progress:
        result = store.replay(until, into, progress)
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
    with open_store_of(ctx) as store:
        story = store.audit(canonical_uuid("PLAN", plan))
    if as_json:
        json_line(story.to_json())
        return
    out.print(render.table(
        f"Audit trail of action plan {plan}", ("#", "time", "position", "kind", "type", "id", "by / from", "details"),
        (_row(i + 1, e) for i, e in enumerate(story.entries)),
    ))
    counts = {k: len(story.of_kind(k)) for k in ("command", "event", "notification", "conflict")}
    out.print(", ".join(f"{n} {k}s" for k, n in counts.items()))


def _row(n: int, e: "AuditEntry") -> tuple[Any, ...]:
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
    from projections.exceptions import VerificationFailed

    with open_store_of(ctx) as store:
        try:
            report = store.verify(on_disk)
        except VerificationFailed as failed:
            if not as_json:
                raise
            json_line({"verified": False, "kind": failed.kind, "plan_uuid": failed.plan_uuid, "position": failed.position, "detail": failed.detail})
            raise typer.Exit(EXIT_REJECTED) from None
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
