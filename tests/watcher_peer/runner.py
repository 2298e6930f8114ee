"""python-watcher 17.0.0 in one subprocess, for tests: API, decision engine and applier.

    python -m tests.watcher_peer.runner --workdir DIR --bootstrap-servers HOST:PORT[,HOST:PORT] \
        [--topic notifications] [--port 0]

(run from the repository root). It writes ``DIR/watcher.conf``, creates Watcher's schema in
``DIR/watcher.db`` (SQLite) with Watcher's own ``create_schema`` (what ``watcher-db-manage
create_schema`` runs), starts the decision engine and the applier services as Watcher's own
``watcher-decision-engine`` / ``watcher-applier`` commands build them, serves Watcher's WSGI app
(``watcher.api.app.VersionSelectorApplication``, what ``watcher-api-wsgi`` serves) on 127.0.0.1,
then writes ``DIR/ready.json`` (``{"port": ..., "pid": ..., "db": ...}``) and serves until
SIGTERM/SIGINT, on which it stops the services and flushes the Kafka producer.

What is not Watcher's stock set-up, and why:

* RPC between API, decision engine and applier is oslo.messaging's ``fake://`` transport (one
  process); notifications go to the real broker through oslo.messaging's Kafka driver.
* No keystone: ``[DEFAULT] auth_strategy``-less ``enable_authentication = false``; the API builds
  its request context from the X-User-Id / X-Project-Id / X-Roles headers the caller sends.
* No Nova: the ``compute`` cluster-data-model collector's ``execute`` is replaced by one that
  returns a model with one compute node, because every strategy (``dummy`` and ``actuator``
  included) checks in ``BaseStrategy._pre_execute`` that the compute model is not empty.
* The test action (``tests/watcher_peer/actions.py``) is added to the ``watcher_actions``
  entry-point namespace twice, by a ``.dist-info`` written into ``DIR/plugins``: as ``peer``
  (the weight planner chains them one per step) and ``peer_pair`` (two per step). Their weights
  are the lightest, so in a mixed plan they come after Watcher's ``nop`` and ``sleep``.
* SQLite: every transaction is BEGIN IMMEDIATE, in WAL mode (``serialize_sqlite_writers``).
* The decision engine listens to no notification topic (``notification_topics`` is empty): it
  would otherwise join a Kafka consumer group for Nova's notifications.

Eventlet: python-watcher 17.0.0 monkey-patches only when ``OS_WATCHER_DISABLE_EVENTLET_PATCHING``
is set to a false value (``watcher/eventlet.py: _is_patching_enabled``); the default is native
threads with oslo.service's threading backend, which is what this runner uses (it sets the
variable to ``true`` to be sure).
"""

# mypy: disable-error-code="import-untyped"
from __future__ import annotations

import argparse
import json
import os
import signal
import socketserver
import sys
import threading
import time
import wsgiref.simple_server
from pathlib import Path
from types import FrameType
from typing import Any

# [watcher_planners.weight] weights and parallelization: Watcher's defaults
# (watcher/decision_engine/planner/weight.py: WeightPlanner.action_weights / parallelization) plus
# the test's own actions. Every weight has two digits: an oslo.config DictOpt read from a file has
# string values, and WeightPlanner.get_sorted_actions_by_weight sorts the weights as given, so "9"
# would sort above "70". ``peer`` / ``peer_pair`` are the lightest: in a mixed plan they come after
# Watcher's nop (70) and sleep (40).
ACTION_WEIGHTS = {
    "nop": "70", "volume_migrate": "60", "change_nova_service_state": "50", "sleep": "40", "shelve": "37",
    "stop": "35", "delete": "33", "migrate": "30", "resize": "20", "turn_host_to_acpi_s3_state": "10",
    "change_node_power_state": "09", "peer": "08", "peer_pair": "07",
}
# ``peer`` one to a step of the plan, ``peer_pair`` two.
PARALLELIZATION = {
    "turn_host_to_acpi_s3_state": "2", "resize": "2", "stop": "2", "delete": "2", "shelve": "2", "migrate": "2",
    "sleep": "1", "change_nova_service_state": "1", "nop": "1", "change_node_power_state": "2", "volume_migrate": "2",
    "peer": "1", "peer_pair": "2",
}


