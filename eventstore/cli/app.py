"""The typer application: global options, then one module per area of commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..config import Settings
from ..exceptions import ConfigurationError
from . import audit, demo, queries, writes
from .context import EXIT_INVALID, err

app = typer.Typer(
    name="watcher-es",
    help="Event-sourced OpenStack Watcher action-plan cancellation, with Watcher's versioned notifications.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
    add_completion=False,
)


@app.callback()
def configure(
    ctx: typer.Context,
    db: Annotated[Path, typer.Option(envvar="WATCHER_ES_DB", help="The embedded event log; the read model and notifications sit beside it.")] = Path("watcher-es.db"),
    publisher_id: Annotated[str, typer.Option(envvar="WATCHER_ES_PUBLISHER_ID", help="Notification publisher_id (default infra-optim:<host>).")] = "",
    notification_level: Annotated[str, typer.Option(envvar="WATCHER_ES_NOTIFICATION_LEVEL", help="Lowest priority sent: debug, info, warning, error, critical; '' sends none.")] = "info",
    abort_timeout: Annotated[float, typer.Option(envvar="WATCHER_ES_ABORT_TIMEOUT", help="Seconds an abort may take before the deadline pass fails it.")] = 300.0,
) -> None:
    from projections.translator import parse_level

    try:
        level = parse_level(notification_level)
    except ConfigurationError as exc:
        err.print(f"[red]invalid:[/red] {exc}", markup=True)
        raise typer.Exit(EXIT_INVALID) from None
    if abort_timeout <= 0:
        err.print(f"[red]invalid:[/red] --abort-timeout: {abort_timeout} must be a positive number of seconds", markup=True)
        raise typer.Exit(EXIT_INVALID)
    ctx.ensure_object(dict)["settings"] = Settings(
        db=db, publisher_id=publisher_id, notification_level=level, abort_timeout_us=int(abort_timeout * 1_000_000),
    )


writes.register_commands(app)
queries.register_commands(app)
demo.register_commands(app)
audit.register_commands(app)
