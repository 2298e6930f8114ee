"""Test-only fault points: a real process killed or paused at an exact place, for the crash tests.

``WATCHER_ES_TEST_FAULT=<point>`` (or ``<point>@<n>``: the n-th time it is reached) makes the
process SIGKILL itself at ``kill-*`` points and SIGSTOP itself at ``stop-*`` points, so a test
can prove what a crash or a pause *there* leaves behind. The variable is read once, when the
process starts (reading the environment at every point cost the handler 7% of its time); unset,
a point costs one comparison.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

VARIABLE = "WATCHER_ES_TEST_FAULT"
_reached: Counter[str] = Counter()
_WANTED = os.environ.get(VARIABLE, "")


def fault_point(name: str) -> None:
    if not _WANTED:
        return
    point, _, nth = _WANTED.partition("@")
    if point != name:
        return
    _reached[name] += 1
    if _reached[name] != (int(nth) if nth else 1):
        return
    os.kill(os.getpid(), signal.SIGKILL if name.startswith("kill") else signal.SIGSTOP)
