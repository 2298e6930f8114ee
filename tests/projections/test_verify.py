"""verify: an untouched store passes; an edited, deleted or reordered event, or a drifted
projection, fails and names the plan and the position; on Kafka, the topic's chains are checked
against the model `serve` keeps, and a forged append fails."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from eventstore.codec import AvroCodec
from eventstore.kafka.appends import prepare_append
from eventstore.kafka.config import KafkaSettings
from eventstore.kafka.io import Publisher
from eventstore.log import NewEvent
from projections.cli import app
from eventstore.config import Settings
from eventstore.position import Position
from eventstore.log import StoredEvent
from projections.sqlite.backend import EmbeddedBackend
from projections.exceptions import VerificationFailed
from projections.read_model import ReadModel
from projections.tracking import catch_up
from projections.sqlite.history import SqliteHistory
from projections.verify import VerifyReport, verify

from tests import factories as f
from tests.support.embedded import open_store, submit_all, tamper
from tests.support.serve import Serve, cli_env, run_cli, wait_verified

PLANS = 4


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedBackend]:
    service = open_store(tmp_path / "w.db")
    submit_all(service, f.interleaved([f.cancellation_story(abort_fails=i == 2) for i in range(PLANS)]))
    yield service
    service.close()


def plan_stream(store: EmbeddedBackend, n: int) -> tuple[str, list[StoredEvent]]:
    """The n-th registered plan and its events."""
    plan = store.log.plan_uuids()[n]
    return plan, store.log.read_plan(plan)


def check(store: EmbeddedBackend) -> VerifyReport:
    return verify(SqliteHistory(store.log), store.codec, store.model)


def failure(store: EmbeddedBackend) -> VerificationFailed:
    with pytest.raises(VerificationFailed) as caught:
        check(store)
    return caught.value


def test_an_untouched_store_verifies(store: EmbeddedBackend) -> None:
    report = check(store)
    assert report.events == store.log.last_position() == report.log_position.sequence == report.model_position.sequence
    assert report.plans == PLANS


def test_editing_an_events_bytes_fails_at_that_event(store: EmbeddedBackend) -> None:
    plan, stream = plan_stream(store, 1)
    target = stream[2]
    edited = target.body[:-1] + bytes([target.body[-1] ^ 0x01])
    tamper(store.settings.paths.log, f"UPDATE events SET body = X'{edited.hex()}' WHERE position = {target.position}")

    failed = failure(store)

    assert (failed.kind, failed.plan_uuid, failed.position) == ("chain", plan, target.position)
    assert "hash does not match" in failed.detail
    assert f"plan {plan}, position {target.position}" in str(failed)


def test_deleting_an_event_fails_where_its_plan_skips_a_version(store: EmbeddedBackend) -> None:
    plan, stream = plan_stream(store, 2)
    tamper(store.settings.paths.log, f"DELETE FROM events WHERE position = {stream[1].position}")

    failed = failure(store)

    assert (failed.kind, failed.plan_uuid, failed.position) == ("chain", plan, stream[2].position)
    assert "version 2 is missing" in failed.detail


def test_deleting_a_plans_last_event_fails_where_the_model_still_shows_it(store: EmbeddedBackend) -> None:
    plan, stream = plan_stream(store, 0)
    assert stream[-1].position < store.log.last_position()  # not the tail of the log
    tamper(store.settings.paths.log, f"DELETE FROM events WHERE position = {stream[-1].position}")

    failed = failure(store)

    assert (failed.kind, failed.plan_uuid, failed.position) == ("projection", plan, stream[-1].position)


def test_deleting_the_tail_of_the_log_fails(store: EmbeddedBackend) -> None:
    last = store.log.read(after=store.log.last_position() - 1)[0]
    tamper(store.settings.paths.log, f"DELETE FROM events WHERE position = {last.position}")

    failed = failure(store)

    assert (failed.kind, failed.plan_uuid, failed.position) == ("projection", last.plan_uuid, last.position)
    assert "removed" in failed.detail


def test_swapping_two_events_fails_at_the_first_of_them(store: EmbeddedBackend) -> None:
    plan, stream = plan_stream(store, 3)
    a, b = stream[1].position, stream[2].position
    tamper(
        store.settings.paths.log,
        f"UPDATE events SET position = -1 WHERE position = {a}",
        f"UPDATE events SET position = {a} WHERE position = {b}",
        f"UPDATE events SET position = {b} WHERE position = -1",
    )

    failed = failure(store)

    assert (failed.kind, failed.plan_uuid, failed.position) == ("chain", plan, a)
    assert "version 3 follows version 1" in failed.detail


def test_swapping_events_of_two_plans_fails(store: EmbeddedBackend) -> None:
    """Each plan's chain survives a swap across plans; the model, which records positions, does not."""
    (first, one), (second, two) = plan_stream(store, 0), plan_stream(store, 1)
    a, b = one[0].position, two[0].position
    tamper(
        store.settings.paths.log,
        f"UPDATE events SET position = -1 WHERE position = {a}",
        f"UPDATE events SET position = {a} WHERE position = {b}",
        f"UPDATE events SET position = {b} WHERE position = -1",
    )

    failed = failure(store)

    assert failed.plan_uuid in (first, second) and failed.position in (a, b)


def test_editing_a_column_the_hash_does_not_cover_fails(store: EmbeddedBackend) -> None:
    plan, stream = plan_stream(store, 1)
    tamper(store.settings.paths.log, f"UPDATE events SET occurred_at = occurred_at - 1 WHERE position = {stream[1].position}")

    failed = failure(store)

    assert (failed.kind, failed.plan_uuid, failed.position) == ("record", plan, stream[1].position)
    assert "occurred_at" in failed.detail


