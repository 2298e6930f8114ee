"""What keeps the CLI quick to answer: `--help`, `status` and `plans` load only what they use.

Start-up time itself is measured, not asserted (see the README); these tests keep the heavy
modules (the Avro codec, sqlite-utils, the Kafka client, the services) out of the read path,
and check that reading writes nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from projections.cli import app

from tests.support.plan_documents import PLAN, plan_document, write_plan

HEAVY = ("fastavro", "sqlite_utils", "confluent_kafka", "projections.read_model", "projections.sqlite.backend", "eventstore.codec")

#: Runs the CLI in a fresh interpreter and prints which heavy modules it loaded.
PROBE = """
import json, sys
from projections.cli import main
args, heavy = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.argv = ["watcher-es", *args]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy))), file=sys.stderr)
"""


def loaded_by(*args: str, heavy: tuple[str, ...] = HEAVY) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args), json.dumps(heavy)], capture_output=True, text=True, timeout=120,
    )
    loaded: list[str] = json.loads(done.stderr.strip().splitlines()[-1])
    return loaded


@pytest.fixture
def store(tmp_path: Path) -> Path:
    db = tmp_path / "w.db"
    result = CliRunner().invoke(app, ["--db", str(db), "register", write_plan(tmp_path, plan_document())])
    assert result.exit_code == 0, result.output
    return db


@pytest.mark.parametrize("args", [("--help",), ("status", PLAN), ("plans",), ("plans", "--json"), ("status", PLAN, "--json")])
def test_reading_a_plan_loads_no_codec_no_sqlite_utils_no_kafka(store: Path, args: tuple[str, ...]) -> None:
    assert loaded_by("--db", str(store), *args) == []


@pytest.mark.parametrize("args", [("--help",), ("plans", "--json"), ("status", PLAN, "--json")])
def test_help_and_json_load_no_rich(store: Path, args: tuple[str, ...]) -> None:
    """Rich draws tables; what prints no table does not load it."""
    assert loaded_by("--db", str(store), *args, heavy=("rich",)) == []


def test_status_reads_without_creating_the_model(tmp_path: Path) -> None:
    """A log nobody has projected yet: the plan is not there yet, and reading creates no file."""
    db = tmp_path / "w.db"
    runner = CliRunner()
    assert runner.invoke(app, ["--db", str(db), "register", write_plan(tmp_path, plan_document())]).exit_code == 0
    for beside in (tmp_path / "w.model.db", tmp_path / "w.model.db-wal", tmp_path / "w.model.db-shm"):
        beside.unlink(missing_ok=True)
    result = runner.invoke(app, ["--db", str(db), "status", PLAN])
    assert result.exit_code == 1 and "is not registered" in result.output
    assert not (tmp_path / "w.model.db").exists()


@pytest.mark.parametrize("args", [("demo", "--json"), ("serve", "--once"), ("cancel", PLAN, "--reason", "r", "--json"), ("verify",), ("replay",)])
def test_the_embedded_store_never_loads_the_kafka_client(store: Path, args: tuple[str, ...]) -> None:
    """Only code in a kafka folder imports confluent_kafka, and only a cluster loads that code."""
    assert loaded_by("--db", str(store), *args, heavy=("confluent_kafka", "eventstore.kafka.io", "projections.kafka")) == []
