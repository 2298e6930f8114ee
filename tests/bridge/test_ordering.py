"""Watcher's records back in Watcher's order: held until every partition has been read past them."""

from __future__ import annotations

from eventstore.bridge.ordering import Reorder


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_record_waits_until_every_source_is_read_past_it_or_at_its_end() -> None:
    clock = Ticks()
    held: Reorder[str] = Reorder(grace_s=0, clock=clock)
    held.add(20, "info/0", 1, "update")
    sources = ["info/0", "info/1", "error/0"]
    assert held.release(sources, {}) == []  # info/1 and error/0 have given nothing yet
    held.add(10, "info/1", 1, "create")
    assert held.release(sources, {"error/0": True}) == ["create"]  # info/1 is read to 10 only
    held.add(30, "info/1", 2, "end")
    assert held.release(sources, {"error/0": True}) == ["update"]
    assert held.first_positions() == {"info/1": 2}
    assert held.release(sources, {"error/0": True, "info/0": True, "info/1": True}) == ["end"]


def test_a_record_in_its_grace_holds_back_every_later_one() -> None:
    """Letting a later record go first would hand the mirror an update before its plan's creation."""
    clock = Ticks()
    held: Reorder[str] = Reorder(grace_s=1.0, clock=clock)
    held.add(50, "error/0", 1, "later")
    clock.now = 0.9
    held.add(10, "info/0", 1, "earlier")
    clock.now = 1.2  # "later" has had its grace, "earlier" not yet
    assert held.release(["info/0", "error/0"], {"info/0": True, "error/0": True}) == []
    clock.now = 2.0
    assert held.release(["info/0", "error/0"], {"info/0": True, "error/0": True}) == ["earlier", "later"]
