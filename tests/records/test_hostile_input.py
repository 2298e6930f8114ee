"""Hostile input at the two doors bytes and documents come in by: no exception escapes but ours.

Why: the decoder reads whatever a log, a topic or a disk hands it, and ``register`` reads whatever
an operator (or a script) writes in a file. Neither may answer garbage with a stray ``KeyError``,
``OverflowError`` or ``UnicodeEncodeError`` from deep inside: a consumer would crash instead of
dead-lettering the record, and the CLI would print a traceback instead of one line naming the
field. So, with hypothesis:

1. random bytes, a real schema's header followed by random bytes, and real records truncated at
   every length or with bytes flipped, go to ``AvroCodec.decode``: the result is a record of a
   known type, or ``CorruptRecordError`` / ``UnknownSchemaError``, nothing else;
2. a valid plan document with fields replaced (at any depth, by any JSON value, hostile strings
   included), deleted or added goes to ``parse_plan_document`` + ``validate_command``: it is a
   command, or ``CommandValidationError`` whose message starts with the field it is about; and
   what validation lets through fits the log (Avro encodes it) and its times read back as datetimes;
3. the same documents go through ``watcher-es register FILE``: exit 0 (accepted), 1 (rejected by
   the rules) or 2 (invalid, naming the field), never a traceback; a document that is not
   accepted leaves no plan behind, and an accepted plan can be shown and cancelled.

The ``@example``s are the minimal inputs found so far (lone surrogates in a text field, datetimes
whose UTC instant is in year 0 or 10000): they run first every time, so they stay fixed.
"""

from __future__ import annotations

import copy
import json
import re
import tempfile
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from projections.cli import app
from eventstore.codec import HEADER_SIZE, MARKER, AvroCodec
from eventstore.domain.messages import RegisterActionPlan, to_record
from eventstore.domain.validation import validate_command
from eventstore.exceptions import CommandValidationError, CorruptRecordError, UnknownSchemaError
from eventstore.plan_file import parse_plan_document
from eventstore.times import format_time

from tests import factories as f

CODEC = AvroCodec()
WHERE = "hostile-test"

PLAN = "76be87bd-3422-43f9-93a0-e85a577e3061"
ACTIONS = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(3)]
CREATED = "2016-10-18T09:52:05Z"


def plan_document() -> dict[str, Any]:
    """A valid document (as tests/support/plan_documents.py's ``plan_document()``), every optional field present."""
    return {
        "uuid": PLAN, "state": "RECOMMENDED", "global_efficacy": [{"name": "released_nodes_ratio", "unit": "%", "value": 40.0}],
        "created_at": CREATED, "updated_at": None, "deleted_at": None, "status_message": None,
        "audit": {
            "uuid": "10a47dd1-4874-4298-91cf-eff046dbdb8d", "goal_uuid": "bc830f84-8ae3-4fc6-8bc6-e3dd15e8b49a",
            "strategy_uuid": "cb3d0b58-4415-4d90-b75b-1e96878730e3", "audit_type": "ONESHOT", "state": "SUCCEEDED",
            "scope": [], "parameters": {"period": 3600}, "interval": None, "created_at": CREATED,
            "updated_at": None, "deleted_at": None, "name": "audit-1", "auto_trigger": False, "next_run_time": None,
            "status_message": None,
        },
        "strategy": {
            "uuid": "cb3d0b58-4415-4d90-b75b-1e96878730e3", "name": "vm_workload_consolidation",
            "display_name": "VM Workload Consolidation Strategy", "parameters_spec": {}, "created_at": CREATED,
            "updated_at": None, "deleted_at": None,
        },
        "actions": [
            {"uuid": ACTIONS[i], "action_type": "migrate", "input_parameters": {"migration_type": "live", "resource_id": f"vm-{i}"},
             "parents": [ACTIONS[i - 1]] if i else [], "state": "PENDING", "created_at": CREATED, "updated_at": None,
             "deleted_at": None, "status_message": None}
            for i in range(3)
        ],
    }


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value).union(*(_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_keys(v) for v in value))
    return set()


