"""What the bridge knows of each plan Watcher is working on, and the commands each notification makes.

Pure: the notifications come in the order Watcher sent them (``ordering.py``), one at a time,
and ``Mirror.take`` answers with the commands that report what the notification says. The
mirror keeps Watcher's last known state of each plan and action itself, because Watcher's own
``old_state`` is its emitting process's memory, not its database, and ``action.update`` carries
no transition at all: a notification that changes nothing (a duplicate, a second report of one
change, a hostname save) makes no command.

Each command carries the notification it reports (``watcher``) and an id derived from that
notification's ``message_id``, so reading Watcher's topics again makes the same commands, which
the handler takes once. What the domain then records for each is stated in
``eventstore/domain/decide.py`` ("Plans that mirror Watcher").
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from eventstore.domain.identity import name_uuid
from eventstore.domain.messages import (
    CancelActionPlan, Command, Fault, ReportAbortResult, ReportActionPlanProgress, ReportActionProgress,
    WatcherNotification,
)
from eventstore.domain.states import ACTION_FINISHED
from eventstore.domain.validation import validate_command
from eventstore.exceptions import CommandValidationError, UnusableNotificationError
from eventstore.bridge.received import ReceivedNotification, nested
from eventstore.plan_file import parse_plan_document
from eventstore.times import format_time

logger = logging.getLogger(__name__)

_COMMAND_IDS = uuid.UUID("3f1c9a52-8f0e-4c2e-9b7d-6a5e4d3c2b1a")

#: A plan state Watcher ends a plan in; its command waits until every action has ended.
PLAN_ENDS = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})


class PlanNotCreatedError(UnusableNotificationError):
    """A notification about a plan whose creation the bridge never saw: it cannot be registered."""

    def __init__(self, plan_uuid: str, event_type: str) -> None:
        self.plan_uuid, self.event_type = plan_uuid, event_type
        super().__init__(
            f"action plan {plan_uuid}: {event_type} arrived but its action_plan.create was never seen "
            "(the bridge started after Watcher created it, or forgot it long after it ended): the plan is not registered"
        )


@dataclass
class ActionMirror:
    state: str
    #: Watcher said it is aborting this action (an update to CANCELLING, ``action.cancel.start``):
    #: its ``action.cancel.end`` or ``.error`` says how that ended, its plain updates are not the end.
    aborting: bool = False


@dataclass
class HeldEnd:
    """A plan's end (SUCCEEDED, FAILED, CANCELLED), kept until every one of its actions has ended."""

    state: str
    status_message: str | None
    watcher: WatcherNotification


@dataclass
class PlanMirror:
    uuid: str
    audit_uuid: str
    state: str
    actions: dict[str, ActionMirror] = field(default_factory=dict)
    #: The plan document being put together from its creation notifications; None once registered.
    creation: dict[str, Any] | None = None
    #: The notification that created it: the registration reports it.
    created_by: WatcherNotification | None = None
    cancelled: bool = False
    held: HeldEnd | None = None
    #: Watcher's timestamp of the last notification about it.
    seen: int = 0
    #: Why it could not be registered (its creation did not make a valid plan): nothing of it is followed.
    refused: str | None = None
    #: When its audit's planning ended (``audit.planner.end``, Watcher time): registered ``settle`` after.
    planned: int | None = None

    @property
    def registered(self) -> bool:
        return self.creation is None

    @property
    def finished(self) -> bool:
        return self.refused is not None or (self.registered and self.held is None and self.state in (*PLAN_ENDS, "SUPERSEDED", "DELETED"))

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlanMirror:
        held = data.get("held")
        created_by = data.get("created_by")
        return cls(
            data["uuid"], data["audit_uuid"], data["state"], {u: ActionMirror(**a) for u, a in data["actions"].items()},
            data.get("creation"), WatcherNotification(**created_by) if created_by else None, data.get("cancelled", False),
            HeldEnd(held["state"], held["status_message"], WatcherNotification(**held["watcher"])) if held else None, data.get("seen", 0),
            data.get("refused"), data.get("planned"),
        )


