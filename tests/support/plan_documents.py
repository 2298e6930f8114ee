"""Plan documents as `watcher-es register` reads them (Watcher 17's objects as JSON), for the tests
that drive the CLI: two plans with fixed uuids, and a file to hand the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PLAN = "76be87bd-3422-43f9-93a0-e85a577e3061"
OTHER = "0b5f4b1e-5a53-4f0a-8d77-7f4d7d8c2a01"
A = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(4)]
B = [f"00000000-0000-4000-8000-0000000000b{i}" for i in range(4)]  # OTHER's actions: action uuids are global


def plan_document(plan: str = PLAN, action_states: tuple[str, ...] = ("PENDING", "PENDING", "PENDING"), state: str = "RECOMMENDED") -> dict[str, Any]:
    created = "2016-10-18T09:52:05Z"
    ids = A if plan == PLAN else B
    return {
        "uuid": plan, "state": state, "global_efficacy": [{"name": "released_nodes_ratio", "unit": "%", "value": 40.0}],
        "created_at": created, "updated_at": None, "deleted_at": None,
        "audit": {
            "uuid": "10a47dd1-4874-4298-91cf-eff046dbdb8d", "goal_uuid": "bc830f84-8ae3-4fc6-8bc6-e3dd15e8b49a",
            "strategy_uuid": "cb3d0b58-4415-4d90-b75b-1e96878730e3", "audit_type": "ONESHOT", "state": "SUCCEEDED",
            "scope": [], "parameters": {"period": 3600}, "interval": None, "created_at": created,
        },
        "strategy": {
            "uuid": "cb3d0b58-4415-4d90-b75b-1e96878730e3", "name": "vm_workload_consolidation",
            "display_name": "VM Workload Consolidation Strategy", "parameters_spec": {}, "created_at": created,
        },
        "actions": [
            {"uuid": ids[i], "action_type": "migrate", "input_parameters": {"migration_type": "live", "resource_id": f"vm-{i}"},
             "parents": [ids[i - 1]] if i else [], "state": s, "created_at": created}
            for i, s in enumerate(action_states)
        ],
    }


def write_plan(tmp_path: Path, document: Any, name: str = "plan.json") -> str:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return str(path)
