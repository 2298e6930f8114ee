"""Replay progress on stderr: a bar on a terminal, plain lines otherwise, never anything on stdout.

A bar's escape codes would garble a log file or a CI transcript, so when stderr is not a
terminal a line is written every few seconds instead; stdout stays free for ``--json``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from projections.replay import ProgressCallback, ReplayProgress

from projections.cli.context import err

PLAIN_EVERY_S = 2.0


@contextmanager
def replay_progress(label: str) -> Iterator[ProgressCallback]:
    """A callback for ``projections.replay`` that shows events/s and the time left."""
    if sys.stderr.isatty():
        with _bar(label) as update:
            yield update
    else:
        yield _PlainLines(label)


@contextmanager
def _bar(label: str) -> Iterator[ProgressCallback]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
    )
    started = time.monotonic()
    with Progress(*columns, console=err.console) as bar:
        task = bar.add_task(label, total=None, rate="")

        def update(p: ReplayProgress) -> None:
            elapsed = max(time.monotonic() - started, 1e-9)
            description = label if p.phase == "replay" else f"{label}: swapping in"
            done, total = _progress(p)
            bar.update(task, description=description, completed=done, total=total, rate=f"{p.events / elapsed:,.0f} events/s")

        yield update


class _PlainLines:
    """One line every ``PLAIN_EVERY_S`` seconds, and one whenever the phase changes."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._started = time.monotonic()
        self._last_line = 0.0
        self._phase = "replay"

    def __call__(self, p: ReplayProgress) -> None:
        now = time.monotonic()
        if p.phase == self._phase and now - self._last_line < PLAIN_EVERY_S:
            return
        self._phase, self._last_line = p.phase, now
        elapsed = max(now - self._started, 1e-9)
        rate = p.events / elapsed
        if p.phase == "swap":
            err.print(f"{self._label}: {p.events:,} events in {elapsed:.1f}s ({rate:,.0f} events/s); swapping the new model in", soft_wrap=True)
            return
        done, total = _progress(p)
        if total is None:  # a topic: its end is only known when it is reached
            err.print(f"{self._label}: {p.events:,} events, position {p.position}, {rate:,.0f} events/s", soft_wrap=True)
            return
        share = done / total if total else 1.0
        left = (total - done) / (done / elapsed) if done else 0.0
        err.print(f"{self._label}: position {done:,}/{total:,} ({share:.0%}), {rate:,.0f} events/s, ETA {left:.0f}s", soft_wrap=True)


def _progress(p: ReplayProgress) -> tuple[int, int | None]:
    """What a bar counts: the embedded log's positions, or events read when the end is not known."""
    if p.target is not None and p.target.sequence is not None and p.position.sequence is not None:
        return p.position.sequence, p.target.sequence
    return p.events, None
