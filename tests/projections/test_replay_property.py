"""The read model is a pure function of the log: rebuilt from scratch, in any batch size, it is equal.

Hypothesis drives an embedded backend with random commands (valid, rejected, repeated and
malformed ones, and deadline passes after the clock jumps), then a fresh read model is built
from the same log and compared table by table with the one that was kept up to date live.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore.codec import AvroCodec
from eventstore.config import Settings
from eventstore.domain.messages import Command
from eventstore.domain.states import ACTION_REGISTRABLE, ACTION_STATES, PLAN_REGISTRABLE, PLAN_STATES
from eventstore.exceptions import CommandValidationError
from eventstore.handler import load_plan
from projections.sqlite.backend import EmbeddedBackend
from projections.sqlite.notifications import NotificationOutbox, stored_notifications
from projections.read_model import ReadModel
from projections.tracking import catch_up
from projections.translator import Translator

from tests import factories as f
from tests.support.clock import FakeClock

PLANS = [f"7a0c0000-0000-4000-8000-00000000000{i}" for i in range(3)]
MAX_ACTIONS = 4
ABORT_TIMEOUT_US = 5_000
CODEC = AvroCodec()  # parsed once: every example writes and reads the same schemas


def action_uuid(plan: int, action: int) -> str:
    return f"ac{plan:06d}-0000-4000-8000-{action:012d}"


# ---------------------------------------------------------------- the command language

plan_index = st.integers(0, len(PLANS) - 1)
action_index = st.integers(0, MAX_ACTIONS)  # MAX_ACTIONS itself is never registered: an unknown action


def some_state(states: frozenset[str], likely: str) -> st.SearchStrategy[str]:
    """Any of the states, ``likely`` as often as all the others: cancellations need running plans."""
    return st.one_of(st.just(likely), st.sampled_from(sorted(states)))


def registration(plan: st.SearchStrategy[int]) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.tuples(
        st.just("register"), plan, some_state(PLAN_REGISTRABLE, "ONGOING"),
        st.lists(some_state(ACTION_REGISTRABLE, "ONGOING"), min_size=1, max_size=MAX_ACTIONS),
    )


cancel = st.tuples(st.just("cancel"), plan_index)
abort_ok = st.tuples(st.just("abort_ok"), plan_index, action_index)
abort_failed = st.tuples(st.just("abort_failed"), plan_index, action_index)
steps = st.one_of(  # cancellations and aborts listed twice: they are what the model must get right
    registration(plan_index),
    st.tuples(st.just("plan_progress"), plan_index, st.sampled_from(sorted(PLAN_STATES))),
    st.tuples(st.just("action_progress"), plan_index, action_index, st.sampled_from(sorted(ACTION_STATES))),
    cancel, cancel, abort_ok, abort_ok, abort_failed, abort_failed,
    st.tuples(st.just("deadline_pass"), st.sampled_from([0, ABORT_TIMEOUT_US - 1, ABORT_TIMEOUT_US, 10 * ABORT_TIMEOUT_US])),
    st.tuples(st.just("deadline_command"), plan_index),
    st.tuples(st.just("resend"), st.integers(0, 50)),
    st.tuples(st.just("malformed"), plan_index),
    st.tuples(st.just("tick"), st.integers(1, 2 * ABORT_TIMEOUT_US)),
)


@dataclass
class Driver:
    service: EmbeddedBackend
    clock: FakeClock
    sent: list[Command]

    def run(self, step: tuple[Any, ...]) -> None:
        kind, *args = step
        now = self.clock.now
        if kind == "deadline_pass":
            self.clock.advance(args[0])
            self.service.enforce_deadlines()
            return
        if kind == "tick":
            self.clock.advance(args[0])
            return
        if kind == "resend":
            if self.sent:
                again = self.sent[args[0] % len(self.sent)]
                result = self.service.submit(again)
                assert result.duplicate, "a command id seen before must not be handled again"
            return
        if kind == "malformed":
            try:
                self.service.submit(f.action_progress(PLANS[args[0]], "not-a-uuid", "ONGOING", at=now))
            except CommandValidationError:
                return
            raise AssertionError("a malformed command must be refused before it reaches the log")
        plan = PLANS[args[0]]
        command: Command
        match kind:
            case "register":
                states: list[str] = args[2]
                command = f.register(plan, args[1], [f.action(action_uuid(args[0], i), s) for i, s in enumerate(states)], at=now)
            case "plan_progress":
                command = f.plan_progress(plan, args[1], at=now)
            case "action_progress":
                command = f.action_progress(plan, action_uuid(args[0], args[1]), args[2], at=now)
            case "cancel":
                command = f.cancel(plan, at=now)
            case "abort_ok":
                command = f.abort_ok(plan, action_uuid(args[0], args[1]), at=now)
            case "abort_failed":
                command = f.abort_failed(plan, action_uuid(args[0], args[1]), at=now)
            case "deadline_command":
                command = f.deadline(plan, now)
            case _:
                raise AssertionError(kind)
        self.service.submit(command)
        self.sent.append(command)


def rebuilt(log_service: EmbeddedBackend, batch_size: int) -> dict[str, list[tuple[Any, ...]]]:
    fresh = ReadModel(":memory:", CODEC)  # a rebuildable projection: nothing about it needs a file
    try:
        catch_up(log_service.log, fresh, batch_size=batch_size)
        return fresh.tables()
    finally:
        fresh.close()


def assert_model_matches_the_fold(service: EmbeddedBackend) -> None:
    """The read model says what folding each plan's stream says (state, action states, version)."""
    for plan_uuid in PLANS:
        plan = load_plan(service.codec, service.log.read_plan(plan_uuid))
        row = service.model.plan(plan_uuid)
        if plan is None:
            assert row is None
            continue
        assert row is not None
        assert (row["state"], row["version"]) == (plan.state, plan.version)
        assert [(a["uuid"], a["state"]) for a in service.model.actions(plan_uuid)] == [(a.uuid, a.state) for a in plan.actions]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    registrations=st.tuples(*(registration(st.just(i)) for i in range(len(PLANS)))),
    program=st.lists(steps, min_size=8, max_size=40),
)
def test_a_fresh_read_model_equals_the_live_one(registrations: tuple[tuple[Any, ...], ...], program: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        clock = FakeClock()
        with EmbeddedBackend(
            Settings(db=directory / "store.db", publisher_id="infra-optim:test", abort_timeout_us=ABORT_TIMEOUT_US),
            clock=clock, codec=CODEC,
        ) as service:
            driver = Driver(service, clock, [])
            for step in [*registrations, *program]:
                driver.run(step)
            live = service.model.tables()
            assert_model_matches_the_fold(service)

            for batch_size in (1, 3, 1000):
                fresh = rebuilt(service, batch_size)
                assert fresh == live, f"a read model rebuilt in batches of {batch_size} differs from the live one"

            # The notifications too: the translator started afresh, in small batches, says the same.
            live_notes = stored_notifications(service.outbox)
            outbox = NotificationOutbox(":memory:", Translator(service.codec, service.log, "infra-optim:test"))
            try:
                catch_up(service.log, outbox, batch_size=2)
                assert stored_notifications(outbox) == live_notes
            finally:
                outbox.close()