def _dict_opt(values: dict[str, str]) -> str:
    return ",".join(f"{k}:{v}" for k, v in values.items())


def write_config(workdir: Path, bootstrap_servers: str, topic: str, port: int, expiry_check_s: int) -> Path:
    db = workdir / "watcher.db"
    conf = workdir / "watcher.conf"
    conf.write_text(f"""\
[DEFAULT]
host = watcher-peer
transport_url = fake://
debug = false
use_stderr = true
notification_level = info
enable_authentication = false

[api]
host = 127.0.0.1
port = {port}

[database]
connection = sqlite:///{db}

[oslo_messaging_notifications]
driver = messagingv2
transport_url = kafka://{bootstrap_servers}
topics = {topic}

[oslo_messaging_kafka]
producer_batch_timeout = 0

[oslo_concurrency]
lock_path = {workdir / "locks"}

[collector]
collector_plugins = compute

[watcher_decision_engine]
notification_topics =
action_plan_expiry = 1
check_periodic_interval = {expiry_check_s}

[watcher_applier]
workers = 1

[watcher_workflow_engines.taskflow]
max_workers = 1

[watcher_planners.weight]
weights = {_dict_opt(ACTION_WEIGHTS)}
parallelization = {_dict_opt(PARALLELIZATION)}
""")
    return conf


def register_entry_points(workdir: Path) -> None:
    """Adds ``peer`` to Watcher's ``watcher_actions`` namespace: a dist-info on sys.path."""
    plugins = workdir / "plugins"
    dist = plugins / "watcher_es_test_peer-0.0.0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: watcher-es-test-peer\nVersion: 0.0.0\n")
    (dist / "entry_points.txt").write_text(
        "[watcher_actions]\npeer = tests.watcher_peer.actions:PeerAction\npeer_pair = tests.watcher_peer.actions:PeerAction\n")
    sys.path.insert(0, str(plugins))
    import importlib

    importlib.invalidate_caches()


def install_fake_cluster() -> None:
    """The ``compute`` collector returns one compute node instead of asking Nova."""
    from watcher.decision_engine.model import element, model_root
    from watcher.decision_engine.model.collector import nova

    def execute(self: Any) -> Any:
        model = model_root.ModelRoot()
        model.add_node(element.ComputeNode(
            uuid="a5d1e8a4-5b2d-4c6e-9d32-0b1b1a1e0001", hostname="peer-compute-0", state="online", status="enabled",
            disabled_reason=None, vcpus=8, vcpu_reserved=0, vcpu_ratio=1.0, memory=16384, memory_mb_reserved=0,
            memory_ratio=1.0, disk=100, disk_gb_reserved=0, disk_ratio=1.0,
        ))
        return model

    nova.NovaClusterDataModelCollector.execute = execute


