"""SIGKILL `serve` in the middle of 200 cancellations; after a restart everything is as if it never died."""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import pytest

from eventstore.codec import AvroCodec
from eventstore.config import StorePaths
from eventstore.domain.messages import Command
from eventstore.kafka.client import KafkaClient, OutcomeWatcher
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.io import TopicFollower, topic_pages
from eventstore.kafka.records import header_map
from projections.read_model import ReadModel

from tests import factories as f
from tests.support.serve import Serve
from tests.kafka.folding import folded_plans

PLANS = 200


def outcome_ids(watcher: OutcomeWatcher, into: set[str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        into.update(o.command_id for o in watcher.poll(0.1))


def wait_for(ids: set[str], follower: OutcomeWatcher, seen: set[str], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not ids <= seen:
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: {len(ids - seen)} of {len(ids)} commands have no outcome after {timeout:.0f} s")
        outcome_ids(follower, seen, 0.5)


def test_sigkill_mid_run_then_restart(kafka: KafkaSettings, serve: Serve, tmp_path: Path) -> None:
    client = KafkaClient(kafka, AvroCodec())
    follower = client.follow_outcomes(time.time_ns() // 1_000_000 - 5000)
    plans = [(str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())) for _ in range(PLANS)]
    failing = {p for i, (p, _, _) in enumerate(plans) if i % 10 == 0}  # every tenth abort fails
    first_wave: list[Command] = []
    for plan, ongoing, pending in plans:
        first_wave.append(f.register(plan, "ONGOING", [f.action(ongoing, "ONGOING"), f.action(pending, "PENDING")]))
        first_wave.append(f.cancel(plan, by="operator-1", reason="load test"))

    def send_steadily(commands: Sequence[Command]) -> None:
        for command in commands:
            client.send(command)
            time.sleep(0.01)

    serve.start()
    warm_up = f.register()
    client.send(warm_up)
    client.wait_outcome(warm_up.command_id, follower, 120)  # the handler has joined its group
    sender = threading.Thread(target=send_steadily, args=(first_wave,))
    sender.start()
    seen: set[str] = set()
    deadline = time.monotonic() + 120
    while len(seen) < len(first_wave) // 3:
        assert time.monotonic() < deadline, serve.log()
        outcome_ids(follower, seen, 0.2)
    serve.kill()  # mid-run: commands still arriving, projections and translator mid-batch
    assert len(seen) < len(first_wave), "the kill came too late to test anything"
    serve.start()
    sender.join()
    # A sender that retries after a timeout re-sends the same command ids: they take effect once.
    for command in first_wave[:20]:
        client.send(command)
    wait_for({c.command_id for c in first_wave}, follower, seen, 180, "after the restart")

    aborts = [
        f.abort_failed(plan, ongoing) if plan in failing else f.abort_ok(plan, ongoing)
        for plan, ongoing, _ in plans
    ]
    send_steadily(aborts)
    wait_for({c.command_id for c in aborts}, follower, seen, 180, "aborts")

    # Every plan reached its final state, with exactly the events one handling makes.
    final = folded_plans(kafka, AvroCodec())
    for plan, ongoing, pending in plans:
        expected = "FAILED" if plan in failing else "CANCELLED"
        assert final[plan].state == expected
        assert final[plan].version == 7  # registered, 4 from the cancel, 2 from the abort
        states = {a.uuid: a.state for a in final[plan].actions}
        assert states == {ongoing: "FAILED" if plan in failing else "CANCELLED", pending: "CANCELLED"}

    # The read model equals a from-scratch replay of the events topic.
    stored = sorted((e for page in topic_pages(kafka, AvroCodec()) for e in page), key=lambda e: (e.source, e.position, e.version))
    assert len(stored) == PLANS * 7 + 1  # and the warm-up plan's registration
    fresh = ReadModel(":memory:", AvroCodec())
    fresh.process(stored)
    live_path = StorePaths.beside(Path(serve.env["WATCHER_ES_DB"])).model
    deadline = time.monotonic() + 60
    while True:
        live = ReadModel(live_path, AvroCodec())
        same = live.tables() == fresh.tables()
        live.close()
        if same:
            break
        assert time.monotonic() < deadline, "the live read model never matched a replay"
        time.sleep(0.5)

    # No message_id was ever delivered with two different contents, and none is missing.
    contents: dict[str, set[bytes]] = defaultdict(set)
    for priority in ("INFO", "ERROR"):
        topic = TopicFollower(kafka, kafka.topics.notification_topic(priority))
        deadline = time.monotonic() + 60
        while True:
            for msg in topic.drain():
                contents[header_map(msg.headers())["ce_id"]].add(msg.value() or b"")
            if len(contents) >= PLANS * 6 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        topic.close()
    assert len(contents) == PLANS * 6, f"{len(contents)} distinct notifications"
    assert all(len(values) == 1 for values in contents.values())
    follower.close()
    client.close()
