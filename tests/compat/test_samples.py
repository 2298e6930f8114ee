"""Every published sample is a test: same inputs, fixed clock and message id, equal JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from eventstore.domain.decide import decide
from eventstore.domain.messages import Command, Event, Fault
from eventstore.domain.plan import Plan, evolve
from eventstore.times import parse_time
from projections.translator import build_notification

from tests import factories as f

#: Watcher's published samples of the six notifications (the specification's, two typos fixed).
SAMPLES = Path(__file__).resolve().parents[1] / "golden"

PLAN = "76be87bd-3422-43f9-93a0-e85a577e3061"
ACTION = "10a47dd1-4874-4298-91cf-eff046dbdb8d"
PLAN_TIME = parse_time("t", "2016-10-18T09:52:05.219414Z") or 0
ACTION_TIME = parse_time("t", "2017-01-01T00:00:00Z") or 0


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return data


def run(commands: list[tuple[Command, int]]) -> list[tuple[Plan, Event]]:
    """Decide and fold each command at its clock; every event with the plan as it left it."""
    plan: Plan | None = None
    out = []
    for command, now in commands:
        for event in decide(plan, command, now):
            plan = evolve(plan, event)
            out.append((plan, event))
    return out


def notification_of(kind: str, commands: list[tuple[Command, int]], message_id: str) -> dict[str, Any]:
    for plan, event in run(commands):
        note = build_notification(plan, event, publisher_id="infra-optim:node0", message_id=message_id)
        if note is not None and note.event_type == kind:
            return note.envelope
    raise AssertionError(f"no {kind} notification")


def ongoing_plan() -> list[tuple[Command, int]]:
    return [(f.register(PLAN, "ONGOING", [f.action(ACTION, "ONGOING")]), f.T0)]


def test_samples_folder_is_there() -> None:
    assert len(list(SAMPLES.glob("*.json"))) == 6, SAMPLES


@pytest.mark.parametrize(("name", "clock"), [("action_plan-cancel-start.json", PLAN_TIME), ("action-cancel-start.json", ACTION_TIME)])
def test_cancel_start(name: str, clock: int) -> None:
    expected = sample(name)
    got = notification_of(expected["event_type"], [*ongoing_plan(), (f.cancel(PLAN), clock)], expected["message_id"])
    assert got == expected


@pytest.mark.parametrize(("name", "clock"), [("action_plan-cancel-end.json", PLAN_TIME), ("action-cancel-end.json", ACTION_TIME)])
def test_cancel_end(name: str, clock: int) -> None:
    expected = sample(name)
    commands = [*ongoing_plan(), (f.cancel(PLAN), f.T0), (f.abort_ok(PLAN, ACTION), clock)]
    assert notification_of(expected["event_type"], commands, expected["message_id"]) == expected


@pytest.mark.parametrize(("name", "clock", "module", "function"), [
    ("action-cancel-error.json", ACTION_TIME, "watcher.tests.notifications.test_action_notification", "test_send_action_cancel_with_error"),
    ("action_plan-cancel-error.json", PLAN_TIME, "watcher.tests.notifications.test_action_plan_notification", "test_send_action_plan_cancel_with_error"),
])
def test_cancel_error(name: str, clock: int, module: str, function: str) -> None:
    expected = sample(name)
    fault = Fault("WatcherException", "TEST", module, function)
    commands = [*ongoing_plan(), (f.cancel(PLAN), f.T0), (f.abort_failed(PLAN, ACTION, fault), clock)]
    assert notification_of(expected["event_type"], commands, expected["message_id"]) == expected
