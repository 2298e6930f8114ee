"""The schemas evolve safely: data written with every released set still reads, loses nothing.

Backward-transitive, by fastavro's own schema resolution: records generated from each schema in
``avro/history/vN/`` are written with it and read with the current one. On top of Avro's rules,
ours: a field is never dropped (an audit log that forgets a field forgets history), and a log
written before the change (``tests/fixtures/log_v1``) still replays, verifies and re-emits the
same bytes.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fastavro.utils import generate_many
from typer.testing import CliRunner

from projections.cli import app
from eventstore.codec import AvroCodec, NAMESPACE

ROOT = Path(__file__).resolve().parents[2]
HISTORY = ROOT / "avro" / "history"
RELEASES = sorted(p for p in HISTORY.iterdir() if p.is_dir())
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "log_v1"


def _schema(directory: Path, name: str) -> Any:
    return fastavro.schema.load_schema(str(directory / f"{NAMESPACE}.{name}.avsc"), _write_hint=False)


def _names(directory: Path) -> list[str]:
    return sorted(p.name[len(NAMESPACE) + 1 : -len(".avsc")] for p in directory.glob(f"{NAMESPACE}.*.avsc"))


def _kept(old: Any, new: Any, where: str) -> list[str]:
    """Every value written survives the read: nested records and arrays included."""
    if isinstance(old, dict):
        if not isinstance(new, dict):
            return [f"{where}: a record became {type(new).__name__}"]
        return [p for k, v in old.items() for p in ([f"{where}.{k}: dropped"] if k not in new else _kept(v, new[k], f"{where}.{k}"))]
    if isinstance(old, list):
        if not isinstance(new, list) or len(new) != len(old):
            return [f"{where}: an array changed length"]
        return [p for i, (a, b) in enumerate(zip(old, new, strict=True)) for p in _kept(a, b, f"{where}[{i}]")]
    return [] if old == new else [f"{where}: {old!r} read back as {new!r}"]


def compatibility_problems(writer_dir: Path, reader_dir: Path, samples: int = 25) -> list[str]:
    """Why data written with ``writer_dir``'s schemas would not read with ``reader_dir``'s (empty: it does)."""
    problems: list[str] = []
    current = set(_names(reader_dir))
    for name in _names(writer_dir):
        if name not in current:
            problems.append(f"{name}: the schema is gone, its records become unreadable")
            continue
        writer, reader = _schema(writer_dir, name), _schema(reader_dir, name)
        dropped = {f["name"] for f in writer["fields"]} - {f["name"] for f in reader["fields"]}
        if dropped:
            problems.append(f"{name}: fields dropped: {', '.join(sorted(dropped))}")
        for i, record in enumerate(generate_many(writer, samples)):
            buf = io.BytesIO()
            fastavro.schemaless_writer(buf, writer, record)
            buf.seek(0)
            try:
                read = fastavro.schemaless_reader(buf, writer, reader)
            except Exception as exc:  # SchemaResolutionError and friends: the point of the test
                problems.append(f"{name}: {type(exc).__name__}: {exc}")
                break
            lost = _kept(record, read, name)
            if lost:
                problems.extend(lost[:3])
                break
    return problems


def test_every_release_is_kept() -> None:
    assert RELEASES, f"no released schema sets in {HISTORY}"
    assert all(_names(r) for r in RELEASES)


@pytest.mark.parametrize("release", RELEASES, ids=lambda p: p.name)
def test_current_schemas_read_every_release(release: Path) -> None:
    assert compatibility_problems(release, ROOT / "avro") == []


def _broken(tmp_path: Path, name: str, change: Any) -> Path:
    target = tmp_path / "avro"
    shutil.copytree(ROOT / "avro", target, ignore=shutil.ignore_patterns("history"))
    path = target / f"{NAMESPACE}.{name}.avsc"
    schema = json.loads(path.read_text())
    change(schema["fields"])
    path.write_text(json.dumps(schema))
    return target


def _retype(fields: list[dict[str, Any]], field: str, type_: Any) -> None:
    next(f for f in fields if f["name"] == field)["type"] = type_


@pytest.mark.parametrize(("name", "change", "says"), [
    ("CancelActionPlan", lambda fs: fs.remove(next(f for f in fs if f["name"] == "reason")), "fields dropped: reason"),
    ("Audit", lambda fs: _retype(fs, "interval", ["null", "long"]), "SchemaResolutionError"),
    ("CancelActionPlan", lambda fs: _retype(fs, "issued_at", "string"), "SchemaResolutionError"),
    ("CancelActionPlan", lambda fs: fs.append({"name": "ticket", "type": "string"}), "ticket"),
])
def test_a_breaking_change_is_caught(tmp_path: Path, name: str, change: Any, says: str) -> None:
    """Removing a field, changing a type incompatibly or adding one without a default fails the check."""
    problems = compatibility_problems(HISTORY / "v1", _broken(tmp_path, name, change))
    assert any(says in p for p in problems), problems


# ---------------------------------------------------------------- a log written before the change


@pytest.fixture
def old_store(tmp_path: Path) -> Path:
    db = tmp_path / "watcher-es.db"
    shutil.copy(FIXTURE / "watcher-es.db", db)
    return db


def _cli(db: Path, *args: str, options: tuple[str, ...] = ()) -> str:
    env = {"WATCHER_ES_PAYLOAD_VERSION": None, "WATCHER_ES_BOOTSTRAP_SERVERS": None, "NO_COLOR": "1", "COLUMNS": "250"}
    result = CliRunner(env=env).invoke(app, ["--db", str(db), "--publisher-id", "infra-optim:fixture", *options, *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_an_old_log_reemits_byte_identically(old_store: Path) -> None:
    assert _cli(old_store, "notifications", "--replay", "--json") == (FIXTURE / "notifications.jsonl").read_text()


def test_an_old_log_verifies_and_replays_to_the_same_state(old_store: Path) -> None:
    assert "verified" in _cli(old_store, "verify")
    _cli(old_store, "replay")
    assert _cli(old_store, "plans", "--json") == (FIXTURE / "plans.json").read_text()


def test_an_old_log_takes_new_commands_and_reads_at_the_latest_payloads(old_store: Path) -> None:
    plan = json.loads((FIXTURE / "plans.json").read_text().splitlines()[0])["uuid"]
    notes = [json.loads(line) for line in _cli(old_store, "notifications", "--replay", "--json", "--plan", plan, options=("--payload-version", "latest")).splitlines()]
    assert {n["payload"]["watcher_object.version"] for n in notes} == {"1.2", "1.1"}
    assert all(n["payload"]["watcher_object.data"].get("status_message", "absent") is None for n in notes)


@pytest.mark.parametrize("release", RELEASES, ids=lambda p: p.name)
def test_records_written_with_a_released_schema_decode_without_a_kept_writer_schema(release: Path) -> None:
    """A producer still on an older release (a Kafka command, say) is understood: the codec knows every release."""
    current = AvroCodec()
    old = AvroCodec(release)
    record = next(iter(generate_many(_schema(release, "CancelActionPlan"), 1)))
    name, read = current.decode(old.encode("CancelActionPlan", record))
    assert name == "CancelActionPlan" and _kept(record, read, name) == []
