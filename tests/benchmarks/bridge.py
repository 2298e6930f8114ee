"""The bridge's throughput: Watcher notifications handled per second, ``python -m tests.benchmarks.bridge``.

What python-watcher 17.0.0 really sent for eleven plans (tests/watcher_peer/recordings/mix.jsonl)
is copied ``--copies`` times with fresh uuids and message ids and a later timestamp each time,
produced without keys to ``<topic>.info`` and ``.error`` (3 partitions, as oslo.messaging's Kafka
driver spreads them) on a Tansu broker started on a free port, on this machine. Then the
bridge reads them from the start, as `serve --only bridge` runs it (its own source, ordering,
mirror and state file, its commands confirmed on the commands topic), until every notification
is taken and its position stored. Reported: notifications per second over the wall time of
that, the bridge's CPU seconds (this process) and the commands it sent. The broker runs beside
it on the same cores; the first and last second are the ordering's hold (1 s), which a long
run amortises.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from eventstore.bridge.state import BridgeState
from eventstore.codec import AvroCodec
from eventstore.kafka.client import KafkaClient
from eventstore.kafka.io import DeadLetters, Publisher
from eventstore.kafka.watcher import WatcherTopics, watcher_topics
from projections.kafka.service import KafkaBridge
from tests.benchmarks.kafka import Broker, Processes, fresh_settings, log

RECORDING = Path(__file__).parents[1] / "watcher_peer" / "recordings" / "mix.jsonl"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_STAMP = re.compile(r'\\"timestamp\\": \\"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6})\\"')


def copies(records: list[dict[str, Any]], n: int) -> list[tuple[str, str]]:
    """(topic suffix, value) of every record, ``n`` times, each copy with uuids of its own and on a day of
    its own, in the order Watcher sent them (each partition's timestamps grow, as one producer's do)."""
    records = sorted(records, key=lambda r: _STAMP.search(r["value"]).group(1))  # type: ignore[union-attr]
    out = []
    for k in range(n):
        fresh: dict[str, str] = {}
        for r in records:
            value = _UUID.sub(lambda m: fresh.setdefault(m.group(0), str(uuid.uuid4())), r["value"])
            value = _STAMP.sub(lambda m: m.group(0).replace(m.group(1)[:10], f"2030-{1 + k // 28 % 12:02d}-{1 + k % 28:02d}"), value)
            out.append((r["topic"].rsplit(".", 1)[1], value))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=100, help="copies of the eleven-plan recording (default 100: about 26,000 notifications)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    records = [json.loads(line) for line in RECORDING.read_text().splitlines()]
    procs = Processes()
    with tempfile.TemporaryDirectory(prefix="watcher-es-bridge-bench-") as tmp:
        workdir = Path(tmp)
        try:
            broker = Broker.start(procs, workdir, "tansu")
            kafka = fresh_settings(broker.address)
            topic = f"watcher{uuid.uuid4().hex[:8]}"
            admin = AdminClient({"bootstrap.servers": broker.address})
            for future in admin.create_topics(
                [NewTopic(t, num_partitions=3, replication_factor=1) for t in watcher_topics(topic)]
            ).values():
                future.result(30)
            values = copies(records, args.copies)
            producer = Producer({"bootstrap.servers": broker.address, "linger.ms": 5})
            for priority, value in values:
                producer.produce(f"{topic}.{priority}", value.encode())
                producer.poll(0)
            producer.flush(120)
            log(f"{len(values)} Watcher notifications ({args.copies} x {len(records)}) on {topic}.info/.error")

            state = BridgeState(workdir / "bridge-state.db")
            client, dead = KafkaClient(kafka, AvroCodec()), Publisher(kafka)
            cpu0, started = time.process_time(), time.perf_counter()
            part = KafkaBridge(WatcherTopics(kafka, topic, state.positions()), client, DeadLetters(dead, kafka.topics.dead_letters),
                               state, confirm_dead=dead.flush)
            sent = 0
            original_send = client.send_all

            def counting(commands: Any) -> None:
                nonlocal sent
                sent += len(commands)
                original_send(commands)

            client.send_all = counting  # type: ignore[method-assign]
            deadline = time.monotonic() + 600
            while part.taken < len(values) and time.monotonic() < deadline:
                part.poll(0.1)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu0
            part.close()
            client.close()
            report = {
                "notifications": len(values), "taken": part.taken, "commands": sent, "seconds": round(elapsed, 2),
                "notifications_per_second": round(part.taken / elapsed), "bridge_cpu_seconds": round(cpu, 2),
                "cpu_ms_per_notification": round(1000 * cpu / max(part.taken, 1), 3),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
        finally:
            procs.stop_all()
    print(f"bridge: {report['taken']} Watcher notifications in {report['seconds']} s: {report['notifications_per_second']}/s "
          f"({report['cpu_ms_per_notification']} ms of bridge CPU each, {report['commands']} commands sent, broker on the same 2 cores)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    sys.exit(0 if report["taken"] == report["notifications"] else 1)


if __name__ == "__main__":
    main()
