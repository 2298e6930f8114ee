"""Docs that cannot drift: the tables the README and docs/ rest on are read back and compared with the code.

The idea is sqlite-utils' ``tests/test_docs.py``: the documentation is checked against the thing
it documents, so a change to one without the other fails. The markdown is parsed here (headings,
tables, code spans, links) with a few lines of our own; a section, table, row or cell that is
missing is a failure, never a skip.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from fastavro.schema import fingerprint, load_schema, to_parsing_canonical_form
from typer.testing import CliRunner

from eventstore.codec import AvroCodec
from eventstore.domain.messages import COMMAND_TYPES
from eventstore.kafka.appends import Fence, append_from
from eventstore.log import chain_hash
from projections.cli import app
from projections.payloads import payload_set

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
WIRE = DOCS / "wire-contract.md"
README_MAX_LINES = 200

# ---------------------------------------------------------------------------- reading markdown

Row = dict[str, str]
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FLAG = re.compile(r"(?<![\w-])--?[A-Za-z][\w-]*")


def lines_outside_fences(text: str) -> Iterator[tuple[str, bool]]:
    """Each line and whether it is prose (not inside a ``` fenced block)."""
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            yield line, False
            continue
        yield line, not fenced


def section(path: Path, title: str) -> str:
    """The text under the heading ``title`` (any level), up to the next heading of that level or above."""
    out: list[str] = []
    level = 0
    for line, prose in lines_outside_fences(path.read_text()):
        match = HEADING.match(line) if prose else None
        if level:
            if match and len(match.group(1)) <= level:
                break
            out.append(line)
        elif match and match.group(2) == title:
            level = len(match.group(1))
    assert level, f"{path.relative_to(ROOT)} has no section headed {title!r}"
    return "\n".join(out)


def cells(line: str) -> list[str]:
    """A table line's cells: split on the pipes that are not escaped, ``\\|`` read as ``|``."""
    inner = line.strip()
    assert inner.startswith("|") and inner.endswith("|"), f"not a table row: {line!r}"
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", inner[1:-1])]


def tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every table in ``text``: its header and its rows (the ``|---|`` line checked and dropped)."""
    found: list[tuple[list[str], list[list[str]]]] = []
    block: list[str] = []
    for line, prose in [*lines_outside_fences(text), ("", True)]:
        if prose and line.strip().startswith("|"):
            block.append(line)
            continue
        if block:
            header, rule, *rows = block
            assert re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", rule.strip()), f"table without a |---| line under {header!r}"
            found.append((cells(header), [cells(r) for r in rows]))
            block = []
    return found


def table(text: str, *header: str) -> list[Row]:
    """The one table with exactly these column titles, as rows keyed by title; each row must be whole."""
    matching = [rows for head, rows in tables(text) if tuple(head) == header]
    assert len(matching) == 1, f"expected one table with columns {header}, found {len(matching)}"
    rows = matching[0]
    assert rows, f"the table with columns {header} has no rows"
    for row in rows:
        assert len(row) == len(header), f"row {row} has {len(row)} cells, the table {len(header)} columns"
    return [dict(zip(header, row, strict=True)) for row in rows]


def by_first_column(rows: list[Row], column: str) -> dict[str, Row]:
    keyed = {row[column]: row for row in rows}
    assert len(keyed) == len(rows), f"a {column!r} appears twice"
    return keyed


def code(cell: str) -> str:
    """The first `code span` of a cell."""
    match = re.search(r"`([^`]+)`", cell)
    assert match, f"no `code` in {cell!r}"
    return match.group(1)


def codes(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def slug(title: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(m.group(2)) for line, prose in lines_outside_fences(path.read_text()) if prose and (m := HEADING.match(line))}


def links(path: Path) -> list[str]:
    """The targets of the markdown links in the prose of a file (code spans and fences left out)."""
    prose = "\n".join(re.sub(r"`[^`]*`", "", line) for line, is_prose in lines_outside_fences(path.read_text()) if is_prose)
    return re.findall(r"\]\(([^)\s]+)\)", prose)


# ---------------------------------------------------------------------------- the wire contract


@pytest.fixture(scope="module")
def codec() -> AvroCodec:
    return AvroCodec()


def test_the_fingerprint_table_is_the_codecs(codec: AvroCodec) -> None:
    rows = table(section(WIRE, "Fingerprints of this release"), "record", "fingerprint (frame order)")
    documented = {code(r["record"]): code(r["fingerprint (frame order)"]) for r in rows}
    assert len(documented) == len(rows), "a record appears twice in the fingerprint table"
    # Every command a producer may send, the outcome record and the events-topic record.
    expected = {name: codec.fingerprint_of(name) for name in [*COMMAND_TYPES, "CommandHandled", "EventsAppended"]}
    assert documented == expected


def test_the_schema_list_names_every_command() -> None:
    text = section(WIRE, "Value: Avro single-object encoding")
    match = re.search(r"where\s+`<Name>` is the command:(.*?)\. The", text, flags=re.DOTALL)
    assert match, "the wire contract no longer lists the commands' schema names"
    assert codes(match.group(1)) == list(COMMAND_TYPES)


def test_the_earlier_release_fingerprint_follows_the_documented_recipe() -> None:
    """The doc says fastavro's load_schema + canonical form + CRC-64-AVRO gives the frame's bytes: so it must."""
    text = section(WIRE, "Fingerprints of this release")
    match = re.search(r"0\.1\.0's\s+`RegisterActionPlan`\s+`([0-9a-f]{16})`", text)
    assert match, "the wire contract no longer names 0.1.0's RegisterActionPlan fingerprint"
    schema = load_schema(str(ROOT / "avro" / "history" / "v1" / "watcher_es.RegisterActionPlan.avsc"), _write_hint=False)
    assert fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO") == match.group(1)


def test_the_worked_example_is_what_the_codec_writes(codec: AvroCodec) -> None:
    steps = by_first_column(table(section(WIRE, "Worked example: `CancelActionPlan`"), "step", "value"), "step")

    def value(step: str) -> list[str]:
        assert step in steps, f"the worked example has no row {step!r}"
        return codes(steps[step]["value"])

    [canonical] = value("Parsing Canonical Form")
    assert canonical == next(s.canonical for s in codec.current_schemas() if s.name == "CancelActionPlan")
    frame_order = codec.fingerprint_of("CancelActionPlan")
    [integer] = value("its CRC-64-AVRO, as an integer")
    assert int(integer, 16).to_bytes(8, "little").hex() == frame_order
    spaced, compact = value("written little-endian (frame order)")
    assert bytes.fromhex(spaced).hex() == compact == frame_order
    [start] = value("every record starts")
    assert bytes.fromhex(start) == b"\xc3\x01" + bytes.fromhex(frame_order)
    [record] = value("the record")
    [whole] = value("is, whole")
    assert codec.encode("CancelActionPlan", json.loads(record)) == bytes.fromhex(whole)
    assert bytes.fromhex(whole).startswith(bytes.fromhex(start))


FENCE_COLUMNS = ("offset", "plan_uuid", "expected_version", "events", "verdict", "versions of its events", "plan version after")


def test_the_fence_example_is_what_every_reader_of_ours_does() -> None:
    rows = table(section(WIRE, "The fence, which every reader must apply"), *FENCE_COLUMNS)
    assert {r["verdict"] for r in rows} == {"stands", "conflict"}, "the example shows both verdicts"
    fence = Fence()
    for row in rows:
        offset, plan = int(row["offset"]), code(row["plan_uuid"])
        record: dict[str, Any] = {
            "append_id": f"a{offset}", "command_id": f"c{offset}", "command_type": "CancelActionPlan", "plan_uuid": plan,
            "expected_version": int(row["expected_version"]), "writer": "w", "appended_at": 0, "outcome": "accepted",
            "reason": "", "command": b"",
            "events": [
                {"event_id": f"e{offset}.{i}", "event_type": "ActionCancelled", "occurred_at": 0, "body": b"", "hash": ""}
                for i in range(int(row["events"]))
            ],
        }
        append = append_from(record, "watcher-es.events/0", offset)
        conflict = fence.admit(append)
        assert ("stands" if conflict is None else "conflict") == row["verdict"], f"offset {offset}"
        versions = [e.version for e in append.events] if conflict is None else []
        documented = [int(v) for v in row["versions of its events"].split(",") if v.strip()]
        assert versions == documented, f"offset {offset}"
        assert fence.version(plan) == int(row["plan version after"]), f"offset {offset}"


def test_the_chain_example_is_the_logs_hash() -> None:
    rows = table(section(WIRE, "The chain"), "version", "body (hex)", "hash")
    previous = ""
    for n, row in enumerate(rows, start=1):
        assert int(row["version"]) == n
        previous = chain_hash(previous, bytes.fromhex(code(row["body (hex)"])))
        assert code(row["hash"]) == previous, f"version {n}"


def test_the_payload_table_is_the_declared_sets() -> None:
    header = (
        "setting", "ActionPlanCancelPayload", "ActionCancelPayload", "TerseActionPlanPayload", "TerseAuditPayload",
        "Strategy-, ExceptionPayload",
    )
    rows = table(section(DOCS / "payload-versions.md", "Payload versions"), *header)
    assert [code(r["setting"]) for r in rows] == ["1.0", "latest"]
    for row in rows:
        versions = payload_set(code(row["setting"])).versions
        documented: dict[str, str] = {}
        for column in header[1:]:
            names = [n.strip() for n in column.split(",")]
            for name in names:
                documented[name[:-1] + "Payload" if name.endswith("-") else name] = row[column]
        assert documented == dict(versions), code(row["setting"])


# ---------------------------------------------------------------------------- the README's CLI tables


def group() -> Any:
    return typer.main.get_command(app)


def flags(usage: str) -> list[str]:
    return FLAG.findall(usage)


def test_the_global_options_table_is_the_apps() -> None:
    rows = table(section(README, "CLI"), "option", "env", "meaning")
    documented = {tuple(sorted(flags(code(r["option"])))): (code(r["env"]) if r["env"] else None) for r in rows}
    assert len(documented) == len(rows), "an option appears twice in the README"
    options = [p for p in group().params if p.param_type_name == "option" and p.name != "help"]
    expected = {tuple(sorted([*p.opts, *p.secondary_opts])): p.envvar for p in options}
    assert documented == expected


def test_the_commands_table_lists_every_command_in_help_order() -> None:
    rows = table(section(README, "CLI"), "command", "what it does")
    help_text = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    listed = help_text.split("Commands:", 1)[1].splitlines()
    in_help = [line.split()[0] for line in listed if line.startswith("  ") and line.strip()]
    assert in_help == list(group().commands), "the commands --help lists"
    assert [code(r["command"]).split()[0] for r in rows] == in_help


@pytest.mark.parametrize("name", list(group().commands))
def test_each_commands_row_names_its_real_arguments(name: str) -> None:
    rows = {code(r["command"]).split()[0]: code(r["command"]) for r in table(section(README, "CLI"), "command", "what it does")}
    assert name in rows, f"`watcher-es {name}` has no row in the README's commands table"
    usage, command = rows[name], group().commands[name]
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    options = [p for p in command.params if p.param_type_name == "option"]
    plain = re.sub(r"\[[^\]]*\]", " ", usage).split()  # what is not optional
    positional: list[str] = []
    for word in plain[1:]:
        if word.startswith("-"):
            break
        positional.append(word)
    assert positional == [a.name.upper() for a in arguments if a.required], usage
    for argument in (a for a in arguments if not a.required):
        assert f"[{argument.name.upper()}]" in usage, usage
    for option in (o for o in options if o.required):
        assert set(option.opts) & set(plain), f"{usage}: the required {option.opts[0]} is not named"
    known = {flag for o in options for flag in (*o.opts, *o.secondary_opts)}
    assert set(flags(usage)) <= known, f"{usage}: not options of `{name}`: {sorted(set(flags(usage)) - known)}"


# ---------------------------------------------------------------------------- pages and links


def test_the_readme_is_a_first_page() -> None:
    assert len(README.read_text().splitlines()) <= README_MAX_LINES


MARKDOWN = [README, *sorted(DOCS.glob("*.md"))]


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_points_to_a_file_that_exists(page: Path) -> None:
    for target in links(page):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.is_file(), f"{page.relative_to(ROOT)} links to {target}, which does not exist"
        if anchor and file.suffix == ".md":
            assert anchor in anchors(file), f"{page.relative_to(ROOT)} links to {target}: no such heading"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in links(README) if not re.match(r"[a-z]+:", t)}
    pages = sorted(DOCS.glob("*.md"))
    assert pages, "docs/ has no pages"
    assert [p.name for p in pages if p.resolve() not in linked] == []
