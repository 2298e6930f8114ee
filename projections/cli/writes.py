"""Commands that append to the log: register, report-progress, cancel, report-abort, deadlines, serve."""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from eventstore.config import system_clock
from eventstore.domain.identity import canonical_uuid
from eventstore.exceptions import CommandValidationError
if TYPE_CHECKING:  # the messages (and the plan document's parser) load when a command is built, not for --help
    from eventstore.domain.messages import Command, Fault
    from projections.store import WatcherFeed

from projections.cli.logs import configure as configure_logs
from projections.cli.context import default_operator, err, escape, friendly_errors, json_line, kafka_of, open_store_of, origin, out, report

#: The largest plan document `register` reads (far above the largest plan of MAX_ACTIONS actions Watcher makes).
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the outcome as one JSON line.")]
CommandIdOpt = Annotated[Optional[str], typer.Option("--command-id", help="Idempotency key; a command id seen before is not handled again.")]
ByOpt = Annotated[Optional[str], typer.Option("--by", help="Who is asking (default: $OS_USERNAME or $USER).")]
StatusMessageOpt = Annotated[Optional[str], typer.Option("--status-message", help="Watcher's status_message for the plan or action from now on, as the applier sets one (none clears it).")]
WaitOpt = Annotated[bool, typer.Option("--wait", help="Wait for the outcome (for cancel: until the cancellation ends) and exit non-zero unless it succeeded.")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds to wait for the cluster to answer (exit 3 if it does not) and, with --wait, for the outcome.")]


def _command_id(given: str | None) -> str:
    return given or str(uuid.uuid4())


def submit(ctx: typer.Context, command: "Command", as_json: bool, what: str, wait: bool = False, timeout: float = 300.0) -> None:
    """Hand a command to the store, print its outcome, exit non-zero if it failed (or, for a
    waited cancel, unless the plan ends CANCELLED)."""
    from eventstore.domain.messages import CancelActionPlan

    command = _canonical(command)
    with open_store_of(ctx) as store:
        report(store.submit(command, wait=wait, timeout=timeout), as_json, what)
        if wait and isinstance(command, CancelActionPlan):
            _ended(as_json, command.plan_uuid, *store.cancellation_end(command.plan_uuid, timeout))


def _canonical(command: "Command") -> "Command":
    """Any spelling of a uuid a person types (upper case, braces, urn:uuid:) names the same plan."""
    changes = {"plan_uuid": canonical_uuid("plan_uuid", command.plan_uuid)}
    action = getattr(command, "action_uuid", None)
    if action is not None:
        changes["action_uuid"] = canonical_uuid("action_uuid", action)
    return dataclasses.replace(command, **changes)  # type: ignore[arg-type]


def _ended(as_json: bool, plan_uuid: str, state: str, fault: "Fault | None") -> None:
    if as_json:
        json_line({"plan_uuid": plan_uuid, "final_state": state, "fault": asdict(fault) if fault else None})
    elif state == "CANCELLED":
        out.print(f"plan {plan_uuid} is CANCELLED")
    else:
        err.print(f"[red]cancellation failed:[/red] plan {plan_uuid} is {state}" + (f": {escape(fault.exception)}: {escape(fault.exception_message)}" if fault else ""), markup=True)
    if state != "CANCELLED":
        raise typer.Exit(1)


@friendly_errors
def register(
    ctx: typer.Context,
    plan_file: Annotated[Path, typer.Argument(help="JSON document of the plan, its audit, strategy and actions.", exists=True, dir_okay=False)],
    by: Annotated[str, typer.Option("--by", help="Who registers it.")] = "watcher-decision-engine",
    command_id: CommandIdOpt = None,
    as_json: JsonOpt = False,
    wait: WaitOpt = False,
    timeout: TimeoutOpt = 300.0,
) -> None:
    """Register an action plan from a JSON file."""
    from eventstore.plan_file import parse_plan_document

    size = plan_file.stat().st_size
    if size > MAX_DOCUMENT_BYTES:
        raise CommandValidationError(f"{plan_file}: {size:,} bytes is more than the {MAX_DOCUMENT_BYTES:,} a plan document may have")
    try:
        data = json.loads(plan_file.read_text())
    except ValueError as exc:
        raise CommandValidationError(f"{plan_file}: not JSON ({exc})") from None
    command = parse_plan_document(data, command_id=_command_id(command_id), issued_at=system_clock(), issued_by=by, origin=origin())
    submit(ctx, command, as_json, f"register {command.plan_uuid}", wait, timeout)


@friendly_errors
def cancel(
    ctx: typer.Context,
    plan: Annotated[str, typer.Argument(help="Action plan uuid.")],
    reason: Annotated[str, typer.Option("--reason", help="Why it is cancelled (kept in the audit trail).")],
    by: ByOpt = None,
    command_id: CommandIdOpt = None,
    as_json: JsonOpt = False,
    wait: WaitOpt = False,
    timeout: TimeoutOpt = 300.0,
) -> None:
    """Cancel an action plan: its actions are cancelled or aborted, with notifications."""
    from eventstore.domain.messages import CancelActionPlan

    command = CancelActionPlan(_command_id(command_id), system_clock(), by or default_operator(), origin(), plan, reason)
    submit(ctx, command, as_json, f"cancel {plan}", wait, timeout)


@friendly_errors
def report_progress(
    ctx: typer.Context,
    plan: Annotated[str, typer.Argument(help="Action plan uuid.")],
    state: Annotated[str, typer.Argument(help="New state: ONGOING, SUCCEEDED, FAILED, SKIPPED (actions) or PENDING, ONGOING, SUCCEEDED, FAILED (plans).")],
    action: Annotated[Optional[str], typer.Option("--action", help="The action whose state changed; without it, the plan's.")] = None,
    by: Annotated[str, typer.Option("--by", help="Who reports it.")] = "watcher-applier",
    status_message: StatusMessageOpt = None,
    command_id: CommandIdOpt = None,
    as_json: JsonOpt = False,
    wait: WaitOpt = False,
    timeout: TimeoutOpt = 300.0,
) -> None:
    """Report what the applier did: an action's or the plan's new state."""
    from eventstore.domain.messages import ReportActionPlanProgress, ReportActionProgress

    cid, now, state = _command_id(command_id), system_clock(), state.upper()
    command = (
        ReportActionProgress(cid, now, by, origin(), plan, action, state, status_message) if action
        else ReportActionPlanProgress(cid, now, by, origin(), plan, state, status_message)
    )
    submit(ctx, command, as_json, f"progress {action or plan} -> {state}", wait, timeout)


@friendly_errors
def report_abort(
    ctx: typer.Context,
    plan: Annotated[str, typer.Argument(help="Action plan uuid.")],
    action: Annotated[str, typer.Argument(help="The CANCELLING action whose abort ended.")],
    failed: Annotated[bool, typer.Option("--failed/--succeeded", help="How the abort ended.")] = False,
    exception: Annotated[str, typer.Option(help="With --failed: the exception class.")] = "WatcherException",
    message: Annotated[str, typer.Option(help="With --failed: the exception message.")] = "",
    module: Annotated[str, typer.Option(help="With --failed: the module that raised it.")] = "watcher.applier",
    function: Annotated[str, typer.Option(help="With --failed: the function that raised it.")] = "abort",
    by: Annotated[str, typer.Option("--by", help="Who reports it.")] = "watcher-applier",
    status_message: StatusMessageOpt = None,
    command_id: CommandIdOpt = None,
    as_json: JsonOpt = False,
    wait: WaitOpt = False,
    timeout: TimeoutOpt = 300.0,
) -> None:
    """Report how aborting an action ended: succeeded, or failed with the applier's exception."""
    from eventstore.domain.messages import Fault, ReportAbortResult

    fault = Fault(exception, message, module, function) if failed else None
    command = ReportAbortResult(_command_id(command_id), system_clock(), by, origin(), plan, action, fault, status_message)
    submit(ctx, command, as_json, f"abort {action}", wait, timeout)


@friendly_errors
def enforce_deadlines(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Fail every abort that has not reported back by its deadline (the pass `serve` runs)."""
    with open_store_of(ctx) as store:
        results = store.enforce_deadlines(origin())
    for result in results:
        report(result, as_json, f"deadline {result.plan_uuid}")
    if not results and not as_json:
        out.print("no abort is past its deadline")


@friendly_errors
def serve(
    ctx: typer.Context,
    only: Annotated[Optional[list[str]], typer.Option("--only", help="Run only these parts (Kafka): handler, projections, translator, bridge; repeatable.")] = None,
    interval: Annotated[float, typer.Option(help="Seconds between passes (embedded) or deadline passes (Kafka).")] = 1.0,
    once: Annotated[bool, typer.Option("--once", help="Embedded: run one pass and exit.")] = False,
    processes: Annotated[bool, typer.Option("--processes", help="Kafka: run each part in a process of its own, to use more than one core.")] = False,
    watcher_topic: Annotated[Optional[str], typer.Option(envvar="WATCHER_ES_WATCHER_TOPIC", help="Bridge Watcher's own notifications from <topic>.info and <topic>.error (docs/beside-watcher.md); the bridge is a part of its own.", show_default=False)] = None,
    watcher_bootstrap_servers: Annotated[str, typer.Option(envvar="WATCHER_ES_WATCHER_BOOTSTRAP_SERVERS", help="The Kafka cluster Watcher sends to, if not serve's (needed on the embedded store).")] = "",
    metrics_port: Annotated[Optional[int], typer.Option(envvar="WATCHER_ES_METRICS_PORT", help="Serve /metrics (Prometheus) and /healthz on this port, on every interface (docs/operations.md).", show_default=False)] = None,
) -> None:
    """Run the service: command handling, read model, translator and the abort-deadline pass (and the bridge, with --watcher-topic)."""
    feed = _watcher_feed(ctx, watcher_topic, watcher_bootstrap_servers)
    if metrics_port is not None and not 0 < metrics_port < 65536:
        raise CommandValidationError(f"--metrics-port {metrics_port}: not a port (1 to 65535)")
    options = ctx.ensure_object(dict)
    configure_logs(options["log_format"], options["secrets"])
    say = logging.getLogger("projections.cli.serve").info if options["log_format"] == "json" else (lambda line: err.print(line, markup=False))
    signal.signal(signal.SIGTERM, _interrupted)  # while it waits for its cluster too (the service takes SIGTERM over once it runs)
    exporter = None
    if metrics_port is not None:
        from projections.exporter import Exporter

        exporter = Exporter(metrics_port).start()
    try:
        with open_store_of(ctx) as store:
            store.serve(only or (), interval, once, say, processes=processes, feed=feed)
    except KeyboardInterrupt:
        say("stopped")
    finally:
        if exporter is not None:
            exporter.stop()


def _interrupted(*_: object) -> None:
    raise KeyboardInterrupt


def _watcher_feed(ctx: typer.Context, topic: str | None, bootstrap_servers: str) -> WatcherFeed | None:
    """Where the bridge reads Watcher: serve's cluster, or ``--watcher-bootstrap-servers``; never serve's own notification topic."""
    if not topic:
        if bootstrap_servers:
            raise CommandValidationError("--watcher-bootstrap-servers: give --watcher-topic too (Watcher's notification topic)")
        return None
    from eventstore.kafka.config import KafkaSettings
    from projections.backends import watcher_feed

    kafka = kafka_of(ctx)
    if kafka is None and not bootstrap_servers:
        raise CommandValidationError(
            f"--watcher-topic {topic}: the embedded store reads Watcher's notifications from a Kafka cluster: give --watcher-bootstrap-servers"
        )
    same_cluster = kafka is not None and bootstrap_servers in ("", kafka.bootstrap_servers)
    if same_cluster and kafka is not None and topic == kafka.topics.notifications:
        raise CommandValidationError(
            f"--watcher-topic {topic} is serve's own --notification-topic: the bridge would read watcher-es's notifications as Watcher's"
        )
    cluster = kafka if kafka is not None and same_cluster else (
        dataclasses.replace(kafka, bootstrap_servers=bootstrap_servers) if kafka is not None else KafkaSettings(bootstrap_servers)
    )
    return watcher_feed(cluster, topic)
