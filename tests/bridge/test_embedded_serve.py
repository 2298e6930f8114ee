"""`serve --watcher-topic --watcher-bootstrap-servers` on the embedded store: Watcher's
notifications on a cluster, watcher-es's log in SQLite, the commands handled in `serve` itself."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from confluent_kafka import Producer

from tests.support.recording import RECORDS, TRUTH
from tests.support.serve import Serve, run_cli
from tests.support.waiting import wait_until
from tests.watcher_peer.broker import ensure_topics, notification_topics


def test_the_embedded_store_mirrors_watcher_from_a_cluster(broker: str, tmp_path: Path) -> None:
    topic = f"watcher{uuid.uuid4().hex[:8]}"
    ensure_topics(broker, notification_topics(topic), partitions=3)
    producer = Producer({"bootstrap.servers": broker})
    for r in sorted(RECORDS, key=lambda r: r["timestamp"]):  # as Watcher sent them
        producer.produce(f"{topic}.{r['topic'].rsplit('.', 1)[1]}", r["value"].encode())
    assert producer.flush(30) == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_ES_")}
    env.update(WATCHER_ES_DB=str(tmp_path / "w.db"), NO_COLOR="1")
    serve = Serve(env, tmp_path / "serve.log", ("--watcher-topic", topic, "--watcher-bootstrap-servers", broker)).start()
    try:
        def mirrored() -> bool:
            listed = run_cli(env, "plans", "--json")
            states = {p["uuid"]: p["state"] for p in map(json.loads, listed.stdout.splitlines())} if listed.returncode == 0 else {}
            return states == {plan: truth["state"] for plan, truth in TRUTH["action_plans"].items()}

        wait_until(mirrored, 60, lambda: f"the embedded store to mirror Watcher's eleven plans; serve said: {serve.log()[-800:]}")
        assert all(json.loads(line)["mirrored"] for line in run_cli(env, "plans", "--json").stdout.splitlines())
        assert "verified" in run_cli(env, "verify").stdout
    finally:
        serve.stop()
    assert "Traceback" not in serve.log()
