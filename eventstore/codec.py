"""Avro single-object encoding of every command and event, over fastavro.

The framing (``C3 01`` + 8-byte CRC-64-AVRO fingerprint + body) is ours because fastavro does
not provide it (fastavro #501); schemas, canonical forms, fingerprints, encoding and schema
resolution are fastavro's. Records are decoded with the *writer's* schema, looked up by the
fingerprint in the frame, and resolved to the current reader schema of the same name, so a
record written before a schema change stays readable (backward-transitive evolution).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
import importlib.util
from pathlib import Path
from typing import Any, cast

import fastavro
from fastavro.schema import fingerprint, load_schema, parse_schema, to_parsing_canonical_form
from fastavro.validation import ValidationError, validate

from eventstore.exceptions import CorruptRecordError, SchemaError, SerializationError, UnknownSchemaError

MARKER = b"\xc3\x01"
HEADER_SIZE = len(MARKER) + 8
NAMESPACE = "watcher_es"

Record = dict[str, Any]


def schema_dir() -> Path:
    """Where the .avsc files are: the repository's avro/ folder, installed as watcher_es_schemas."""
    spec = importlib.util.find_spec("watcher_es_schemas")
    for location in (spec.submodule_search_locations or []) if spec else []:
        if any(Path(location).glob("*.avsc")):
            return Path(location)
    raise SchemaError("the watcher_es_schemas package (the avro/ folder) is not installed: run `make install`")


def _read(path: Path, what: str) -> tuple[str, Any, str, bytes]:
    """A schema file's record name, schema, canonical form and fingerprint. Each file loads on its
    own so its parsed form (and canonical form) is self-contained."""
    try:
        schema = load_schema(str(path), _write_hint=False)
        canonical = to_parsing_canonical_form(schema)
    except Exception as exc:  # fastavro raises several unrelated types here
        raise SchemaError(f"cannot load {what}: {exc}") from exc
    return path.name[len(NAMESPACE) + 1 : -len(".avsc")], schema, canonical, bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))


@dataclass(frozen=True)
class WriterSchema:
    """A schema some record was written with, as kept beside the log."""

    fingerprint: str
    name: str
    canonical: str


@dataclass(frozen=True)
class _Known:
    """How to decode the records of one writer fingerprint.

    ``writer`` and ``reader`` are fastavro-parsed *with* its "already parsed" marker: the
    schemas loaded for encoding and fingerprinting carry no marker, so handing them to
    ``schemaless_reader`` made it parse the whole schema again for every record, which cost
    more than decoding the body (replay is decode-bound).
    """

    name: str
    writer: Any
    reader: Any | None  # None when the writer is the current schema: no resolution needed

    @classmethod
    def of(cls, name: str, writer: Any, reader: Any | None) -> _Known:
        return cls(name, parse_schema(writer), None if reader is None else parse_schema(reader))