def test_a_drifted_projection_row_fails_naming_its_plan(store: EmbeddedBackend) -> None:
    plan, stream = plan_stream(store, 2)
    store.model.db.conn.execute("UPDATE action_plans SET state = 'ONGOING' WHERE uuid = ?", (plan,))

    failed = failure(store)

    assert (failed.kind, failed.plan_uuid, failed.position) == ("projection", plan, stream[-1].position)
    assert "state is 'ONGOING'" in failed.detail


def test_a_drifted_action_row_fails_naming_its_plan(store: EmbeddedBackend) -> None:
    plan, _ = plan_stream(store, 3)
    store.model.db.conn.execute("DELETE FROM actions WHERE action_plan_uuid = ? AND idx = 2", (plan,))

    failed = failure(store)

    assert (failed.kind, failed.plan_uuid) == ("projection", plan)
    assert "missing from the read model" in failed.detail


def test_a_model_behind_the_log_is_compared_at_its_own_position(store: EmbeddedBackend) -> None:
    """A projector that has not caught up yet is not drift: the later events are chain-checked only."""
    store.handler.handle(f.register())  # appended, the model not caught up
    report = check(store)
    assert not report.model_position.covers(report.log_position)


def test_cli_verify_exits_zero_then_names_the_place(store: EmbeddedBackend) -> None:
    db = store.settings.paths.log
    runner = CliRunner()
    result = runner.invoke(app, ["--db", str(db), "verify"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"log and read model verified: {store.log.last_position()} events, {PLANS} plans"
    assert runner.invoke(app, ["--db", str(db), "verify", "--on-disk"]).stdout == result.stdout
    assert not [p for p in db.parent.iterdir() if p.name.startswith(".verify-")]

    plan, stream = plan_stream(store, 1)
    tamper(db, f"DELETE FROM events WHERE position = {stream[1].position}")
    result = runner.invoke(app, ["--db", str(db), "verify"])
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())  # rich wraps long lines on a narrow stderr
    assert f"plan {plan}, position {stream[2].position}" in message

    result = runner.invoke(app, ["--db", str(db), "verify", "--json", "--on-disk"])
    assert result.exit_code == 1
    assert '"verified": false' in result.stdout and plan in result.stdout


def test_verify_reads_the_model_in_one_snapshot(store: EmbeddedBackend) -> None:
    """A projector catching up while verify runs cannot make it compare rows of one state with
    the position of another: the live model is read in one transaction."""
    other_model = ReadModel(store.settings.paths.model, store.codec)

    class CatchesUpMeanwhile:
        """The log, with a projector that appends and catches up right after verify starts reading."""

        def __init__(self) -> None:
            self.done = False

        def __getattr__(self, name: str) -> Any:
            return getattr(store.log, name)

        def events_after(self, after: Position, limit: int = 1000) -> list[StoredEvent]:
            if not self.done:
                self.done = True
                store.handler.handle(f.register())
                catch_up(store.log, other_model)
            return store.log.events_after(after, limit)

    before = store.model.position()
    report = verify(SqliteHistory(CatchesUpMeanwhile()), store.codec, store.model)  # type: ignore[arg-type]
    other_model.close()
    assert report.model_position.sequence == before < store.model.position()


def test_an_edited_command_is_found_by_verify(tmp_path: Path) -> None:
    """`audit` shows who asked for what: the commands are chained, so a patched `issued_by` shows."""
    db = tmp_path / "w.db"
    with EmbeddedBackend(Settings(db=db, publisher_id="infra-optim:tests")) as service:
        register = f.register(state="ONGOING", actions=[f.action(state="ONGOING")])
        service.submit(register)
        service.submit(f.cancel(register.plan_uuid, by="alice"))
        service.log.db.conn.execute("UPDATE commands SET issued_by = 'bobby' WHERE issued_by = 'alice'")
    result = CliRunner().invoke(app, ["--db", str(db), "verify", "--json"])
    assert result.exit_code == 1
    finding = json.loads(result.stdout)
    assert finding["kind"] == "command" and finding["plan_uuid"] == register.plan_uuid and "commands row 2" in finding["detail"]


def test_verify_checks_the_topic_chains_against_the_model_serve_keeps(kafka: KafkaSettings, serve: Serve, tmp_path: Path) -> None:
    env = cli_env(kafka, tmp_path / "client.db")
    serve.start()
    assert run_cli(env, "demo", "--json").returncode == 0, serve.log()
    at_serve = {**env, "WATCHER_ES_DB": serve.env["WATCHER_ES_DB"]}
    report = wait_verified(at_serve, 2)  # the read model catches up asynchronously
    assert report["verified"] is True and report["plans"] == 2

    # A forged event appended to a plan's stream: right type, right sequence number, wrong chain.
    row = json.loads(run_cli(at_serve, "plans", "--json").stdout.splitlines()[0])
    plan = row["uuid"]
    codec = AvroCodec()
    forged = codec.encode("ActionPlanCancelled", {"event_id": str(uuid.uuid4()), "command_id": "forged", "plan_uuid": plan, "occurred_at": 1})
    append = prepare_append(
        codec, command_id="forged", command_type="CancelActionPlan", plan_uuid=plan, expected_version=row["version"],
        writer="forger", appended_at=1, outcome="accepted", reason="",
        events=[NewEvent(str(uuid.uuid4()), "ActionPlanCancelled", 1, forged)], previous_hash="0" * 64,
    )
    publisher = Publisher(kafka)
    publisher.produce(kafka.topics.events, plan, append.value, None)
    publisher.flush()
    failed = run_cli(at_serve, "verify", "--json")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    finding = json.loads(failed.stdout)
    assert finding["verified"] is False and finding["plan_uuid"] == plan
