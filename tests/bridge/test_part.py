"""The bridge as `serve` runs it, beside the embedded store, on a source that is a list of records.

Bad input is dead-lettered with the reason and the bridge goes on; a plan whose creation it
never saw is reported by `dlq` and `status` with what is missing, and nothing of it is
registered; the positions it stores let a restart resume where it was, never from the start.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from eventstore.bridge.part import Incoming
from eventstore.bridge.received import parse
from eventstore.bridge.state import BridgeState
from eventstore.config import Settings
from projections.cli import app
from projections.dead_letters import ParkingLot
from projections.sqlite.backend import EmbeddedBackend
from projections.sqlite.service import EmbeddedBridge, EmbeddedCommands
from tests.support.recording import RECORDS, TRUTH

SOURCES = ("w.info/0", "w.info/1", "w.info/2", "w.error/0")


class ListSource:
    """Watcher's topics as lists: every record at once, then each source at its end."""

    def __init__(self, records: list[Incoming]) -> None:
        self._records = records
        self.polled = 0

    @property
    def sources(self) -> list[str]:
        return list(SOURCES)

    def poll(self, timeout: float) -> list[Incoming]:
        self.polled += 1
        out, self._records = self._records, []
        return out

    def at_end(self) -> Mapping[str, bool]:
        return {s: not self._records for s in SOURCES}

    def check(self, timeout: float) -> int:
        return len(self._records)

    def close(self) -> None:
        pass


def incoming(records: list[dict[str, Any]]) -> list[Incoming]:
    """The recording's records on this test's sources, numbered per source as a topic would."""
    out, next_position = [], dict.fromkeys(SOURCES, 1)
    for r in records:
        source = f"w.{r['topic'].rsplit('.', 1)[1]}/{r['partition'] if r['topic'].endswith('info') else 0}"
        out.append(Incoming(source, next_position[source], r["value"].encode()))
        next_position[source] += 1
    return out


def run(db: Path, records: list[Incoming]) -> dict[str, int]:
    """One bridge over ``records`` until all are taken; returns the positions it stored."""
    settings = Settings(db=db, publisher_id="infra-optim:bridge")
    with EmbeddedBackend(settings) as backend:
        state = BridgeState(settings.paths.bridge_state)
        part = EmbeddedBridge(ListSource(records), EmbeddedCommands(backend), ParkingLot(state.db), state, grace_s=0, clock=lambda: 2**62)
        part.poll(0)
        part.poll(0)  # the end of every source seen: the rest goes
        positions = state.positions()
        part.close()
        backend.catch_up()
    return positions


def cli(db: Path, *args: str) -> Any:
    result = CliRunner().invoke(app, ["--db", str(db), *args])
    return result


def test_bad_records_and_plans_never_created_are_dead_lettered_and_shown(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    plan = TRUTH["scenarios"]["succeeded"]
    late = [r for r in RECORDS if plan in r["value"] and "action_plan.create" not in r["value"] and "action.create" not in r["value"]]
    garbage = [
        Incoming("w.info/0", 900, b"not json"),
        Incoming("w.info/0", 901, json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps({"event_type": "action_plan.update"})}).encode()),
    ]
    run(db, garbage + incoming(late))
    letters = [json.loads(line) for line in cli(db, "dlq", "--json").stdout.splitlines()]
    assert {l["stage"] for l in letters} == {"bridge"} and len(letters) == 2 + len(late)
    assert "not JSON" in letters[0]["message"] and "has no message_id" in letters[1]["message"]
    assert all("its action_plan.create was never seen" in l["message"] for l in letters[2:])
    shown = cli(db, "status", plan)
    assert shown.exit_code == 1 and "never saw its action_plan.create" in shown.output
    unregistered = [json.loads(line) for line in cli(db, "status", "--json").stdout.splitlines() if "unregistered_plan" in line]
    assert [(u["unregistered_plan"], u["missing"]) for u in unregistered] == [(plan, "action_plan.create")]
    assert cli(db, "plans", "--json").stdout == ""  # nothing half-registered


def test_a_restart_resumes_from_the_stored_positions(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    records = incoming(RECORDS)
    stamps = sorted(parse(r.value, "").timestamp for r in records)
    middle = stamps[len(stamps) // 2]  # each partition's records before it: a prefix of every partition, as a stop leaves them
    first = [r for r in records if parse(r.value, "").timestamp <= middle]
    positions = run(db, first)
    assert positions == {s: max(r.position for r in first if r.source == s) for s in {r.source for r in first}}
    run(db, [r for r in records if r.position > positions.get(r.source, 0)])  # what a source started at those positions reads
    for plan, truth in TRUTH["action_plans"].items():
        assert json.loads(cli(db, "status", plan, "--json").stdout)["plan"]["state"] == truth["state"]
