"""``quick_init`` changes how fast a record is built, nothing else users see of it."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from eventstore.log import StoredEvent


def test_records_built_by_quick_init_are_the_dataclasses_they_were() -> None:
    a = StoredEvent(1, "p", 2, "e", "t", "c", 3, b"b", "h")
    b = StoredEvent(position=1, plan_uuid="p", version=2, event_id="e", event_type="t", command_id="c", occurred_at=3, body=b"b", hash="h", source="log")
    assert a == b and hash(a) == hash(b) and a.source == "log"
    assert repr(a).startswith("StoredEvent(position=1, plan_uuid='p'")
    with pytest.raises(FrozenInstanceError):
        a.position = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        StoredEvent(1, "p")  # type: ignore[call-arg]
