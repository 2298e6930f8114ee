"""The bridge on what python-watcher 17.0.0 really sent: the recording in tests/watcher_peer/recordings.

``mix.jsonl`` holds every record Watcher's own services produced for eleven plans (cancelled
while RECOMMENDED, PENDING and ONGOING, during the last action, with an abort that works, raises,
or whose bookkeeping errors, deleted, expired, untouched, and an applier killed mid-plan), and
``mix.truth.json`` what Watcher's database said at the end. Fed through the bridge's ordering
and mirror into an embedded store, in the order the partitions gave them or any other, once or
twice, the store must say what Watcher's database says, with the six notifications a
cancellation owes. tests/bridge/test_against_watcher.py runs the same against Watcher itself.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from eventstore.bridge.mirror import Mirror
from eventstore.bridge.ordering import Reorder
from eventstore.bridge.received import ReceivedNotification, parse
from eventstore.config import Settings
from projections.sqlite.backend import EmbeddedBackend
from tests.support.recording import RECORDS, SCENARIO, TRUTH

CANCELLED_BY_WATCHER = {"recommended", "pending", "ongoing", "last_action", "abort_ok", "abort_raises", "abort_error", "applier_crash"}


def bridged(records: Iterable[dict[str, Any]], backend: EmbeddedBackend, mirror: Mirror | None = None) -> Counter[str]:
    """Every record through the bridge's ordering and mirror into the store; the outcomes, counted."""
    reorder: Reorder[ReceivedNotification] = Reorder(grace_s=0)
    for r in records:
        source = f"{r['topic']}/{r['partition']}"
        n = parse(r["value"].encode(), f"{source} offset {r['offset']}")
        reorder.add(n.timestamp, source, r["offset"] + 1, n)
    mirror = mirror if mirror is not None else Mirror()
    outcomes: Counter[str] = Counter()
    for commands in [*(mirror.take(n) for n in reorder.release([], {}, everything=True)), mirror.due(2**62, 0, 0)]:
        for command in commands:
            outcome = backend.submit(command)
            assert outcome.outcome != "rejected", (SCENARIO.get(command.plan_uuid), type(command).__name__, outcome.reason)
            outcomes["duplicate" if outcome.duplicate else outcome.outcome] += 1
    return outcomes


@pytest.fixture
def backend(tmp_path: Path) -> Iterable[EmbeddedBackend]:
    with EmbeddedBackend(Settings(db=tmp_path / "w.db", publisher_id="infra-optim:bridge")) as b:
        yield b


def notifications_by_plan(backend: EmbeddedBackend) -> dict[str, list[tuple[str, str | None, str]]]:
    """(event_type, action uuid, subject's state) of every notification emitted, by scenario."""
    out: dict[str, list[tuple[str, str | None, str]]] = defaultdict(list)
    for _, envelope in backend.outbox.iterate(0):
        data = envelope["payload"]["watcher_object.data"]
        if envelope["event_type"].startswith("action_plan."):
            out[SCENARIO[data["uuid"]]].append((envelope["event_type"], None, data["state"]))
        else:
            plan = data["action_plan"]["watcher_object.data"]["uuid"]
            out[SCENARIO[plan]].append((envelope["event_type"], data["uuid"], data["state"]))
    return out


def assert_mirrors_watcher(backend: EmbeddedBackend) -> None:
    for plan, truth in TRUTH["action_plans"].items():
        row = backend.model.plan(plan)
        assert row is not None, f"{SCENARIO[plan]} was not registered"
        actions = {a["uuid"]: a["state"] for a in backend.model.actions(plan)}
        assert (row["state"], actions) == (truth["state"], {a["uuid"]: a["state"] for a in truth["actions"]}), SCENARIO[plan]
        assert row["mirrored"] == 1


def test_every_plan_and_action_ends_as_watchers_database_says(backend: EmbeddedBackend) -> None:
    bridged(RECORDS, backend)
    assert_mirrors_watcher(backend)
    assert not [p for p in backend.model.plans() if p["state"] == "CANCELLING"]


