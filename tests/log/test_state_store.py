"""The Kafka parts' local state store: what the handler decides on and the translator resumes from.

Without a broker: plan states survive a round trip, a batch commits all or nothing, the cache
stays bounded, and a store it cannot trust is rebuilt, not misread. On the broker, what users
rely on: a restarted handler reads only what was appended since it stopped (counted in records,
not timed) and still recognises every command it handled; a deleted store, or one written in
another format, is rebuilt from the topic to the same plan states; a restarted translator does
not re-emit the notifications it confirmed, and emits the new ones.
"""

from __future__ import annotations

import dataclasses

import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

import pytest

from eventstore.codec import AvroCodec
from eventstore.config import Settings, system_clock
from eventstore.domain.decide import decide_and_fold
from eventstore.domain.messages import Command
from eventstore.domain.plan import Plan
from eventstore.exceptions import StoreUnavailableError
from eventstore.kafka import state_store
from eventstore.kafka.client import KafkaClient, OutcomeWatcher
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.handler import KafkaCommandHandler
from eventstore.kafka.io import Publisher, TopicFollower
from eventstore.kafka.records import header_map
from eventstore.kafka.state_store import PlanStateStore, decode_plan, encode_plan
from eventstore.log import CommandRecord, Outcome
from projections.kafka.notifications import KafkaTranslatorPart
from projections.translator import translator_for

from tests import factories as f
from tests.support.topics import end_of
from tests.support.waiting import wait_for_position, wait_until


def story_plans(abort_fails: bool) -> list[Plan]:
    """Every state a plan passes through in a whole cancellation story (faults, cancellation and all)."""
    plan: Plan | None = None
    out = []
    for command in f.cancellation_story(abort_fails=abort_fails):
        try:
            _, plan = decide_and_fold(plan, command, f.T0 + 1)
        except Exception:
            continue  # the story's last cancel is rejected
        assert plan is not None
        out.append(plan)
    return out


@pytest.mark.parametrize("abort_fails", [False, True])
def test_a_plan_state_reads_back_equal(abort_fails: bool) -> None:
    plans = story_plans(abort_fails)
    assert any(p.cancellation is not None for p in plans)
    if abort_fails:
        assert any(a.fault is not None for a in plans[-1].actions)
    for plan in plans:
        back = decode_plan(encode_plan(plan))
        assert back == plan
        assert back.action(plan.actions[-1].uuid) == plan.actions[-1]  # the index is rebuilt too


def test_a_mirrored_plan_reads_back_mirrored() -> None:
    """The handler decides a plan that mirrors Watcher by other rules: a restart must not forget which it is."""
    plan = dataclasses.replace(story_plans(False)[0], mirrored=True)
    assert decode_plan(encode_plan(plan)) == plan and decode_plan(encode_plan(plan)).mirrored


def record(command_id: str, plan_uuid: str) -> CommandRecord:
    return CommandRecord(command_id, "CancelActionPlan", plan_uuid, "op", "tests", f.T0, b"body", "accepted", "", 3, 3)