#: The names an error message may start with: the document's own fields, at any depth.
FIELD_NAMES = _keys(plan_document()) | {"document"}


def parse(document: Any) -> RegisterActionPlan:
    command = parse_plan_document(document, command_id=f.cid(), issued_at=f.T0, issued_by="watcher-decision-engine", origin="tests")
    validate_command(command)
    return command


def names_a_field(message: str) -> bool:
    """``audit.created_at: ...``, ``actions[2].parents[0]: ...``, ``document: ...``: the field comes first."""
    if not message:
        return False
    field = message.split(":", 1)[0]
    words = set(re.findall(r"[A-Za-z_]+", field))
    return bool(words) and words <= FIELD_NAMES | {"parents"} and re.fullmatch(r"[A-Za-z_]+(\[\d+\])?(\.[A-Za-z_]+(\[\d+\])?)*", field) is not None


def test_the_base_document_is_valid() -> None:
    command = parse(plan_document())
    assert command.plan_uuid == PLAN and [a.uuid for a in command.actions] == ACTIONS


# ---------------------------------------------------------------- 1. the decoder


def decodes_or_refuses(data: bytes) -> tuple[str, dict[str, Any]] | None:
    """The decoded record, or None when the decoder refused it with one of its two errors."""
    try:
        name, record = CODEC.decode(data, WHERE)
    except (CorruptRecordError, UnknownSchemaError) as exc:
        assert WHERE in str(exc)
        return None
    assert name in CODEC.names
    assert isinstance(record, dict) and list(record) == CODEC.field_names(name)
    return name, record


def header(name: str) -> bytes:
    return MARKER + bytes.fromhex(CODEC.fingerprint_of(name))


def _register_command() -> RegisterActionPlan:
    done, running = f.action(state="SUCCEEDED"), f.action(state="ONGOING")
    return f.register(PLAN, "ONGOING", [done, running, f.action()])


RECORDS: dict[str, bytes] = {
    "CancelActionPlan": CODEC.encode("CancelActionPlan", to_record(f.cancel(PLAN, reason="maintenance \u00e9t\u00e9"))),
    "RegisterActionPlan": CODEC.encode("RegisterActionPlan", to_record(_register_command())),
}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
@example(b"")
@example(MARKER)
@example(MARKER + b"\x00" * 8)
def test_random_bytes_decode_or_are_refused(data: bytes) -> None:
    decodes_or_refuses(data)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(CODEC.names), st.binary(max_size=400))
@example("CancelActionPlan", b"")
@example("CancelActionPlan", b"\x01" * 64)  # negative lengths: -1 read as "the rest"
@example("CancelActionPlan", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f")  # the largest varint
@example("RegisterActionPlan", b"\xfe\xff\xff\xff\x0f" * 20)  # huge lengths and counts
def test_a_real_header_then_random_bytes(name: str, body: bytes) -> None:
    decodes_or_refuses(header(name) + body)


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_a_real_record_truncated_at_every_length(name: str) -> None:
    data = RECORDS[name]
    decoded = decodes_or_refuses(data)
    assert decoded is not None and decoded[0] == name
    for length in range(len(data)):
        assert decodes_or_refuses(data[:length]) is None, f"{name} cut at {length} of {len(data)} bytes decoded"
    assert decodes_or_refuses(data + b"\x00") is None  # one byte too many is corruption too


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(sorted(RECORDS)),
    st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=1, max_value=255)), min_size=1, max_size=6),
)
def test_a_real_record_with_flipped_bytes(name: str, flips: list[tuple[int, int]]) -> None:
    data = bytearray(RECORDS[name])
    for index, mask in flips:
        data[index % len(data)] ^= mask
    decoded = decodes_or_refuses(bytes(data))
    if decoded is not None and bytes(data[:HEADER_SIZE]) == RECORDS[name][:HEADER_SIZE]:
        assert decoded[0] == name


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(RECORDS)), st.integers(min_value=0), st.binary(min_size=1, max_size=20), st.integers(min_value=0, max_value=20))
def test_a_real_record_with_bytes_inserted_or_removed(name: str, at: int, inserted: bytes, removed: int) -> None:
    data = RECORDS[name]
    at = HEADER_SIZE + at % (len(data) - HEADER_SIZE)
    decodes_or_refuses(data[:at] + inserted + data[at:])
    decodes_or_refuses(data[:at] + data[at + removed:])


