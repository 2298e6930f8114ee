"""On Kafka too, a command's events are all-or-none when the writer dies between two of them.

`serve` is SIGKILLed by the test-only fault point after the cancel's first event is prepared and
before the second: one command's events travel in one record, so nothing of it reached the
topic, the command's offset was never committed, and the restarted `serve` handles it in full.
"""

from __future__ import annotations

import time
import uuid

from eventstore.codec import AvroCodec
from eventstore.faults import VARIABLE
from eventstore.kafka.client import KafkaClient
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.io import topic_pages

from .. import factories as f
from tests.support.serve import Serve
from .folding import folded_plans


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
