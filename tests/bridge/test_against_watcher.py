"""The bridge against Watcher itself: python-watcher 17.0.0's API, decision engine and applier in a
subprocess send to Kafka, `watcher-es serve --watcher-topic` mirrors them, on the Tansu broker.

One run, in two halves with `serve` restarted between them (the bridge resumes from its stored
positions), then every Watcher record delivered a second time, then the bridge's state deleted so
it reads Watcher's topics again from the start: every plan and action ends as Watcher's database
says, every cancellation has its notifications once on watcher-es's own topic, the cancel names
who asked, and reading Watcher twice adds nothing.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections import Counter, defaultdict
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from eventstore.kafka.config import KafkaSettings
from tests.support.serve import Serve, cli_env, run_cli
from tests.support.waiting import wait_until
from eventstore.kafka.io import TopicFollower
from tests.watcher_peer.broker import ensure_topics, notification_topics
from tests.watcher_peer.peer import WatcherPeer
from tests.watcher_peer.record import Mix

pytestmark = pytest.mark.watcher  # and `kafka`, as every test on the broker

FIRST = ("recommended", "deleted", "pending", "ongoing", "last_action")
SECOND = ("abort_ok", "abort_raises", "abort_error", "succeeded", "superseded", "applier_crash")


def status(env: dict[str, str], plan: str) -> dict[str, Any] | None:
    done = run_cli(env, "status", plan, "--json")
    if done.returncode != 0:
        return None
    shown: dict[str, Any] = json.loads(done.stdout)
    return shown


def mirrored(env: dict[str, str], truth: dict[str, Any]) -> list[str]:
    """The plans whose state or actions differ from Watcher's database (empty: all mirrored)."""
    listed = run_cli(env, "plans", "--json")
    states = {p["uuid"]: p["state"] for p in map(json.loads, listed.stdout.splitlines())} if listed.returncode == 0 else {}
    if any(states.get(plan) != t["state"] for plan, t in truth.items()):
        return [f"{plan}: {states.get(plan)} != {t['state']}" for plan, t in truth.items() if states.get(plan) != t["state"]]
    differ = []
    for plan, t in truth.items():
        shown = status(env, plan)
        want = (t["state"], {a["uuid"]: a["state"] for a in t["actions"]})
        got = (shown["plan"]["state"], {a["uuid"]: a["state"] for a in shown["actions"]}) if shown else None
        if got != want:
            differ.append(f"{plan}: {got} != {want}")
    return differ


def our_notifications(env: dict[str, str]) -> list[dict[str, Any]]:
    """Every notification on watcher-es's own topics, as `watcher-es notifications --json` prints them."""
    done = run_cli(env, "notifications", "--json")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_the_bridge_mirrors_a_running_watcher(kafka: KafkaSettings, tmp_path: Path) -> None:
    topic = f"watcher{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka.bootstrap_servers, notification_topics(topic), partitions=3)
    env = {**cli_env(kafka, tmp_path / "serve.db"), "WATCHER_ES_WATCHER_TOPIC": topic}
    serve = Serve(env, tmp_path / "serve.log").start()
    try:
        with WatcherPeer(kafka.bootstrap_servers, topic=topic, workdir=tmp_path / "watcher") as peer:
            mix = Mix(peer)
            mix.run(FIRST)
            serve.stop()  # the bridge stops in the middle and resumes from where it stored it had got to
            serve.start()
            mix.run(SECOND)
            truth = peer.truth()["action_plans"]
        scenario = {p: s for s, p in mix.plans.items()}
        wait_until(lambda: not mirrored(env, truth), 120, lambda: f"watcher-es to mirror every plan: {mirrored(env, truth)}")

        # Every cancellation Watcher made: one action_plan.cancel.start and one .end or .error,
        # every action.cancel.start one .end or .error; .end exactly when the subject ended CANCELLED.
        def problems() -> list[str]:
            by_plan: dict[str, list[tuple[str, str | None, str]]] = defaultdict(list)
            for n in our_notifications(env):
                data = n["payload"]["watcher_object.data"]
                if n["event_type"].startswith("action_plan."):
                    by_plan[scenario[data["uuid"]]].append((n["event_type"], None, data["state"]))
                else:
                    by_plan[scenario[data["action_plan"]["watcher_object.data"]["uuid"]]].append((n["event_type"], data["uuid"], data["state"]))
            found = [] if set(by_plan) == set(mix.plans) - {"deleted", "superseded", "succeeded"} else [f"notified: {sorted(by_plan)}"]
            for s, sequence in by_plan.items():
                kinds = Counter(t for t, a, _ in sequence if a is None)
                started = Counter(a for t, a, _ in sequence if t == "action.cancel.start")
                ended = Counter(a for t, a, _ in sequence if t in ("action.cancel.end", "action.cancel.error"))
                if not (kinds["action_plan.cancel.start"] == 1 and kinds["action_plan.cancel.end"] + kinds["action_plan.cancel.error"] == 1
                        and kinds["action_plan.cancel.end"] == (truth[mix.plans[s]]["state"] == "CANCELLED")
                        and started == ended and set(started.values()) == {1}
                        and all((t == "action.cancel.end") == (st == "CANCELLED") for t, a, st in sequence if t.startswith("action.cancel.e"))):
                    found.append(f"{s}: {sequence}")
            return found

        wait_until(lambda: not problems(), 60, lambda: f"every cancellation's notifications: {problems()}")
        notes = our_notifications(env)

        # Who cancelled: the canceller's Keystone ids and request ids from the API call's context.
        story = json.loads(run_cli(env, "audit", mix.plans["ongoing"], "--json").stdout)
        cancel = next(e for e in story["entries"] if e["kind"] == "command" and e["type"] == "CancelActionPlan")
        journal = next(j for j in mix.journal if j["scenario"] == "ongoing" and j["verb"] == "cancel")
        assert cancel["issued_by"] == "canceller (project proj-ops)"
        asked = cancel["details"]["watcher"]
        assert (asked["user"], asked["project_id"], asked["global_request_id"]) == ("canceller", "proj-ops", journal["global_request_id"])
        assert asked["request_id"]
        crash = json.loads(run_cli(env, "audit", mix.plans["applier_crash"], "--json").stdout)
        assert any(e["type"] == "CancelActionPlan" and "Watcher's own doing" in e["issued_by"] for e in crash["entries"] if e["kind"] == "command")

        # Delivered twice, then read again from the start by a bridge that lost its state: nothing more.
        before = len(notes)
        producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
        delivered = [(name, m.value()) for name in notification_topics(topic) for m in TopicFollower(kafka, name).drain()]
        for name, value in delivered:
            producer.produce(name, value)
        assert producer.flush(30) == 0
        ends = {f"{m.topic()}/{m.partition()}": (m.offset() or 0) + 1 for name in notification_topics(topic) for m in TopicFollower(kafka, name).drain()}
        assert sum(ends.values()) == 2 * len(delivered)
        serve.stop()
        state = tmp_path / "serve.bridge-state.db"
        state.unlink()
        serve.start()

        def read_to_the_end() -> bool:
            if not state.exists():
                return False
            with closing(sqlite3.connect(state)) as db:
                try:
                    return dict(db.execute("SELECT source, position FROM positions").fetchall()) == ends
                except sqlite3.Error:
                    return False

        wait_until(read_to_the_end, 60, f"the bridge to read Watcher's topics again to their end, {ends}")
        assert not mirrored(env, truth)
        assert len(our_notifications(env)) == before
    finally:
        serve.stop()
    assert "Traceback" not in serve.log()
