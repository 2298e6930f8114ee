"""`watcher-es serve`, one service for both backends (ARCHITECTURE.md): its parts, each in a thread of its own, and the deadline pass.

A part is anything that polls (``poll(timeout) -> records handled``) and closes: on Kafka the
handler, read model and translator (``kafka_service``), each blocked in a long poll of its own
consumer (the client releases the GIL while it waits), so a record wakes its part at once
whatever the others are doing; on the embedded store one part (``embedded.CatchingUp``).

Each part may have a check (``checks``), run in its thread every ``CHECK_S``: it asks the part's
store something (the cluster, through the part's own client; the embedded log) and returns how
far behind the part is. What the polls and checks find goes to the health board and the
metrics (``eventstore/health.py``, ``eventstore/metrics.py``), which `/healthz` and `/metrics` show.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from eventstore import health, metrics
from eventstore.exceptions import WatcherEsError

logger = logging.getLogger(__name__)

#: How long a part waits for its next record before looking whether it should stop.
POLL_S = 0.5

#: Container allocations between two young-generation collections (CPython's default is 700).
#: A part allocates a few dicts and tuples per record and frees nearly all of them by reference
#: counting; at 700 a tenth of each part's time went to collections that found nothing and kept
#: rescanning its long-lived caches (2-4% at 50,000, measured per part on 2,000 plans).
GC_YOUNG_THRESHOLD = 50_000


#: How often a part's check runs, and how long it may wait for an answer.
CHECK_S = 2.0
CHECK_TIMEOUT_S = 5.0

#: A part's check: asks its store within the timeout (raising our error if it cannot) and returns
#: the records or positions the part has still to read (None when it cannot tell).
Check = Callable[[float], "int | None"]


class Part(Protocol):
    def poll(self, timeout: float = 0.2) -> int: ...

    def close(self) -> None: ...


class Service:
    """``deadline_pass`` runs in the thread of the part named "projections" (the read model's),
    at most every ``interval_s``, and says False when it could not run yet (a model still catching
    up shows plans CANCELLING whose cancellation has long ended): it is then asked again after the next poll.
    ``closers`` run after every part has closed."""

    def __init__(
        self, parts: Mapping[str, Part], *, deadline_pass: Callable[[], bool] | None = None, interval_s: float = 5.0,
        closers: Sequence[Callable[[], object]] = (), checks: Mapping[str, Check] | None = None,
    ) -> None:
        self.parts: dict[str, Part] = dict(parts)
        self._checks = dict(checks or {})
        self._deadline_pass = deadline_pass
        self._interval_s = interval_s
        self._next_deadline_pass = 0.0
        self._closers = list(closers)
        self._stopping = False
        self._stopped = threading.Event()
        self._crashed: BaseException | None = None
        self._crashed_part = ""

    def stop(self, *_: object) -> None:
        self._stopping = True
        self._stopped.set()

    def run(self, until: Callable[[], bool] | None = None) -> None:
        """Until stopped (SIGTERM, Ctrl-C) or ``until()`` says so; then every part closes."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.stop)
            gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])  # serve's process is ours alone
        for name in self.parts:
            health.set_state(name, "starting")
        threads = [
            threading.Thread(target=self._run_part, args=(name, part), name=f"serve-{name}", daemon=True)
            for name, part in self.parts.items()
        ]
        for thread in threads:
            thread.start()
        try:
            while not self._stopping and not (until and until()):
                self._stopped.wait(0.05)
        finally:
            self.stop()
            for thread in threads:
                thread.join()
            self.close()
        if self._crashed is not None:
            raise self._crashed  # a part died of something unforeseen: serve exits, so a supervisor restarts it whole

    def run_once(self) -> None:
        """One poll of each part and one deadline pass, in this thread (``serve --once``)."""
        try:
            for name, part in self.parts.items():
                part.poll(0)
                if name == "projections":
                    self._deadlines()
        finally:
            self.close()

    def _run_part(self, name: str, part: Part) -> None:
        health.set_state(name, "running")
        next_check = 0.0
        try:
            while not self._stopping:
                failed = self._isolated(name, lambda: part.poll(POLL_S))
                if name == "projections":
                    failed = self._isolated("deadline pass", self._deadlines) or failed
                health.set_state(name, "failing" if failed else "running", failed or "")
                if name in self._checks and time.monotonic() >= next_check:
                    next_check = time.monotonic() + CHECK_S
                    self._check(name)
        except BaseException as exc:  # never a silently dead part in a live serve
            logger.critical("%s stopped on an unexpected error; serve stops", name, exc_info=True)
            health.set_state(name, "stopped", f"{type(exc).__name__}: {exc}")
            self._crashed, self._crashed_part = exc, name
            self.stop()

    def _isolated(self, name: str, work: Callable[[], object]) -> str:
        """One part failing never takes the others down: it is logged and tried again (every effect
        is idempotent). Returns why it failed ('' if it did not)."""
        try:
            work()
        except WatcherEsError as exc:
            logger.error("%s failed, retrying: %s", name, exc)
            time.sleep(0.5)
            return str(exc)
        return ""

    def _check(self, name: str) -> None:
        try:
            behind = self._checks[name](CHECK_TIMEOUT_S)
        except WatcherEsError as exc:
            health.unreached(name, str(exc))
            return
        health.reached(name)
        if behind is not None:
            metrics.consumer_lag(name, behind)

    def _deadlines(self) -> None:
        if self._deadline_pass is None or time.monotonic() < self._next_deadline_pass:
            return
        if self._deadline_pass():
            self._next_deadline_pass = time.monotonic() + self._interval_s

    def close(self) -> None:
        for name, part in self.parts.items():
            if name != self._crashed_part:  # which keeps its own reason
                health.set_state(name, "stopped", "serve is stopping")
            try:
                part.close()
            except Exception as exc:  # noqa: BLE001 - every part must get closed; a rebalance callback may fail as the client shuts down
                logger.warning("closing %s: %s", name, exc)
        for closer in self._closers:
            closer()
