"""`--log-format json`: one JSON object a line on stderr, for a log collector; secrets never appear, in either format."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from projections.cli.logs import JsonLines, Redacting

from tests.support.tansu import free_port
from tests.support.waiting import wait_until

SECRET = "hunter2-not-for-logs"


def test_serve_logs_json_lines_without_its_secrets(tmp_path: Path) -> None:
    """A serve waiting for a cluster that is not there, with SASL credentials: every line it logs is JSON."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_ES_")} | {"WATCHER_ES_LOG_FORMAT": "json"}
    stderr = tmp_path / "serve.err"
    with stderr.open("wb") as out:
        serve = subprocess.Popen(
            [sys.executable, "-m", "projections", "--db", str(tmp_path / "w.db"), "--bootstrap-servers", f"127.0.0.1:{free_port()}",
             "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanism=PLAIN", "-X", "sasl.username=ops",
             "-X", f"sasl.password={SECRET}", "serve", "--metrics-port", str(free_port())],
            env=env, stdout=subprocess.DEVNULL, stderr=out,
        )
    try:
        wait_until(lambda: "waiting for the cluster" in stderr.read_text(), 60, lambda: f"a line saying serve waits: {stderr.read_text()}")
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(30)
    assert serve.returncode == 0, "SIGTERM stops a waiting serve cleanly"
    text = stderr.read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    assert all({"time", "level", "part", "message"} <= set(line) for line in lines), text
    assert [line["level"] for line in lines if "waiting for the cluster" in line["message"]][0] == "warning"
    assert all(line["part"] == "serve" for line in lines)
    assert SECRET not in text and "********" in text


def test_a_line_names_the_ids_it_is_about_and_its_part() -> None:
    record = logging.LogRecord("eventstore.kafka.io", logging.WARNING, __file__, 1, "dead-lettering %s", ("x/0 offset 4",), None)
    record.plan, record.command, record.position = "p-1", "c-1", "x/0 offset 4"
    record.threadName = "serve-translator"
    line = json.loads(JsonLines().format(record))
    assert line["part"] == "translator" and line["level"] == "warning" and line["message"] == "dead-lettering x/0 offset 4"
    assert (line["plan"], line["command"], line["position"]) == ("p-1", "c-1", "x/0 offset 4")
    assert line["time"].endswith("+00:00")


def test_a_secret_quoted_by_an_error_is_masked() -> None:
    try:
        raise ValueError(f"bad sasl.password={SECRET}")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed with %s", (SECRET,), sys.exc_info())
    assert Redacting([SECRET]).filter(record)
    line = JsonLines().format(record)
    assert SECRET not in line and "failed with ********" in line and "bad sasl.password=********" in line
