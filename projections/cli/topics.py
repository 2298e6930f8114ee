"""Topics (`init`) and dead letters (`dlq`), whichever store the settings name."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from projections.cli import render
from projections.cli.context import friendly_errors, json_line, open_store_of, out


@friendly_errors
def init(
    ctx: typer.Context,
    partitions: Annotated[int, typer.Option(min=1, help="Partitions of every topic (plans spread over them by uuid).")] = 6,
    replication_factor: Annotated[int, typer.Option(min=1, help="Replicas of every partition.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per topic.")] = False,
) -> None:
    """Create the topics (commands, events, outcomes and dead letters never expire); safe to run twice."""
    with open_store_of(ctx) as store:
        results = store.init(partitions, replication_factor)
    if results is None:
        out.print("nothing to create: the embedded store is created on first use (set --bootstrap-servers for Kafka)")
        return
    if as_json:
        for r in results:
            json_line({"topic": r.topic, "partitions": r.partitions, "created": r.created, "detail": r.detail})
        return
    out.print(render.table("Topics", ("topic", "partitions", "result"), ((r.topic, r.partitions, r.detail) for r in results)))


@friendly_errors
def dlq(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per dead letter.")] = False,
) -> None:
    """List the records parked as unusable, with where they came from and why."""
    with open_store_of(ctx) as store:
        rows = store.dead_letters(limit)
    if as_json:
        for row in rows:
            json_line(asdict(row))
        return
    out.print(render.table("Dead letters", ("from", "offset", "stage", "error", "message"), (
        (f"{r.topic}/{'' if r.partition is None else r.partition}", r.offset, r.stage, r.error, r.message) for r in rows
    )))
