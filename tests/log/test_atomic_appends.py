"""A command's events are all-or-none, even when the writer dies between two of them, on both logs.

The process really is killed (SIGKILL, by the test-only fault point) after the first event is
prepared and before the rest. Embedded: the transaction never commits, so the plan is as it was,
and the same command sent again takes full effect once. Kafka: one command's events travel in
one record, so nothing of it reached the topic, the command's offset was never committed, and
the restarted `serve` handles it in full.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from eventstore.codec import AvroCodec
from eventstore.faults import VARIABLE
from eventstore.kafka.client import KafkaClient
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.io import topic_pages
from tests import factories as f
from tests.support.folding import folded_plans
from tests.support.serve import Serve
from tests.support.plan_documents import A, PLAN, plan_document, write_plan


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


def test_serve_killed_between_two_events_of_a_command_leaves_none_of_them(kafka: KafkaSettings, serve: Serve) -> None:
    client = KafkaClient(kafka, AvroCodec())
    outcomes = client.follow_outcomes(time.time_ns() // 1_000_000 - 5000)
    plan, running, pending = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    register = f.register(plan, "ONGOING", [f.action(running, "ONGOING"), f.action(pending, "PENDING")])
    cancel = f.cancel(plan)

    serve.env[VARIABLE] = "kill-between-events"
    serve.start()
    client.send(register)  # one event: passes the fault point
    assert client.wait_outcome(register.command_id, outcomes, 120).outcome == "accepted"
    client.send(cancel)  # four events: killed between the first and the second
    assert serve.proc is not None
    serve.proc.wait(120)
    assert serve.proc.returncode == -9, serve.log()

    events = [e for page in topic_pages(kafka, AvroCodec()) for e in page if e.plan_uuid == plan]
    assert [e.event_type for e in events] == ["ActionPlanRegistered"], "nothing of the cancel reached the topic"

    del serve.env[VARIABLE]
    serve.start()
    outcome = client.wait_outcome(cancel.command_id, outcomes, 120)
    assert (outcome.outcome, outcome.plan_state) == ("accepted", "CANCELLING")
    final = folded_plans(kafka, AvroCodec()).get(plan)
    assert final is not None and final.version == 5
    assert {a.uuid: a.state for a in final.actions} == {running: "CANCELLING", pending: "CANCELLED"}
    outcomes.close()
    client.close()
