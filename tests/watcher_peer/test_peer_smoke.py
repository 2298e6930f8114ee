"""python-watcher 17.0.0 itself, in a subprocess against the tests' broker: a short mix of plans
(cancelled while RECOMMENDED, cancelled while ONGOING, untouched), and what Watcher emitted for
them compared with its own DB. Every wait is on a condition (see WatcherPeer.wait_for)."""

from __future__ import annotations

import importlib.util
import json
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from .broker import notification_topics
from .record import record

pytestmark = pytest.mark.watcher  # and `kafka`, as every test on the broker


def _messages(records: list[dict[str, Any]], plan: str) -> list[tuple[int, str, dict[str, Any]]]:
    """(timestamp, topic, oslo message) of every record about ``plan`` or one of its actions."""
    found = []
    for r in records:
        message = json.loads(json.loads(r["value"])["oslo.message"])
        data = message["payload"]["watcher_object.data"]
        about = data.get("uuid") if message["event_type"].startswith("action_plan.") else (
            data["action_plan"]["watcher_object.data"]["uuid"] if message["event_type"].startswith("action.") else None)
        if about == plan:
            found.append((r["timestamp"], r["topic"], message))
    return sorted(found, key=lambda f: f[0])


def _events(messages: list[tuple[int, str, dict[str, Any]]], action: str | None = None) -> list[str]:
    return [m["event_type"] for _, _, m in messages
            if action is None or m["payload"]["watcher_object.data"].get("uuid") == action and m["event_type"].startswith("action.")]


def test_watcher_peer_smoke(broker: str, tmp_path: Path) -> None:
    if importlib.util.find_spec("watcher") is None:
        pytest.skip("python-watcher is not installed: pip install -e '.[test,watcher]'")
    topic = f"notifications-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    summary = record(broker, topic, tmp_path, scenarios=("recommended", "ongoing", "succeeded"), name="smoke")
    elapsed = time.monotonic() - started
    records = [json.loads(line) for line in (tmp_path / "smoke.jsonl").read_text().splitlines()]
    plans, truth = summary["scenarios"], summary["action_plans"]

    # The envelope: oslo.messaging's v2 envelope, no key, no headers, one topic per priority.
    assert records and {r["topic"] for r in records} <= set(notification_topics(topic))
    assert all(r["key"] is None and r["headers"] == [] for r in records)
    assert all(set(json.loads(r["value"])) == {"oslo.version", "oslo.message"} for r in records)
    assert {json.loads(r["value"])["oslo.version"] for r in records} == {"2.0"}

    # (a) cancelled while RECOMMENDED: the API's plain updates, in the canceller's context.
    plan = plans["recommended"]
    assert truth[plan]["state"] == "CANCELLED"
    assert [a["state"] for a in truth[plan]["actions"]] == ["CANCELLED"] * 3
    messages = _messages(records, plan)
    assert Counter(_events(messages)) == Counter({"action_plan.create": 1, "action.create": 3, "action_plan.update": 1, "action.update": 3})
    update = next(m for _, _, m in messages if m["event_type"] == "action_plan.update")
    assert update["payload"]["watcher_object.data"]["state_update"]["watcher_object.data"]["old_state"] == "RECOMMENDED"
    assert {m["_context"]["user"] for _, _, m in messages if m["event_type"].endswith(".update")} == {"canceller"}

    # (c) cancelled while its sleep runs: the sleep finishes, the next action is cancelled with
    # cancel.start/.end, the one after it only updated, and the plan ends CANCELLED.
    plan = plans["ongoing"]
    actions = {a["action_type"] + ("" if a["action_type"] != "peer" else "-" + a["input_parameters"]["tag"]): a for a in truth[plan]["actions"]}
    assert truth[plan]["state"] == "CANCELLED"
    assert actions["nop"]["state"] == actions["sleep"]["state"] == "SUCCEEDED"
    assert actions["peer-c-after-1"]["state"] == actions["peer-c-after-2"]["state"] == "CANCELLED"
    messages = _messages(records, plan)
    events = _events(messages)
    assert events.count("action_plan.cancel.start") == events.count("action_plan.cancel.end") == 1
    assert "action_plan.execution.end" not in events
    assert _events(messages, actions["peer-c-after-1"]["uuid"]) == ["action.create", "action.cancel.start", "action.update", "action.cancel.end"]
    assert _events(messages, actions["peer-c-after-2"]["uuid"]) == ["action.create", "action.update"]
    assert "action.cancel.start" not in _events(messages, actions["sleep"]["uuid"])
    cancelling = [m for _, _, m in messages if m["event_type"] == "action_plan.update"
                  and m["payload"]["watcher_object.data"]["state"] == "CANCELLING"]
    assert [m["_context"]["user"] for m in cancelling] == ["canceller"]
    applier = [m for _, _, m in messages if m["event_type"].startswith(("action_plan.cancel", "action.cancel"))]
    assert {m["_context"]["user"] for m in applier} == {"starter"}
    last = next(m for _, _, m in reversed(messages) if m["event_type"] == "action_plan.update")
    assert last["payload"]["watcher_object.data"]["state"] == "CANCELLED"

    # (i) untouched: runs to SUCCEEDED.
    plan = plans["succeeded"]
    assert truth[plan]["state"] == "SUCCEEDED"
    assert {a["state"] for a in truth[plan]["actions"]} == {"SUCCEEDED"}
    events = _events(_messages(records, plan))
    assert events.count("action_plan.execution.start") == events.count("action_plan.execution.end") == 1
    assert events.count("action.execution.end") == 3 and not any("cancel" in e for e in events)

    assert elapsed < 90, f"the smoke mix took {elapsed:.1f} s"
