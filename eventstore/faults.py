"""Test-only fault points: a real process killed or paused at an exact place, for the crash tests.

``WATCHER_ES_TEST_FAULT=<point>`` (or ``<point>@<n>``: the n-th time it is reached) makes the
process SIGKILL itself at ``kill-*`` points and SIGSTOP itself at ``stop-*`` points, so a test
can prove what a crash or a pause *there* leaves behind. Unset, a point costs one dict lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

VARIABLE = "WATCHER_ES_TEST_FAULT"
_reached: Counter[str] = Counter()


def fault_point(name: str) -> None:
    wanted = os.environ.get(VARIABLE)
    if not wanted:
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    _reached[name] += 1
    if _reached[name] != (int(nth) if nth else 1):
        return
    os.kill(os.getpid(), signal.SIGKILL if name.startswith("kill") else signal.SIGSTOP)
