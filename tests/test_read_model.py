"""Read-model behaviour users query directly."""

from __future__ import annotations

from projections.sqlite.backend import EmbeddedBackend

from . import factories as f


def test_plans_sharing_an_action_uuid_keep_their_own_action_rows(service: EmbeddedBackend) -> None:
    shared = "10a47dd1-4874-4298-91cf-eff046dbdb8d"  # the spec's samples reuse uuids across objects
    first, second = f.register(actions=[f.action(shared)]), f.register(actions=[f.action(shared)])
    for command in (first, second, f.cancel(first.plan_uuid)):
        assert service.submit(command).outcome == "accepted"
    assert [a["state"] for a in service.model.actions(first.plan_uuid)] == ["CANCELLED"]
    assert [a["state"] for a in service.model.actions(second.plan_uuid)] == ["PENDING"]
