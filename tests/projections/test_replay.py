"""Replay: a rebuilt model equals the live one, and --until gives back the state at that moment;
on Kafka, under a running `serve` that goes on projecting into the model swapped in."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eventstore.codec import AvroCodec
from eventstore.kafka.config import KafkaSettings
from projections.cli import app
from eventstore.domain.messages import Command
from eventstore.times import format_time
from projections.sqlite.backend import EmbeddedBackend
from projections.exceptions import ReplayError, UnknownInstantError
from projections.read_model import ReadModel
from projections.history import parse_timestamp
from projections.replay import ReplayProgress, replay
from projections.sqlite.history import SqliteHistory

from tests import factories as f
from tests.benchmarks.rebuild import fill
from tests.support.clock import TickingClock
from tests.support.embedded import open_store, submit_all
from tests.support.serve import Serve, cli_env, run_cli, wait_verified

PLANS = 4


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedBackend]:
    service = open_store(tmp_path / "w.db")
    yield service
    service.close()


def scenario() -> list[Command]:
    return f.interleaved([f.cancellation_story(abort_fails=i % 2 == 1) for i in range(PLANS)])


def as_of(path: Path, service: EmbeddedBackend) -> dict[str, list[tuple[object, ...]]]:
    model = ReadModel(path, service.codec)
    try:
        return model.tables()
    finally:
        model.close()


def test_rebuild_equals_live_and_readers_see_it_without_reopening(store: EmbeddedBackend) -> None:
    submit_all(store, scenario())
    live_before = store.model.tables()
    position = store.model.position()
    store.model.db.conn.execute("UPDATE action_plans SET state = 'DRIFTED'")  # so the swap is visible

    result = replay(SqliteHistory(store.log), store.codec, store.settings.paths)

    assert result.position.sequence == position == store.log.last_position()
    assert result.events == position
    # the service's own connection, opened before the replay, reads the rebuilt model
    assert store.model.tables() == live_before
    assert store.model.position() == position
    assert sorted(p.name for p in store.settings.paths.model.parent.iterdir() if ".rebuild-" in p.name) == []


def test_until_position_equals_the_live_state_captured_then(store: EmbeddedBackend, tmp_path: Path) -> None:
    commands = scenario()
    half = len(commands) // 2
    submit_all(store, commands[:half])
    captured, position = store.model.tables(), store.model.position()
    submit_all(store, commands[half:])
    live_after = store.model.tables()
    assert store.log.last_position() > position

    result = replay(SqliteHistory(store.log), store.codec, store.settings.paths, until=str(position))

    assert result.path == tmp_path / f"w.asof-{position}.db"
    assert as_of(result.path, store) == captured
    assert store.model.tables() == live_after  # the live model is left alone


def test_until_timestamp_equals_the_live_state_captured_then(tmp_path: Path) -> None:
    clock = TickingClock()
    service = open_store(tmp_path / "w.db", clock)
    try:
        commands = scenario()
        submit_all(service, commands[:5])
        captured, moment = service.model.tables(), clock.now
        submit_all(service, commands[5:])

        into = tmp_path / "then.db"
        result = replay(SqliteHistory(service.log), service.codec, service.settings.paths, until=format_time(moment), into=into)

        assert result.position.sequence == len(captured["plan_history"])
        assert as_of(into, service) == captured
    finally:
        service.close()


def test_until_is_a_position_or_an_iso_time(store: EmbeddedBackend) -> None:
    submit_all(store, scenario())
    last = store.log.last_position()
    history = SqliteHistory(store.log)
    assert history.until("0").bound == 0
    assert history.until(str(last)).bound == last
    assert history.until("2999-01-01T00:00:00Z").bound == last
    assert history.until("1999-01-01").bound == 0
    assert parse_timestamp("2026-11-26T10:00:00Z") == parse_timestamp("2026-11-26T11:00:00+01:00") == parse_timestamp("2026-11-26T10:00:00")
    with pytest.raises(UnknownInstantError, match="ends at position"):
        history.until(str(last + 1))
    with pytest.raises(UnknownInstantError, match="ISO 8601"):
        history.until("yesterday")


def test_an_as_of_model_never_replaces_a_live_file(store: EmbeddedBackend) -> None:
    submit_all(store, scenario())
    paths = store.settings.paths
    for protected in (paths.model, paths.log, paths.notifications):
        with pytest.raises(ReplayError, match="live store"):
            replay(SqliteHistory(store.log), store.codec, paths, until="3", into=protected)
    with pytest.raises(ReplayError, match="--into needs --until"):
        replay(SqliteHistory(store.log), store.codec, paths, into=paths.model.with_name("x.db"))


def test_the_live_model_serves_the_old_state_until_the_swap(store: EmbeddedBackend) -> None:
    submit_all(store, scenario())
    paths = store.settings.paths
    reader = sqlite3.connect(paths.model, isolation_level=None)
    reader.execute("UPDATE action_plans SET state = 'OLD'")
    seen_during: list[set[str]] = []

    def watch(p: ReplayProgress) -> None:
        seen_during.append({r[0] for r in reader.execute("SELECT state FROM action_plans")})

    snapshot = sqlite3.connect(paths.model, isolation_level=None)
    snapshot.execute("BEGIN")
    assert {r[0] for r in snapshot.execute("SELECT state FROM action_plans")} == {"OLD"}

    replay(SqliteHistory(store.log), store.codec, paths, batch_size=5, progress=watch)

    assert len(seen_during) > 2 and all(states == {"OLD"} for states in seen_during)
    # a read transaction open across the swap keeps its snapshot; the next one sees the new model
    assert {r[0] for r in snapshot.execute("SELECT state FROM action_plans")} == {"OLD"}
    snapshot.execute("COMMIT")
    assert {r[0] for r in snapshot.execute("SELECT state FROM action_plans")} == {"CANCELLED", "FAILED"}
    assert {r[0] for r in reader.execute("SELECT state FROM action_plans")} == {"CANCELLED", "FAILED"}
    assert sqlite3.connect(paths.model).execute("PRAGMA integrity_check").fetchone() == ("ok",)
    reader.close()
    snapshot.close()


def test_a_20k_event_log_rebuilds(tmp_path: Path) -> None:
    db = tmp_path / "big.db"
    written = fill(db, 20_000)
    service = open_store(db)
    try:
        events: list[int] = []
        result = replay(SqliteHistory(service.log), service.codec, service.settings.paths, progress=lambda p: events.append(p.events))
        assert result.events == written == result.position.sequence
        assert events[-1] == written and events == sorted(events)
        plans = service.model.db.conn.execute("SELECT count(*), count(DISTINCT state) FROM action_plans").fetchone()
        assert plans == (written // 15, 1)
    finally:
        service.close()


def test_cli_replay_prints_json_on_stdout_and_progress_on_stderr(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    service = open_store(db)
    submit_all(service, scenario())
    last = service.log.last_position()
    service.close()
    runner = CliRunner()

    result = runner.invoke(app, ["--db", str(db), "replay", "--until", "7", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["position"] == 7 and summary["path"] == str(tmp_path / "w.asof-7.db") and summary["as_of"] is True
    assert "replaying until 7" in result.stderr

    result = runner.invoke(app, ["--db", str(db), "replay"])
    assert result.exit_code == 0, result.output
    assert f"from {last} events" in result.stdout

    result = runner.invoke(app, ["--db", str(db), "replay", "--until", "not-a-time"])
    assert result.exit_code == 2 and "ISO 8601" in " ".join(result.stderr.split()) and result.stdout == ""

    result = runner.invoke(app, ["--db", str(tmp_path / "none.db"), "replay"])
    assert result.exit_code == 1 and "no event log" in " ".join(result.stderr.split())
    assert not (tmp_path / "none.db").exists()


def test_replay_on_kafka_rebuilds_under_a_running_serve_and_builds_past_states(kafka: KafkaSettings, serve: Serve, tmp_path: Path) -> None:
    env = cli_env(kafka, tmp_path / "client.db")
    at_serve = {**env, "WATCHER_ES_DB": serve.env["WATCHER_ES_DB"]}
    serve.start()
    assert run_cli(env, "demo", "--json").returncode == 0, serve.log()
    wait_verified(at_serve, 2)
    # Taken after the first demo's events were all decided and before the second demo sends a
    # command: every event is on one side of it (a cut by when events occurred, to the microsecond).
    between = datetime.now(UTC)

    rebuilt = run_cli(at_serve, "replay", "--json")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert json.loads(rebuilt.stdout)["events"] > 0
    # serve goes on projecting into the swapped-in model: no event applied twice, none skipped.
    assert run_cli(env, "demo", "--json").returncode == 0, serve.log()
    wait_verified(at_serve, 4)

    as_of = run_cli(at_serve, "replay", "--until", between.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "--json")
    assert as_of.returncode == 0, as_of.stderr
    past = ReadModel(json.loads(as_of.stdout)["path"], AvroCodec())
    assert len(past.plans()) == 2 and {p["state"] for p in past.plans()} == {"CANCELLED", "FAILED"}
    past.close()
    by_position = run_cli(at_serve, "replay", "--until", "12")
    assert by_position.returncode == 2 and "ISO 8601 time" in by_position.stderr
