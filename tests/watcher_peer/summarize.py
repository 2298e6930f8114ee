"""Reads a recording (``<name>.jsonl`` + ``<name>.truth.json``) and prints, per scenario, the
notifications Watcher sent for its plan and actions, then facts about the records as a whole.

    python -m tests.watcher_peer.summarize [tests/watcher_peer/recordings/mix]

Each line: milliseconds since the scenario's first record, topic suffix/partition, event_type,
priority, the object (``plan`` or ``<action_type>#<n>`` in DB order), the payload's state (the
audit's records are listed with its plan's),
``old->new`` from ``state_update`` (``-`` when the payload has none, ``(none)`` when its fields are
null), and who is in ``_context`` (user, and the last 6 characters of global_request_id).
Records are ordered by timestamp; ``=`` marks a record with the same millisecond as the one
before (Kafka gives no order across partitions, and the timestamps have millisecond resolution).
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def decode(record: dict[str, Any]) -> dict[str, Any]:
    envelope = json.loads(record["value"])
    message: dict[str, Any] = json.loads(envelope["oslo.message"])
    return message


def subject(message: dict[str, Any]) -> tuple[str | None, str | None]:
    """(plan uuid, action uuid or None) a notification is about; ("audit:<uuid>", None) for audits."""
    data = message["payload"]["watcher_object.data"]
    event = message["event_type"]
    if event.startswith("action_plan."):
        return data["uuid"], None
    if event.startswith("action."):
        return data["action_plan"]["watcher_object.data"]["uuid"], data["uuid"]
    return f"audit:{data.get('uuid')}", None


def transition(data: dict[str, Any]) -> str:
    update = data.get("state_update")
    if not isinstance(update, dict):
        return "-"
    u = update["watcher_object.data"]
    if u.get("old_state") is None and u.get("state") is None:
        return "(none)"
    return f"{u.get('old_state')}->{u.get('state')}"


def _label(message: dict[str, Any], action: str | None, actions: dict[str, str]) -> str:
    if action:
        return actions.get(action, action[:8])
    return "audit" if message["event_type"].startswith("audit.") else "plan"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    base = Path(args[0]) if args else HERE / "recordings" / "mix"
    records = [json.loads(line) for line in base.with_suffix(".jsonl").read_text().splitlines()]
    truth = json.loads(base.with_suffix(".truth.json").read_text())
    by_plan: dict[str | None, list[tuple[dict[str, Any], dict[str, Any]]]] = defaultdict(list)
    for r in records:
        m = decode(r)
        by_plan[subject(m)[0]].append((r, m))

    for name, plan in truth["scenarios"].items():
        actions = {a["uuid"]: f"{a['action_type']}#{i}" for i, a in enumerate(truth["action_plans"][plan]["actions"])}
        state = truth["action_plans"][plan]["state"]
        final = ", ".join(f"{actions[a['uuid']]}={a['state']}" for a in truth["action_plans"][plan]["actions"])
        print(f"\n## {name}  plan {plan}: {state} ({final})")
        audit = f"audit:{truth['action_plans'][plan]['audit_uuid']}"
        rows = sorted(by_plan.get(plan, []) + by_plan.get(audit, []), key=lambda rm: rm[0]["timestamp"])
        t0 = rows[0][0]["timestamp"] if rows else 0
        previous = None
        for r, m in rows:
            data = m["payload"]["watcher_object.data"]
            _, action = subject(m)
            ctx = m["_context"]
            same = "=" if r["timestamp"] == previous else " "
            previous = r["timestamp"]
            fault = data.get("fault")
            fault_text = f"  fault={fault['watcher_object.data']['exception']}" if isinstance(fault, dict) else ""
            print(f"{same}{r['timestamp'] - t0:6d} {r['topic'].rsplit('.', 1)[1]}/{r['partition']} {m['event_type']:<27} "
                  f"{m['priority']:<5} {_label(m, action, actions):<12} {data.get('state'):<11} "
                  f"{transition(data):<24} user={ctx.get('user')} grid=..{(ctx.get('global_request_id') or '')[-6:]}{fault_text}")

    print("\n## records")
    print("topics/partitions:", dict(Counter(f"{r['topic']}/{r['partition']}" for r in records)))
    print("keys:", dict(Counter(str(r["key"]) for r in records)), " headers:", dict(Counter(len(r["headers"]) for r in records)),
          " timestamp types:", dict(Counter(r["timestamp_type"] for r in records)))
    envelopes = Counter(tuple(sorted(json.loads(r["value"]))) for r in records)
    print("envelopes:", {", ".join(k): v for k, v in envelopes.items()},
          " oslo.version:", dict(Counter(json.loads(r["value"])["oslo.version"] for r in records)))
    versions: dict[str, set[str]] = defaultdict(set)
    priorities: dict[str, set[str]] = defaultdict(set)
    for r in records:
        m = decode(r)
        versions[m["event_type"]].add(f"{m['payload']['watcher_object.name']} {m['payload']['watcher_object.version']}")
        priorities[m["event_type"]].add(f"{m['priority']}@{r['topic'].rsplit('.', 1)[1]}")
    for event in sorted(versions):
        print(f"  {event:<28} {', '.join(sorted(versions[event]))}  {', '.join(sorted(priorities[event]))}")
    ties = sum(1 for rows in by_plan.values() for a, b in zip(sorted(r["timestamp"] for r, _ in rows),
                                                             sorted(r["timestamp"] for r, _ in rows)[1:]) if a == b)
    print(f"records of one plan sharing a millisecond with the one before: {ties} of {len(records)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
