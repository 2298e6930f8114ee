"""``WatcherPeer``: python-watcher 17.0.0 running in a subprocess (``runner.py``), for tests.

    with WatcherPeer(bootstrap_servers, topic="notifications") as peer:
        plan = peer.recommend_dummy()                  # an audit, then its RECOMMENDED plan
        peer.start_plan(plan)
        peer.wait_plan_state(plan, "SUCCEEDED")
        peer.truth()                                   # every plan's and action's state, from Watcher's DB

It talks to Watcher's REST API over HTTP as python-watcherclient does (``PATCH
/v1/action_plans/<uuid>`` with a JSON patch on ``/state``, ``POST /v1/audits``, ``DELETE``,
``GET``), with keystone-less identity headers (X-User-Id, X-Project-Id, X-Roles: admin and
X-OpenStack-Request-ID as the global request id), and reads Watcher's SQLite file read-only for
waits and for the truth. No fixed sleeps: every wait polls a condition until a deadline (``wait_for``).

No python-watcher import here: the only process that imports Watcher is the subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from tests.support.waiting import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
POLL = 0.02
T = TypeVar("T")

PLAN_TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "SUPERSEDED", "DELETED"})


class PeerError(RuntimeError):
    """The peer did something unexpected (died, refused a request, timed out)."""


@dataclass(frozen=True)
class Identity:
    """Who calls Watcher's API: becomes the request context (user, project, global request id)."""

    user: str = "watcher-peer-operator"
    project: str = "watcher-peer-project"
    roles: str = "admin"

    def headers(self, global_request_id: str | None = None) -> dict[str, str]:
        headers = {"X-User-Id": self.user, "X-Project-Id": self.project, "X-Roles": self.roles}
        if global_request_id:
            headers["X-OpenStack-Request-ID"] = global_request_id
        return headers


def new_global_request_id() -> str:
    """A global request id as oslo.middleware accepts it: ``req-`` and a UUID."""
    return f"req-{uuid.uuid4()}"


