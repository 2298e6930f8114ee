"""Records what python-watcher 17.0.0 emits for a mix of cancellations.

    python -m tests.watcher_peer.record [--bootstrap-servers HOST:PORT] [--topic notifications] \
        [--out tests/watcher_peer/recordings] [--no-crash]

Without ``--bootstrap-servers`` it starts a Tansu broker of its own. It creates
``<topic>.info`` / ``<topic>.error`` (3 partitions each), runs Watcher (``WatcherPeer``)
through the scenarios below, stops it (which flushes its producer), then writes

* ``mix.jsonl``: every record on the two topics (topic, partition, offset, timestamp, key,
  headers, value as text), one JSON object a line, in (topic, partition, offset) order;
* ``mix.truth.json``: Watcher's DB at the end (every plan and action state), which plan is
  which scenario, who did what with which global request id, and the timings.

Scenarios (``SCENARIOS``; the smoke test runs a subset through ``run_mix``):

a  recommended       cancelled while RECOMMENDED
b  pending           cancelled while PENDING: started while (c) holds the applier's only worker
c  ongoing           cancelled while its ``sleep`` (2 s) runs, two ``peer`` actions after it
d  last_action       cancelled while its last action (the dummy's ``sleep``) runs
e  abort_ok          an action still ONGOING at revert, whose abort() works
f  abort_raises      the same, abort() raises
g  abort_error       the same, abort() loses the action's record: Watcher's bookkeeping fails
h  deleted           a RECOMMENDED plan deleted
i  succeeded         an untouched plan that runs and SUCCEEDS
j  superseded        a RECOMMENDED plan made SUPERSEDED by Watcher's expiry periodic
k  applier_crash     the applier dies (SIGKILL) during a plan; Watcher's start-up sync cancels it
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tests.support.tansu import Tansu

from .broker import ensure_topics, notification_topics, read_records
from .peer import Identity, WatcherPeer, new_global_request_id

HERE = Path(__file__).resolve().parent

AUDITOR = Identity(user="auditor", project="proj-audit")
STARTER = Identity(user="starter", project="proj-ops")
CANCELLER = Identity(user="canceller", project="proj-ops")

SCENARIOS = ("recommended", "pending", "ongoing", "last_action", "abort_ok", "abort_raises", "abort_error",
             "deleted", "succeeded", "superseded", "applier_crash")


def peer_action(tag: str, duration: float, *, pair: bool = False, on_cancel: str = "finish", abort: str = "succeed") -> dict[str, Any]:
    return {"action_type": "peer_pair" if pair else "peer",
            "input_parameters": {"duration": duration, "tag": tag, "on_cancel": on_cancel, "abort": abort}}


def nop(message: str) -> dict[str, Any]:
    return {"action_type": "nop", "input_parameters": {"message": message}}


def sleep(seconds: int) -> dict[str, Any]:
    return {"action_type": "sleep", "input_parameters": {"duration": seconds}}


class Mix:
    """Runs scenarios on a peer and keeps a journal: plan uuid per scenario, who did what."""

    def __init__(self, peer: WatcherPeer, sleep_seconds: int = 2) -> None:
        self.peer = peer
        self.sleep_seconds = sleep_seconds
        self.plans: dict[str, str] = {}
        self.journal: list[dict[str, Any]] = []
        self.timings: dict[str, float] = {}

    def _do(self, scenario: str, verb: str, who: Identity, call: Callable[[Identity, str], Any]) -> Any:
        grid = new_global_request_id()
        self.journal.append({"scenario": scenario, "plan": self.plans[scenario], "verb": verb, "user": who.user,
                             "project_id": who.project, "global_request_id": grid, "at": time.time()})
        return call(who, grid)

    def start(self, scenario: str) -> None:
        plan = self.plans[scenario]
        self._do(scenario, "start", STARTER, lambda who, grid: self.peer.start_plan(plan, who, grid))

    def cancel(self, scenario: str) -> str:
        plan = self.plans[scenario]
        return str(self._do(scenario, "cancel", CANCELLER, lambda who, grid: self.peer.cancel_plan(plan, who, grid)))

    def recommend(self, scenarios: Iterable[str]) -> None:
        """Creates every scenario's audit first, then waits for the plans (the decision engine
        runs two audits at a time)."""
        specs: dict[str, tuple[str, str, dict[str, Any]]] = {}
        dummy = ("dummy", "dummy", {"para1": 1})
        for s in scenarios:
            if s == "ongoing":
                specs[s] = ("unclassified", "actuator", {"actions": [
                    nop("c: first"), sleep(self.sleep_seconds), peer_action("c-after-1", 0.05), peer_action("c-after-2", 0.05)]})
            elif s == "last_action":
                specs[s] = ("dummy", "dummy", {"para1": self.sleep_seconds})
            elif s in ("abort_ok", "abort_raises", "abort_error"):
                mode = {"abort_ok": "succeed", "abort_raises": "raise", "abort_error": "lose_record"}[s]
                specs[s] = ("unclassified", "actuator", {"actions": [
                    peer_action(f"{s}-1", 20, pair=True, on_cancel="interrupt", abort=mode),
                    peer_action(f"{s}-2", 20, pair=True, on_cancel="interrupt", abort=mode)]})
            elif s == "applier_crash":
                specs[s] = ("unclassified", "actuator", {"actions": [nop("k: first"), peer_action("k-long", 60), nop("k: second")]})
            else:
                specs[s] = dummy
        audits = {}
        for s, (goal, strategy, params) in specs.items():
            grid = new_global_request_id()
            audits[s] = self.peer.create_audit(goal, strategy, params, AUDITOR, grid)
            self.journal.append({"scenario": s, "audit": audits[s], "verb": f"audit {goal}/{strategy}", "user": AUDITOR.user,
                                 "project_id": AUDITOR.project, "global_request_id": grid, "at": time.time()})
        for s, audit in audits.items():
            self.plans[s] = self.peer.wait_audit_plan(audit)

    def run(self, scenarios: Iterable[str]) -> None:
        wanted = [s for s in SCENARIOS if s in set(scenarios)]
        peer = self.peer
        t0 = time.monotonic()
        self.recommend(wanted)
        self.timings["recommend_all"] = time.monotonic() - t0

        if "recommended" in wanted:  # (a)
            assert self.cancel("recommended") == "CANCELLED"
            peer.wait_plan_state(self.plans["recommended"], "CANCELLED")
        if "deleted" in wanted:  # (h)
            plan = self.plans["deleted"]
            self._do("deleted", "delete", CANCELLER, lambda who, grid: peer.delete_plan(plan, who, grid))
            peer.wait_plan_state(plan, "DELETED")
        if "superseded" in wanted:  # (j)
            self.journal.append({"scenario": "superseded", "plan": self.plans["superseded"], "verb": "age created_at by 2 h",
                                 "at": time.time()})
            peer.supersede_plan(self.plans["superseded"])

        if "ongoing" in wanted:  # (c), with (b) queued behind it
            plan = self.plans["ongoing"]
            self.start("ongoing")
            peer.wait_action(plan, lambda a: a["action_type"] == "sleep" and a["state"] == "ONGOING", "sleep ONGOING")
            if "pending" in wanted:  # (b)
                self.start("pending")
                peer.wait_plan_launched(self.plans["pending"])
                assert peer.plan_state(self.plans["pending"]) == "PENDING", "the applier should still be busy with (c)"
                assert self.cancel("pending") == "CANCELLED"
            sleeping = [a["state"] for a in peer.actions(plan) if a["action_type"] == "sleep"]
            assert sleeping == ["ONGOING"], f"(c) was too slow: the sleep ended before the cancel: {sleeping}"
            assert self.cancel("ongoing") == "CANCELLING"
            peer.wait_plan_state(plan, "CANCELLED", "SUCCEEDED", "FAILED")
        elif "pending" in wanted:
            raise ValueError("(b) pending needs (c) ongoing: it is queued behind it")

        if "last_action" in wanted:  # (d)
            plan = self.plans["last_action"]
            self.start("last_action")
            peer.wait_action(plan, lambda a: a["action_type"] == "sleep" and a["state"] == "ONGOING", "sleep ONGOING")
            assert self.cancel("last_action") == "CANCELLING"
            peer.wait_plan_state(plan, "CANCELLED", "SUCCEEDED", "FAILED")

        for s in ("abort_ok", "abort_raises", "abort_error"):  # (e) (f) (g)
            if s in wanted:
                plan = self.plans[s]
                self.start(s)
                peer.wait_action(plan, lambda a: a["state"] == "ONGOING", "a peer action ONGOING")
                assert self.cancel(s) == "CANCELLING"
                peer.wait_plan_state(plan, "CANCELLED", "SUCCEEDED", "FAILED")

        if "succeeded" in wanted:  # (i)
            self.start("succeeded")
            peer.wait_plan_state(self.plans["succeeded"], "SUCCEEDED", "FAILED", "CANCELLED")

        if "applier_crash" in wanted:  # (k): last, it restarts the peer
            plan = self.plans["applier_crash"]
            self.start("applier_crash")
            peer.wait_action(plan, lambda a: a["action_type"] == "peer" and a["state"] == "ONGOING", "the long peer action ONGOING")
            self.journal.append({"scenario": "applier_crash", "plan": plan, "verb": "SIGKILL and restart", "at": time.time()})
            t = time.monotonic()
            peer.restart(crash=True)
            self.timings["restart_after_crash"] = time.monotonic() - t
            peer.wait_plan_state(plan, "CANCELLED")
        self.timings["scenarios"] = time.monotonic() - t0


def record(bootstrap_servers: str, topic: str, out: Path, scenarios: Iterable[str] = SCENARIOS, name: str = "mix",
           workdir: Path | None = None) -> dict[str, Any]:
    started = time.monotonic()
    ensure_topics(bootstrap_servers, notification_topics(topic), partitions=3)
    with tempfile.TemporaryDirectory(prefix="watcher-peer-") as tmp:
        peer = WatcherPeer(bootstrap_servers, topic=topic, workdir=workdir or Path(tmp))
        with peer:
            mix = Mix(peer)
            mix.timings["peer_startup"] = peer.startup_seconds
            mix.timings["runner_startup"] = peer.runner_startup_seconds
            mix.run(scenarios)
            truth = peer.truth()
            t = time.monotonic()
        mix.timings["peer_stop"] = time.monotonic() - t
    records = read_records(bootstrap_servers, notification_topics(topic))
    mix.timings["total"] = time.monotonic() - started
    out.mkdir(parents=True, exist_ok=True)
    with (out / f"{name}.jsonl").open("w") as f:
        for r in records:
            f.write(json.dumps(r, sort_keys=True) + "\n")
    summary = {"scenarios": mix.plans, "journal": mix.journal, "timings": {k: round(v, 3) for k, v in mix.timings.items()},
               "topic": topic, "records": len(records), **truth}
    (out / f"{name}.truth.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Record python-watcher's notifications for a mix of cancellations.")
    parser.add_argument("--bootstrap-servers", help="a running broker; default: start a Tansu of our own")
    parser.add_argument("--topic", default="notifications")
    parser.add_argument("--out", type=Path, default=HERE / "recordings")
    parser.add_argument("--workdir", type=Path, help="keep Watcher's config, DB and log there (default: a temp dir)")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, help="run these scenarios only")
    parser.add_argument("--no-crash", action="store_true", help="leave out (k), the applier crash and restart")
    args = parser.parse_args(argv)
    scenarios = [s for s in (args.only or SCENARIOS) if not (args.no_crash and s == "applier_crash")]
    if args.bootstrap_servers:
        summary = record(args.bootstrap_servers, args.topic, args.out, scenarios, workdir=args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="tansu-") as tmp, Tansu(Path(tmp) / "tansu.log") as broker:
            summary = record(broker.bootstrap_servers, args.topic, args.out, scenarios, workdir=args.workdir)
    print(json.dumps({"records": summary["records"], "timings": summary["timings"],
                      "states": {s: summary["action_plans"][p]["state"] for s, p in summary["scenarios"].items()}}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
