"""On the embedded log, a consumer that meets an unusable event parks it with the reason and goes on."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from projections.cli import app
from eventstore.config import Settings
from eventstore.log import DeadLetterSink, ParkedRecord
from projections.dead_letters import ParkingLot, parked
from projections.sqlite.backend import EmbeddedBackend
from projections.translator import NotificationSink

from tests import factories as f


def test_a_corrupt_event_is_parked_by_both_consumers_and_the_rest_goes_on(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    service = EmbeddedBackend(Settings(db=db, publisher_id="infra-optim:tests"))
    broken, healthy = f.register(state="ONGOING", actions=[f.action(state="ONGOING")]), f.register(actions=[f.action()])
    service.handler.handle(broken)  # logged but not yet projected
    service.log.db.conn.execute("DROP TRIGGER events_append_only_update")  # someone with access to the file
    service.log.db.conn.execute("UPDATE events SET body = X'C301DEADBEEF' WHERE plan_uuid = ?", (broken.plan_uuid,))
    service.submit(f.cancel(broken.plan_uuid))  # decided from the handler's cache; its events cannot be projected
    service.submit(healthy)
    service.submit(f.cancel(healthy.plan_uuid))

    assert service.model.plan(healthy.plan_uuid)["state"] == "CANCELLED"  # type: ignore[index]
    assert service.model.plan(broken.plan_uuid) is None
    assert [n["event_type"] for _, n in service.outbox.read(plan_uuid=healthy.plan_uuid)] == [
        "action_plan.cancel.start", "action.cancel.start", "action.cancel.end", "action_plan.cancel.end",
    ]
    service.close()

    result = CliRunner().invoke(app, ["--db", str(db), "dlq", "--json"])
    assert result.exit_code == 0, result.output
    letters = [json.loads(line) for line in result.stdout.splitlines()]
    assert {letter["stage"] for letter in letters} == {"read-model", "translator"}
    assert all(letter["plan_uuid"] == broken.plan_uuid for letter in letters)
    first = [letter for letter in letters if letter["offset"] == 1]
    assert {letter["error"].rsplit(".", 1)[1] for letter in first} == {"CorruptRecordError"}
    later = [letter for letter in letters if letter["offset"] > 1]
    assert later and all("UnusableEventError" in letter["error"] for letter in later)


def test_every_consumer_goes_past_a_poison_event_and_an_unrelated_overdue_plan_is_still_failed(tmp_path: Path) -> None:
    """serve --once, enforce-deadlines, replay and re-emission all go on; verify names the event."""
    db = tmp_path / "w.db"
    service = EmbeddedBackend(Settings(db=db, publisher_id="infra-optim:tests", abort_timeout_us=1))
    broken = f.register(state="ONGOING", actions=[f.action(state="ONGOING")])
    overdue = f.register(state="ONGOING", actions=[f.action(state="ONGOING")])
    service.handler.handle(broken)
    service.log.db.conn.execute("DROP TRIGGER events_append_only_update")
    service.log.db.conn.execute("UPDATE events SET body = X'C3010123456789ABCDEF00' WHERE plan_uuid = ?", (broken.plan_uuid,))
    service.submit(overdue)
    service.submit(f.cancel(overdue.plan_uuid))  # its abort deadline passes at once
    service.close()

    runner = CliRunner(env={"WATCHER_ES_DB": None, "WATCHER_ES_BOOTSTRAP_SERVERS": None})

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, ["--db", str(db), "--publisher-id", "infra-optim:tests", *args])
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output
        return result.stdout

    run("serve", "--once")
    status = json.loads(run("status", overdue.plan_uuid, "--json"))
    assert status["plan"]["state"] == "FAILED", "the deadline pass failed the overdue abort"
    run("enforce-deadlines")
    assert "rebuilt the read model" in run("replay")
    kinds = [json.loads(line)["event_type"] for line in run("notifications", "--replay", "--json").splitlines()]
    assert kinds.count("action_plan.cancel.error") == 1
    finding = json.loads(run("verify", "--json", code=1))
    assert (finding["plan_uuid"], finding["position"]) == (broken.plan_uuid, 1), "verify names the event"
    letters = [json.loads(line) for line in run("dlq", "--json").splitlines()]
    assert letters and all(letter["plan_uuid"] == broken.plan_uuid for letter in letters)


def test_the_embedded_sinks_are_the_ports_consumers_are_written_against(tmp_path: Path) -> None:
    """mypy checks the assignments; the rows say where a record parked by the port lands."""
    with EmbeddedBackend(Settings(db=tmp_path / "w.db")) as service:
        lot: DeadLetterSink = ParkingLot(service.model.db)
        outbox: NotificationSink = service.outbox
        outbox.send([])
        lot.park(ParkedRecord("log", 7, "plan-1", b"\x00"), "read-model", ValueError("no such field"))
        assert [(r["consumer"], r["source"], r["position"], r["plan_uuid"], r["error"], r["message"]) for r in parked(service.model.db)] == [
            ("read-model", "log", 7, "plan-1", "builtins.ValueError", "no such field"),
        ]
