"""How each part of `serve` is doing, in memory every process of that `serve` shares: what `/healthz` answers.

A part is healthy when it is running (its last poll did not fail) and has reached its store
within ``REACH_WITHIN_S``: the cluster answered it, or the embedded log could be read. The
board is shared memory made before `serve --processes` forks, so each part's process writes
its own slot and the parent, which serves `/healthz`, reads them all; with threads it is plain
memory. Nothing is recorded until `serve --metrics-port` makes a board (``install``): without
it every function here does nothing.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import time
from dataclasses import dataclass
from typing import Any, Literal

State = Literal["starting", "running", "failing", "stopped"]
STATES: tuple[State, ...] = ("starting", "running", "failing", "stopped")

#: A part that has not reached its store for longer is unhealthy (docs/operations.md).
REACH_WITHIN_S = 10.0

_NAME = 32
_REASON = 300


class _Slot(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char * _NAME), ("state", ctypes.c_int), ("since", ctypes.c_double),
        ("reached", ctypes.c_double), ("reason", ctypes.c_char * _REASON), ("unreached", ctypes.c_char * _REASON),
    ]


@dataclass(frozen=True)
class PartHealth:
    part: str
    state: State
    since: float
    #: Seconds since it last reached its store (None: never).
    reached_s_ago: float | None
    reason: str
    healthy: bool
    #: Why it is not healthy ('' when it is).
    problem: str


class Board:
    """A fixed number of slots (one per part), each written by its part and read by anyone."""

    SLOTS = 8

    def __init__(self) -> None:
        fork = multiprocessing.get_context("fork")
        self._slots: Any = fork.RawArray(_Slot, self.SLOTS)
        self._lock: Any = fork.Lock()

    def _slot(self, part: str) -> Any:
        key = part.encode()[: _NAME - 1]
        with self._lock:
            for slot in self._slots:
                if slot.name == key:
                    return slot
            for slot in self._slots:
                if not slot.name:
                    slot.name, slot.state, slot.since = key, 0, time.time()
                    return slot
        raise ValueError(f"no slot left for part {part} ({self.SLOTS} parts at most)")

    def set(self, part: str, state: State, reason: str = "") -> None:
        slot = self._slot(part)
        with self._lock:
            if STATES[slot.state] != state:
                slot.state, slot.since = STATES.index(state), time.time()
            slot.reason = reason.encode(errors="replace")[: _REASON - 1]

    def reached(self, part: str) -> None:
        slot = self._slot(part)
        with self._lock:
            slot.reached, slot.unreached = time.time(), b""

    def unreached(self, part: str, why: str) -> None:
        slot = self._slot(part)
        with self._lock:
            slot.unreached = why.encode(errors="replace")[: _REASON - 1]

    def parts(self, now: float | None = None) -> list[PartHealth]:
        now = time.time() if now is None else now
        out = []
        with self._lock:
            slots = [(s.name.decode(), STATES[s.state], s.since, s.reached, s.reason.decode(), s.unreached.decode()) for s in self._slots if s.name]
        for name, state, since, reached, reason, unreached in slots:
            ago = now - reached if reached else None
            problem = ""
            if state != "running":
                problem = f"{name} is {state}" + (f": {reason}" if reason else "")
            elif ago is None or ago > REACH_WITHIN_S:
                waited = f"for {ago:.0f} s" if ago is not None else f"since it started {now - since:.0f} s ago"
                problem = f"{name} has not reached its store {waited}" + (f": {unreached}" if unreached else "")
            out.append(PartHealth(name, state, since, ago, reason, not problem, problem))
        return out


_board: Board | None = None


def install(board: Board | None) -> None:
    """Keep the parts' health on ``board`` from now on (made before `serve --processes` forks, so
    every part shares it); None stops keeping it."""
    global _board
    _board = board


def board() -> Board | None:
    return _board


def set_state(part: str, state: State, reason: str = "") -> None:
    if _board is not None:
        _board.set(part, state, reason)


def reached(part: str) -> None:
    if _board is not None:
        _board.reached(part)


def unreached(part: str, why: str) -> None:
    if _board is not None:
        _board.unreached(part, why)
