"""How fast a full replay runs and how much memory it takes: ``python -m tests.benchmarks.rebuild``.

Fills a fresh embedded log with ``--events`` events (synthetic plans that are registered, run
part-way, cancelled and their aborts reported: 15 events and 7 commands each), decided by the real domain
code and appended in big transactions with the real chain hashes, then replays it in a child
process so the peak RSS reported is the replay's alone, not the fill's.

    python -m tests.benchmarks.rebuild --events 1000000
    python -m tests.benchmarks.rebuild --events 100000 --verify
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventstore.codec import AvroCodec
from eventstore.config import StorePaths
from eventstore.domain.decide import decide
from eventstore.domain.messages import (
    Action,
    Audit,
    CancelActionPlan,
    Command,
    RegisterActionPlan,
    ReportAbortResult,
    ReportActionPlanProgress,
    ReportActionProgress,
    Strategy,
    to_record,
)
from eventstore.domain.plan import Plan, evolve
from eventstore.log import CommandRecord, chain_hash, command_hash
from eventstore.sqlite.log import SqliteEventLog
from eventstore.sqlite_support import write_transaction

T0 = 1_700_000_000_000_000
EVENTS_PER_PLAN = 15
PLANS_PER_TRANSACTION = 2000


def plan_commands(n: int, at: int) -> Iterator[Command]:
    """One plan's life: registered, started, one action done, one running, cancelled, abort ok."""
    plan = str(uuid.UUID(int=n + 1))
    actions = [str(uuid.uuid5(uuid.NAMESPACE_OID, f"{n}/{i}")) for i in range(5)]
    base: dict[str, Any] = dict(issued_by="bench", origin="tests.benchmarks", plan_uuid=plan)
    ids = iter(f"bench-{n}-{i}" for i in range(10))
    yield RegisterActionPlan(
        command_id=next(ids), issued_at=at, state="RECOMMENDED", global_efficacy="{}", created_at=at, updated_at=None, deleted_at=None,
        audit=Audit(str(uuid.UUID(int=10**12 + n)), str(uuid.UUID(int=1)), str(uuid.UUID(int=2)), "ONESHOT", "SUCCEEDED", "[]", "{}", None, at),
        strategy=Strategy(str(uuid.UUID(int=2)), "bench", "benchmark strategy", "{}", at),
        actions=tuple(Action(a, "migrate", '{"migration_type": "live"}', (), "PENDING", at) for a in actions),
        **base,
    )
    yield ReportActionPlanProgress(next(ids), at, state="ONGOING", **base)
    for action, state in ((actions[0], "ONGOING"), (actions[0], "SUCCEEDED"), (actions[1], "ONGOING")):
        yield ReportActionProgress(next(ids), at, action_uuid=action, state=state, **base)
    yield CancelActionPlan(next(ids), at, reason="benchmark", **{**base, "issued_by": "admin"})
    yield ReportAbortResult(next(ids), at, "bench", "tests.benchmarks", plan, actions[1], None)


@dataclass(frozen=True)
class _Template:
    """One plan's commands and events as records, decided once by the real domain code."""

    steps: list[tuple[str, dict[str, Any], list[tuple[str, dict[str, Any]]]]]  # command type, record, events
    ids: list[str]  # every identifier in the records, renamed per plan

    @classmethod
    def build(cls) -> _Template:
        plan: Plan | None = None
        steps = []
        for command in plan_commands(0, T0):
            decided = decide(plan, command, T0)
            for event in decided:
                plan = evolve(plan, event)
            steps.append((type(command).__name__, to_record(command), [(type(e).__name__, to_record(e)) for e in decided]))
        found: set[str] = set()
        for _, record, events in steps:
            for value in (record, *(r for _, r in events)):
                _collect_ids(value, found)
        return cls(steps, sorted(found))