class Mirror:
    """Every plan the bridge is following, by uuid (``plans``; ``changed`` says which to store)."""

    def __init__(self, plans: dict[str, PlanMirror] | None = None, origin: str = "watcher-es bridge") -> None:
        self.plans: dict[str, PlanMirror] = plans or {}
        self.changed: set[str] = set()
        self._origin = origin

    def take(self, n: ReceivedNotification) -> list[Command]:
        """The commands this notification makes; UnusableNotificationError (PlanNotCreatedError) if it cannot be used."""
        if n.subject == "audit":
            return self._audit_planned(n) if n.event_type == "audit.planner.end" else []
        if n.subject == "other":
            return []
        plan = self.plans.get(n.plan_uuid)
        if n.event_type == "action_plan.create":
            if plan is None:
                self._touch(self._creating(n))
            return []
        if plan is None:
            raise PlanNotCreatedError(n.plan_uuid, n.event_type)
        if plan.refused is not None:
            raise UnusableNotificationError(f"action plan {plan.uuid}: {n.event_type} ignored: the plan could not be registered ({plan.refused})")
        self._touch(plan, n.timestamp)
        if n.event_type == "action.create":
            return self._action_created(plan, n)
        out = self._register(plan) if not plan.registered else []
        out += self._plan_fact(plan, n) if n.subject == "plan" else self._action_fact(plan, n)
        return out + self._end_if_held(plan)

    def due(self, now: int, settle_us: int, timeout_us: int) -> list[Command]:
        """The plans being put together that are complete by now: their audit's planning ended
        ``settle_us`` ago (an ``action.create`` delivered late still makes it), or no notification
        about them came for ``timeout_us`` (no ``audit.planner.end`` came: registered with the actions known)."""
        out: list[Command] = []
        for plan in [p for p in self.plans.values() if not p.registered and p.refused is None]:
            if (plan.planned is not None and plan.planned <= now - settle_us) or plan.seen <= now - timeout_us:
                try:
                    out += self._register(plan)
                except UnusableNotificationError as exc:
                    logger.error("%s", exc)
        return out

    def forget(self, uuids: list[str]) -> None:
        for u in uuids:
            self.plans.pop(u, None)
            self.changed.discard(u)

    # ---------------------------------------------------------------- creation

    def _creating(self, n: ReceivedNotification) -> PlanMirror:
        d = n.data
        audit, strategy = nested(d, "audit") or {}, nested(d, "strategy") or {}
        document = {
            "uuid": n.uuid, "state": n.state, "global_efficacy": d.get("global_efficacy", []),
            "created_at": d.get("created_at"), "updated_at": d.get("updated_at"), "deleted_at": d.get("deleted_at"),
            "status_message": d.get("status_message"),
            # TerseAuditPayload's strategy_uuid is null in 17.0: the plan's own is the one.
            "audit": {**audit, "strategy_uuid": audit.get("strategy_uuid") or d.get("strategy_uuid")},
            "strategy": strategy, "actions": [],
        }
        audit_uuid = audit.get("uuid") or d.get("audit_uuid") or ""
        plan = PlanMirror(n.uuid, audit_uuid, n.state or "RECOMMENDED", creation=document, created_by=n.recorded(), seen=n.timestamp)
        self.plans[n.uuid] = plan
        return plan

    def _action_created(self, plan: PlanMirror, n: ReceivedNotification) -> list[Command]:
        if n.uuid in plan.actions:
            return []  # a duplicate
        if plan.creation is None:
            raise UnusableNotificationError(
                f"action plan {plan.uuid}: action {n.uuid} was created after the plan was registered with {len(plan.actions)} actions"
            )
        d = n.data
        plan.creation["actions"].append({
            k: d.get(k) for k in ("uuid", "action_type", "input_parameters", "parents", "state", "created_at", "updated_at",
                                  "deleted_at", "status_message")
        })
        plan.actions[n.uuid] = ActionMirror(n.state or "PENDING")
        return []

    def _audit_planned(self, n: ReceivedNotification) -> list[Command]:
        """The decision engine has made every plan of this audit: they are complete (``due`` registers them)."""
        for plan in [p for p in self.plans.values() if not p.registered and p.audit_uuid == n.uuid]:
            plan.planned = n.timestamp
            self._touch(plan, n.timestamp)
        return []

    def _register(self, plan: PlanMirror) -> list[Command]:
        document, created = plan.creation, plan.created_by
        if document is None or created is None:
            return []
        plan.creation = None
        self._touch(plan)
        try:
            command = parse_plan_document(
                document, command_id=_command_id(created, 0), issued_at=created.timestamp,
                issued_by=created.publisher_id or "watcher-decision-engine", origin=self._origin_of(created),
            )
            command = dataclasses.replace(command, watcher=created)
            validate_command(command)
        except CommandValidationError as exc:
            plan.refused = str(exc)  # followed no further: nothing of it is registered
            raise UnusableNotificationError(f"action plan {plan.uuid} cannot be registered: {exc}") from None
        return [command]

    # ---------------------------------------------------------------- facts

    def _plan_fact(self, plan: PlanMirror, n: ReceivedNotification) -> list[Command]:
        state = n.state or plan.state
        if state == plan.state:
            return []
        before = plan.state
        if not (before in ("SUCCEEDED", "FAILED") and state == "CANCELLING"):  # (a cancel read after the end it came too late for)
            plan.state = state
        out: list[Command] = []
        if state in ("CANCELLING", "CANCELLED") and not plan.cancelled:
            plan.cancelled = True
            out.append(self._cancel(plan, n, before))
            if before in ("RECOMMENDED", "PENDING"):  # cancelled whole at once, the actions with it
                for action in plan.actions.values():
                    if action.state == "PENDING":
                        action.state = "CANCELLED"
                return out
        if state in PLAN_ENDS:
            plan.held = HeldEnd(state, n.status_message, n.recorded())
        elif state != "CANCELLING":
            out.append(self._command(ReportActionPlanProgress, n, len(out), state=state, status_message=n.status_message))
        return out

    def _cancel(self, plan: PlanMirror, n: ReceivedNotification, before: str) -> Command:
        """Who cancelled: the API's update carries the canceller's request context; a cancel no user asked for
        (an applier restarting, a continuous audit replacing its plans) has a context without a user."""
        if n.user:
            service, reason = "watcher-api", "cancelled through Watcher's API"
        else:
            service = "watcher-applier" if before in ("PENDING", "ONGOING", "CANCELLING") else "watcher-decision-engine"
            reason = f"cancelled by {service} on its own (no user in its request context)"
            if n.status_message:
                reason += f": {n.status_message}"
        return self._command(CancelActionPlan, n, 0, reason=reason, issued_by=_who(n.recorded(), service))

    def _action_fact(self, plan: PlanMirror, n: ReceivedNotification) -> list[Command]:
        action = plan.actions.get(n.uuid)
        if action is None:
            raise UnusableNotificationError(
                f"action plan {plan.uuid}: {n.event_type} names action {n.uuid}, which is not one of the plan's as Watcher created it"
            )
        state = n.state or action.state
        if n.event_type == "action.cancel.start" or state == "CANCELLING":
            action.aborting = True
            return []
        if n.event_type == "action.cancel.error":
            action.state, action.aborting = state, False
            fault = n.fault or Fault("WatcherException", "Watcher reported the abort failed without a fault", "watcher.applier", "abort")
            return [self._command(ReportAbortResult, n, 0, action_uuid=n.uuid, fault=fault, status_message=n.status_message)]
        if action.aborting and n.event_type != "action.cancel.end":
            return []  # how its abort ended comes in its cancel.end or cancel.error
        if state == action.state:
            return []
        action.state, action.aborting = state, False
        return [self._command(ReportActionProgress, n, 0, action_uuid=n.uuid, state=state, status_message=n.status_message)]

    def _end_if_held(self, plan: PlanMirror) -> list[Command]:
        held = plan.held
        if held is None or any(a.state not in ACTION_FINISHED for a in plan.actions.values()):
            return []
        plan.held = None
        return [ReportActionPlanProgress(
            command_id=_command_id(held.watcher, "end"), issued_at=held.watcher.timestamp, issued_by=held.watcher.publisher_id or "watcher",
            origin=self._origin_of(held.watcher), plan_uuid=plan.uuid, state=held.state, status_message=held.status_message,
            watcher=held.watcher,
        )]

    # ---------------------------------------------------------------- commands

    def _command(self, cls: type[Any], n: ReceivedNotification, index: int, **fields: Any) -> Command:
        recorded = n.recorded()
        fields.setdefault("issued_by", n.publisher_id or "watcher")  # the service that reported it; the context is in ``watcher``
        command: Command = cls(
            command_id=_command_id(recorded, index), issued_at=n.timestamp, origin=self._origin_of(recorded),
            plan_uuid=n.plan_uuid, watcher=recorded, **fields,
        )
        return command

    def _origin_of(self, w: WatcherNotification) -> str:
        return f"{self._origin}: {w.event_type} from {w.publisher_id or 'Watcher'} at {format_time(w.timestamp)}"

    def _touch(self, plan: PlanMirror, seen: int | None = None) -> None:
        if seen is not None:
            plan.seen = max(plan.seen, seen)
        self.changed.add(plan.uuid)


def _command_id(w: WatcherNotification, index: int | str) -> str:
    """Derived from the notification: the same notification read again makes the same command."""
    return name_uuid(_COMMAND_IDS, f"{w.message_id}/{index}")


def _who(w: WatcherNotification, service: str) -> str:
    """The Keystone user and project of the request, or the Watcher service that acted on its own."""
    if w.user:
        return f"{w.user} (project {w.project_id or 'unknown'})"
    return f"{service} (Watcher's own doing: no user in its request context)"
