"""Commands that append to the log: register, report-progress, cancel, report-abort, deadlines, serve."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..config import system_clock
from ..domain.messages import CancelActionPlan, Fault, ReportAbortResult, ReportActionPlanProgress, ReportActionProgress
from ..exceptions import CommandValidationError
from ..plan_file import parse_plan_document
from .context import default_operator, err, friendly_errors, open_service, origin, out, report

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the outcome as one JSON line.")]
CommandIdOpt = Annotated[Optional[str], typer.Option("--command-id", help="Idempotency key; a command id seen before is not handled again.")]
ByOpt = Annotated[Optional[str], typer.Option("--by", help="Who is asking (default: $OS_USERNAME or $USER).")]


def _command_id(given: str | None) -> str:
    return given or str(uuid.uuid4())


@friendly_errors
def register(
    ctx: typer.Context,
    plan_file: Annotated[Path, typer.Argument(help="JSON document of the plan, its audit, strategy and actions.", exists=True, dir_okay=False)],
    by: Annotated[str, typer.Option("--by", help="Who registers it.")] = "watcher-decision-engine",
    command_id: CommandIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register an action plan from a JSON file."""
    try:
        data = json.loads(plan_file.read_text())
    except ValueError as exc:
        raise CommandValidationError(f"{plan_file}: not JSON ({exc})") from None
    command = parse_plan_document(data, command_id=_command_id(command_id), issued_at=system_clock(), issued_by=by, origin=origin())
    with open_service(ctx) as service:
        report(service.submit(command), as_json, f"register {command.plan_uuid}")


@friendly_errors
def cancel(
    ctx: typer.Context,
    plan: Annotated[str, typer.Argument(help="Action plan uuid.")],
    reason: Annotated[str, typer.Option("--reason", help="Why it is cancelled (kept in the audit trail).")],
    by: ByOpt = None,
    command_id: CommandIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel an action plan: its actions are cancelled or aborted, with notifications."""
    command = CancelActionPlan(_command_id(command_id), system_clock(), by or default_operator(), origin(), plan, reason)
    with open_service(ctx) as service:
        report(service.submit(command), as_json, f"cancel {plan}")


@friendly_errors
def report_progress(
    ctx: typer.Context,
    plan: Annotated[str, typer.Argument(help="Action plan uuid.")],
    state: Annotated[str, typer.Argument(help="New state: ONGOING, SUCCEEDED, FAILED, SKIPPED (actions) or PENDING, ONGOING, SUCCEEDED, FAILED (plans).")],
    action: Annotated[Optional[str], typer.Option("--action", help="The action whose state changed; without it, the plan's.")] = None,
    by: Annotated[str, typer.Option("--by", help="Who reports it.")] = "watcher-applier",
    command_id: CommandIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Report what the applier did: an action's or the plan's new state."""
    cid, now, state = _command_id(command_id), system_clock(), state.upper()
    command = (
        ReportActionProgress(cid, now, by, origin(), plan, action, state) if action
        else ReportActionPlanProgress(cid, now, by, origin(), plan, state)
    )
    with open_service(ctx) as service:
        report(service.submit(command), as_json, f"progress {action or plan} -> {state}")


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
    command_id: CommandIdOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Report how aborting an action ended: succeeded, or failed with the applier's exception."""
    fault = Fault(exception, message, module, function) if failed else None
    command = ReportAbortResult(_command_id(command_id), system_clock(), by, origin(), plan, action, fault)
    with open_service(ctx) as service:
        report(service.submit(command), as_json, f"abort {action}")


@friendly_errors
def enforce_deadlines(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Fail every abort that has not reported back by its deadline (the pass `serve` runs)."""
    with open_service(ctx) as service:
        results = service.enforce_deadlines()
        for result in results:
            report(result, as_json, f"deadline {result.plan_uuid}")
        if not results and not as_json:
            out.print("no abort is past its deadline")


@friendly_errors
def serve(
    ctx: typer.Context,
    interval: Annotated[float, typer.Option(help="Seconds between passes.")] = 1.0,
    once: Annotated[bool, typer.Option("--once", help="Run one pass and exit.")] = False,
) -> None:
    """Keep the read model and notifications caught up and run the abort-deadline pass."""
    with open_service(ctx) as service:
        err.print(f"serving {service.settings.db} (Ctrl-C to stop)")
        try:
            while True:
                service.catch_up()
                for result in service.enforce_deadlines():
                    err.print(f"deadline pass: plan {result.plan_uuid}: {result.outcome}")
                if once:
                    return
                time.sleep(interval)
        except KeyboardInterrupt:
            err.print("stopped")


def register_commands(app: typer.Typer) -> None:
    app.command("register")(register)
    app.command("cancel")(cancel)
    app.command("report-progress")(report_progress)
    app.command("report-abort")(report_abort)
    app.command("enforce-deadlines")(enforce_deadlines)
    app.command("serve")(serve)
