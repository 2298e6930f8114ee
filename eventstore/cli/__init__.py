"""The ``watcher-es`` command line: parse, call one library function, print, exit."""

from __future__ import annotations

from .app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
