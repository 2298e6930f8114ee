"""notifications --replay: a fresh translation of the log, identical to the first emission,
message_id included, so a consumer that was down (or is new) recognises every re-send."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from projections.cli import app
from projections.sqlite.notifications import stored_notifications
from projections.sqlite.notifications import replay_notifications
from projections.translator import Translator

from tests import factories as f
from tests.support.embedded import open_store, submit_all


def lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines()]


def test_cli_replayed_notifications_are_identical_to_the_first_emission(tmp_path: Path) -> None:
    db = str(tmp_path / "w.db")
    runner = CliRunner()
    first = runner.invoke(app, ["--db", db, "demo", "--json"])
    assert first.exit_code == 0, first.output

    emitted = runner.invoke(app, ["--db", db, "notifications", "--json"])
    replayed = runner.invoke(app, ["--db", db, "notifications", "--replay", "--json"])

    assert replayed.exit_code == 0, replayed.output
    assert replayed.stdout == emitted.stdout == first.stdout  # byte for byte, message_id included
    assert len(lines(replayed.stdout)) == 20


def test_a_replayed_range_is_the_part_of_the_first_emission_from_that_range(tmp_path: Path) -> None:
    service = open_store(tmp_path / "w.db")
    try:
        submit_all(service, f.interleaved([f.cancellation_story(abort_fails=i == 1) for i in range(3)]))
        stored = stored_notifications(service.outbox)
        first, last = 6, service.log.last_position() - 2
        translator = Translator(service.codec, service.log, service.outbox.translator.publisher_id)

        again = list(replay_notifications(service.log, translator, first, last, batch_size=4))

        assert again == [n for n in stored if first <= n.position <= last]
        assert again  # the range holds cancellations

        plan = stored[0].plan_uuid
        fresh = Translator(service.codec, service.log, service.outbox.translator.publisher_id)
        assert list(replay_notifications(service.log, fresh, plan_uuid=plan)) == stored_notifications(service.outbox, plan)
    finally:
        service.close()


def test_cli_replay_options(tmp_path: Path) -> None:
    db = str(tmp_path / "w.db")
    runner = CliRunner()
    assert runner.invoke(app, ["--db", db, "demo", "--json"]).exit_code == 0
    emitted = lines(runner.invoke(app, ["--db", db, "notifications", "--json"]).stdout)

    ranged = runner.invoke(app, ["--db", db, "notifications", "--replay", "--from-position", "20", "--to-position", "25", "--json"])
    assert ranged.exit_code == 0, ranged.output
    assert lines(ranged.stdout) and all(n in emitted for n in lines(ranged.stdout))

    table = runner.invoke(app, ["--db", db, "notifications", "--replay"])
    assert table.exit_code == 0 and "re-emitted" in table.stdout

    refused = runner.invoke(app, ["--db", db, "notifications", "--replay", "--follow"])
    assert refused.exit_code == 2
    refused = runner.invoke(app, ["--db", db, "notifications", "--to-position", "3"])
    assert refused.exit_code == 2
