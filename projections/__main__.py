"""`python -m projections` is the `watcher-es` command."""

from projections.cli import main

main()