def serialize_sqlite_writers() -> None:
    """Every SQLite transaction of this process starts with BEGIN IMMEDIATE, in WAL mode.

    Watcher's API, decision engine and applier threads share the SQLite file. With pysqlite's
    deferred transactions, a transaction that read and then writes while another one writes gets
    "database is locked" at once (SQLite does not wait on a lock upgrade that could deadlock):
    the API's POST /v1/audits failed so while the decision engine wrote an earlier audit's plan.
    Taking the write lock at BEGIN makes writers queue on the busy timeout instead (SQLAlchemy's
    documented pysqlite recipe); WAL keeps the test's read-only polling from blocking them.
    """
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _connect(dbapi_connection: Any, connection_record: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.isolation_level = None  # pysqlite must not BEGIN on its own (oslo.db does the same)
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            dbapi_connection.execute("PRAGMA busy_timeout=30000")

    @event.listens_for(Engine, "begin")
    def _begin(connection: Any) -> None:
        # Runs before oslo.db's own listener (oslo_db/sqlalchemy/engines.py: _sqlite_emit_begin),
        # which emits a plain BEGIN unless its marker says a transaction is open.
        if connection.dialect.name == "sqlite" and "in_transaction" not in connection.info:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            connection.info["in_transaction"] = True


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, wsgiref.simple_server.WSGIServer):
    daemon_threads = True


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (the base class's name)
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--topic", default="notifications")
    parser.add_argument("--port", type=int, default=0, help="0: a free port, reported in ready.json")
    parser.add_argument("--expiry-check-seconds", type=int, default=1,
                        help="[watcher_decision_engine] check_periodic_interval (the SUPERSEDED periodic)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "locks").mkdir(exist_ok=True)

    os.environ["OS_WATCHER_DISABLE_EVENTLET_PATCHING"] = "true"
    register_entry_points(workdir)
    serialize_sqlite_writers()

    # What watcher/cmd/eventlet/__init__.py does before any service module is imported.
    from watcher import eventlet as watcher_eventlet
    from watcher.common import oslo_service_helper

    watcher_eventlet.patch()
    assert not watcher_eventlet.is_patched()
    oslo_service_helper.init_oslo_service_backend()

    # The API's port: bind first, so the port in the config is the one served.
    server = wsgiref.simple_server.make_server("127.0.0.1", args.port, lambda e, s: [], _ThreadingWSGIServer, _QuietHandler)
    port = server.server_port
    config_file = write_config(workdir, args.bootstrap_servers, args.topic, port, args.expiry_check_seconds)

    from watcher import conf as watcher_conf
    from watcher.common import rpc
    from watcher.common import service as watcher_service

    conf = watcher_conf.CONF
    watcher_service.prepare_service([sys.argv[0], "--config-file", str(config_file)], conf)

    from watcher.db.sqlalchemy import migration

    if not (workdir / "watcher.db").exists() or migration.version() is None:
        migration.create_schema()

    install_fake_cluster()

    from watcher.api import app as api_app
    from watcher.applier import service as applier_service
    from watcher.applier import sync as applier_sync
    from watcher.decision_engine import service as de_service
    from watcher.decision_engine import sync as de_sync

    # watcher/cmd/decisionengine.py: main, then watcher/cmd/applier.py: main (without the launchers).
    de_sync.Syncer().sync()
    decision_engine = de_service.DecisionEngineService()
    decision_engine.start()
    applier_sync.Syncer().sync()
    applier = applier_service.ApplierService()
    applier.start()

    server.set_app(api_app.VersionSelectorApplication())
    http = threading.Thread(target=server.serve_forever, name="watcher-api", daemon=True)
    http.start()

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    ready = {"port": port, "pid": os.getpid(), "db": str(workdir / "watcher.db"),
             "startup_seconds": round(time.monotonic() - started, 3)}
    tmp = workdir / "ready.json.tmp"
    tmp.write_text(json.dumps(ready))
    tmp.replace(workdir / "ready.json")
    print(f"watcher-peer ready {json.dumps(ready)}", flush=True)

    stop.wait()
    server.shutdown()
    for service in (applier, decision_engine):
        try:
            service.stop()
        except Exception as e:  # a stopping service must not keep the producer from flushing
            print(f"watcher-peer: stopping {type(service).__name__}: {e!r}", file=sys.stderr)
    rpc.cleanup()  # closes the Kafka producer: flushes what is still queued
    print("watcher-peer stopped", flush=True)
    sys.stdout.flush()
    os._exit(0)  # apscheduler / futurist worker threads are not daemons


if __name__ == "__main__":
    sys.exit(main())
