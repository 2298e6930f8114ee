"""What every command shares: settings resolved once, the store opened per command, errors as one line."""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import typer

if TYPE_CHECKING:  # the store pulls in fastavro, sqlite-utils and the Kafka client: loaded on first use
    from rich.console import Console

    from eventstore.kafka.config import KafkaSettings
    from eventstore.log import Outcome
    from projections.store import Store

from eventstore.config import Settings
from eventstore.exceptions import ClusterUnreachableError, CommandValidationError, DeliveryError, KafkaClientError, StoreError, WatcherEsError

P = ParamSpec("P")
R = TypeVar("R")

#: Text from the log or the user is data, never markup: markup is off unless a call turns it on
#: for its own literal tags (and escapes whatever it interpolates).
class _Terminal:
    """A rich console made on first use: `--help` and `--json` output never load rich."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None
        self._made_for: tuple[str | None, ...] = ()

    @property
    def console(self) -> Console:
        """Made again if the environment it read (width, colour, terminal) has changed since."""
        made_for = tuple(os.environ.get(k) for k in ("COLUMNS", "LINES", "NO_COLOR", "TERM"))
        if self._console is None or made_for != self._made_for:
            from rich.console import Console

            no_color = bool(os.environ.get("NO_COLOR")) or None
            self._console = Console(stderr=self._stderr, no_color=no_color, highlight=False, soft_wrap=True, markup=False)
            self._made_for = made_for
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.console, name)


out = _Terminal(stderr=False)
err = _Terminal(stderr=True)


def escape(text: str) -> str:
    """User text inside our own markup, shown as it is (rich's escape, loaded with rich)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: str) -> str:
    """User text as a terminal shows it: control characters and escape sequences removed (``--json`` keeps them)."""
    return _CONTROL.sub("", text)

EXIT_REJECTED = 1
EXIT_INVALID = 2
#: The cluster did not answer, or did not confirm a command, in time: nothing may have been done; try again.
EXIT_UNAVAILABLE = 3


def settings_of(ctx: typer.Context) -> Settings:
    settings: Settings = ctx.ensure_object(dict)["settings"]
    return settings


def kafka_of(ctx: typer.Context) -> KafkaSettings | None:
    """The cluster's settings, or None for the embedded store."""
    kafka: KafkaSettings | None = ctx.ensure_object(dict)["kafka"]
    return kafka


def origin() -> str:
    return f"watcher-es cli@{socket.gethostname()}"


def default_operator() -> str:
    return os.environ.get("OS_USERNAME") or os.environ.get("USER") or "unknown"


#: Set by ``--log-format json``: errors are then logged as JSON lines too, not printed for people.
errors_as_json = False


def failed(label: str, text: str, code: int) -> typer.Exit:
    """Say why a command failed, in one line on stderr; the exit to raise."""
    if errors_as_json:
        logging.getLogger("projections.cli").error("%s: %s", label, text)
    else:
        err.print(f"[red]{label}:[/red] {escape(clean(text))}", markup=True)
    return typer.Exit(code)


def friendly_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Known errors become one readable line on stderr and a non-zero exit; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except CommandValidationError as exc:
            raise failed("invalid", str(exc), EXIT_INVALID) from None
        except StoreError as exc:  # a damaged, read-only or locked file: say which, never a traceback
            ctx = kwargs.get("ctx")  # every command takes its context as `ctx` (typer's own class, not always typer.Context)
            db = settings_of(ctx).db if ctx is not None else "?"  # type: ignore[arg-type]
            raise failed("store", f"{exc} (is --db {db} a readable, writable watcher-es store?)", EXIT_REJECTED) from None
        except (ClusterUnreachableError, DeliveryError) as exc:  # no answer in time: one line, never librdkafka's retries
            raise failed("unavailable", str(exc), EXIT_UNAVAILABLE) from None
        except KafkaClientError as exc:  # the cluster said no; say what it said, not where we were
            raise failed("kafka", str(exc), EXIT_REJECTED) from None
        except WatcherEsError as exc:
            raise failed("error", str(exc), EXIT_REJECTED) from None

    return wrapper


def json_line(value: Any) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def report(result: Outcome, as_json: bool, what: str) -> None:
    """Print a command's outcome; a rejected command exits non-zero with its reason."""
    if as_json:
        json_line({
            "command_id": result.command_id, "plan_uuid": result.plan_uuid, "outcome": result.outcome,
            "reason": result.reason, "duplicate": result.duplicate, "events": list(result.event_types),
        })
    elif result.outcome == "sent":
        out.print(clean(f"{what}: sent as command {result.command_id} (use --wait for the outcome)"))
    elif result.outcome == "rejected":
        err.print(f"[red]rejected:[/red] {escape(clean(result.reason))}", markup=True)
    elif result.duplicate:
        out.print(clean(f"{what}: command {result.command_id} was already handled ({result.outcome}); nothing done again"))
    elif result.outcome == "unchanged":
        out.print(clean(f"{what}: {result.reason}"))
    else:
        out.print(clean(f"{what}: accepted ({', '.join(result.event_types)})"))
    if result.outcome == "rejected":
        raise typer.Exit(EXIT_REJECTED)


@contextmanager
def open_store_of(ctx: typer.Context) -> Iterator[Store]:
    """The store the settings name, opened once per command and closed after it."""
    from projections.backends import open_store

    store = open_store(settings_of(ctx), kafka_of(ctx))
    try:
        yield store
    finally:
        store.close()