class AvroCodec:
    """Parses each .avsc once; ``learn`` adds the writer schemas a log keeps, so that records written
    with an older version of a schema still decode."""

    def __init__(self, directory: Path | None = None) -> None:
        self._directory = directory or schema_dir()
        self._current: dict[str, Any] = {}
        #: The same schemas parsed with fastavro's marker: ``schemaless_writer`` given an unmarked
        #: schema parses it again for every record, which doubled the cost of an encode.
        self._writers: dict[str, Any] = {}
        self._fingerprints: dict[str, bytes] = {}
        self._known: dict[bytes, _Known] = {}
        self._canonical: dict[str, str] = {}
        files = sorted(self._directory.glob(f"{NAMESPACE}.*.avsc"))
        if not files:
            raise SchemaError(f"no {NAMESPACE}.*.avsc schemas in {self._directory}")
        for path in files:
            name, schema, canonical, fp = _read(path, path.name)
            self._current[name] = schema
            self._writers[name] = parse_schema(schema)
            self._fingerprints[name] = fp
            self._canonical[name] = canonical
            self._known[fp] = _Known.of(name, schema, None)
        # Every schema ever released (history/vN/) reads too: a producer or log on an older release keeps working.
        for release in sorted(p for p in (self._directory / "history").glob("v*") if p.is_dir()):
            for path in sorted(release.glob(f"{NAMESPACE}.*.avsc")):
                name, schema, _, fp = _read(path, f"released schema {release.name}/{path.name}")
                if fp not in self._known and name in self._current:
                    self._known[fp] = _Known.of(name, schema, self._current[name])

    @property
    def names(self) -> list[str]:
        return sorted(self._current)

    def current_schemas(self) -> list[WriterSchema]:
        """The schemas this version writes with, to be kept beside the log."""
        return [WriterSchema(self._fingerprints[n].hex(), n, self._canonical[n]) for n in self.names]

    def fingerprint_of(self, name: str) -> str:
        return self._fingerprints[name].hex()

    def field_names(self, name: str) -> list[str]:
        return [f["name"] for f in self._current[name]["fields"]]

    def learn(self, writers: Iterable[WriterSchema]) -> None:
        """Make records written with these (possibly older) schemas readable."""
        for w in writers:
            fp = bytes.fromhex(w.fingerprint)
            if fp in self._known:
                continue
            try:
                writer = parse_schema(json.loads(w.canonical), _write_hint=False)
            except Exception as exc:
                raise SchemaError(f"kept writer schema {w.fingerprint} ({w.name}) does not parse: {exc}") from exc
            if w.name not in self._current:
                raise SchemaError(f"kept writer schema {w.fingerprint} is for {w.name}, which this version no longer reads")
            self._known[fp] = _Known.of(w.name, writer, self._current[w.name])

    def encode(self, name: str, record: Mapping[str, Any]) -> bytes:
        schema = self._writers.get(name)
        if schema is None:
            raise SerializationError(f"no Avro schema named {name!r} (known: {', '.join(self.names)})")
        buf = io.BytesIO()
        buf.write(MARKER)
        buf.write(self._fingerprints[name])
        try:
            fastavro.schemaless_writer(buf, schema, record)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise SerializationError(self._explain(name, record, exc)) from exc
        return buf.getvalue()

    def _explain(self, name: str, record: Mapping[str, Any], exc: Exception) -> str:
        try:
            validate(dict(record), self._current[name], raise_errors=True)
        except ValidationError as verr:
            return f"{name} does not fit its schema: {'; '.join(str(e) for e in verr.errors)}"
        except Exception:
            pass
        return f"{name} does not fit its schema: {exc}"

    def name_of(self, data: bytes, where: str = "") -> str:
        """The record type of an encoded record, from its fingerprint alone."""
        return self._lookup(data, where).name

    def _lookup(self, data: bytes, where: str) -> _Known:
        if len(data) < HEADER_SIZE:
            raise CorruptRecordError(f"{len(data)} bytes is shorter than the {HEADER_SIZE}-byte single-object header", where)
        if data[:2] != MARKER:
            raise CorruptRecordError(f"marker is {data[:2].hex()}, not c301 (Avro single-object encoding)", where)
        known = self._known.get(data[2:HEADER_SIZE])
        if known is None:
            raise UnknownSchemaError(data[2:HEADER_SIZE].hex(), where)
        return known

    def decode(self, data: bytes, where: str = "") -> tuple[str, Record]:
        """Decode one record; never returns garbage: trailing or missing bytes are corruption."""
        known = self._lookup(data, where)
        buf = io.BytesIO(data)
        buf.seek(HEADER_SIZE)
        try:
            record = cast(Record, fastavro.schemaless_reader(buf, known.writer, known.reader))  # a record schema reads a dict
        except Exception as exc:  # EOFError, UnicodeDecodeError, IndexError... all mean bad bytes
            raise CorruptRecordError(f"{known.name} body does not decode: {type(exc).__name__}: {exc}", where) from exc
        if buf.tell() != len(data):
            raise CorruptRecordError(f"{known.name} body has {len(data) - buf.tell()} trailing bytes", where)
        return known.name, record
