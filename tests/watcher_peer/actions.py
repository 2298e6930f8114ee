"""The test's own Watcher action, loaded by python-watcher's applier inside the peer subprocess.

Registered as ``peer`` and ``peer_pair`` in Watcher's ``watcher_actions`` namespace by entry
points that ``runner.py`` writes into a temp dir (see ``runner.register_entry_points``): the two
names differ only in how Watcher's weight planner chains them (one or two per step). Imported only
in the subprocess: it needs python-watcher.

``peer`` runs for ``duration`` seconds (checked every 20 ms, so fractions of a second work,
unlike Watcher's own ``sleep`` which truncates to whole seconds). Two knobs drive the cancel
scenarios:

``on_cancel``
    ``"finish"`` (default): keep running to the end, like Watcher's ``sleep``.
    ``"interrupt"``: as soon as the action's plan is CANCELLING, stop and raise a
    ``WatcherException`` whose message Watcher cannot format. Watcher's
    ``BaseTaskFlowActionContainer.execute`` catches it and calls ``_fail_action``, which formats
    the message into the status message *before* it writes FAILED; the formatting raises
    ``ActionInterrupted``, which escapes Watcher's error handling, so the action is still ONGOING
    in the DB when the workflow reverts. That is the only way 17.0.0 reaches ``abort()``: taskflow
    waits for every running action to finish before it reverts, and an action that finishes
    through Watcher's own handling is SUCCEEDED or FAILED.

``abort``
    ``"succeed"`` (default): ``abort()`` returns True (Watcher records CANCELLED).
    ``"raise"``: ``abort()`` raises (Watcher's ``do_abort`` catches it and records FAILED).
    ``"lose_record"``: ``abort()`` soft-deletes its own action row, then returns True, so Watcher's
    abort bookkeeping (``engine.notify`` -> ``Action.get_by_uuid``) raises ``ActionNotFound``,
    which ``BaseTaskFlowActionContainer.revert`` catches and reports as ``action.cancel.error``.

``tag`` is free text that makes each action unique (Watcher's solution drops duplicate actions)
and lets the action find its own DB row (a Watcher action is not told its uuid).
"""

# mypy: disable-error-code="import-untyped"
from __future__ import annotations

import time
from typing import Any

from oslo_log import log

from watcher import objects
from watcher.applier.actions import base
from watcher.common import context as wcontext
from watcher.common import exception
from watcher.db import api as db_api

LOG = log.getLogger(__name__)

TICK = 0.02


class ActionInterrupted(Exception):
    """What escapes Watcher's error bookkeeping when it formats an interrupted action's message."""


class _UnformattableMessage(str):
    """A message that is a ``str`` (so ``WatcherException.__str__`` returns it) but cannot be
    formatted into another string (``"%s" % message`` calls ``__str__`` on a str subclass)."""

    def __str__(self) -> str:
        raise ActionInterrupted(str.__str__(self)) from None


def _admin_context() -> Any:
    # overwrite=False: leave the thread's logging context (the applier's request) alone.
    return wcontext.make_context(is_admin=True, overwrite=False)


class PeerAction(base.BaseAction):  # type: ignore[misc]
    """A test action: waits ``duration`` seconds; see the module doc for ``on_cancel`` and ``abort``."""

    @property
    def schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "duration": {"type": "number", "minimum": 0},
                "on_cancel": {"type": "string", "enum": ["finish", "interrupt"]},
                "abort": {"type": "string", "enum": ["succeed", "raise", "lose_record"]},
                "tag": {"type": "string"},
            },
            "required": ["duration", "tag"],
            "additionalProperties": False,
        }

    def _own_action(self, *states: str) -> Any:
        """This action's DB object: the one in ``states`` with this action's ``tag``."""
        ctx = _admin_context()
        for state in states:
            for action in objects.Action.list(ctx, filters={"state": state}, eager=True):
                if action.input_parameters.get("tag") == self.input_parameters["tag"]:
                    return action
        return None

    def _plan_is_cancelling(self) -> bool:
        action = self._own_action(objects.action.State.ONGOING)
        if action is None:
            return False
        plan = objects.ActionPlan.get_by_id(_admin_context(), action.action_plan_id)
        return bool(plan.state in objects.action_plan.State.CANCEL_STATES)

    def execute(self) -> bool:
        deadline = time.monotonic() + float(self.input_parameters["duration"])
        interrupt = self.input_parameters.get("on_cancel", "finish") == "interrupt"
        while time.monotonic() < deadline:
            if interrupt and self._plan_is_cancelling():
                LOG.info("peer action %s: plan is cancelling, interrupting", self.input_parameters["tag"])
                raise exception.WatcherException(_UnformattableMessage("interrupted: the action plan is being cancelled"))
            time.sleep(TICK)  # taking ``duration`` is what this action is for: a window to cancel it in
        return True

    def abort(self) -> bool:
        mode = self.input_parameters.get("abort", "succeed")
        LOG.info("peer action %s: abort (%s)", self.input_parameters["tag"], mode)
        if mode == "raise":
            raise RuntimeError("peer action: abort failed on purpose")
        if mode == "lose_record":
            action = self._own_action(objects.action.State.CANCELLING, objects.action.State.ONGOING)
            if action is not None:
                db_api.get_instance().soft_delete_action(action.uuid)
        return True

    def revert(self) -> bool:
        return True

    def pre_condition(self) -> None:
        pass

    def post_condition(self) -> None:
        pass

    def get_description(self) -> str:
        return "watcher-es test peer: waits, optionally interrupted by a cancel; abort succeeds, raises or loses its record"