def test_pending_changes_are_read_first_and_commit_together_with_the_positions(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    plan = story_plans(False)[-1]
    store = PlanStateStore(path)
    store.mark(plan.uuid, plan.version, "h1")
    store.put_plan(plan)
    store.put_command(record("c1", plan.uuid))
    assert store.plan(plan.uuid) == plan and store.version(plan.uuid) == plan.version and store.head(plan.uuid) == "h1"
    assert store.command("c1") is not None and store.position("events/0") == 0
    store.commit({"events/0": 7})
    store.close()

    again = PlanStateStore(path)
    assert again.position("events/0") == 7 and again.positions() == {"events/0": 7}
    assert again.plan(plan.uuid) == plan
    assert again.versions([plan.uuid, "unknown"]) == {plan.uuid: plan.version}
    assert again.head(plan.uuid) == "h1" and again.head("unknown") == ""
    assert again.command("c1") == record("c1", plan.uuid)
    assert again.plan(plan.uuid) == plan and again.count() == 1
    again.close()


def test_a_discarded_batch_leaves_nothing(tmp_path: Path) -> None:
    store = PlanStateStore(tmp_path / "state.db")
    plan = story_plans(False)[0]
    store.mark(plan.uuid, 1, "h")
    store.put_plan(plan)
    store.discard()
    store.commit({})
    assert store.plan(plan.uuid) is None and store.version(plan.uuid) == 0 and store.position("events/0") == 0
    store.close()


def test_staged_positions_are_read_at_once_written_when_due_and_dropped_with_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A part stages every batch; the store is written about once a second (or after many commands)."""
    path = tmp_path / "state.db"
    plan = story_plans(False)[0]
    store = PlanStateStore(path)
    assert not store.due, "nothing pending"
    store.put_command(record("c1", plan.uuid))
    store.stage({"events/0": 3})
    store.stage({"events/0": 2})  # a position never goes back
    assert store.position("events/0") == 3 and store.positions() == {"events/0": 3} and store.committed_positions() == {}
    assert not store.due, "pending for less than COMMIT_EVERY_S"
    monkeypatch.setattr(PlanStateStore, "COMMIT_AFTER_COMMANDS", 1)
    assert store.due, "as many commands pending as it keeps"
    store.commit()
    assert store.committed_positions() == {"events/0": 3} and not store.due
    store.put_command(record("c2", plan.uuid))
    store.stage({"events/0": 5})
    store.discard()  # read again from what is on file
    assert store.position("events/0") == 3 and store.command("c2") is None and store.command("c1") is not None
    store.close()
    again = PlanStateStore(path)
    assert again.positions() == {"events/0": 3} and again.command("c1") is not None
    again.close()


def test_the_plan_cache_is_bounded_and_a_miss_reads_the_row(tmp_path: Path) -> None:
    store = PlanStateStore(tmp_path / "state.db", cache_size=3)
    plans = [story_plans(False)[0] for _ in range(10)]
    for p in plans:
        store.put_plan(p)
    store.commit({"events/0": 10})
    assert len(store._cache) == 3
    assert [store.plan(p.uuid) for p in plans] == plans
    assert len(store._cache) == 3
    store.close()


def test_a_store_of_another_format_is_emptied_to_be_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.db"
    store = PlanStateStore(path)
    plan = story_plans(False)[0]
    store.mark(plan.uuid, 1, "h")
    store.put_plan(plan)
    store.put_command(record("c1", plan.uuid))
    store.commit({"events/0": 5})
    store.close()

    monkeypatch.setattr(state_store, "FORMAT", "0:an-older-encoding")
    rebuilt = PlanStateStore(path)
    assert rebuilt.positions() == {} and rebuilt.plan(plan.uuid) is None and rebuilt.command("c1") is None
    assert rebuilt.version(plan.uuid) == 0  # the topic is read again from its start
    rebuilt.close()


def test_a_damaged_row_is_a_specific_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = PlanStateStore(path)
    plan = story_plans(False)[0]
    store.put_plan(plan)
    store.commit({"events/0": 1})
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE plans SET plan = '[1, 2' WHERE uuid = ?", (plan.uuid,))
    damaged = PlanStateStore(path)
    with pytest.raises(state_store.CorruptStateError, match="delete the file"):
        damaged.plan(plan.uuid)
    damaged.close()


def test_another_kind_of_store_is_refused(tmp_path: Path) -> None:
    from eventstore.sqlite.log import SqliteEventLog

    log = SqliteEventLog(tmp_path / "log.db")
    log.close()
    with pytest.raises(StoreUnavailableError, match="not a plan-state store"):
        PlanStateStore(tmp_path / "log.db")


def test_a_store_folded_from_another_topic_is_emptied_to_be_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = PlanStateStore(path, changelog="a.events")
    store.put_plan(story_plans(False)[0])
    store.commit({"a.events/0": 1})
    store.close()
    same = PlanStateStore(path, changelog="a.events")
    assert same.positions() == {"a.events/0": 1}
    same.close()
    other = PlanStateStore(path, changelog="b.events")
    assert other.positions() == {} and other.count() == 0
    other.close()


# ---------------------------------------------------------------- on the broker: the handler and the translator resume from it


PLANS = 12
TIMEOUT_S = 120.0


class Polled(Protocol):
    def poll(self, timeout: float = 0.2) -> int: ...


def run_until(done: Callable[[], bool], parts: Iterable[Polled], what: str, timeout: float = TIMEOUT_S) -> None:
    """The parts run in this thread: polling them is what moves them on, until ``done``."""
    parts = list(parts)

    def step() -> bool:
        if done():
            return True
        for part in parts:
            part.poll(0.1)
        return False

    wait_until(step, timeout, what, interval=0)


def run_to(part: KafkaTranslatorPart, end: dict[str, int], what: str, consumed: list[int] | None = None) -> None:
    """Polls the translator until the positions it stores reach ``end``, and finds them exactly there
    (``consumed``: the records each poll took)."""

    def polled() -> dict[str, int]:
        taken = part.poll(0.1)
        if consumed is not None:
            consumed.append(taken)
        return part.state.positions()

    wait_for_position(polled, end, TIMEOUT_S, what, interval=0)
    assert part.state.positions() == end


def handle(handler: KafkaCommandHandler, client: KafkaClient, watcher: OutcomeWatcher, commands: list[Command]) -> dict[str, Outcome]:
    """Send the commands and poll the handler until each has its outcome."""
    for command in commands:
        client.send(command)
    wanted = {c.command_id for c in commands}
    got: dict[str, Outcome] = {}

    def done() -> bool:
        got.update((o.command_id, o) for o in watcher.seen if o.command_id in wanted)
        watcher.poll(0.05)
        return wanted <= got.keys()

    run_until(done, [handler], f"{len(commands)} command(s)")
    return got


def remove(path: Path) -> None:
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        p.unlink(missing_ok=True)


def snapshot(handler: KafkaCommandHandler) -> dict[str, Plan]:
    """Every plan the handler's store holds, as its file has them once what is pending is committed
    (the handler commits about once a second: ``PlanStateStore.due``)."""
    handler.log.state.commit()
    rows = handler.log.state.db.conn.execute("SELECT uuid, plan FROM plans WHERE plan IS NOT NULL")
    return {uuid: decode_plan(text) for uuid, text in rows}


@pytest.fixture
def client(kafka: KafkaSettings) -> Iterable[KafkaClient]:
    c = KafkaClient(kafka, AvroCodec())
    yield c
    c.close()


@pytest.fixture
def watcher(client: KafkaClient) -> Iterable[OutcomeWatcher]:
    w = client.follow_outcomes(time.time_ns() // 1_000_000 - 5000)
    yield w
    w.close()


def registrations(n: int) -> list[Command]:
    return [f.register(str(uuid.uuid4()), "ONGOING", [f.action(state="ONGOING"), f.action()]) for _ in range(n)]


def test_a_restarted_handler_reads_only_the_tail_and_a_lost_store_is_rebuilt_the_same(
    kafka: KafkaSettings, client: KafkaClient, watcher: OutcomeWatcher, tmp_path: Path,
) -> None:
    path = tmp_path / "handler-state.db"
    codec = AvroCodec()
    registered = registrations(PLANS)
    first = KafkaCommandHandler(kafka, codec, system_clock, state_path=path)
    try:
        outcomes = handle(first, client, watcher, registered)
        assert {o.outcome for o in outcomes.values()} == {"accepted"}
    finally:
        first.close()

    # Restarted on its store: nothing of the history is read again.
    second = KafkaCommandHandler(kafka, codec, system_clock, state_path=path)
    try:
        cancel = f.cancel(registered[0].plan_uuid)
        outcome = handle(second, client, watcher, [cancel])[cancel.command_id]
        assert outcome.outcome == "accepted" and outcome.plan_state == "CANCELLING"
        # At most the cancel's own append (judged where it landed, it is not even read back).
        read = second.log.records_read
        assert read <= 1
        # A command handled before the restart is still recognised: said again, not appended again.
        again = handle(second, client, watcher, [registered[1]])[registered[1].command_id]
        assert again.outcome == "accepted"
        assert second.log.records_read == read
        cancelled = second.log.state.plan(registered[0].plan_uuid)
        assert cancelled is not None and cancelled.version == 5  # registered, then 4 events of the cancel
        before = snapshot(second)
        heads = {u: second.log.state.head(u) for u in before}
        assert len(before) == PLANS
    finally:
        second.close()

    # The store deleted: the next start folds the topic from its start to the same states.
    remove(path)
    third = KafkaCommandHandler(kafka, codec, system_clock, state_path=path)
    try:
        cancel = f.cancel(registered[2].plan_uuid)
        outcome = handle(third, client, watcher, [cancel])[cancel.command_id]
        assert outcome.outcome == "accepted"
        assert third.log.records_read - (PLANS + 1) in (0, 1)  # the history, then perhaps the cancel's own append
        after = snapshot(third)
        assert {u: p for u, p in after.items() if u != registered[2].plan_uuid} == {
            u: p for u, p in before.items() if u != registered[2].plan_uuid
        }
        assert {u: third.log.state.head(u) for u in before if u != registered[2].plan_uuid} == {
            u: h for u, h in heads.items() if u != registered[2].plan_uuid
        }
        duplicate = handle(third, client, watcher, [f.cancel(registered[0].plan_uuid)])
        assert [o.outcome for o in duplicate.values()] == ["unchanged"]  # the stored state: already cancelling
    finally:
        third.close()


def test_a_handler_store_of_another_format_is_rebuilt_from_the_topic(
    kafka: KafkaSettings, client: KafkaClient, watcher: OutcomeWatcher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "handler-state.db"
    codec = AvroCodec()
    registered = registrations(3)
    first = KafkaCommandHandler(kafka, codec, system_clock, state_path=path)
    try:
        handle(first, client, watcher, registered)
        before = snapshot(first)
    finally:
        first.close()

    monkeypatch.setattr(state_store, "FORMAT", "0:written-by-other-code")
    second = KafkaCommandHandler(kafka, codec, system_clock, state_path=path)
    try:
        run_until(lambda: second.log.records_read == 3, [second], "the rebuild")
        assert snapshot(second) == before
        cancel = f.cancel(registered[0].plan_uuid)
        assert handle(second, client, watcher, [cancel])[cancel.command_id].outcome == "accepted"
    finally:
        second.close()


def notifications(kafka: KafkaSettings) -> Counter[str]:
    """How many times each message id is on the notification topics."""
    ids: Counter[str] = Counter()
    for priority in ("INFO", "ERROR"):
        follower = TopicFollower(kafka, kafka.topics.notification_topic(priority))
        try:
            ids.update(header_map(m.headers())["ce_id"] for m in follower.drain())
        finally:
            follower.close()
    return ids


def translator_part(kafka: KafkaSettings, path: Path) -> KafkaTranslatorPart:
    codec = AvroCodec()
    translator = translator_for(Settings(publisher_id="infra-optim:tests"), codec, None, cache_size=None)
    return KafkaTranslatorPart(kafka, Publisher(kafka), translator, codec, state_path=path, cache_size=4)


def test_a_restarted_translator_resumes_from_its_store_and_never_re_emits(
    kafka: KafkaSettings, client: KafkaClient, watcher: OutcomeWatcher, tmp_path: Path,
) -> None:
    path = tmp_path / "translator-state.db"
    codec = AvroCodec()
    handler = KafkaCommandHandler(kafka, codec, system_clock)
    registered = registrations(PLANS)
    half = PLANS // 2
    try:
        handle(handler, client, watcher, registered + [f.cancel(r.plan_uuid) for r in registered[:half]])
        end = end_of(kafka, kafka.topics.events)

        # A cache of 4 plans for 12: the translator reads the others back from its store.
        first = translator_part(kafka, path)
        try:
            run_to(first, end, "the first translator at the end of the events topic")
        finally:
            first.close()
        emitted = notifications(kafka)
        assert len(emitted) == 4 * half and set(emitted.values()) == {1}  # cancel.start of the plan and each action, end of the pending one

        # New events while it is down, then a restart on its store.
        handle(handler, client, watcher, [f.cancel(r.plan_uuid) for r in registered[half:]])
        end = end_of(kafka, kafka.topics.events)
        store = PlanStateStore(path)
        resumed_from = store.positions()
        store.close()
        consumed: list[int] = []
        second = translator_part(kafka, path)
        try:
            run_to(second, end, "the restarted translator at the end of the events topic", consumed)
        finally:
            second.close()
        assert sum(consumed) == sum(end.values()) - sum(resumed_from.values()), "only the records appended since"
        emitted = notifications(kafka)
        assert len(emitted) == 4 * PLANS and set(emitted.values()) == {1}, emitted

        # Its store deleted: folded again from the start, and nothing the group confirmed is sent again.
        remove(path)
        third = translator_part(kafka, path)
        try:
            run_to(third, end, "the rebuilt translator at the end of the events topic")
        finally:
            third.close()
        assert notifications(kafka) == emitted
    finally:
        handler.close()