def test_every_cancellation_has_its_notifications_once(backend: EmbeddedBackend) -> None:
    bridged(RECORDS, backend)
    notes = notifications_by_plan(backend)
    assert set(notes) == CANCELLED_BY_WATCHER  # the deleted, expired and untouched plans were never cancelled
    for scenario, sequence in notes.items():
        plan_ends = [(t, s) for t, a, s in sequence if a is None and t != "action_plan.cancel.start"]
        assert [t for t, a, _ in sequence if a is None][0] == "action_plan.cancel.start", scenario
        assert len([t for t, a, _ in sequence if t == "action_plan.cancel.start"]) == 1 and len(plan_ends) == 1, scenario
        truth_state = TRUTH["action_plans"][TRUTH["scenarios"][scenario]]["state"]
        assert plan_ends[0][0] == ("action_plan.cancel.end" if truth_state == "CANCELLED" else "action_plan.cancel.error"), scenario
        started = Counter(a for t, a, _ in sequence if t == "action.cancel.start")
        ended = Counter(a for t, a, _ in sequence if t in ("action.cancel.end", "action.cancel.error"))
        assert started == ended and set(started.values()) == {1}, scenario
        for t, a, state in sequence:  # .end exactly when the action ended CANCELLED
            if t in ("action.cancel.end", "action.cancel.error"):
                assert (t == "action.cancel.end") == (state == "CANCELLED"), (scenario, t, state)


def test_watchers_exceptions_are_recorded_as_watcher_reports_them(backend: EmbeddedBackend) -> None:
    bridged(RECORDS, backend)
    notes = notifications_by_plan(backend)
    errors = {s: [(t, state) for t, a, state in seq if t.endswith(".error")] for s, seq in notes.items()}
    assert errors["last_action"][-1] == ("action_plan.cancel.error", "CANCELLING")  # the cancel came during the last action
    assert ("action.cancel.error", "SUCCEEDED") in errors["ongoing"]  # the running action was not aborted
    assert ("action.cancel.error", "FAILED") in errors["abort_raises"]  # abort() raised; the plan still ends CANCELLED
    assert notes["abort_raises"][-1][0] == "action_plan.cancel.end"
    faults = [e["payload"]["watcher_object.data"]["fault"] for _, e in backend.outbox.iterate(0) if e["event_type"] == "action.cancel.error"]
    assert any(f["watcher_object.data"]["exception"] == "ActionNotFound" for f in faults)  # abort bookkeeping: Watcher's own fault


def test_who_cancelled_is_the_users_request_or_watchers_own_doing(backend: EmbeddedBackend) -> None:
    bridged(RECORDS, backend)
    cancels = {}
    for plan in TRUTH["action_plans"]:
        for command in backend.log.plan_commands(plan):
            if command.command_type == "CancelActionPlan":
                cancels[SCENARIO[plan]] = command
    assert set(cancels) == CANCELLED_BY_WATCHER
    for scenario, command in cancels.items():
        _, record = backend.codec.decode(command.body)
        watcher = record["watcher"]
        if scenario == "applier_crash":
            assert watcher["user"] is None and command.issued_by.startswith("watcher-applier (Watcher's own doing")
        else:
            assert watcher["user"] == "canceller" and command.issued_by.startswith("canceller (project ")
            assert watcher["request_id"] and watcher["global_request_id"], scenario


def test_any_order_and_twice_adds_nothing(backend: EmbeddedBackend, tmp_path: Path) -> None:
    """The partitions read in another order and every record delivered twice: the same history."""
    shuffled = list(RECORDS)
    random.Random(7).shuffle(shuffled)
    first = bridged(shuffled + shuffled, backend)
    assert first["accepted"] > 0
    assert_mirrors_watcher(backend)
    events = backend.log.last_position()
    again = bridged(RECORDS, backend)  # re-reading Watcher's topics from the start, with a fresh mirror
    assert set(again) <= {"duplicate", "unchanged"} and backend.log.last_position() == events
