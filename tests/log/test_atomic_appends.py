"""A command's events are all-or-none on the embedded log, even when the writer dies between two of them.

The process really is killed (SIGKILL, by the test-only fault point) after the first event is
inserted and before the rest: the transaction never commits, so the plan is as it was, and
the same command sent again takes full effect once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from eventstore.faults import VARIABLE

from tests.test_cli import A, PLAN, plan_document, write_plan


def run(db: Path, *args: str, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_ES_")}
    if fault:
        env[VARIABLE] = fault
    return subprocess.run(
        [sys.executable, "-m", "projections", "--db", str(db), "--publisher-id", "infra-optim:test", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )


def test_a_writer_killed_between_two_events_leaves_none_of_them(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    assert run(db, "register", write_plan(tmp_path, plan_document(action_states=("ONGOING", "PENDING")), "p.json")).returncode == 0
    assert run(db, "report-progress", PLAN, "ONGOING").returncode == 0

    killed = run(db, "cancel", PLAN, "--reason", "maintenance", "--command-id", "cancel-1", fault="kill-between-events")
    assert killed.returncode == -signal.SIGKILL

    status = json.loads(run(db, "status", PLAN, "--json").stdout)
    assert (status["plan"]["state"], status["plan"]["version"]) == ("ONGOING", 2)
    assert [a["state"] for a in status["actions"]] == ["ONGOING", "PENDING"]
    audit = json.loads(run(db, "audit", PLAN, "--json").stdout)
    assert "cancel-1" not in {e["command_id"] for e in audit["entries"]}, "the command was not recorded as handled"
    assert run(db, "verify").returncode == 0

    again = json.loads(run(db, "cancel", PLAN, "--reason", "maintenance", "--command-id", "cancel-1", "--json").stdout)
    assert (again["outcome"], again["duplicate"]) == ("accepted", False)
    status = json.loads(run(db, "status", PLAN, "--json").stdout)
    assert status["plan"]["state"] == "CANCELLING"
    assert {a["uuid"]: a["state"] for a in status["actions"]} == {A[0]: "CANCELLING", A[1]: "CANCELLED"}
