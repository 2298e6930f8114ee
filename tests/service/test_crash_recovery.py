"""SIGKILL `serve` in the middle of 200 cancellations; after a restart everything is as if it never died."""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

from eventstore.codec import AvroCodec
from eventstore.config import StorePaths
from eventstore.domain.messages import Command
from eventstore.kafka.client import KafkaClient
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.io import TopicFollower, topic_pages
from eventstore.kafka.records import header_map
from projections.kafka.audit import AuditTrail
from projections.read_model import ReadModel

from tests import factories as f
from tests.support.folding import folded_plans
from tests.support.outcomes import read_outcomes, send_steadily, wait_outcomes
from tests.support.serve import Serve
from tests.support.topics import end_of
from tests.support.waiting import wait_for_position, wait_until

PLANS = 200
#: Commands arrive one every PACE_S, a steady stream, so the kill lands while they still arrive.
PACE_S = 0.01


def test_sigkill_mid_run_then_restart(kafka: KafkaSettings, serve: Serve, tmp_path: Path) -> None:
    client = KafkaClient(kafka, AvroCodec())
    follower = client.follow_outcomes(time.time_ns() // 1_000_000 - 5000)
    plans = [(str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())) for _ in range(PLANS)]
    failing = {p for i, (p, _, _) in enumerate(plans) if i % 10 == 0}  # every tenth abort fails
    first_wave: list[Command] = []
    for plan, ongoing, pending in plans:
        first_wave.append(f.register(plan, "ONGOING", [f.action(ongoing, "ONGOING"), f.action(pending, "PENDING")]))
        first_wave.append(f.cancel(plan, by="operator-1", reason="load test"))

    serve.start()
    warm_up = f.register()
    client.send(warm_up)
    client.wait_outcome(warm_up.command_id, follower, 120)  # the handler has joined its group
    sender = threading.Thread(target=send_steadily, args=(client, first_wave, PACE_S))
    sender.start()
    seen: set[str] = set()
    wait_until(lambda: len(read_outcomes(follower, seen)) >= len(first_wave) // 3, 120,
               lambda: f"a third of the first wave handled\n{serve.log()}", interval=0)
    serve.kill()  # mid-run: commands still arriving, projections and translator mid-batch
    assert len(seen) < len(first_wave), "the kill came too late to test anything"
    serve.start()
    sender.join()
    # A sender that retries after a timeout re-sends the same command ids: they take effect once.
    for command in first_wave[:20]:
        client.send(command)
    wait_outcomes(follower, (c.command_id for c in first_wave), seen, 180, "after the restart", serve.log)

    aborts = [
        f.abort_failed(plan, ongoing) if plan in failing else f.abort_ok(plan, ongoing)
        for plan, ongoing, _ in plans
    ]
    send_steadily(client, aborts, PACE_S)
    wait_outcomes(follower, (c.command_id for c in aborts), seen, 180, "aborts", serve.log)

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

    def consumed() -> dict[str, int]:  # every record the live model has been through, skipped ones too
        live = ReadModel(live_path, AvroCodec())
        try:
            return AuditTrail(live.db, AvroCodec()).positions()
        finally:
            live.close()

    wait_for_position(consumed, end_of(kafka, kafka.topics.events), 60, "the live read model at the end of the events topic", interval=0.5)
    live = ReadModel(live_path, AvroCodec())
    try:
        assert live.tables() == fresh.tables(), "the live read model equals a replay"
    finally:
        live.close()

    # No message_id was ever delivered with two different contents, and none is missing.
    contents: dict[str, set[bytes]] = defaultdict(set)
    topics = [TopicFollower(kafka, kafka.topics.notification_topic(priority)) for priority in ("INFO", "ERROR")]

    def delivered() -> int:
        for topic in topics:
            for msg in topic.poll(0.2):
                contents[header_map(msg.headers())["ce_id"]].add(msg.value() or b"")
        return len(contents)

    try:
        wait_until(lambda: delivered() >= PLANS * 6, 60, lambda: f"every notification delivered ({len(contents)} so far)", interval=0)
        for topic in topics:  # and whatever else is there up to the end
            for msg in topic.drain():
                contents[header_map(msg.headers())["ce_id"]].add(msg.value() or b"")
    finally:
        for topic in topics:
            topic.close()
    assert len(contents) == PLANS * 6, f"{len(contents)} distinct notifications"
    assert all(len(values) == 1 for values in contents.values())
    follower.close()
    client.close()
