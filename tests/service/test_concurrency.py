"""Several operators on one store at once: any number of CLI processes (and a `serve`) never
crash, never apply an event twice, never lose a command.

Real processes, in parallel: the positions each consumer advances are read inside the
transaction that applies the batch, so a second process catching up the same file waits and
then finds nothing left to do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from tests.support.plan_documents import plan_document, write_plan
from tests.support.waiting import wait_until


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_ES_")} | {"NO_COLOR": "1"}


def _start(db: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "projections", "--db", str(db), "--publisher-id", "infra-optim:test", *args],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


#: The CLI, its store's modules loaded, started at the instant ``argv[1]`` (a time.time()) with the rest of argv.
_AT_ONCE = """
import sys, time
import projections.sqlite.backend, projections.sqlite.service
from projections.cli import main
at, sys.argv = float(sys.argv[1]), ["watcher-es", *sys.argv[2:]]
time.sleep(max(0.0, at - time.time()))  # the start at one instant is the load under test
main()
"""


def _start_at(at: float, db: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _AT_ONCE, str(at), "--db", str(db), "--publisher-id", "infra-optim:test", *args],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _created_by(serve: subprocess.Popen[str], db: Path) -> None:
    """Until serve has created the store (read commands never do)."""

    def created() -> bool:
        assert serve.poll() is None, "serve exited before it created the store"
        return db.exists()

    wait_until(created, 60, f"serve to create the store {db}")


def _document(plan: str) -> dict[str, Any]:
    """A plan of its own, with action uuids of its own (the test plans share none)."""
    document = plan_document()
    document["uuid"] = plan
    actions: list[dict[str, Any]] = document["actions"]
    for i, action in enumerate(actions):
        action["uuid"] = str(uuid.uuid4())
        action["parents"] = [actions[i - 1]["uuid"]] if i else []
    return document


def test_registers_cancels_and_queries_in_parallel_on_one_store(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    plans = [str(uuid.uuid4()) for _ in range(12)]
    files = [write_plan(tmp_path, _document(p), f"{p}.json") for p in plans]
    serve = _start(db, "serve", "--interval", "0.05")
    _created_by(serve, db)
    try:
        writers = [_start(db, "register", f, "--json") for f in files]
        readers = [_start(db, "plans", "--json") for _ in range(12)]
        results = [(p, *p.communicate(timeout=180)) for p in writers + readers]
        cancels = [_start(db, "cancel", plan, "--reason", "parallel", "--json") for plan in plans]
        readers = [_start(db, "notifications", "--json") for _ in range(6)]
        results += [(p, *p.communicate(timeout=180)) for p in cancels + readers]
    finally:
        serve.terminate()
        _, serve_err = serve.communicate(timeout=60)
    for proc, _, stderr in results:
        assert "Traceback" not in stderr, stderr
        assert proc.returncode == 0, stderr
    assert "Traceback" not in serve_err, serve_err
    audit = [json.loads(_start(db, "audit", plan, "--json").communicate(timeout=60)[0]) for plan in plans]
    for story in audit:
        commands = [e for e in story["entries"] if e["kind"] == "command"]
        assert [c["outcome"] for c in commands] == ["accepted", "accepted"], "each command has exactly one outcome"
    verified = subprocess.run(
        [sys.executable, "-m", "projections", "--db", str(db), "verify"], env=_env(), capture_output=True, text=True, timeout=120,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_the_first_start_is_safe_for_everyone_at_once(tmp_path: Path) -> None:
    """24 writers and a `serve` started together on a store that does not exist yet: whoever comes
    first creates it, the others wait for its lock instead of failing (`database is locked`)."""
    db = tmp_path / "new" / "store.db"
    db.parent.mkdir()
    plans = [str(uuid.uuid4()) for _ in range(24)]
    files = [write_plan(tmp_path, _document(p), f"{p}.json") for p in plans]
    at = time.time() + 5  # every process has loaded its modules by then, even on two busy cores
    everyone = [_start_at(at, db, "serve", "--interval", "0.05"), *(_start_at(at, db, "register", f, "--json") for f in files)]
    serve, writers = everyone[0], everyone[1:]
    results = [(p, *p.communicate(timeout=180)) for p in writers]
    serve.terminate()
    _, serve_err = serve.communicate(timeout=60)
    for proc, out, err in results:
        assert proc.returncode == 0 and json.loads(out)["outcome"] == "accepted", err
    assert serve.returncode == 0 and "Traceback" not in serve_err, serve_err
    listed = _start(db, "plans", "--json").communicate(timeout=60)[0].splitlines()
    assert sorted(json.loads(line)["uuid"] for line in listed) == sorted(plans)


def test_eight_operators_for_thirty_seconds(tmp_path: Path) -> None:
    """8 processes at a time issue commands and queries for 30 s beside a `serve`; then the store
    verifies, every command has exactly one outcome in the audit, and nobody saw a traceback."""
    db = tmp_path / "store.db"
    serve = _start(db, "serve", "--interval", "0.05")
    _created_by(serve, db)
    failures: list[str] = []
    sent: dict[str, list[str]] = {}
    lock = threading.Lock()

    def operator(n: int) -> None:
        stop = time.monotonic() + 30  # thirty seconds of load is what is tested, not a wait
        while time.monotonic() < stop:
            plan = str(uuid.uuid4())
            steps: list[tuple[str, ...]] = [
                ("register", write_plan(tmp_path, _document(plan), f"{plan}.json"), "--json"),
                ("plans", "--json"),
                ("cancel", plan, "--reason", f"operator {n}", "--json"),
                ("status", plan, "--json"),
                ("notifications", "--plan", plan, "--json"),
            ]
            for step in steps:
                out, err = _start(db, *step).communicate(timeout=120)
                if "Traceback" in err or "Traceback" in out:
                    with lock:
                        failures.append(f"{step}: {err[-2000:]}")
            with lock:
                sent.setdefault(plan, []).extend(["register", "cancel"])

    try:
        workers = [threading.Thread(target=operator, args=(n,)) for n in range(8)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    finally:
        serve.terminate()
        _, serve_err = serve.communicate(timeout=60)
    assert failures == [] and "Traceback" not in serve_err, (failures, serve_err[-2000:])
    assert serve.returncode == 0, "SIGTERM stops serve cleanly, as on Kafka"
    assert len(sent) >= 8
    for plan in sent:
        story = json.loads(_start(db, "audit", plan, "--json").communicate(timeout=60)[0])
        commands = [e for e in story["entries"] if e["kind"] == "command"]
        assert [c["type"] for c in commands] == ["RegisterActionPlan", "CancelActionPlan"], "exactly one outcome each"
    verified = subprocess.run(
        [sys.executable, "-m", "projections", "--db", str(db), "verify"], env=_env(), capture_output=True, text=True, timeout=300,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