# ---------------------------------------------------------------- 2. plan documents


def _offsets() -> st.SearchStrategy[timezone]:
    minutes = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1)
    return st.builds(lambda m: timezone(timedelta(minutes=m)), minutes)


def _iso(dt: datetime, z: bool) -> str:
    return dt.isoformat().replace("+00:00", "Z") if z else dt.isoformat()


#: Datetimes anywhere in the range Python allows, naive or at any offset, in ISO spelling (with Z sometimes).
DATETIMES = st.builds(_iso, st.datetimes(min_value=datetime.min, max_value=datetime.max, timezones=st.one_of(st.none(), _offsets())), st.booleans())

#: Examples hypothesis found (kept so they run first every time): valid ISO datetimes whose UTC instant is outside years 1-9999.
YEAR_0 = "0001-01-01T00:00:00+14:00"
YEAR_10000 = "9999-12-31T23:59:59.999999-14:00"

HOSTILE_STRINGS = st.sampled_from([
    "", " ", "Z", "[/x]", "[red]boom[/red]", "[/]", "[bold", "\x1b[31mred\x1b[0m", "\x00", "\r\n", "\u202e", "\ud800", "\udfff",
    "null", "NaN", "-1", "1e999", "\u00e9t\u00e9", "\U0001f4a3", "x" * 5000,
    "RECOMMENDED", "PENDING", "ONGOING", "SUCCEEDED", "FAILED", "SKIPPED", "CANCELLED", "CANCELLING", "SUPERSEDED", "DELETED",
    "recommended", "ONESHOT", "CONTINUOUS", "EVENT",
    PLAN, PLAN.upper(), "{" + PLAN + "}", "urn:uuid:" + PLAN, PLAN.replace("-", ""), ACTIONS[0], ACTIONS[2], PLAN[:-1],
    YEAR_0, YEAR_10000, "0001-01-01T00:00:00Z", "0001-01-01T00:00:00", "9999-12-31T23:59:59.999999",
    "1970-01-01T00:00:00Z", "2016-10-18T09:52:05", "2016-10-18", "2016-13-45T99:99:99Z", "*/5 * * * *", "3600",
])

TEXT = st.text(st.characters(categories=["L", "M", "N", "P", "S", "Z", "C"]), max_size=20)  # controls and lone surrogates too

SCALARS: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([0, -1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 10**30, -(10**300), 10**4000]),  # 10**4000: still JSON-readable
    st.floats(),  # NaN and infinities too: Python's json reads and writes them
    TEXT,
    HOSTILE_STRINGS,
    DATETIMES,
)

JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT | st.sampled_from(sorted(FIELD_NAMES)), children, max_size=3),
    max_leaves=6,
)

Place = tuple[str | int, ...]


def _children(value: Any) -> list[tuple[str | int, Any]]:
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, list):
        return list(enumerate(value))
    return []


def _places(value: Any, prefix: Place = ()) -> list[Place]:
    """Every place in the document below the root."""
    out: list[Place] = []
    for key, child in _children(value):
        out.append((*prefix, key))
        out.extend(_places(child, (*prefix, key)))
    return out


def _containers(value: Any, prefix: Place = ()) -> list[Place]:
    """Every object or list in the document, the root included."""
    out: list[Place] = [prefix] if isinstance(value, (dict, list)) else []
    for key, child in _children(value):
        out.extend(_containers(child, (*prefix, key)))
    return out


