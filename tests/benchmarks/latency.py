"""How soon a cancel's first notification can be read on the embedded log: ``python -m tests.benchmarks.latency``.

Registers ``--plans`` ongoing plans, then cancels them one by one, timing from the moment the
cancel is submitted to the moment its ``action_plan.cancel.start`` is readable by another
connection to the notification store (what `watcher-es notifications --follow` polls).
Reports p50, p99 and max in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from eventstore.config import Settings
from eventstore.service import EmbeddedService
from eventstore.sqlite_support import connect

from .. import factories as f


def measure(plans: int, db: Path) -> list[float]:
    service = EmbeddedService(Settings(db=db, publisher_id="infra-optim:bench"))
    reader = connect(service.settings.paths.notifications, "NORMAL")
    uuids = []
    for _ in range(plans):
        plan = str(uuid.uuid4())
        service.submit(f.register(plan, "ONGOING", [f.action(state="ONGOING"), f.action(), f.action(state="SUCCEEDED")]))
        uuids.append(plan)
    latencies = []
    for plan in uuids:
        started = time.perf_counter()
        service.submit(f.cancel(plan))
        row = reader.conn.execute(
            "SELECT 1 FROM notifications WHERE plan_uuid = ? AND event_type = 'action_plan.cancel.start'", (plan,)
        ).fetchone()
        latencies.append((time.perf_counter() - started) * 1000)
        if row is None:
            raise SystemExit(f"no action_plan.cancel.start for {plan}")
    service.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ms = sorted(measure(args.plans, Path(tmp) / "bench.db"))
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(json.dumps({
        "cancels": len(ms), "p50_ms": round(statistics.median(ms), 2), "p99_ms": round(p99, 2), "max_ms": round(ms[-1], 2),
    }))


if __name__ == "__main__":
    main()
