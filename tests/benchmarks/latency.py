"""How soon a cancel's first notification can be read on the embedded log: ``python -m tests.benchmarks.latency``.

Registers ``--plans`` ongoing plans, then cancels them one by one, timing from the moment the
cancel is handed to the service to the moment its ``action_plan.cancel.start`` is committed and
readable by another connection to the notification store (what `watcher-es notifications
--follow` polls); the read model's catch-up that follows is not part of it. Also reports the
whole command (`service.submit`: handling, notifications, read model). In milliseconds.
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
from projections.sqlite.backend import EmbeddedBackend
from eventstore.sqlite_support import connect
from projections.tracking import catch_up

from .. import factories as f


def measure(plans: int, db: Path) -> tuple[list[float], list[float]]:
    service = EmbeddedBackend(Settings(db=db, publisher_id="infra-optim:bench"))
    reader = connect(service.settings.paths.notifications, "NORMAL")
    uuids = []
    for _ in range(plans):
        plan = str(uuid.uuid4())
        service.submit(f.register(plan, "ONGOING", [f.action(state="ONGOING"), f.action(), f.action(state="SUCCEEDED")]))
        uuids.append(plan)
    visible, whole = [], []
    for plan in uuids:
        started = time.perf_counter()
        service.handler.handle(f.cancel(plan))
        catch_up(service.log, service.outbox)  # what EmbeddedBackend.submit does first
        row = reader.conn.execute(
            "SELECT 1 FROM notifications WHERE plan_uuid = ? AND event_type = 'action_plan.cancel.start'", (plan,)
        ).fetchone()
        visible.append((time.perf_counter() - started) * 1000)
        if row is None:
            raise SystemExit(f"no action_plan.cancel.start for {plan}")
        service.catch_up()  # the rest of submit: the read model, the periodic checkpoint
        whole.append((time.perf_counter() - started) * 1000)
    service.close()
    return visible, whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        visible, whole = measure(args.plans, Path(tmp) / "bench.db")
    print(json.dumps({"cancels": len(visible), "first_notification_visible": summary(visible), "whole_command": summary(whole)}))


def summary(samples: list[float]) -> dict[str, float]:
    ms = sorted(samples)
    return {"p50_ms": round(statistics.median(ms), 2), "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2), "max_ms": round(ms[-1], 2)}


if __name__ == "__main__":
    main()
