"""The ``watcher-es`` command line: parse, call one library function, print, exit."""

from __future__ import annotations

from projections.cli.app import app

main = app  # the console script's entry point (pyproject.toml)

__all__ = ["app", "main"]
