"""Watcher's closed sets of states, and the ones our rules single out."""

from __future__ import annotations

from typing import Final, Literal

PlanStateName = Literal[
    "RECOMMENDED", "PENDING", "ONGOING", "SUCCEEDED", "FAILED",
    "CANCELLING", "CANCELLED", "SUPERSEDED", "DELETED",
]
ActionStateName = Literal[
    "PENDING", "ONGOING", "SUCCEEDED", "FAILED", "SKIPPED", "CANCELLING", "CANCELLED", "DELETED",
]

PLAN_STATES: Final = frozenset(PlanStateName.__args__)  # type: ignore[attr-defined]
ACTION_STATES: Final = frozenset(ActionStateName.__args__)  # type: ignore[attr-defined]

#: Watcher's default: an abort that has not reported back in five minutes has failed.
DEFAULT_ABORT_TIMEOUT_US: Final = 5 * 60 * 1_000_000

#: A plan in one of these can no longer be cancelled (spec section 3).
PLAN_TERMINAL: Final = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "SUPERSEDED", "DELETED"})
#: An action in one of these is left as it is by a cancellation.
ACTION_FINISHED: Final = frozenset({"SUCCEEDED", "FAILED", "SKIPPED", "CANCELLED", "DELETED"})

#: States a plan may be registered in: cancellation states are ours to reach, not to be told.
PLAN_REGISTRABLE: Final = frozenset({"RECOMMENDED", "PENDING", "ONGOING", "SUCCEEDED", "FAILED", "SUPERSEDED"})
ACTION_REGISTRABLE: Final = frozenset({"PENDING", "ONGOING", "SUCCEEDED", "FAILED", "SKIPPED"})

#: What the applier may report, from which state (anything else is rejected).
PLAN_PROGRESS: Final[dict[str, frozenset[str]]] = {
    "RECOMMENDED": frozenset({"PENDING", "ONGOING"}),
    "PENDING": frozenset({"ONGOING"}),
    "ONGOING": frozenset({"SUCCEEDED", "FAILED"}),
}
ACTION_PROGRESS: Final[dict[str, frozenset[str]]] = {
    "PENDING": frozenset({"ONGOING", "SKIPPED", "FAILED"}),
    "ONGOING": frozenset({"SUCCEEDED", "FAILED"}),
}
