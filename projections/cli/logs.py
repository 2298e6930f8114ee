"""Where log lines go: stderr, as text for people or, with ``--log-format json``, one JSON object a line for machines.

A JSON line holds ``time`` (UTC, ISO 8601), ``level``, ``part`` (the part of `serve` that logged
it: its thread's or its process's name, ``serve`` for the rest), ``logger``, ``message`` and the
ids the line is about, where the code that logs names them (``extra=ids(...)``): ``plan``,
``command``, ``position``. Whatever the format, the value of every secret setting given
(``-X``/``-F`` keys such as ``sasl.password``) is replaced by ``********`` in every line, so a
library that echoes its configuration, or an error that quotes it, cannot leak it.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Literal

LogFormat = Literal["text", "json"]
FORMATS: tuple[LogFormat, ...] = ("text", "json")

#: The ids a log line may carry (``extra``), in this order.
IDS = ("plan", "command", "position")
MASK = "********"


def part_of(record: logging.LogRecord) -> str:
    """`serve`'s parts run in threads (or processes) named ``serve-<part>``."""
    for name in (record.threadName, record.processName):
        if name and name.startswith("serve-"):
            return name.removeprefix("serve-")
    return "serve"


class Redacting(logging.Filter):
    """Every secret value replaced in the message (and the arguments it was made from)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            text = record.getMessage()
            for secret in self._secrets:
                text = text.replace(secret, MASK)
            record.msg, record.args = text, None
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = self._redacted(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return True

    def _redacted(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "part": part_of(record),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in IDS:
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.exc_info:
            record.exc_text = record.exc_text or self.formatException(record.exc_info)
        if record.exc_text:
            line["error"] = record.exc_text
        return json.dumps(line, default=str)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Whatever ``sys.stderr`` is when a line is written (a test runner swaps it per command)."""

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _: object) -> None:
        pass


def configure(log_format: LogFormat, secrets: Iterable[str], level: int = logging.INFO) -> None:
    """Every log line to stderr in ``log_format``, secrets masked (configured again, it replaces what it set before)."""
    handler = _Stderr()
    handler.addFilter(Redacting(secrets))
    handler.setFormatter(JsonLines() if log_format == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Stderr)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)