class WatcherPeer:
    """Starts ``python -m tests.watcher_peer.runner`` against ``bootstrap_servers`` and drives it.

    ``topic`` is the notification topic Watcher is configured with: records land on
    ``<topic>.info`` and ``<topic>.error``. ``workdir`` (a temp dir by default) keeps the
    config, the SQLite DB, the ready file and ``peer.log``. Leaving the ``with`` block stops
    Watcher with SIGTERM (it flushes its Kafka producer); on an exception, or if it does not
    stop in time, it is killed.
    """

    def __init__(self, bootstrap_servers: str, topic: str = "notifications", workdir: Path | None = None,
                 identity: Identity = Identity(), startup_timeout: float = 60, python: str = sys.executable) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="watcher-peer-")
            workdir = Path(self._tmp.name)
        self.workdir = workdir
        self.identity = identity
        self.startup_timeout = startup_timeout
        self.python = python
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.db = workdir / "watcher.db"
        self.startup_seconds = 0.0  # measured here: spawn to ready file
        self.runner_startup_seconds = 0.0  # as the runner measured it (after its imports)

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> WatcherPeer:
        started = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        ready = self.workdir / "ready.json"
        ready.unlink(missing_ok=True)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("OS_WATCHER_DISABLE_EVENTLET_PATCHING", None)
        with (self.workdir / "peer.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [self.python, "-m", "tests.watcher_peer.runner", "--workdir", str(self.workdir),
                 "--bootstrap-servers", self.bootstrap_servers, "--topic", self.topic],
                cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        proc = self.proc

        def is_ready() -> dict[str, Any] | None:
            if proc.poll() is not None:
                raise PeerError(f"watcher peer exited with {proc.returncode} before it was ready:\n{self.log_tail()}")
            if ready.exists():
                return dict(json.loads(ready.read_text()))
            return None

        try:
            info = self.wait_for(is_ready, self.startup_timeout, "the watcher peer to be ready", poll=0.05)
        except BaseException:
            self.kill()
            raise
        self.port = int(info["port"])
        self.runner_startup_seconds = float(info["startup_seconds"])
        self.startup_seconds = time.monotonic() - started
        return self

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, so the runner stops its services and flushes the Kafka producer; kill if stuck."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise PeerError(f"watcher peer did not stop within {timeout} s: killed") from None
        if self.proc.returncode != 0:
            raise PeerError(f"watcher peer exited with {self.proc.returncode}:\n{self.log_tail()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self, crash: bool = False) -> None:
        """Stops (``crash``: SIGKILL, as a dead host) and starts Watcher again on the same DB."""
        if crash:
            self.kill()
        else:
            self.stop()
        self.start()

    def __enter__(self) -> WatcherPeer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if exc_type is None:
                self.stop()
            else:
                self.kill()
        finally:
            if self._tmp is not None:
                self._tmp.cleanup()

    def log_tail(self, lines: int = 40) -> str:
        path = self.workdir / "peer.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # -- waiting --------------------------------------------------------------------------------

    def wait_for(self, condition: Callable[[], T | None], timeout: float, what: str, poll: float = POLL) -> T:
        """Polls ``condition`` (with tests/support/waiting.py) until it returns something other than
        None/False; the peer dying meanwhile ends the wait at once."""

        def attempt() -> tuple[T] | None:
            result = condition()
            if result is not None and result is not False:
                return (result,)
            if self.proc is not None and self.proc.poll() is not None:
                raise PeerError(f"watcher peer died while waiting for {what}:\n{self.log_tail()}")
            return None

        return wait_until(attempt, timeout, what, interval=poll)[0]

    # -- HTTP, as python-watcherclient ------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, identity: Identity | None = None,
                global_request_id: str | None = None, expect: tuple[int, ...] = (200, 201, 202, 204)) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json", **(identity or self.identity).headers(global_request_id)}
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode(errors="replace")
        if status not in expect:
            raise PeerError(f"{method} {path} -> {status}: {text[:2000]}")
        return json.loads(text) if text else None

    def _patch_state(self, plan: str, state: str, identity: Identity | None, global_request_id: str | None) -> Any:
        return self.request("PATCH", f"/v1/action_plans/{plan}", [{"op": "replace", "path": "/state", "value": state}],
                            identity=identity, global_request_id=global_request_id)

    def create_audit(self, goal: str, strategy: str, parameters: dict[str, Any] | None = None,
                     identity: Identity | None = None, global_request_id: str | None = None) -> str:
        body: dict[str, Any] = {"goal": goal, "strategy": strategy, "audit_type": "ONESHOT"}
        if parameters is not None:
            body["parameters"] = parameters
        return str(self.request("POST", "/v1/audits", body, identity=identity, global_request_id=global_request_id)["uuid"])

    def wait_audit_plan(self, audit: str, timeout: float = 30) -> str:
        """The audit's action plan once it is RECOMMENDED (the decision engine made it)."""
        def plan() -> str | None:
            row = self._one("SELECT ap.uuid, ap.state, a.state FROM audits a LEFT JOIN action_plans ap ON ap.audit_id = a.id "
                            "WHERE a.uuid = ?", audit)
            if row is not None and row[2] == "FAILED":
                raise PeerError(f"audit {audit} FAILED:\n{self.log_tail()}")
            return str(row[0]) if row is not None and row[1] == "RECOMMENDED" else None

        return self.wait_for(plan, timeout, f"a RECOMMENDED plan of audit {audit}")

    def recommend(self, goal: str, strategy: str, parameters: dict[str, Any] | None = None,
                  identity: Identity | None = None, timeout: float = 30) -> str:
        """Creates an audit and returns its RECOMMENDED plan's uuid."""
        return self.wait_audit_plan(self.create_audit(goal, strategy, parameters, identity), timeout)

    def recommend_dummy(self, sleep_seconds: float = 1.0, identity: Identity | None = None) -> str:
        """Watcher's ``dummy`` goal and strategy: nop, nop, sleep(``para1``: 1.0 to 10.2 s, truncated to whole seconds)."""
        return self.recommend("dummy", "dummy", {"para1": sleep_seconds}, identity)

    def recommend_actions(self, actions: list[dict[str, Any]], identity: Identity | None = None) -> str:
        """Watcher's ``actuator`` strategy (goal ``unclassified``): a plan of exactly these actions
        (each ``{"action_type": ..., "input_parameters": {...}}``), ordered by the weight planner."""
        return self.recommend("unclassified", "actuator", {"actions": actions}, identity)

    def get_plan(self, plan: str, identity: Identity | None = None) -> dict[str, Any]:
        return dict(self.request("GET", f"/v1/action_plans/{plan}", identity=identity))

    def start_plan(self, plan: str, identity: Identity | None = None, global_request_id: str | None = None) -> Any:
        """RECOMMENDED -> PENDING through the API; the API then asks the applier to launch it."""
        return self._patch_state(plan, "PENDING", identity, global_request_id)

    def cancel_plan(self, plan: str, identity: Identity | None = None, global_request_id: str | None = None) -> str:
        """What ``openstack optimize actionplan cancel`` does: CANCELLING if ONGOING, else CANCELLED.
        Returns the state asked for."""
        state = self.get_plan(plan, identity)["state"]
        target = "CANCELLING" if state == "ONGOING" else "CANCELLED"
        self._patch_state(plan, target, identity, global_request_id)
        return target

    def delete_plan(self, plan: str, identity: Identity | None = None, global_request_id: str | None = None) -> None:
        self.request("DELETE", f"/v1/action_plans/{plan}", identity=identity, global_request_id=global_request_id)

    def supersede_plan(self, plan: str, timeout: float = 30) -> None:
        """Watcher's only way to SUPERSEDED in 17.0.0: the decision engine's ``check_expired``
        periodic (``watcher/objects/action_plan.py: StateManager.check_expired``) supersedes
        RECOMMENDED plans older than ``action_plan_expiry`` hours (1 here, its minimum non-zero
        value); the runner runs that periodic every second. The test ages the plan by moving its
        ``created_at`` two hours back in the SQLite file, then waits for Watcher to do the rest."""
        with self._connect(readonly=False) as db:
            db.execute("UPDATE action_plans SET created_at = datetime(created_at, '-2 hours') WHERE uuid = ?", (plan,))
            db.commit()
        self.wait_plan_state(plan, "SUPERSEDED", timeout=timeout)

    # -- Watcher's DB, read-only ------------------------------------------------------------------

    @contextmanager
    def _connect(self, readonly: bool = True) -> Iterator[sqlite3.Connection]:
        uri = f"file:{self.db}?mode=ro" if readonly else f"file:{self.db}"
        with closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
            yield db

    def _one(self, sql: str, *args: Any) -> Any:
        with self._connect() as db:
            return db.execute(sql, args).fetchone()

    def plan_state(self, plan: str) -> str | None:
        row = self._one("SELECT state FROM action_plans WHERE uuid = ?", plan)
        return None if row is None else str(row[0])

    def wait_plan_state(self, plan: str, *states: str, timeout: float = 30) -> str:
        return self.wait_for(lambda: s if (s := self.plan_state(plan)) in states else None, timeout,
                             f"plan {plan} in {states} (now {self.plan_state(plan)})")

    def wait_plan_launched(self, plan: str, timeout: float = 30) -> None:
        """Until the applier took the plan: its ``launch_action_plan`` RPC endpoint writes its host
        into the plan (``watcher/applier/messaging/trigger.py: TriggerActionPlan.launch_action_plan``)
        before it queues the plan for its worker."""
        self.wait_for(lambda: self._one("SELECT hostname FROM action_plans WHERE uuid = ?", plan)[0], timeout,
                      f"the applier to take plan {plan}")

    def actions(self, plan: str) -> list[dict[str, Any]]:
        """The plan's actions in creation order (deleted ones too), as Watcher's DB has them."""
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(
                "SELECT a.uuid, a.action_type, a.state, a.parents, a.input_parameters, a.status_message, a.deleted "
                "FROM actions a JOIN action_plans ap ON a.action_plan_id = ap.id WHERE ap.uuid = ? ORDER BY a.id", (plan,),
            ).fetchall()
        return [{"uuid": r["uuid"], "action_type": r["action_type"], "state": r["state"],
                 "parents": json.loads(r["parents"] or "[]"), "input_parameters": json.loads(r["input_parameters"] or "{}"),
                 "status_message": r["status_message"], "deleted": bool(r["deleted"])} for r in rows]

    def wait_action(self, plan: str, predicate: Callable[[dict[str, Any]], bool], what: str, timeout: float = 30) -> dict[str, Any]:
        """The first of the plan's actions for which ``predicate`` holds, once one does."""
        return self.wait_for(lambda: next((a for a in self.actions(plan) if predicate(a)), None), timeout,
                             f"an action of plan {plan}: {what}")

    def truth(self) -> dict[str, Any]:
        """Every plan (soft-deleted ones too) with its audit, strategy, state, status message and
        actions, read from Watcher's DB."""
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            plans = db.execute(
                "SELECT ap.uuid, ap.state, ap.status_message, ap.hostname, ap.deleted, ap.created_at, ap.updated_at, "
                "a.uuid AS audit_uuid, s.name AS strategy FROM action_plans ap JOIN audits a ON ap.audit_id = a.id "
                "JOIN strategies s ON ap.strategy_id = s.id ORDER BY ap.id").fetchall()
        result = {}
        for p in plans:
            result[p["uuid"]] = {
                "state": p["state"], "status_message": p["status_message"], "hostname": p["hostname"],
                "deleted": bool(p["deleted"]), "audit_uuid": p["audit_uuid"], "strategy": p["strategy"],
                "created_at": p["created_at"], "updated_at": p["updated_at"],
                "actions": self.actions(p["uuid"]),
            }
        return {"action_plans": result}
