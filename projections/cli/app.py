"""The typer application: global options, then one module per area of commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from eventstore.config import Settings
from eventstore.exceptions import ConfigurationError
from eventstore.kafka.config import KafkaSettings, Topics, mask, parse_properties, read_properties_file
from projections.cli import audit, demo, queries, topics, writes
from projections.cli.context import EXIT_INVALID, clean, err, escape
from projections.cli.logs import FORMATS

app = typer.Typer(
    name="watcher-es",
    help="Event-sourced OpenStack Watcher action-plan cancellation, with Watcher's versioned notifications.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
    add_completion=False,
    # Plain help and usage errors: rich's help renderer (markdown, tracebacks) costs 0.25 s on
    # every `--help`; the tables the commands print still use rich.
    rich_markup_mode=None,
)


@app.callback()
def configure(
    ctx: typer.Context,
    db: Annotated[Path, typer.Option(envvar="WATCHER_ES_DB", help="The embedded event log; the read model and notifications sit beside it.")] = Path("watcher-es.db"),
    publisher_id: Annotated[str, typer.Option(envvar="WATCHER_ES_PUBLISHER_ID", help="Notification publisher_id (default infra-optim:<host>).")] = "",
    notification_level: Annotated[Optional[str], typer.Option(envvar="WATCHER_ES_NOTIFICATION_LEVEL", help="Lowest priority sent: debug, info, warning, error, critical; '' sends none. An embedded store keeps the level it was created or last told with (default info).", show_default=False)] = None,
    abort_timeout: Annotated[float, typer.Option(envvar="WATCHER_ES_ABORT_TIMEOUT", help="Seconds an abort may take before the deadline pass fails it.")] = 300.0,
    bootstrap_servers: Annotated[str, typer.Option(envvar="WATCHER_ES_BOOTSTRAP_SERVERS", help="Kafka cluster (host:port,...); without it the embedded log is used.")] = "",
    kafka_property: Annotated[list[str], typer.Option("-X", "--kafka-property", help="Any librdkafka property, key=value (repeatable; producer./consumer./admin. prefixes scope it).")] = [],  # noqa: B006
    kafka_config: Annotated[Optional[Path], typer.Option("-F", "--kafka-config", envvar="WATCHER_ES_KAFKA_CONFIG", help="A properties file of librdkafka settings (SASL/SSL...).")] = None,
    topic_prefix: Annotated[str, typer.Option(envvar="WATCHER_ES_TOPIC_PREFIX", help="Prefix of the commands, events, outcomes and dead-letter topics.")] = "watcher-es",
    notification_topic: Annotated[str, typer.Option(envvar="WATCHER_ES_NOTIFICATION_TOPIC", help="oslo.messaging notification topic; records go to <topic>.info and <topic>.error.")] = "notifications",
    group_prefix: Annotated[str, typer.Option(envvar="WATCHER_ES_GROUP_PREFIX", help="Prefix of the consumer group ids.")] = "watcher-es",
    payload_version: Annotated[Optional[str], typer.Option(envvar="WATCHER_ES_PAYLOAD_VERSION", help="Watcher payload versions: 1.0 (the spec's, read by every Watcher consumer) or latest (what Watcher 17.0 emits). Default 1.0; re-emission keeps each notification's own unless this is given.", show_default=False)] = None,
    log_format: Annotated[str, typer.Option(envvar="WATCHER_ES_LOG_FORMAT", help="Log lines on stderr: text, or json (one object a line: time, level, part, message and the ids involved).")] = "text",
) -> None:
    try:
        if log_format not in FORMATS:
            raise ConfigurationError(f"--log-format {log_format}: one of {', '.join(FORMATS)}")
        level = None
        if notification_level is not None:
            from projections.translator import parse_level

            level = parse_level(notification_level)
        if payload_version is not None:
            from projections.payloads import payload_set

            payload_set(payload_version)  # refuse an unknown one here, naming the choices
        if abort_timeout <= 0:
            raise ConfigurationError(f"--abort-timeout: {abort_timeout} must be a positive number of seconds")
        kafka = None
        secrets: list[str] = []
        if bootstrap_servers:
            passthrough = read_properties_file(kafka_config) if kafka_config else {}
            passthrough.update(parse_properties(kafka_property))  # flags win over the file
            kafka = KafkaSettings(bootstrap_servers, Topics.with_prefix(topic_prefix, notification_topic), group_prefix, passthrough)
            secrets = [value for key, value in passthrough.items() if mask(key, value) != value]
        elif kafka_property or kafka_config:
            raise ConfigurationError("-X/--kafka-config need --bootstrap-servers (or WATCHER_ES_BOOTSTRAP_SERVERS)")
        if log_format == "json":  # every command's log lines, and its errors, as JSON (text: serve sets its own up)
            from projections.cli import context, logs

            logs.configure("json", secrets)
            context.errors_as_json = True
    except ConfigurationError as exc:
        err.print(f"[red]invalid:[/red] {escape(clean(str(exc)))}", markup=True)
        raise typer.Exit(EXIT_INVALID) from None
    ctx.ensure_object(dict).update(
        settings=Settings(
            db=db, publisher_id=publisher_id, notification_level=level, abort_timeout_us=int(abort_timeout * 1_000_000),
            payload_version=payload_version,
        ),
        kafka=kafka, log_format=log_format, secrets=secrets,
    )


#: In the order `--help` lists them; each is named after its function (report_progress: report-progress).
for command in (
    writes.register, writes.cancel, writes.report_progress, writes.report_abort, writes.enforce_deadlines, writes.serve,
    queries.status, queries.plans, queries.notifications, demo.demo, topics.init, topics.dlq, audit.replay, audit.audit, audit.verify,
):
    app.command()(command)
