"""`python -m eventstore` is the `watcher-es` command."""

from .cli import main

main()
