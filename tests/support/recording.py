"""What python-watcher 17.0.0 really sent for eleven plans, and what its database said after
(tests/watcher_peer/recordings, made by ``python -m tests.watcher_peer.record``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RECORDINGS = Path(__file__).parents[1] / "watcher_peer" / "recordings"
#: Every record of Watcher's two topics, by (topic, partition, offset).
RECORDS: list[dict[str, Any]] = [json.loads(line) for line in (RECORDINGS / "mix.jsonl").read_text().splitlines()]
#: Watcher's database at the end: ``action_plans`` by uuid, ``scenarios`` (name -> plan uuid), the journal.
TRUTH: dict[str, Any] = json.loads((RECORDINGS / "mix.truth.json").read_text())
#: Each plan's scenario name.
SCENARIO: dict[str, str] = {plan: name for name, plan in TRUTH["scenarios"].items()}
