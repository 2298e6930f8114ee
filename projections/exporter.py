"""`serve --metrics-port PORT`: ``/metrics`` for Prometheus and ``/healthz`` for an orchestrator, on one port.

Started before any part, so `/healthz` answers (503, "starting") while serve still waits for its
cluster. The counts come from prometheus_client's multiprocess files in a folder of this
serve's own (``eventstore/metrics.py``), so with `--processes` the parent, which serves the
port, adds up every part's process; the parts' health comes from the board they share
(``eventstore/health.py``). docs/operations.md says what each metric and answer means.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from eventstore import health, metrics
from eventstore.exceptions import ConfigurationError

logger = logging.getLogger(__name__)

StartResponse = Callable[[str, list[tuple[str, str]]], object]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    """No line per request on stderr: a scrape every 15 s is not news (and would break JSON logs)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _HealthCollector:
    """The board as gauges, so alerts can use it too."""

    def __init__(self, board: health.Board) -> None:
        self._board = board

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        healthy = GaugeMetricFamily("watcher_es_part_healthy", "1 when the part runs and reached its store within 10 s, else 0.", labels=["part"])
        reached = GaugeMetricFamily("watcher_es_part_reached_seconds", "Seconds since the part last reached its store.", labels=["part"])
        for part in self._board.parts():
            healthy.add_metric([part.part], 1.0 if part.healthy else 0.0)
            if part.reached_s_ago is not None:
                reached.add_metric([part.part], part.reached_s_ago)
        yield healthy
        yield reached


def health_report(parts: Iterable[health.PartHealth]) -> tuple[bool, dict[str, Any]]:
    """Whether every part is healthy, and what `/healthz` says of each."""
    listed = list(parts)
    problems = [p.problem for p in listed if not p.healthy] or ([] if listed else ["no part has started yet"])
    return not problems, {
        "status": "ok" if not problems else "unhealthy",
        "problems": problems,
        "parts": {
            p.part: {
                "state": p.state, "healthy": p.healthy, "reason": p.reason,
                "reached_s_ago": round(p.reached_s_ago, 1) if p.reached_s_ago is not None else None,
            }
            for p in listed
        },
    }


class Exporter:
    """The endpoint, from ``start`` (which turns metrics and the health board on) to ``stop``."""

    def __init__(self, port: int, host: str = "") -> None:
        self.port = port
        self._host = host
        self._folder: Path | None = None
        self._server: _Server | None = None
        self._registry: Any = None
        self._board: health.Board | None = None

    def start(self) -> Exporter:
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        self._folder = Path(tempfile.mkdtemp(prefix="watcher-es-metrics-"))
        metrics.enable(self._folder)
        self._board = health.Board()
        health.install(self._board)
        self._registry = CollectorRegistry()
        MultiProcessCollector(self._registry, path=str(self._folder))  # type: ignore[no-untyped-call]
        self._registry.register(_HealthCollector(self._board))
        try:
            self._server = make_server(self._host, self.port, self._app, server_class=_Server, handler_class=_Quiet)
        except OSError as exc:
            self.stop()
            raise ConfigurationError(f"--metrics-port {self.port}: cannot listen there: {exc.strerror}") from None
        threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True).start()
        logger.info("metrics at http://%s:%d/metrics, health at /healthz", self._host or "0.0.0.0", self.port)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

            body = generate_latest(self._registry)
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
            return [body]
        if path == "/healthz":
            assert self._board is not None
            ok, report = health_report(self._board.parts())
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "application/json")])
            return [json.dumps(report).encode() + b"\n"]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"/metrics or /healthz\n"]
