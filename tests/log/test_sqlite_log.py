"""What only the SQLite log promises, and the command handler over it.

The port's contract, which both backends pass, is tests/contracts/event_log.py.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from eventstore.codec import AvroCodec
from eventstore.config import Settings
from eventstore.domain.decide import CommandRejected, decide
from eventstore.exceptions import StaleVersionError
from eventstore.handler import CommandHandler, load_plan
from eventstore.log import chain_hash
from projections.sqlite.backend import EmbeddedBackend
from eventstore.sqlite.log import SqliteEventLog

from tests import factories as f
from tests.support.appends import A, Writer, new_events, record_of
from tests.support.clock import FakeClock

PLAN = "76be87bd-3422-43f9-93a0-e85a577e3061"
OTHER = "0b5f4b1e-5a53-4f0a-8d77-7f4d7d8c2a01"


# ---------------------------------------------------------------- what only the SQLite log promises


@pytest.mark.parametrize("statement", [
    "UPDATE events SET body = x'00' WHERE position = 1",
    "UPDATE events SET plan_uuid = 'x'",
    "DELETE FROM events WHERE position = 1",
    "DELETE FROM events",
])
def test_events_are_append_only(log: SqliteEventLog, codec: AvroCodec, statement: str) -> None:
    Writer(log, codec, PLAN).register_and_cancel()
    before = log.read()
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        log.db.conn.execute(statement)
    assert log.read() == before


def test_each_event_hash_chains_the_previous_event_of_its_plan(log: SqliteEventLog, codec: AvroCodec) -> None:
    a, b = Writer(log, codec, PLAN), Writer(log, codec, OTHER)
    a.register_and_cancel()
    b.register_and_cancel(actions=1)
    a.send(f.abort_ok(PLAN, A[0]))
    b.send(f.abort_failed(OTHER, A[0]))
    a.send(f.abort_ok(PLAN, A[1]))
    for plan_uuid in (PLAN, OTHER):
        previous = ""
        for stored in log.read_plan(plan_uuid):
            assert stored.hash == chain_hash(previous, stored.body), stored.where
            previous = stored.hash


def test_the_log_is_durable(log: SqliteEventLog) -> None:
    assert log.db.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert log.db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_two_writers_on_one_file_cannot_both_append_a_version(tmp_path: Path, codec: AvroCodec) -> None:
    first, second = SqliteEventLog(tmp_path / "log.db"), SqliteEventLog(tmp_path / "log.db")
    try:
        w = Writer(first, codec, PLAN)
        w.send(f.register(PLAN, "ONGOING", [f.action(A[0], "ONGOING")]))
        plan = w.plan
        one, two = f.cancel(PLAN), f.plan_progress(PLAN, "FAILED")
        first.append(PLAN, 1, new_events(codec, plan, one)[1], record_of(codec, one))
        with pytest.raises(StaleVersionError):
            second.append(PLAN, 1, new_events(codec, plan, two)[1], record_of(codec, two))
        assert [e.command_id for e in second.read_plan(PLAN)][1:] == [one.command_id] * 2
    finally:
        first.close()
        second.close()


# ---------------------------------------------------------------- the command handler


@pytest.fixture
def handler(log: SqliteEventLog, codec: AvroCodec, clock: FakeClock) -> CommandHandler:
    return CommandHandler(log, codec, clock)


def test_the_same_command_twice_takes_effect_once(handler: CommandHandler, log: SqliteEventLog) -> None:
    handler.handle(f.register(PLAN, "ONGOING", [f.action(A[0], "ONGOING"), f.action(A[1])]))
    cancel = f.cancel(PLAN)
    first = handler.handle(cancel)
    after_first = log.read()
    again = handler.handle(cancel)
    assert not first.duplicate and first.outcome == "accepted" and len(first.event_types) == 4
    assert again.duplicate and again.event_types == ()
    assert (again.outcome, again.first_position, again.last_position) == ("accepted", first.first_position, first.last_position)
    assert log.read() == after_first


def test_a_command_resent_after_the_state_changed_keeps_its_first_outcome(handler: CommandHandler, log: SqliteEventLog) -> None:
    handler.handle(f.register(PLAN, "ONGOING", [f.action(A[0], "ONGOING")]))
    early = f.abort_ok(PLAN, A[0])
    assert handler.handle(early).outcome == "rejected"
    handler.handle(f.cancel(PLAN))
    again = handler.handle(early)  # would now be accepted as a new command; as a resend it is not
    assert again.duplicate and again.outcome == "rejected"
    plan = handler.plan(PLAN)
    assert plan is not None and plan.state == "CANCELLING"


def test_a_rejected_command_is_recorded_with_its_reason(handler: CommandHandler, log: SqliteEventLog) -> None:
    handler.handle(f.register(PLAN, "SUCCEEDED", [f.action(A[0], "SUCCEEDED")]))
    before = log.read()
    cancel = f.cancel(PLAN, by="operator-7", reason="too late")
    result = handler.handle(cancel)
    reason = f"action plan {PLAN} is SUCCEEDED and cannot be cancelled"
    assert (result.outcome, result.reason, result.event_types, result.succeeded) == ("rejected", reason, (), False)
    kept = log.command_outcome(cancel.command_id)
    assert kept is not None
    assert (kept.outcome, kept.reason, kept.command_type, kept.issued_by, kept.plan_uuid) == (
        "rejected", reason, "CancelActionPlan", "operator-7", PLAN,
    )
    assert log.read() == before


def test_a_command_that_changes_nothing_is_recorded_as_unchanged(handler: CommandHandler, log: SqliteEventLog) -> None:
    handler.handle(f.register(PLAN, "ONGOING", [f.action(A[0], "ONGOING")]))
    handler.handle(f.cancel(PLAN))
    again = f.cancel(PLAN, by="someone else")
    result = handler.handle(again)
    assert (result.outcome, result.event_types, result.succeeded) == ("unchanged", (), True)
    kept = log.command_outcome(again.command_id)
    assert kept is not None and kept.outcome == "unchanged"


def test_a_stale_cache_is_recovered_when_the_stale_state_would_accept(tmp_path: Path, codec: AvroCodec, clock: FakeClock) -> None:
    log_a, log_b = SqliteEventLog(tmp_path / "log.db"), SqliteEventLog(tmp_path / "log.db")
    try:
        a, b = CommandHandler(log_a, codec, clock), CommandHandler(log_b, codec, clock)
        a.handle(f.register(PLAN, "ONGOING", [f.action(A[0], "ONGOING"), f.action(A[1], "ONGOING")]))
        assert b.plan(PLAN) is not None  # B caches the plan at version 1
        a.handle(f.action_progress(PLAN, A[0], "SUCCEEDED"))  # the log moves on behind B's back
        result = b.handle(f.cancel(PLAN))
        assert result.outcome == "accepted"
        assert result.event_types == ("ActionPlanCancellationStarted", "ActionCancellationStarted")
        plan = load_plan(codec, log_a.read_plan(PLAN))
        assert plan is not None and [x.state for x in plan.actions] == ["SUCCEEDED", "CANCELLING"]
    finally:
        log_a.close()
        log_b.close()


@pytest.mark.parametrize(("command", "outcome"), [
    (lambda: f.abort_ok(PLAN, A[0]), "accepted"),  # stale: action 0 ONGOING, the abort result rejected
    (lambda: f.plan_progress(PLAN, "ONGOING"), "rejected"),  # stale: the plan already ONGOING, nothing to change
    (lambda: f.action_progress(PLAN, A[1], "ONGOING"), "rejected"),  # stale: action 1 PENDING, may start
    (lambda: f.cancel(PLAN), "unchanged"),  # stale: not cancelled yet
], ids=["stale-rejects", "stale-no-op", "stale-accepts-fresh-rejects", "stale-accepts-fresh-no-op"])
def test_a_stale_cache_never_decides(tmp_path: Path, codec: AvroCodec, clock: FakeClock, command: Any, outcome: str) -> None:
    """Handler B's cached plan is behind the log: whatever that stale state says, the log's state decides."""
    log_a, log_b = SqliteEventLog(tmp_path / "log.db"), SqliteEventLog(tmp_path / "log.db")
    try:
        a, b = CommandHandler(log_a, codec, clock), CommandHandler(log_b, codec, clock)
        a.handle(f.register(PLAN, "ONGOING", [f.action(A[0], "ONGOING"), f.action(A[1])]))
        assert b.plan(PLAN) is not None  # B caches the plan at version 1
        a.handle(f.cancel(PLAN))  # plan CANCELLING, action 0 CANCELLING, action 1 CANCELLED
        fresh = load_plan(codec, log_a.read_plan(PLAN))
        c = command()
        try:
            expected: tuple[str, tuple[str, ...]] = (outcome, tuple(type(e).__name__ for e in decide(fresh, c, clock())))
        except CommandRejected:
            expected = ("rejected", ())
        result = b.handle(c)
        assert (result.outcome, result.event_types) == expected
        kept = log_a.command_outcome(c.command_id)
        assert kept is not None and kept.outcome == outcome
    finally:
        log_a.close()
        log_b.close()


def test_a_deadline_pass_sees_cancellations_made_by_another_process(make_service: Any, clock: FakeClock) -> None:
    """A long-running service whose handler cached a plan before another process cancelled it still enforces the deadline."""
    serving: EmbeddedBackend = make_service(abort_timeout_us=1_000)
    cli: EmbeddedBackend = make_service(abort_timeout_us=1_000)
    serving.submit(f.register(PLAN, "ONGOING", [f.action(A[0], "ONGOING")]))  # the serving handler caches the plan
    cli.submit(f.cancel(PLAN))
    clock.advance(1_000)
    results = serving.enforce_deadlines()
    assert [(r.plan_uuid, r.outcome) for r in results] == [(PLAN, "accepted")]
    plan = serving.model.plan(PLAN)
    assert plan is not None and plan["state"] == "FAILED"


def test_settings_are_what_the_service_uses(tmp_path: Path, clock: FakeClock) -> None:
    with EmbeddedBackend(Settings(db=tmp_path / "s.db", abort_timeout_us=42), clock=clock) as service:
        service.submit(f.register(PLAN, "ONGOING", [f.action(A[0], "ONGOING")]))
        service.submit(f.cancel(PLAN))
        row = service.model.plan(PLAN)
        assert row is not None and row["abort_deadline"] == clock.now + 42