def _at(document: Any, place: Place) -> Any:
    for key in place:
        document = document[key]
    return document


@st.composite
def mutated_documents(draw: st.DrawFn) -> Any:
    """The valid document with one to four fields replaced (by anything, or by a value of the same kind), deleted or added,
    at any depth; rarely, not an object at all."""
    document: Any = plan_document()
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        op = draw(st.sampled_from(["replace", "replace", "similar", "similar", "delete", "add", "root"]))
        places = _places(document)
        if op == "root":
            if draw(st.integers(min_value=0, max_value=9)) == 0:
                document = draw(JSON_VALUES)
        elif op == "replace" and places:
            place = draw(st.sampled_from(places))
            _at(document, place[:-1])[place[-1]] = draw(JSON_VALUES)
        elif op == "similar" and places:  # a value of the same kind, so more documents get past validation
            place = draw(st.sampled_from(places))
            current = _at(document, place)
            kind = st.booleans() if isinstance(current, bool) else JSON_VALUES if isinstance(current, (dict, list)) else TEXT | HOSTILE_STRINGS | DATETIMES
            _at(document, place[:-1])[place[-1]] = draw(kind)
        elif op == "delete" and places:
            place = draw(st.sampled_from(places))
            del _at(document, place[:-1])[place[-1]]
        elif op == "add" and _containers(document):
            container = _at(document, draw(st.sampled_from(_containers(document))))
            if isinstance(container, dict):
                container[draw(TEXT | st.sampled_from(sorted(FIELD_NAMES)))] = draw(JSON_VALUES)
            else:
                container.append(draw(JSON_VALUES | st.just(copy.deepcopy(plan_document()["actions"][0]))))
    return document


def parsed_or_refused(document: Any) -> RegisterActionPlan | CommandValidationError:
    try:
        return parse(document)
    except CommandValidationError as exc:
        assert names_a_field(str(exc)), f"the error does not start with the field it is about: {exc}"
        return exc


@settings(max_examples=600, deadline=None)
@given(mutated_documents())
@example([])
@example("plan")
@example({"uuid": PLAN})
@example({**plan_document(), "actions": []})
@example({**plan_document(), "audit": {**plan_document()["audit"], "scope": 10**4000}})
@example({**plan_document(), "created_at": YEAR_0})
def test_a_mutated_document_parses_or_names_the_field(document: Any) -> None:
    parsed_or_refused(document)


def _times(command: RegisterActionPlan) -> dict[str, int | None]:
    times: dict[str, int | None] = {"created_at": command.created_at, "updated_at": command.updated_at, "deleted_at": command.deleted_at}
    for prefix, item in (("audit", command.audit), ("strategy", command.strategy), *((f"actions[{i}]", a) for i, a in enumerate(command.actions))):
        times.update({f"{prefix}.{k}": v for k, v in vars(item).items() if k.endswith(("_at", "_time"))})
    return times


@settings(max_examples=600, deadline=None)
@given(mutated_documents())
@example({**plan_document(), "status_message": "\ud800"})
@example({**plan_document(), "created_at": YEAR_0})
@example({**plan_document(), "audit": {**plan_document()["audit"], "updated_at": YEAR_10000}})
def test_an_accepted_document_can_be_stored_and_shown(document: Any) -> None:
    """What validation lets through must fit the log (Avro) and read back as a datetime (status, notifications)."""
    command = parsed_or_refused(document)
    if isinstance(command, CommandValidationError):
        return
    CODEC.encode("RegisterActionPlan", to_record(command))  # SerializationError here: invalid input validation missed
    for field, us in _times(command).items():
        assert us is None or format_time(us) is not None, field  # ValueError here: a time no datetime can show


# ---------------------------------------------------------------- 3. the same documents through the CLI