def _collect_ids(value: Any, found: set[str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if k in ("uuid", "plan_uuid", "action_uuid", "event_id", "command_id") and isinstance(v, str):
                found.add(v)
            else:
                _collect_ids(v, found)
    elif isinstance(value, list):
        for v in value:
            _collect_ids(v, found)


def _renamed(value: Any, ids: dict[str, str], shift: int) -> Any:
    if isinstance(value, dict):
        return {k: (v + shift if isinstance(v, int) and (k.endswith("_at") or k == "abort_deadline") else _renamed(v, ids, shift)) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v, ids, shift) for v in value]
    if isinstance(value, str):
        return ids.get(value, value)
    return value


def fill(path: Path, events: int) -> int:
    """Append about ``events`` events to a fresh log; returns how many were written.

    Every plan is the template plan with fresh identifiers and times, encoded with the real
    codec and chained with the real hash, so the replay sees exactly what the handler writes.
    """
    log = SqliteEventLog(path)
    codec = AvroCodec()
    log.keep_schemas(codec.current_schemas())
    log.db.conn.execute("PRAGMA synchronous=OFF")  # a benchmark fixture, not a record
    template = _Template.build()
    position, written, n = log.last_position(), 0, 0
    command_head = ""  # the commands table's own chain (what `verify` checks), across every plan
    while written < events:
        event_rows: list[tuple[Any, ...]] = []
        command_rows: list[tuple[Any, ...]] = []
        for _ in range(PLANS_PER_TRANSACTION):
            if written >= events:
                break
            ids = {old: f"{n:08x}-{k:04x}-4000-8000-{n * 64 + k:012x}" for k, old in enumerate(template.ids)}
            shift = n * 1_000_000
            previous, version = "", 0
            for command_type, command_record, decided in template.steps:
                command = _renamed(command_record, ids, shift)
                first = position + 1
                for name, event_record in decided:
                    record = _renamed(event_record, ids, shift)
                    body = codec.encode(name, record)
                    previous = chain_hash(previous, body)
                    position += 1
                    version += 1
                    event_rows.append((position, record["plan_uuid"], version, record["event_id"], name, record["command_id"], record["occurred_at"], body, previous))
                stored = CommandRecord(
                    command["command_id"], command_type, command["plan_uuid"], command["issued_by"], command["origin"], command["issued_at"],
                    codec.encode(command_type, command), "accepted", "", first if decided else None, position if decided else None,
                )
                command_head = command_hash(command_head, stored)
                command_rows.append((*dataclasses.astuple(stored), command_head))
                written += len(decided)
            n += 1
        with write_transaction(log.db):
            log.db.conn.executemany(
                "INSERT INTO events (position, plan_uuid, version, event_id, event_type, command_id, occurred_at, body, hash)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", event_rows,
            )
            log.db.conn.executemany(
                "INSERT INTO commands (command_id, command_type, plan_uuid, issued_by, origin, issued_at, body, outcome, reason,"
                " first_position, last_position, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", command_rows,
            )
        print(f"filled {written:,} events", file=sys.stderr, end="\r")
    print(file=sys.stderr)
    log.close()
    return written


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_replay(db: Path) -> dict[str, Any]:
    """The measured part, run in its own process: a full rebuild of the live model.

    ``swap_seconds`` is the part spent copying the finished model into the live file, which
    grows with the model's size, not with the work of replaying.
    """
    from projections.replay import ReplayProgress, rebuild_live
    from projections.sqlite.history import SqliteHistory

    swap_started: list[float] = []

    def on_progress(p: ReplayProgress) -> None:
        if p.phase == "swap":
            swap_started.append(time.monotonic())

    log = SqliteEventLog(db)
    codec = AvroCodec()
    codec.learn(log.writer_schemas())
    result = rebuild_live(SqliteHistory(log), codec, StorePaths.beside(db).model, progress=on_progress)
    swap_seconds = time.monotonic() - swap_started[0]
    log.close()
    return {"phase": "replay", "events": result.events, "seconds": round(result.seconds, 2),
            "events_per_second": round(result.events_per_second), "swap_seconds": round(swap_seconds, 2),
            "peak_rss_mb": round(peak_rss_mb(), 1)}


def run_verify(db: Path) -> dict[str, Any]:
    """Chains plus an in-memory rebuild compared with the live model."""
    from projections.read_model import ReadModel
    from projections.sqlite.history import SqliteHistory
    from projections.verify import verify

    log = SqliteEventLog(db)
    codec = AvroCodec()
    codec.learn(log.writer_schemas())
    model = ReadModel(StorePaths.beside(db).model, codec)
    started = time.monotonic()
    report = verify(SqliteHistory(log), codec, model)
    seconds = time.monotonic() - started
    return {"phase": "verify", "events": report.events, "seconds": round(seconds, 2),
            "events_per_second": round(report.events / seconds), "peak_rss_mb": round(peak_rss_mb(), 1)}


def child(phase: str, db: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "tests.benchmarks.rebuild", "--phase", phase, "--db", str(db)], check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="events to fill the log with (default 100000)")
    parser.add_argument("--db", type=Path, help="use (and keep) this log instead of a temporary one; filled only if missing")
    parser.add_argument("--verify", action="store_true", help="also time `verify` (its fresh model is in memory)")
    parser.add_argument("--phase", choices=("replay", "verify"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps((run_replay if args.phase == "replay" else run_verify)(args.db)))
        return
    with tempfile.TemporaryDirectory(prefix="watcher-es-bench-") as tmp:
        db = args.db or Path(tmp) / "bench.db"
        if not db.exists():
            started = time.monotonic()
            written = fill(db, args.events)
            print(f"fill: {written:,} events in {time.monotonic() - started:.1f}s", file=sys.stderr)
        log_mb = db.stat().st_size / 2**20
        for phase in ("replay", "verify") if args.verify else ("replay",):
            result = child(phase, db)
            model_mb = StorePaths.beside(db).model.stat().st_size / 2**20
            print(json.dumps({**result, "log_mb": round(log_mb, 1), "model_mb": round(model_mb, 1)}))


if __name__ == "__main__":
    main()
