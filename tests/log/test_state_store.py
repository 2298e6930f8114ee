"""The Kafka parts' local state store, without a broker: plan states survive a round trip, a batch
commits all or nothing, the cache stays bounded, and a store it cannot trust is rebuilt, not misread.

The broker half (a handler and a translator resuming from it) is tests/kafka/test_state_stores.py.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from eventstore.domain.decide import decide_and_fold
from eventstore.domain.plan import Plan
from eventstore.exceptions import StoreUnavailableError
from eventstore.kafka import state_store
from eventstore.kafka.state_store import PlanStateStore, decode_plan, encode_plan
from eventstore.log import CommandRecord

from tests import factories as f


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