RUNNER = CliRunner(env={
    **{name: None for name in (
        "WATCHER_ES_DB", "WATCHER_ES_PUBLISHER_ID", "WATCHER_ES_NOTIFICATION_LEVEL", "WATCHER_ES_ABORT_TIMEOUT",
        "WATCHER_ES_BOOTSTRAP_SERVERS", "WATCHER_ES_KAFKA_CONFIG", "WATCHER_ES_TOPIC_PREFIX",
        "WATCHER_ES_NOTIFICATION_TOPIC", "WATCHER_ES_GROUP_PREFIX", "WATCHER_ES_PAYLOAD_VERSION", "OS_USERNAME",
    )},
    "NO_COLOR": "1", "COLUMNS": "250", "TERM": "dumb",
})


def no_traceback(result: Result) -> Result:
    assert "Traceback" not in result.output, result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # the escaped exception itself, so hypothesis reports where it came from
    return result


def run(db: Path, *args: str) -> Result:
    return no_traceback(RUNNER.invoke(app, ["--db", str(db), "--publisher-id", "infra-optim:test", *args]))


def plans_in(db: Path) -> list[dict[str, Any]]:
    """The plans a store holds: none when no store was created at all."""
    result = run(db, "plans", "--json")
    if not db.exists():
        assert result.exit_code == 1 and "no event log" in result.stderr, result.output
        return []
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def register_file(content: str | bytes, check: Callable[[Result, Path], None]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path, db = Path(tmp) / "plan.json", Path(tmp) / "store.db"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        check(run(db, "register", str(path)), db)


def outcome_is_sound(document: Any, result: Result, db: Path) -> None:
    """Exit 0, 1 or 2 as the CLI documents them; what is not accepted leaves no plan; what is accepted can be shown and cancelled."""
    expected = parsed_or_refused(document)
    assert result.exit_code in (0, 1, 2), result.output
    if isinstance(expected, CommandValidationError):
        assert result.exit_code == 2, result.output
        field = str(expected).split(":", 1)[0]
        assert "invalid:" in result.stderr and field in result.stderr, result.stderr
    elif result.exit_code == 1:
        # 1 is a refusal by the rules, said as one; not invalid input that slipped past validation
        assert "rejected:" in result.stderr, f"exit 1 for a document validation accepted, and not a rule's refusal: {result.stderr}"
    else:
        assert result.exit_code == 0, f"validation accepted the document, register called it invalid: {result.output}"
    if result.exit_code != 0:
        assert plans_in(db) == [], f"a register that exited {result.exit_code} left a plan"
        return
    assert isinstance(expected, RegisterActionPlan)
    assert "accepted" in result.stdout, result.output
    assert [p["uuid"] for p in plans_in(db)] == [expected.plan_uuid]
    shown = run(db, "status", expected.plan_uuid, "--json")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["plan"]["uuid"] == expected.plan_uuid, shown.output
    cancelled = run(db, "cancel", expected.plan_uuid, "--reason", "hostile input test", "--by", "tester")
    assert cancelled.exit_code in (0, 1), cancelled.output


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_documents())
@example({**plan_document(), "state": "SUCCEEDED"})  # refused by the rules: exit 1
@example({**plan_document(), "created_at": YEAR_0})
@example({**plan_document(), "actions": [{**plan_document()["actions"][0], "created_at": YEAR_10000}]})
@example({**plan_document(), "status_message": "\ud800"})
def test_register_exits_0_1_or_2_never_a_traceback(document: Any) -> None:
    register_file(json.dumps(document), lambda result, db: outcome_is_sound(document, result, db))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200) | st.text(max_size=50).map(lambda s: s.encode("utf-8", "surrogatepass")))
@example(b"")
@example(b"\xff\xfe{}")
@example(b'{"uuid": 1' + b"1" * 5000 + b"}")
def test_register_of_a_file_that_is_not_json(content: bytes) -> None:
    def check(result: Result, db: Path) -> None:
        assert result.exit_code in (1, 2), result.output
        assert plans_in(db) == []

    register_file(content, check)
