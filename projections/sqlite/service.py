"""`watcher-es serve` on the embedded store: one part that catches the projections up, and the deadline pass."""

from __future__ import annotations

import time
from collections.abc import Callable

from eventstore.boundary import guarded
from eventstore.sqlite_support import sqlite_error
from projections.service import Service
from projections.sqlite.backend import EmbeddedBackend


def embedded_service(backend: EmbeddedBackend, interval_s: float, say: Callable[[str], object]) -> Service:
    """The service of one part; ``say`` reports each deadline the pass enforced."""

    def deadline_pass() -> bool:
        for result in backend.enforce_deadlines("watcher-es serve"):
            say(f"deadline pass: plan {result.plan_uuid}: {result.outcome}")
        return True

    return Service({"projections": CatchingUp(backend, interval_s)}, deadline_pass=deadline_pass, interval_s=interval_s)


@guarded(sqlite_error)
class CatchingUp:
    """The embedded `serve`'s one part: the projections caught up with what other processes
    appended. The log cannot wake it, so an idle poll waits ``idle_s`` (``serve --interval``)."""

    def __init__(self, backend: EmbeddedBackend, idle_s: float) -> None:
        self._backend = backend
        self._idle_s = idle_s

    def poll(self, timeout: float = 0.2) -> int:
        done = self._backend.catch_up()
        if not done and timeout:
            time.sleep(self._idle_s)
        return done

    def close(self) -> None:
        """The backend is its store's to close."""
