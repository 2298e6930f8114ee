"""Errors of the log's consumers (replay, audit, verify); all under the one ``WatcherEsError`` root."""

from __future__ import annotations

from eventstore.exceptions import CommandValidationError, WatcherEsError


class ReplayError(WatcherEsError):
    """A replay cannot run as asked (a bad --until, a target that would clobber the live model)."""


class UnknownInstantError(ReplayError, CommandValidationError):
    """``--until`` is neither a log position nor an ISO 8601 time, or lies past the end of the log: bad input."""


class NoSuchPlanError(WatcherEsError):
    """The log holds neither events nor commands for this plan."""

    def __init__(self, plan_uuid: str) -> None:
        self.plan_uuid = plan_uuid
        super().__init__(f"action plan {plan_uuid}: the log holds no command and no event for it")


class VerificationFailed(WatcherEsError):
    """The log's hash chains or the read model do not hold up; names the first place that differs."""

    def __init__(self, kind: str, plan_uuid: str | None, position: int | None, detail: str, where: str | None = None) -> None:
        self.kind, self.plan_uuid, self.position, self.detail = kind, plan_uuid, position, detail
        place = where or (f"position {position}" if position is not None else "")
        named = ", ".join(p for p in (f"plan {plan_uuid}" if plan_uuid else "", place) if p)
        super().__init__(f"verification failed ({kind}) at {named or 'the log'}: {detail}")


class UnusableEventError(WatcherEsError):
    """An event decodes but cannot be applied: an earlier event of its plan is missing or was parked."""
