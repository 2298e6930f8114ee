"""A domain Plan in the read model's row shape, so one renderer serves both backends."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from eventstore.domain.plan import Plan


def plan_row(plan: Plan) -> dict[str, Any]:
    c = plan.cancellation
    return {
        "uuid": plan.uuid, "audit_uuid": plan.audit.uuid, "strategy_uuid": plan.strategy.uuid, "state": plan.state,
        "global_efficacy": plan.global_efficacy, "created_at": plan.created_at, "updated_at": plan.updated_at,
        "deleted_at": plan.deleted_at, "version": plan.version,
        "cancel_requested_by": c.requested_by if c else None, "cancel_reason": c.reason if c else None,
        "cancel_started_at": c.started_at if c else None, "abort_deadline": c.abort_deadline if c else None,
        "fault": json.dumps(asdict(plan.fault), sort_keys=True) if plan.fault else None,
        "last_event_at": None, "action_count": len(plan.actions),
    }


def action_rows(plan: Plan) -> list[dict[str, Any]]:
    return [
        {
            "uuid": a.uuid, "action_plan_uuid": plan.uuid, "idx": i, "action_type": a.action_type,
            "input_parameters": a.input_parameters, "parents": json.dumps(list(a.parents)), "state": a.state,
            "fault": json.dumps(asdict(a.fault), sort_keys=True) if a.fault else None,
            "created_at": a.created_at, "updated_at": a.updated_at, "deleted_at": a.deleted_at,
        }
        for i, a in enumerate(plan.actions)
    ]
