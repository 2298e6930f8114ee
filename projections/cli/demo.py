"""``watcher-es demo``: the whole product once, on the embedded store."""

from __future__ import annotations

import shlex
from typing import Annotated

import typer

from projections.cli import render
from projections.cli.context import escape, friendly_errors, json_line, open_store_of, out, settings_of


@friendly_errors
def demo(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="Only the notifications, one envelope per line.")] = False) -> None:
    """Register two plans, cancel both (one abort fails), and show every notification emitted."""
    with open_store_of(ctx) as store:
        report = store.demo()
    if as_json:
        for envelope in report.notifications:
            json_line(envelope)
        return
    labels = dict(report.plans)
    for title, snapshots in (("Before the cancellations", report.before), ("After the cancellations", report.after)):
        out.rule(title)
        for snap in snapshots:
            out.print(render.table(
                f"{labels[snap.uuid]}: plan {snap.uuid} is {render.state(snap.state)}", ("action", "type", "state"),
                ((u, t, render.state(s)) for u, t, s in snap.actions),
            ))
    out.rule("Notifications emitted, in order")
    out.print(render.table("", render.NOTIFICATION_COLUMNS, (render.notification_row(i + 1, n) for i, n in enumerate(report.notifications))))
    for line in render.faults(report.notifications):
        out.print(f"  fault: {line}")
    kinds = sorted({n["event_type"] for n in report.notifications})
    out.print(f"{len(report.notifications)} notifications, {len(kinds)} kinds: {', '.join(kinds)}")
    out.print(f"Full envelopes: [bold]watcher-es --db {escape(shlex.quote(str(settings_of(ctx).db)))} notifications --json[/bold]", markup=True)
